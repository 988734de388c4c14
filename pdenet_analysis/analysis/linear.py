"""Matrix-free Jacobians: J·v and Jᵀ·w by forward- and reverse-mode autodiff (torch.func).

``JacobianOperator(fn, x)`` is the Jacobian of a map ``fn`` at ``x`` acting on flattened vectors.
It never forms the matrix (``dense()`` does, for validation on small problems only). It offers
``matvec``/``rmatvec`` on torch vectors (device-native, for the Lanczos/Arnoldi here) and
``as_scipy()`` for scipy.sparse.linalg on CPU.

Which Jacobian the paper's stability analysis needs (§3.1) depends on the operator kind:

* first order:   J = ∂F/∂Y (for F_sym: −Kᵀ diag(σ'(KY)) K with N = id);
* second order:  J = ∂F/∂Y of Y'' = F (the first-order form has eigenvalues ±√λ(J));
* Hamiltonian:   the system Jacobian [[0, A], [B, 0]] with A = ∂f/∂Z, B = ∂g/∂Y; its squared
                 blocks BA govern the partitioned schemes (z = h²λ(BA)) and its eigenvalues are
                 ±√λ(BA).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import torch
from torch.func import jvp, linearize, vjp

from ..errors import InvalidArgumentError
from ..schemes.metadata import LayerJacobian
from .modes import analyses_an_operator


def _as_tuple(x) -> tuple:
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def flatten_state(state: tuple, batch: int) -> torch.Tensor:
    """(batch, n): each example's components flattened and concatenated."""
    return torch.cat([c.reshape(batch, -1) for c in state], dim=1)


