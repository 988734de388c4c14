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

from collections.abc import Callable

import numpy as np
import torch
from torch.func import jvp, vjp


class JacobianOperator:
    """J = ∂fn/∂x at x, as a linear map on vectors of length ``x.numel()``."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor):
        self.fn, self.x = fn, x.detach()
        with torch.no_grad():
            self.y = fn(self.x)
        self.shape = (self.y.numel(), self.x.numel())
        self.dtype, self.device = self.x.dtype, self.x.device
        self._vjp = None

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        return jvp(self.fn, (self.x,), (v.reshape(self.x.shape).to(self.dtype),))[1].reshape(-1)

    def rmatvec(self, w: torch.Tensor) -> torch.Tensor:
        if self._vjp is None:
            _, self._vjp = vjp(self.fn, self.x)
        return self._vjp(w.reshape(self.y.shape).to(self.dtype))[0].reshape(-1)

    def dense(self) -> torch.Tensor:
        """The full matrix (validation only: O(n²) memory)."""
        return torch.autograd.functional.jacobian(self.fn, self.x).reshape(self.shape)

    def as_scipy(self):
        """A scipy.sparse.linalg.LinearOperator (float64 numpy in and out)."""
        from scipy.sparse.linalg import LinearOperator

        def mv(v):
            t = torch.as_tensor(np.array(np.real(v), dtype=np.float64), device=self.device).to(self.dtype)
            return self.matvec(t).detach().cpu().double().numpy()

        def rmv(w):
            t = torch.as_tensor(np.array(np.real(w), dtype=np.float64), device=self.device).to(self.dtype)
            return self.rmatvec(t).detach().cpu().double().numpy()

        return LinearOperator(self.shape, matvec=mv, rmatvec=rmv, dtype=np.float64)


class ProductOperator:
    """B·A for two Jacobian operators (used for BA of a Hamiltonian operator)."""

    def __init__(self, B: JacobianOperator, A: JacobianOperator):
        self.A, self.B = A, B
        self.shape = (B.shape[0], A.shape[1])
        self.dtype, self.device = A.dtype, A.device

    def matvec(self, v):
        return self.B.matvec(self.A.matvec(v))

    def rmatvec(self, w):
        return self.A.rmatvec(self.B.rmatvec(w))

    def dense(self):
        return self.B.dense() @ self.A.dense()

    as_scipy = JacobianOperator.as_scipy


def _one(x: torch.Tensor, index: int) -> torch.Tensor:
    return x[index : index + 1]


def operator_jacobian(operator, state: tuple, t: float = 0.0, example: int = 0):
    """The Jacobian the linear stability analysis needs, for one example of a batch.

    Returns (J, how): ``how`` is "J" (first order: z = hλ for RK), "J_acc" (second order: Y'' = F,
    λ(J) enter as ±√λ for RK and as h²λ for partitioned schemes) or "BA" (Hamiltonian).
    ``state`` is the operator's first-order state (a tuple).
    """
    kind = operator.kind
    if kind == "first_order":
        return JacobianOperator(lambda y: operator.vector_field(t, (y,))[0], _one(state[0], example)), "J"
    if kind == "second_order":
        return JacobianOperator(lambda y: operator.acceleration(t, y), _one(state[0], example)), "J_acc"
    if kind == "hamiltonian":
        y, z = _one(state[0], example), _one(state[1], example)
        A = JacobianOperator(lambda zz: operator.part_f(t, zz), z)
        B = JacobianOperator(lambda yy: operator.part_g(t, yy), y)
        return ProductOperator(B, A), "BA"
    raise ValueError(f"unknown operator kind {kind!r}")
