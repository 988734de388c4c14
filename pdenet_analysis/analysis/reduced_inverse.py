"""Exact inverses of forward Euler's step maps through the active hidden units (Woodbury).

For forward Euler on a first-order block the one-step map's Jacobian is S = I + M with
M = h ∂F/∂Y, and M factors through the r hidden units that the ReLU keeps on
(:func:`~.stepmap.active_unit_form`): M = P Q with Q = EᵀH (r × n, the derivative of the active
units) and P = h·readout·E (n × r). The Sherman–Morrison–Woodbury identity then gives

    S⁻¹ = I − P (I_r + R)⁻¹ Q,        S⁻ᵀ = I − Qᵀ (I_r + R)⁻ᵀ Pᵀ,        R = Q P,

where R is the r × r matrix whose eigenvalues the stability count already takes (S is singular
exactly when I + R is: det(I + PQ) = det(I + QP)). With I + R factorised once (LU with partial
pivoting: dense on the operator's device up to ``reduced_dense_max`` rows, SuperLU on the host
above, the matrix then assembled sparse from grouped columns), a product with S⁻¹ or S⁻ᵀ costs
one product with P, one with Q and two triangular solves, with no iteration to converge. The
inverse flow map Φ'⁻¹ = S_0⁻¹ ··· S_{N−1}⁻¹ then gives σ_min(Φ') = 1/σ_max(Φ'⁻¹) as fast as
σ_max converges (:mod:`.conditioning`, route "reduced-inverse"). The Woodbury identity is not
backward stable in general; what is reported is certified all the same, by the forward residual
of each singular triplet (measured: S·(S⁻¹v) = v to 4·10⁻¹⁶ at CIFAR-10's first unit, 3·10⁻¹³ at
STL-10's).

This is the route that matters at the paper's step h = 1: training spreads the layer spectrum
(on the 100-epoch Fashion-MNIST parabolic network, hλ of the first block reaches −10.8), so some
hλ lie near −1, S is nearly singular and indefinite, and restarted GMRES on S stalls (relative
residual 2·10⁻² after 150 products), which left κ of those blocks as a lower bound only.
"""

from __future__ import annotations

import torch

from .colouring import local_jacobian
from .linear import JacobianOperator
from .options import REDUCED_DENSE_MAX, REDUCED_SPARSE_MAX
from .stepmap import active_unit_form, reduced_matrix




def _dense_solver(R: torch.Tensor):
    """(I + R)⁻¹ and (I + R)⁻ᵀ by one dense LU with partial pivoting; None if I + R is singular."""
    lu, pivots, info = torch.linalg.lu_factor_ex(torch.eye(R.shape[0], dtype=R.dtype, device=R.device) + R)
    if int(info) != 0:
        return None
    return lambda x, adjoint: torch.linalg.lu_solve(lu, pivots, x.unsqueeze(-1), adjoint=adjoint).squeeze(-1)


def _sparse_solver(R):
    """The same by SuperLU on the host for a ``scipy.sparse`` R (COLAMD ordering, partial pivoting);
    None if I + R is singular."""
    from scipy.sparse import identity
    from scipy.sparse.linalg import splu

    try:
        lu = splu((identity(R.shape[0], format="csr") + R).tocsc())
    except RuntimeError:  # "Factor is exactly singular"
        return None

    def solve(x, adjoint):
        out = lu.solve(x.detach().double().cpu().numpy(), trans="T" if adjoint else "N")
        return torch.as_tensor(out).to(device=x.device, dtype=x.dtype)

    return solve


class _ExampleInverse:
    """S⁻¹ of one example: P, Q as Jacobian operators and ``solve(x, adjoint)`` with I + R
    (P None: S = I)."""

    def __init__(self, P: JacobianOperator | None, Q: JacobianOperator | None, solve=None):
        self.P, self.Q, self.solve = P, Q, solve

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        if self.P is None:
            return v
        return v - self.P.matvec(self.solve(self.Q.matvec(v), False))

    def rmatvec(self, w: torch.Tensor) -> torch.Tensor:
        if self.P is None:
            return w
        return w - self.Q.rmatvec(self.solve(self.P.rmatvec(w), True))