def unflatten_state(v: torch.Tensor, like: tuple, batch: int) -> tuple:
    """The inverse of :func:`flatten_state` for tensors shaped as ``like``."""
    sizes = [c.numel() // batch for c in like]
    return tuple(p.reshape(c.shape) for p, c in zip(v.reshape(batch, -1).split(sizes, dim=1), like))


class JacobianOperator:
    """J = ∂fn/∂x at x, as a linear map on flattened vectors.

    ``x`` is a tensor or a tuple of tensors (a scheme's state); ``fn`` returns the same kind.
    With ``batched=False`` the whole input is one vector of length ``x.numel()`` and ``matvec``
    takes and returns 1-D tensors. With ``batched=True`` dim 0 of every component indexes
    independent examples (``fn`` must not couple them — true of every operator and scheme here,
    whose normalisation is per pixel and example); J is then block diagonal, ``shape`` is the
    size of one block, and ``matvec``/``rmatvec`` act on (batch, n) — one product gives every
    example's J_b v_b, so Krylov solvers run all examples at once.

    Products: J·v through ``torch.func.linearize`` (the linearisation is traced once, after which
    a product costs about one evaluation of ``fn``; plain forward-mode ``jvp`` re-evaluates the
    primal every time), falling back to ``jvp`` if the map cannot be traced; Jᵀ·w through one
    stored ``vjp``.
    """

    def __init__(self, fn: Callable, x, batched: bool = False):
        self._tuple_in = isinstance(x, (tuple, list))
        self.x = tuple(t.detach() for t in _as_tuple(x))
        self.fn = fn
        self.batch = self.x[0].shape[0] if batched else 1
        self.batched = batched
        with torch.no_grad():
            out = self._call(*self.x)
        self._y = tuple(t.detach() for t in _as_tuple(out))
        self.y = self._y if isinstance(out, (tuple, list)) else self._y[0]  #: fn(x), as fn returns it
        n_in = sum(t.numel() for t in self.x) // self.batch
        n_out = sum(t.numel() for t in self._y) // self.batch
        self.shape = (n_out, n_in)
        self.dtype, self.device = self.x[0].dtype, self.x[0].device
        self._jvp = self._vjp = None
        self.n_matvecs = self.n_rmatvecs = 0

    def _call(self, *xs):
        return self.fn(tuple(xs) if self._tuple_in else xs[0])

    def _fn_tuple(self, *xs):
        return _as_tuple(self._call(*xs))

    def _prepare(self, v: torch.Tensor) -> tuple[torch.Tensor, bool]:
        one = v.dim() == 1
        if self.batched and one and self.batch != 1:
            raise InvalidArgumentError(f"a batched operator takes (batch, n) = ({self.batch}, {self.shape[1]}) vectors, got {tuple(v.shape)}")
        return v.to(self.dtype).reshape(self.batch, -1), one

    #: products by plain forward mode before the linearisation is traced (tracing costs about as
    #: much as this many products; afterwards each product costs about one F) ...
    linearize_after = 16
    #: ... and only for inputs of at least this many entries: below, per-call overheads dominate
    #: and the cost of a trace is never repaid
    linearize_min_size = 4096

    def _jvp_fn(self):
        if self._jvp is not None:
            return self._jvp
        if self.n_matvecs < self.linearize_after or sum(t.numel() for t in self.x) < self.linearize_min_size:
            return lambda *t: jvp(self._fn_tuple, self.x, t)[1]
        try:
            with warnings.catch_warnings():  # torch.fx's constant folding warns about its own graph
                warnings.simplefilter("ignore", UserWarning)
                _, self._jvp = linearize(self._fn_tuple, *self.x)
        except Exception:  # an untraceable map: forward mode re-evaluates fn, same numbers
            self._jvp = lambda *t: jvp(self._fn_tuple, self.x, t)[1]
        return self._jvp

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        v, one = self._prepare(v)
        out = flatten_state(_as_tuple(self._jvp_fn()(*unflatten_state(v, self.x, self.batch))), self.batch).detach()
        self.n_matvecs += 1
        return out.reshape(-1) if one else out

    def rmatvec(self, w: torch.Tensor) -> torch.Tensor:
        w, one = self._prepare(w)
        if self._vjp is None:
            _, self._vjp = vjp(self._fn_tuple, *self.x)
        self.n_rmatvecs += 1
        out = flatten_state(self._vjp(unflatten_state(w, self._y, self.batch)), self.batch).detach()
        return out.reshape(-1) if one else out

    def restrict(self, rows) -> "JacobianOperator":
        """The operator of the examples ``rows`` only (a batched operator's examples are
        independent, so this is the same Jacobian's diagonal blocks). Krylov solvers use it to stop
        working on examples that have converged. Linearised at once if this one already was."""
        if not self.batched:
            raise InvalidArgumentError("restrict() needs a batched operator (batched=True)")
        x = tuple(c[rows] for c in self.x)
        sub = JacobianOperator(self.fn, x if self._tuple_in else x[0], batched=True)
        sub.linearize_after = 0 if self._jvp is not None else max(0, self.linearize_after - self.n_matvecs)
        return sub

    def apply_columns(self, E: torch.Tensor) -> torch.Tensor:
        """J·e for every row e of ``E`` (c, n_in) and every example: (c, batch, n_out), through
        ``torch.func.vmap`` over the linearised map (one row at a time where vmap cannot batch the
        map). Many products: the map is linearised at once."""
        self.n_matvecs = max(self.n_matvecs, self.linearize_after)
        fn = self._jvp_fn()
        e = E.to(self.dtype).unsqueeze(1).expand(-1, self.batch, E.shape[-1])  # (c, batch, n)

        def one(v):
            return flatten_state(_as_tuple(fn(*unflatten_state(v, self.x, self.batch))), self.batch)

        self.n_matvecs += E.shape[0]
        try:
            return torch.func.vmap(one)(e).detach()
        except Exception:  # a map vmap cannot batch: row by row
            return torch.stack([one(c).detach() for c in e])

    def dense(self, chunk: int = 64) -> torch.Tensor:
        """The full matrix, (n_out, n_in), or (batch, n_out, n_in) when batched (validation and
        small problems only: O(n²) memory). Columns are computed ``chunk`` at a time
        (:meth:`apply_columns`)."""
        n = self.shape[1]
        cols = []
        for i in range(0, n, chunk):
            c = min(chunk, n - i)  # the unit vectors e_i … e_{i+c−1}, without an n × n identity
            e = torch.zeros(c, n, dtype=self.dtype, device=self.device)
            e[torch.arange(c), torch.arange(i, i + c)] = 1
            cols.append(self.apply_columns(e))
        D = torch.cat(cols).permute(1, 2, 0)  # (batch, n_out, n_in)
        return D if self.batched else D[0]

    def as_scipy(self):
        """A scipy.sparse.linalg.LinearOperator (float64 numpy in and out; unbatched operators)."""
        from scipy.sparse.linalg import LinearOperator

        if getattr(self, "batch", 1) != 1:
            raise InvalidArgumentError("as_scipy() needs one example: build the operator with batched=False or one example")

        def mv(v):
            t = torch.as_tensor(np.array(np.real(v), dtype=np.float64), device=self.device).to(self.dtype)
            return self.matvec(t.reshape(-1)).detach().cpu().double().numpy()

        def rmv(w):
            t = torch.as_tensor(np.array(np.real(w), dtype=np.float64), device=self.device).to(self.dtype)
            return self.rmatvec(t.reshape(-1)).detach().cpu().double().numpy()

        return LinearOperator(self.shape, matvec=mv, rmatvec=rmv, dtype=np.float64)


class ProductOperator:
    """B·A for two Jacobian operators (used for BA of a Hamiltonian operator)."""

    def __init__(self, B: JacobianOperator, A: JacobianOperator):
        self.A, self.B = A, B
        self.shape = (B.shape[0], A.shape[1])
        self.dtype, self.device, self.batch, self.batched = A.dtype, A.device, A.batch, A.batched

    def matvec(self, v):
        return self.B.matvec(self.A.matvec(v))

    def rmatvec(self, w):
        return self.A.rmatvec(self.B.rmatvec(w))

    def dense(self):
        return self.B.dense() @ self.A.dense()

    def restrict(self, rows) -> "ProductOperator":
        return ProductOperator(self.B.restrict(rows), self.A.restrict(rows))

    as_scipy = JacobianOperator.as_scipy


class ChainOperator:
    """A_k ··· A_2 A_1 for operators of one shape and batch, given in the order they act:
    ``ChainOperator([A_1, …, A_k])`` (the inverse flow map S_0⁻¹ ··· S_{N−1}⁻¹ is
    ``ChainOperator([S_{N−1}⁻¹, …, S_0⁻¹])``)."""

    def __init__(self, factors: list):
        self.factors = list(factors)
        f0 = self.factors[0]
        self.shape = (self.factors[-1].shape[0], f0.shape[1])
        self.dtype, self.device, self.batch, self.batched = f0.dtype, f0.device, f0.batch, f0.batched

    def matvec(self, v):
        for A in self.factors:
            v = A.matvec(v)
        return v

    def rmatvec(self, w):
        for A in reversed(self.factors):
            w = A.rmatvec(w)
        return w

    def restrict(self, rows) -> "ChainOperator":
        return ChainOperator([A.restrict(rows) for A in self.factors])


def _one(x: torch.Tensor, index: int) -> torch.Tensor:
    return x[index : index + 1]


@analyses_an_operator
def operator_jacobian(operator, state: tuple, t: float = 0.0, example: int = 0):
    """The Jacobian the linear stability analysis needs, for one example of a batch.

    Returns (J, how), ``how`` a :class:`~pdenet_analysis.schemes.metadata.LayerJacobian`: FIELD
    (first order: z = hλ for RK), ACCELERATION (second order: Y'' = F, λ(J) enter as ±√λ for RK
    and as h²λ for partitioned schemes) or PRODUCT (Hamiltonian: B·A).
    ``state`` is the operator's first-order state (a tuple).
    """
    kind = operator.kind
    if kind == "first_order":
        return JacobianOperator(lambda y: operator.vector_field(t, (y,))[0], _one(state[0], example)), LayerJacobian.FIELD
    if kind == "second_order":
        return JacobianOperator(lambda y: operator.acceleration(t, y), _one(state[0], example)), LayerJacobian.ACCELERATION
    if kind == "hamiltonian":
        y, z = _one(state[0], example), _one(state[1], example)
        A = JacobianOperator(lambda zz: operator.part_f(t, zz), z)
        B = JacobianOperator(lambda yy: operator.part_g(t, yy), y)
        return ProductOperator(B, A), LayerJacobian.PRODUCT
    raise InvalidArgumentError(f"unknown operator kind {kind!r}")
