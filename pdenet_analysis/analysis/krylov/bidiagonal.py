"""Golub–Kahan–Lanczos bidiagonalisation: the largest or smallest singular values of a batched
operator, never squaring its condition number.

A V_j = U_j B_j and Aᵀ U_j = V_j B_jᵀ + β_j v_{j+1} e_jᵀ with B_j upper bidiagonal; the Ritz
values are the singular values of B_j (Golub & Kahan 1965; Golub & Van Loan, *Matrix
Computations*, 4th ed., §10.4; residual estimates as in Larsen's PROPACK, 1998).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ...errors import InvalidArgumentError, real_or_nan, require_probability
from ..threads import with_serial_blas
from .basis import Basis, random_unit, replace_breakdowns, row_norms
from .bounds import decided, lanczos_polynomial_bound


@dataclass
class SingularValues:
    """Result of :func:`golub_kahan`, per example (rows) and value (columns).

    ``values``     (batch, k) Ritz singular values: descending for "largest", ascending for
                   "smallest". Ritz values interlace: a largest one is a lower bound on the true
                   σ_i, a smallest one an upper bound, whatever the residual.
    ``residuals``  (batch, k) ‖Aᵀu − σv‖/σ for the Ritz triplet (A v = σ u holds exactly in the
                   bidiagonalisation). Some singular value of A lies within residual·σ of σ.
    ``status``     per example: "converged" if all k residuals are below ``tol``, else "not_converged".
    ``iterations`` the last step taken; ``example_iterations`` the step at which each example
                   stopped (see ``deflate`` in :func:`golub_kahan`).
    ``right``, ``left``  (batch, k, n) the Ritz vectors (with ``vectors=True``).
    ``theta``, ``log_gamma``  per example, the Ritz values of Lanczos on AᵀA (σ² of B) and Σ log γ_i
                   of its off-diagonals: what :meth:`probable_upper_bound` needs.
    ``left_coefficients``, ``right_coefficients``  (batch, j, k) the singular vectors of B, which
                   combine the bases into the Ritz vectors.
    """

    values: np.ndarray
    residuals: np.ndarray
    status: list
    which: str
    iterations: int
    n_matvecs: int
    tol: float
    right: torch.Tensor | None = field(default=None, repr=False)
    left: torch.Tensor | None = field(default=None, repr=False)
    example_iterations: np.ndarray | None = None
    theta: list = field(default_factory=list, repr=False)
    log_gamma: np.ndarray | None = field(default=None, repr=False)
    left_coefficients: np.ndarray | None = field(default=None, repr=False)
    right_coefficients: np.ndarray | None = field(default=None, repr=False)

    @property
    def converged(self) -> bool:
        return all(s == "converged" for s in self.status)

    def probable_upper_bound(self, n: int, failure_probability: float, unit_roundoff: float = 0.0) -> np.ndarray:
        """Per example, an upper bound on the largest singular value σ_1 that fails with probability
        at most δ = ``failure_probability`` over the random start vector (``which="largest"``
        runs; n: the operator's number of columns). See
        :func:`~.bounds.lanczos_polynomial_bound`."""
        if self.which != "largest":
            raise InvalidArgumentError("a probable upper bound is for the largest singular value (which='largest')")
        return np.array([lanczos_polynomial_bound(th, lg, n, failure_probability, j, unit_roundoff)
                         for th, lg, j in zip(self.theta, self.log_gamma, self.example_iterations)])


def _bidiagonal(alphas: list, betas: list, b: int) -> np.ndarray:
    j = len(alphas)
    B = np.zeros((j, j))
    B[np.arange(j), np.arange(j)] = [a[b] for a in alphas]
    if j > 1:
        B[np.arange(j - 1), np.arange(1, j)] = [be[b] for be in betas[: j - 1]]
    return B


def ritz_triplets(alphas, betas, beta_last, k, which, tol, j, n_mv) -> SingularValues:
    """The Ritz singular triplets of every example's bidiagonal B_j after step j, with their
    residual estimates |β_j p_{j,i}|/σ_i and Lanczos data for the probable bound."""
    batch = len(beta_last)
    kk = min(k, len(alphas))
    vals, res, Ps, Qs = np.zeros((batch, kk)), np.zeros((batch, kk)), [], []
    thetas, log_gamma = [], np.zeros(batch)
    for b in range(batch):
        B = _bidiagonal(alphas, betas, b)
        P, s, Qt = np.linalg.svd(B)
        # Lanczos on AᵀA: T = BᵀB, off-diagonals α_i β_i, the last one α_j β_j with β_j = beta_last
        thetas.append(s**2)
        gam = np.diag(B) * np.append(np.diag(B, 1), beta_last[b])
        with np.errstate(divide="ignore"):
            log_gamma[b] = np.sum(np.log(np.abs(gam)))
        idx = np.arange(kk) if which == "largest" else np.arange(len(s) - 1, len(s) - 1 - kk, -1)
        vals[b] = s[idx]
        res[b] = np.abs(beta_last[b] * P[-1, idx]) / np.maximum(s[idx], 1e-300)
        Ps.append(P[:, idx])
        Qs.append(Qt.T[:, idx])
    status = ["converged" if kk == k and np.all(r < tol) else "not_converged" for r in res]
    return SingularValues(vals, res, status, which, j, n_mv, tol, theta=thetas, log_gamma=log_gamma,
                          left_coefficients=np.stack(Ps), right_coefficients=np.stack(Qs))


def _check_arguments(op, k, which, certify_below, failure_probability) -> float:
    if which not in ("largest", "smallest"):
        raise InvalidArgumentError(f"which must be 'largest' or 'smallest', got {which!r}")
    if certify_below is not None:
        if which != "largest":
            raise InvalidArgumentError("certify_below decides σ_1 ≤ c: it needs which='largest'")
        if not 0.0 < real_or_nan(certify_below) < math.inf:
            raise InvalidArgumentError(f"certify_below is the c of 'σ_1 ≤ c?', a positive finite number, got "
                                       f"{certify_below!r}")
        failure_probability = require_probability("failure_probability", failure_probability)
    dim = min(op.shape)
    if not 1 <= k <= dim:
        raise InvalidArgumentError(f"k must be between 1 and the operator's dimension {dim}, got {k}")
    return failure_probability


@dataclass
class _SetAside:
    """An example that stopped before the others: its values at the step it stopped."""

    values: np.ndarray
    residuals: np.ndarray
    step: int
    right: torch.Tensor | None
    left: torch.Tensor | None
    theta: np.ndarray
    log_gamma: float


def _reassemble(result: SingularValues, live: np.ndarray, finished: dict[int, _SetAside], batch: int,
                vectors: bool) -> SingularValues:
    """Every example in its original row: those set aside, and those iterated to the end."""
    kk = result.values.shape[1]
    values, residuals, status = np.zeros((batch, kk)), np.zeros((batch, kk)), [None] * batch
    right = left = None
    if vectors:
        right = result.right.new_empty((batch, *result.right.shape[1:]))
        left = result.left.new_empty((batch, *result.left.shape[1:]))
    theta, log_gamma = [None] * batch, np.zeros(batch)
    for i, b in enumerate(live):
        values[b], residuals[b], status[b] = result.values[i], result.residuals[i], result.status[i]
        theta[b], log_gamma[b] = result.theta[i], result.log_gamma[i]
        if vectors:
            right[b], left[b] = result.right[i], result.left[i]
    for b, done in finished.items():
        values[b], residuals[b], status[b] = done.values, done.residuals, "converged"
        theta[b], log_gamma[b] = done.theta, done.log_gamma
        result.example_iterations[b] = done.step
        if vectors:
            right[b], left[b] = done.right, done.left
    result.values, result.residuals, result.status, result.right, result.left = values, residuals, status, right, left
    result.theta, result.log_gamma = theta, log_gamma
    return result


@with_serial_blas
def golub_kahan(op, k: int = 1, which: str = "largest", tol: float = 1e-8, max_iter: int = 300, seed: int = 0,
                check_every: int = 4, vectors: bool = False, deflate: bool = True, certify_below: float | None = None,
                failure_probability: float = 1e-6, unit_roundoff: float = 0.0) -> SingularValues:
    """The k largest or smallest singular values of ``op`` by Golub–Kahan–Lanczos bidiagonalisation.

    Unlike Lanczos on AᵀA it never squares the condition number, so small singular values keep
    their relative accuracy. An example stops when its k Ritz triplets have relative residual
    |β_j p_{j,i}|/σ_i below ``tol`` (checked every ``check_every`` steps), when the Krylov space
    fills the whole space (the values are then exact), or after ``max_iter`` steps (status
    "not_converged": each value is still the bound the interlacing makes it).

    Examples converge at different steps. With ``deflate``, once half of the examples still
    iterated have converged, the others continue alone on ``op.restrict(rows)`` (operators
    without it keep the whole batch), so a product costs only what the unconverged examples
    cost; a converged example keeps the result of its last check. ``example_iterations`` says
    where each stopped.

    ``certify_below`` = c (``which="largest"``): an example also goes on past convergence until
    the question "σ_1 ≤ c?" is decided (:func:`~.bounds.decided`): its probable upper bound
    (:meth:`SingularValues.probable_upper_bound` at ``failure_probability`` and
    ``unit_roundoff``) is at most c, or its top Ritz value, a lower bound on σ_1, exceeds c, or
    the bound can no longer reach c. A converged residual alone can leave the bound far above
    σ_1: a contractive step map (‖S‖₂ = 1 exactly) can converge to 10⁻¹³ with its bound still
    above the 1 + 10⁻⁶ that certifies stability (``benchmarks/bench_norm_certificate.py``).
    """
    failure_probability = _check_arguments(op, k, which, certify_below, failure_probability)
    batch, (m, n) = op.batch, op.shape
    dim = min(m, n)
    tol = max(float(tol), 100 * torch.finfo(op.dtype).eps)
    deflate = deflate and hasattr(op, "restrict") and batch > 1
    g = torch.Generator().manual_seed(seed)
    V = Basis(torch.empty(batch, n, dtype=op.dtype, device=op.device))
    U = Basis(torch.empty(batch, m, dtype=op.dtype, device=op.device))
    v = random_unit((batch, n), op.dtype, op.device, g)
    V.append(v)
    u = op.matvec(v)
    alpha = row_norms(u)
    u, alpha = replace_breakdowns(u, alpha, alpha.max(), U, g)
    U.append(u)
    alphas, betas = [alpha.cpu().double().numpy()], []
    n_mv = 1
    live = np.arange(batch)  # the examples still iterated, as rows of the original batch
    finished: dict[int, _SetAside] = {}
    for j in range(1, max_iter + 1):
        w = V.orthogonalise(op.rmatvec(u) - alpha.unsqueeze(-1) * v)
        n_mv += 1
        beta = row_norms(w)
        beta_np = beta.cpu().double().numpy()
        full = j >= dim
        if full or j % check_every == 0 or j == max_iter:
            result = ritz_triplets(alphas, betas, 0.0 * beta_np if full else beta_np, k, which, tol, j, n_mv)
            done = np.array([s_ == "converged" for s_ in result.status])
            if certify_below is not None:
                done = decided(result, n, certify_below, failure_probability, unit_roundoff, done)
            if done.all() or full or j == max_iter:
                break
            if deflate and 2 * done.sum() >= len(live):
                for i in np.flatnonzero(done):
                    right = left = None
                    if vectors:
                        right = V.combine(result.right_coefficients[i : i + 1], rows=[i])[0]
                        left = U.combine(result.left_coefficients[i : i + 1], rows=[i])[0]
                    finished[int(live[i])] = _SetAside(result.values[i], result.residuals[i], j, right, left,
                                                       result.theta[i], result.log_gamma[i])
                keep = np.flatnonzero(~done)
                rows = torch.as_tensor(keep, device=w.device)
                op, live = op.restrict(keep.tolist()), live[keep]
                V.keep(rows)
                U.keep(rows)
                v, u, w, beta, alpha = v[rows], u[rows], w[rows], beta[rows], alpha[rows]
                alphas, betas = [a[keep] for a in alphas], [b_[keep] for b_ in betas]
        scale = torch.as_tensor(max(max(a.max() for a in alphas), 1e-300), dtype=beta.dtype, device=beta.device)
        v, beta = replace_breakdowns(w, beta, scale, V, g)
        V.append(v)
        betas.append(beta.cpu().double().numpy())
        u = U.orthogonalise(op.matvec(v) - beta.unsqueeze(-1) * u)
        n_mv += 1
        alpha = row_norms(u)
        u, alpha = replace_breakdowns(u, alpha, scale, U, g)
        U.append(u)
        alphas.append(alpha.cpu().double().numpy())
    if vectors:
        result.right = V.combine(result.right_coefficients)
        result.left = U.combine(result.left_coefficients)
    result.example_iterations = np.full(batch, result.iterations)
    return _reassemble(result, live, finished, batch, vectors) if finished else result