class ReducedStepInverse:
    """S_j⁻¹ of every example of a batch, exact (module docstring); the interface of the
    batched :class:`~.linear.JacobianOperator` (``matvec``/``rmatvec`` on (batch, n),
    ``restrict``). ``rows``: the r of each example; ``products``: what forming the R's took."""

    def __init__(self, examples: list[_ExampleInverse], n: int, dtype, device, rows: list[int], products: int):
        self.examples, self.rows, self.products = examples, rows, products
        self.shape = (n, n)
        self.dtype, self.device = dtype, device
        self.batch, self.batched = len(examples), True

    def _apply(self, v: torch.Tensor, transpose: bool) -> torch.Tensor:
        one = v.dim() == 1
        v = v.to(self.dtype).reshape(self.batch, -1)
        out = torch.stack([(e.rmatvec if transpose else e.matvec)(v[b]) for b, e in enumerate(self.examples)])
        return out.reshape(-1) if one else out

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        return self._apply(v, False)

    def rmatvec(self, w: torch.Tensor) -> torch.Tensor:
        return self._apply(w, True)

    def restrict(self, rows) -> "ReducedStepInverse":
        rows = [int(r) for r in (rows.tolist() if torch.is_tensor(rows) else rows)]
        return ReducedStepInverse([self.examples[r] for r in rows], self.shape[0], self.dtype, self.device,
                                  [self.rows[r] for r in rows], 0)


def active_forms(disc, j: int, max_rows: int = REDUCED_SPARSE_MAX) -> list | None:
    """(StepForm, ActiveUnits) of every example at step ``j``, or None where the route does not
    apply: a step map that is not S = I + M on the state (``StepForm.identity_plus``), a layer
    without hidden units to reduce through, or an example with more than ``max_rows`` active
    units. Cheap (a few evaluations of the layer per example): check every step with it before
    factorising any."""
    t, h, point = disc.steps[j]
    scheme, op = disc.step_scheme, disc.operator
    out = []
    for b in range(point[0].shape[0]):
        form = scheme.reduced_step_form(op, tuple(c[b : b + 1] for c in point), t, h)
        if form is None or not form.identity_plus:
            return None
        active = active_unit_form(op, form)
        if active is None or active.rows > max_rows:
            return None
        out.append((form, active))
    return out


def reduced_step_inverse(disc, j: int, max_rows: int = REDUCED_DENSE_MAX, sparse_max_rows: int = REDUCED_SPARSE_MAX,
                         progress=None, forms: list | None = None) -> ReducedStepInverse | None:
    """S_j⁻¹ of step ``j`` of the discretisation ``disc`` (:class:`~.steps.Discretisation`) for
    every example, or None where this route does not apply (:func:`active_forms`, with at most
    max(``max_rows``, ``sparse_max_rows``) active units; more than ``max_rows`` on a map that is
    not local on an image grid; or I + R exactly singular: then S is, and σ_min = 0 is left to
    the other routes to bound). Up to ``max_rows`` active units I + R is factorised dense on the
    operator's device, above that sparse on the host. ``forms``: what :func:`active_forms`
    returned for this step, if the caller has it. ``progress(b, rows)``, if given, is called
    after each example's factorisation."""
    forms = forms if forms is not None else active_forms(disc, j, max(max_rows, sparse_max_rows))
    if forms is None:
        return None
    examples, rows, products = [], [], 0
    for b, (form, active) in enumerate(forms):
        rows.append(active.rows)
        if active.rows == 0:  # every unit off: M = 0, S = I
            examples.append(_ExampleInverse(None, None))
            continue
        if active.rows <= max_rows:
            R, used = reduced_matrix(active)
            solve = _dense_solver(R)
        else:
            local = None if active.positions is None else \
                local_jacobian(JacobianOperator(active.phi, active.w0), active.positions, active.grid, sparse=True)
            if local is None:
                return None
            R, used = local
            solve = _sparse_solver(R)
        products += used
        if solve is None:
            return None
        P = JacobianOperator(active.lift, active.w0)
        Q = JacobianOperator(active.select, torch.zeros_like(form.u))
        examples.append(_ExampleInverse(P, Q, solve))
        if progress:
            progress(b, active.rows)
    u = disc.steps[j][2][0]
    return ReducedStepInverse(examples, u[0].numel(), u.dtype, u.device, rows, products)
