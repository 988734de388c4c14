"""Batched Krylov solvers in torch, on any device: Golub–Kahan–Lanczos bidiagonalisation for
singular values, Lanczos tridiagonalisation for quadrature, and GMRES for linear solves.

"Batched" means ``op.batch`` independent problems at once (one per example: see
:class:`~.linear.JacobianOperator` with ``batched=True``): vectors are (batch, n), every inner
product is taken per row, and each example has its own small projected matrix. One operator
product thus advances every example's iteration. All bases are fully reorthogonalised (classical
Gram–Schmidt, a second pass where the first cancelled, see :meth:`Basis.orthogonalise`), so the
projected matrices are accurate to round-off.

References: Golub & Kahan (1965); Golub & Van Loan, *Matrix Computations*, 4th ed., §10.4 (GKL)
and §10.1 (Lanczos); Saad & Schultz (1986) for GMRES; Larsen (1998, PROPACK) for residual
estimates of bidiagonalisation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import InvalidArgumentError, real_or_nan, require_probability
from .linear import ChainOperator
from .threads import with_serial_blas


def _norm(x: torch.Tensor) -> torch.Tensor:
    return x.norm(dim=-1)


class Basis:
    """An orthonormal basis of (batch, n) vectors, stored in one growing tensor."""

    def __init__(self, like: torch.Tensor, capacity: int = 16):
        self.Q = torch.empty((capacity, *like.shape), dtype=like.dtype, device=like.device)
        self.size = 0

    def append(self, v: torch.Tensor) -> None:
        if self.size == self.Q.shape[0]:
            self.Q = torch.cat([self.Q, torch.empty_like(self.Q)])
        self.Q[self.size] = v
        self.size += 1

    @property
    def vectors(self) -> torch.Tensor:
        return self.Q[: self.size]

    def orthogonalise(self, w: torch.Tensor) -> torch.Tensor:
        """w minus its projection on the basis, per example: classical Gram–Schmidt, repeated
        once where the projection removed more than 1 − 1/√2 of some example's norm (the
        criterion of Daniel, Gragg, Kaufman & Stewart, Math. Comp. 30, 1976; two passes always
        suffice: Giraud, Langou & Rozložník, Comput. Math. Appl. 50, 2005). The recurrences of
        Golub–Kahan leave w nearly orthogonal already, so one pass — half the work over a basis
        that is hundreds of MB at the paper's sizes — is the rule there."""
        if self.size == 0:
            return w
        Q = self.vectors
        before = _norm(w)
        w = w - torch.einsum("jb,jbn->bn", torch.einsum("jbn,bn->jb", Q, w), Q)
        if bool((_norm(w) < before * 0.7071067811865476).any()):
            w = w - torch.einsum("jb,jbn->bn", torch.einsum("jbn,bn->jb", Q, w), Q)
        return w

    def combine(self, coeffs: np.ndarray, rows=None) -> torch.Tensor:
        """Σ_j coeffs[b, j, i] q_j[b] for each example b (of ``rows``, default all) and column i:
        (batch, k, n)."""
        c = torch.as_tensor(coeffs, dtype=self.Q.dtype, device=self.Q.device)
        Q = self.vectors[: c.shape[1]]
        return torch.einsum("bji,jbn->bin", c, Q if rows is None else Q[:, rows])

    def keep(self, rows: torch.Tensor) -> None:
        """Keep only the examples ``rows`` (the others' iterations have stopped)."""
        self.Q = self.Q[:, rows]


def _random_unit(shape, dtype, device, generator) -> torch.Tensor:
    v = torch.randn(shape, generator=generator, dtype=torch.float64).to(device=device, dtype=dtype)
    return v / _norm(v).unsqueeze(-1)


def _replace_breakdowns(w, norms, scale, basis, generator):
    """Rows whose new direction vanished (an invariant subspace was found) continue with a
    random direction orthogonal to the basis; their coupling coefficient is set to 0, which
    keeps the Krylov relation exact."""
    small = norms <= 1e3 * torch.finfo(w.dtype).eps * scale.clamp_min(1e-300)
    if bool(small.any()):
        fresh = basis.orthogonalise(_random_unit(w.shape, w.dtype, w.device, generator))
        w = torch.where(small.unsqueeze(-1), fresh, w)
        norms = torch.where(small, torch.zeros_like(norms), norms)
        return w / _norm(w).unsqueeze(-1), norms
    return w / norms.unsqueeze(-1), norms


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

    @property
    def converged(self) -> bool:
        return all(s == "converged" for s in self.status)

    def probable_upper_bound(self, n: int, failure_probability: float, unit_roundoff: float = 0.0) -> np.ndarray:
        """Per example, an upper bound on the largest singular value σ_1 that fails with probability
        at most δ = ``failure_probability`` over the random start vector (``which="largest"``
        runs; n: the operator's number of columns). See :func:`lanczos_polynomial_bound`."""
        if self.which != "largest":
            raise InvalidArgumentError("a probable upper bound is for the largest singular value (which='largest')")
        return np.array([lanczos_polynomial_bound(th, lg, n, failure_probability, j, unit_roundoff)
                         for th, lg, j in zip(self._theta, self._log_gamma, self.example_iterations)])


def _bidiagonal(alphas: list, betas: list, b: int) -> np.ndarray:
    j = len(alphas)
    B = np.zeros((j, j))
    B[np.arange(j), np.arange(j)] = [a[b] for a in alphas]
    if j > 1:
        B[np.arange(j - 1), np.arange(1, j)] = [be[b] for be in betas[: j - 1]]
    return B


@with_serial_blas
def golub_kahan(op, k: int = 1, which: str = "largest", tol: float = 1e-8, max_iter: int = 300, seed: int = 0,
                check_every: int = 4, vectors: bool = False, deflate: bool = True, certify_below: float | None = None,
                failure_probability: float = 1e-6, unit_roundoff: float = 0.0) -> SingularValues:
    """The k largest or smallest singular values of ``op`` by Golub–Kahan–Lanczos bidiagonalisation.

    A V_j = U_j B_j and Aᵀ U_j = V_j B_jᵀ + β_j v_{j+1} e_jᵀ with B_j upper bidiagonal; the Ritz
    values are the singular values of B_j. Unlike Lanczos on AᵀA it never squares the condition
    number, so small singular values keep their relative accuracy. An example stops when its k
    Ritz triplets have relative residual |β_j p_{j,i}|/σ_i below ``tol`` (checked every
    ``check_every`` steps), when the Krylov space fills the whole space (the values are then
    exact), or after ``max_iter`` steps (status "not_converged": each value is still the bound the
    interlacing makes it).

    Examples converge at different steps (the flow map of CIFAR-10's Hamiltonian first unit, 32
    images: from step 40 to step 108 for the inverse map's top three). With ``deflate``, once an
    half of the examples still iterated have converged, the others continue alone on
    ``op.restrict(rows)`` (operators without it keep the whole batch), so a product costs only
    what the unconverged examples cost; a converged example keeps the result of its last check.
    ``example_iterations`` says where each stopped.

    ``certify_below`` = c (``which="largest"``): an example also goes on past convergence until
    the question "σ_1 ≤ c?" is decided: its probable upper bound
    (:meth:`SingularValues.probable_upper_bound` at ``failure_probability`` and
    ``unit_roundoff``) is at most c, or its top Ritz value, a lower bound on σ_1, exceeds c, or
    the bound can no longer reach c (the top Ritz value times the rounding factor 1 + 10·j·u is
    above it: in float32 at δ = 10⁻⁶ from the second step, see :func:`_decided`). A
    converged residual alone can leave the bound far above σ_1: at CIFAR-10's size, a contractive
    step map (‖S‖₂ = 1 exactly, the identity on the switched-off units) converged to 10⁻¹³ in 80
    steps with the bound at 1 + 4.6·10⁻⁶, above the 1 + 10⁻⁶ that certifies stability; 8 more
    steps bring it to 1 + 6.2·10⁻⁷ (``benchmarks/bench_norm_certificate.py``).
    """
    if which not in ("largest", "smallest"):
        raise InvalidArgumentError(f"which must be 'largest' or 'smallest', got {which!r}")
    if certify_below is not None:
        if which != "largest":
            raise InvalidArgumentError("certify_below decides σ_1 ≤ c: it needs which='largest'")
        if not 0.0 < real_or_nan(certify_below) < math.inf:
            raise InvalidArgumentError(f"certify_below is the c of 'σ_1 ≤ c?', a positive finite number, got "
                                       f"{certify_below!r}")
        failure_probability = require_probability("failure_probability", failure_probability)
    batch, (m, n) = op.batch, op.shape
    dim = min(m, n)
    if not 1 <= k <= dim:
        raise InvalidArgumentError(f"k must be between 1 and the operator's dimension {dim}, got {k}")
    tol = max(float(tol), 100 * torch.finfo(op.dtype).eps)
    deflate = deflate and hasattr(op, "restrict") and batch > 1
    g = torch.Generator().manual_seed(seed)
    V, U = Basis(torch.empty(batch, n, dtype=op.dtype, device=op.device)), Basis(torch.empty(batch, m, dtype=op.dtype, device=op.device))
    v = _random_unit((batch, n), op.dtype, op.device, g)
    V.append(v)
    u = op.matvec(v)
    alpha = _norm(u)
    u, alpha = _replace_breakdowns(u, alpha, alpha.max(), U, g)
    U.append(u)
    alphas, betas = [alpha.cpu().double().numpy()], []
    n_mv = 1
    live = np.arange(batch)  # the examples still iterated, as rows of the original batch
    finished = {}  # original row -> (values, residuals, step, right, left, theta, log_gamma) of an example set aside
    for j in range(1, max_iter + 1):
        w = V.orthogonalise(op.rmatvec(u) - alpha.unsqueeze(-1) * v)
        n_mv += 1
        beta = _norm(w)
        beta_np = beta.cpu().double().numpy()
        full = j >= dim
        if full or j % check_every == 0 or j == max_iter:
            result = _ritz(alphas, betas, 0.0 * beta_np if full else beta_np, k, which, tol, j, n_mv)
            done = np.array([s_ == "converged" for s_ in result.status])
            if certify_below is not None:
                done = _decided(result, n, certify_below, failure_probability, unit_roundoff, done)
            if done.all() or full or j == max_iter:
                break
            if deflate and 2 * done.sum() >= len(live):
                for i in np.flatnonzero(done):
                    right = left = None
                    if vectors:
                        right = V.combine(result._Q[i : i + 1], rows=[i])[0]
                        left = U.combine(result._P[i : i + 1], rows=[i])[0]
                    finished[int(live[i])] = (result.values[i], result.residuals[i], j, right, left, result._theta[i],
                                              result._log_gamma[i])
                keep = np.flatnonzero(~done)
                rows = torch.as_tensor(keep, device=w.device)
                op, live = op.restrict(keep.tolist()), live[keep]
                V.keep(rows)
                U.keep(rows)
                v, u, w, beta, alpha = v[rows], u[rows], w[rows], beta[rows], alpha[rows]
                alphas, betas = [a[keep] for a in alphas], [b_[keep] for b_ in betas]
        scale = torch.as_tensor(max(max(a.max() for a in alphas), 1e-300), dtype=beta.dtype, device=beta.device)
        v, beta = _replace_breakdowns(w, beta, scale, V, g)
        V.append(v)
        betas.append(beta.cpu().double().numpy())
        u = U.orthogonalise(op.matvec(v) - beta.unsqueeze(-1) * u)
        n_mv += 1
        alpha = _norm(u)
        u, alpha = _replace_breakdowns(u, alpha, scale, U, g)
        U.append(u)
        alphas.append(alpha.cpu().double().numpy())
    if vectors:
        result.right = V.combine(result._Q)
        result.left = U.combine(result._P)
    result.example_iterations = np.full(batch, result.iterations)
    if not finished:
        return result
    # every example in its original row: those set aside, and those iterated to the end
    kk = result.values.shape[1]
    values, residuals, status = np.zeros((batch, kk)), np.zeros((batch, kk)), [None] * batch
    right = left = None
    if vectors:
        right = result.right.new_empty((batch, *result.right.shape[1:]))
        left = result.left.new_empty((batch, *result.left.shape[1:]))
    theta, log_gamma = [None] * batch, np.zeros(batch)
    for i, b in enumerate(live):
        values[b], residuals[b], status[b] = result.values[i], result.residuals[i], result.status[i]
        theta[b], log_gamma[b] = result._theta[i], result._log_gamma[i]
        if vectors:
            right[b], left[b] = result.right[i], result.left[i]
    for b, (vals, res, step, r_, l_, th, lg) in finished.items():
        values[b], residuals[b], status[b] = vals, res, "converged"
        theta[b], log_gamma[b] = th, lg
        result.example_iterations[b] = step
        if vectors:
            right[b], left[b] = r_, l_
    result.values, result.residuals, result.status, result.right, result.left = values, residuals, status, right, left
    result._theta, result._log_gamma = theta, log_gamma
    return result


def ritz_rounding(iterations, unit_roundoff: float) -> np.ndarray:
    """10·j·u: how far, relative to ‖A‖, rounding can move a Ritz value of :func:`golub_kahan`
    after j steps with products of unit round-off u. The computed bidiagonal is that of A + E,
    ‖E‖ ≲ j·u·‖A‖ with the fully reorthogonalised bases; a factor 10 of margin. Interlacing then
    holds up to it: σ_min(A) ≤ (a smallest Ritz value) + 10·j·u·‖A‖. Where σ_min is below that,
    a computed Ritz value can be far smaller than σ_min (float32: 2·10⁻¹⁵ for σ_min = 6.7·10⁻⁶,
    ‖A‖ = 29, tests/test_reduced_inverse.py): without the margin it would not bound σ_min at all."""
    return 10.0 * np.asarray(iterations, dtype=float) * unit_roundoff


def lanczos_polynomial_bound(theta, log_gamma: float, n: int, failure_probability: float, iterations: int,
                             unit_roundoff: float = 0.0) -> float:
    """An upper bound σ̄ on the largest singular value σ_1 of A (n columns) from one run of
    :func:`golub_kahan` from a start vector v drawn uniformly on the unit sphere, such that
    P(σ_1 > σ̄) ≤ δ = ``failure_probability``; the bound of van Dorsselaer, Hochstenbach & van der
    Vorst (SIAM J. Matrix Anal. Appl. 22(3), 2000) through the Lanczos polynomial.

    j steps of GKL are j steps of Lanczos on AᵀA, with tridiagonal T = BᵀB, Ritz values θ_i
    (``theta``: the squares of B's singular values) and off-diagonals γ_i = α_i β_i, the last
    γ_j = α_j β_j the size of the residual (``log_gamma`` = Σ log γ_i). The characteristic
    polynomial χ(λ) = Π_i (λ − θ_i) of T maps the start to χ(AᵀA) v = (Π γ_i) v_{j+1}, so for the
    top eigenpair (λ_1 = σ_1², u_1) of AᵀA, χ(λ_1)² (u_1ᵀv)² ≤ ‖χ(AᵀA) v‖² = Π γ_i², exactly.
    Beyond the largest Ritz value χ increases, so σ_1 > σ̄ = √λ̄ would force
    (u_1ᵀv)² < Π γ_i² / χ(λ̄)². For v uniform on the sphere (u_1ᵀv)² follows Beta(½, (n − 1)/2);
    λ̄ is chosen where that bound on it equals the Beta distribution's δ-quantile, so the event
    has probability at most δ, whatever the spectrum. Unlike a converged residual, which shows
    only that *some* singular value lies near σ̂, the bound also excludes, up to δ, a larger one
    that the iteration never saw; unlike the worst-case bound of Kuczyński & Woźniakowski (1992),
    it uses the run's own polynomial, and is tight where the top Ritz value has converged.

    The inequality is exact arithmetic's; a factor 1 + 10·j·u covers the rounding of the
    products and of the fully reorthogonalised bases (:func:`ritz_rounding`). Where the Krylov
    space fills the whole space (j ≥ n) or became invariant (some γ_i = 0), the largest Ritz
    value is σ_1 itself."""
    top, margin, excess = _polynomial_excess(theta, log_gamma, n, failure_probability, iterations, unit_roundoff)
    if excess is None:
        return math.sqrt(top) * margin
    scale = max(top, 1e-300)
    lo, hi = math.log(scale) - 80.0, math.log(scale)
    while excess(hi) < 0:
        hi += 2.0
    if excess(lo) >= 0:
        return math.sqrt(top + math.exp(lo)) * margin
    for _ in range(100):  # bisection on log d: d spans many orders of magnitude
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if excess(mid) < 0 else (lo, mid)
    return math.sqrt(top + math.exp(hi)) * margin


def _polynomial_excess(theta, log_gamma: float, n: int, failure_probability: float, iterations: int,
                       unit_roundoff: float):
    """(top Ritz value θ_1, rounding factor 1 + 10·j·u, excess) for :func:`lanczos_polynomial_bound`:
    excess(log d) = log χ(θ_1 + d) − log(Π γ_i / √x), increasing in d, whose root d* gives the bound
    √(θ_1 + d*)·(1 + 10·j·u); excess is None where the largest Ritz value is σ_1 itself (a full or
    invariant Krylov space)."""
    from scipy.stats import beta as beta_distribution

    theta = np.sort(np.asarray(theta, dtype=float))[::-1]
    top = max(float(theta[0]), 0.0)
    margin = 1.0 + float(ritz_rounding(iterations, unit_roundoff))
    if iterations >= n or not np.isfinite(log_gamma) or n < 2:
        return top, margin, None
    x = float(beta_distribution.ppf(failure_probability, 0.5, (n - 1) / 2.0))  # P((u_1ᵀv)² ≤ x) = δ
    target = log_gamma - 0.5 * math.log(x)
    below = top - theta[1:]  # ≥ 0

    def excess(log_d):  # log χ(top + d) − target, increasing in d; d = e^{log_d}
        d = math.exp(log_d)
        return log_d + float(np.sum(np.log(below + d))) - target

    return top, margin, excess


def probable_bound_at_most(c: float, theta, log_gamma: float, n: int, failure_probability: float, iterations: int,
                           unit_roundoff: float = 0.0) -> bool:
    """Whether :func:`lanczos_polynomial_bound` (same arguments) is at most ``c``, by one
    evaluation of the polynomial at c instead of the bisection (χ increases beyond θ_1, so the
    bound is at most c exactly where χ(c²/(1 + 10·j·u)² ) reaches Π γ_i/√x; a relative 10⁻¹² of
    margin keeps the answer on the safe side of the bisection's)."""
    top, margin, excess = _polynomial_excess(theta, log_gamma, n, failure_probability, iterations, unit_roundoff)
    if excess is None:
        return math.sqrt(top) * margin <= c
    d = (c / margin) ** 2 * (1.0 - 1e-12) - top
    return d > 0 and excess(math.log(d)) >= 0


def _decided(result: SingularValues, n: int, c: float, failure_probability: float, unit_roundoff: float,
             converged: np.ndarray) -> np.ndarray:
    """Per example of a largest-values ``result`` (the current step of every example): whether
    iterating on can still change the answer to "σ_1 ≤ c?". It cannot where the top Ritz value
    exceeds c (σ_1 ≥ it, by interlacing), where the probable upper bound is at most c, or where the
    bound can no longer reach c: every bound is at least the top Ritz value times the rounding
    factor 1 + 10·j·u (:func:`lanczos_polynomial_bound`), and both only grow with the step j. In
    float32 (u = 2⁻²⁴) that factor passes 1 + 10⁻⁶ at the second step, so a step map with
    ‖S‖₂ = 1 is never certified at δ = 10⁻⁶ and without this rule would iterate to ``max_iter``.
    Evaluated only where ``converged`` (elsewhere False: the example goes on anyway)."""
    margin = 1.0 + float(ritz_rounding(result.iterations, unit_roundoff))
    return np.array([bool(ok) and (val > c or val * margin > c
                                   or probable_bound_at_most(c, th, lg, n, failure_probability, result.iterations,
                                                             unit_roundoff))
                     for ok, val, th, lg in zip(converged, result.values[:, 0], result._theta, result._log_gamma)])


def _ritz(alphas, betas, beta_last, k, which, tol, j, n_mv) -> SingularValues:
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
    out = SingularValues(vals, res, status, which, j, n_mv, tol)
    out._P, out._Q = np.stack(Ps), np.stack(Qs)
    out._theta, out._log_gamma = thetas, log_gamma
    return out


@dataclass
class RitzValues:
    """Result of :func:`batched_arnoldi`, per example (rows).

    ``values``     (batch, m) Ritz values, ordered by decreasing modulus (complex).
    ``residuals``  (batch, m) |h_{m+1,m} s_{m,i}| / max|θ|: the Arnoldi residual ‖A x − θ x‖ of each
                   Ritz pair relative to the largest Ritz value (0 after an invariant subspace).
    ``steps``      Krylov dimension reached; ``n_matvecs`` products (one per step, all examples).
    """

    values: np.ndarray
    residuals: np.ndarray
    steps: int
    n_matvecs: int


@with_serial_blas
def batched_arnoldi(op, m: int = 40, seed: int = 0) -> RitzValues:
    """m steps of Arnoldi on every example of a batched operator at once (one product per step
    advances all examples), fully reorthogonalised; the Ritz values of each example's m×m
    Hessenberg matrix with their residual estimates. A short run locates the largest eigenvalues
    cheaply (an estimate, with the residual saying how far to trust it); it is not a converged
    eigensolver — :func:`~.eigen.eigs` is."""
    batch, n = op.batch, op.shape[1]
    m = max(1, min(m, n))
    g = torch.Generator().manual_seed(seed)
    Q = Basis(torch.empty(batch, n, dtype=op.dtype, device=op.device), capacity=m + 1)
    Q.append(_random_unit((batch, n), op.dtype, op.device, g))
    H = np.zeros((batch, m + 1, m))
    scale = torch.zeros((), dtype=op.dtype, device=op.device)
    for j in range(m):
        w = op.matvec(Q.vectors[j])
        coeff = torch.zeros(j + 1, batch, dtype=op.dtype, device=op.device)
        for _ in range(2):  # classical Gram–Schmidt twice, per example
            c = torch.einsum("jbn,bn->jb", Q.vectors[: j + 1], w)
            w = w - torch.einsum("jb,jbn->bn", c, Q.vectors[: j + 1])
            coeff += c
        beta = _norm(w)
        scale = torch.maximum(scale, coeff.abs().max())
        H[:, : j + 1, j] = coeff.T.cpu().double().numpy()
        if j + 1 < m:
            w, beta = _replace_breakdowns(w, beta, scale, Q, g)
            Q.append(w)
        H[:, j + 1, j] = beta.cpu().double().numpy()  # 0 where a row's Krylov space became invariant
    vals, res = np.zeros((batch, m), complex), np.zeros((batch, m))
    for b in range(batch):
        theta, S = np.linalg.eig(H[b, :m, :m])
        order = np.argsort(-np.abs(theta), kind="stable")
        theta, S = theta[order], S[:, order]
        vals[b] = theta
        res[b] = np.abs(H[b, m, m - 1] * S[-1, :]) / max(float(np.abs(theta).max()), 1e-300)
    return RitzValues(vals, res, m, m)


@with_serial_blas
def lanczos_tridiagonal(matvec, v0: torch.Tensor, m: int) -> tuple[np.ndarray, np.ndarray]:
    """m steps of Lanczos on a symmetric operator from the (batch, n) start vectors ``v0``
    (fully reorthogonalised). Returns the diagonals (batch, m') and off-diagonals (batch, m'−1)
    of the tridiagonal T, m' ≤ m (fewer when every example's Krylov space became invariant)."""
    batch, n = v0.shape
    m = min(m, n)
    Q = Basis(v0, capacity=m + 1)
    q = v0 / _norm(v0).unsqueeze(-1)
    Q.append(q)
    a_list, b_list = [], []
    for j in range(m):
        w = matvec(q)
        a = (w * q).sum(-1)
        w = Q.orthogonalise(w)
        a_list.append(a.cpu().double().numpy())
        if j == m - 1:
            break
        beta = _norm(w)
        if bool((beta <= 1e3 * torch.finfo(w.dtype).eps * a.abs().max().clamp_min(1e-300)).all()):
            break
        # an example whose space is invariant gets β = 0 and a fresh orthogonal direction
        q, beta = _replace_breakdowns(w, beta, a.abs().max(), Q, torch.Generator().manual_seed(j))
        b_list.append(beta.cpu().double().numpy())
        Q.append(q)
    alphas = np.stack(a_list, 1)
    betas = np.stack(b_list, 1) if b_list else np.zeros((batch, 0))
    return alphas, betas


@dataclass
class SolveInfo:
    """What :func:`gmres` did: the final relative residual per example and the iterations."""

    residuals: np.ndarray
    iterations: int


@with_serial_blas
def gmres(matvec, b: torch.Tensor, tol: float = 1e-10, max_iter: int = 500, restart: int = 60) -> tuple[torch.Tensor, SolveInfo]:
    """Solve A x = b for each row of the (batch, n) right-hand side by restarted GMRES
    (minimal residual over the Krylov space; Arnoldi fully reorthogonalised). Stops when every
    relative residual ‖b − Ax‖/‖b‖ is below ``tol`` or after ``max_iter`` products."""
    batch = b.shape[0]
    bnorm = _norm(b).clamp_min(1e-300)
    x = torch.zeros_like(b)
    r = b
    its = 0
    rel = np.ones(batch)
    while its < max_iter:
        beta = _norm(r)
        rel = (beta / bnorm).cpu().double().numpy()
        if np.all(rel < tol):
            break
        Q = Basis(r, capacity=restart + 1)
        Q.append(r / beta.clamp_min(1e-300).unsqueeze(-1))
        H = np.zeros((batch, restart + 1, restart))
        beta_np = beta.cpu().double().numpy()
        y = None
        for j in range(restart):
            w = matvec(Q.vectors[j])
            its += 1
            Qv = Q.vectors
            h = torch.zeros(j + 1, batch, dtype=torch.float64)
            for _ in range(2):
                c = torch.einsum("jbn,bn->jb", Qv, w)
                w = w - torch.einsum("jb,jbn->bn", c, Qv)
                h += c.cpu().double()
            H[:, : j + 1, j] = h.T.numpy()
            hn = _norm(w)
            H[:, j + 1, j] = hn.cpu().double().numpy()
            Q.append(w / hn.clamp_min(1e-300).unsqueeze(-1))
            e1 = np.zeros(j + 2)
            y, res = [], np.zeros(batch)
            for bb in range(batch):
                rhs = e1.copy()
                rhs[0] = beta_np[bb]
                yy = np.linalg.lstsq(H[bb, : j + 2, : j + 1], rhs, rcond=None)[0]
                res[bb] = np.linalg.norm(H[bb, : j + 2, : j + 1] @ yy - rhs)
                y.append(yy)
            rel = res / bnorm.cpu().double().numpy()
            if np.all(rel < tol) or its >= max_iter or bool((hn <= 1e-300).all()):
                break
        coeff = torch.as_tensor(np.stack(y), dtype=b.dtype, device=b.device)  # (batch, j+1)
        x = x + torch.einsum("bj,jbn->bn", coeff, Q.vectors[: coeff.shape[1]])
        r = b - matvec(x)
        its += 1
    rel = (_norm(r) / bnorm).cpu().double().numpy()
    return x, SolveInfo(rel, its)


class InnerSolveFailed(RuntimeError):
    """A GMRES solve of :class:`InverseChain` missed its tolerance by more than 100×."""


class GmresInverse:
    """S⁻¹ of one factor S by GMRES to relative residual ``tol`` (the transpose solves with Sᵀ);
    what the solves achieved goes into the ``stats`` dict it shares with its chain. A solve that
    misses ``tol`` by more than 100× within ``max_iter`` products raises :class:`InnerSolveFailed`."""

    def __init__(self, S, tol: float, max_iter: int, stats: dict):
        self.S, self.tol, self.max_iter, self.stats = S, tol, max_iter, stats
        self.shape = (S.shape[1], S.shape[0])
        self.dtype, self.device, self.batch, self.batched = S.dtype, S.device, S.batch, S.batched

    def _solve(self, apply, v):
        x, info = gmres(apply, v, tol=self.tol, max_iter=self.max_iter)
        self.stats["max_residual"] = max(self.stats["max_residual"], float(info.residuals.max()))
        self.stats["inner_iterations"] += info.iterations
        if self.stats["max_residual"] > 100 * self.tol:
            raise InnerSolveFailed(f"GMRES reached relative residual {self.stats['max_residual']:.2e} > 100 × "
                                   f"{self.tol:.1e} in {self.max_iter} products")
        return x

    def matvec(self, v):
        return self._solve(self.S.matvec, v)

    def rmatvec(self, w):
        return self._solve(self.S.rmatvec, w)

    def restrict(self, rows) -> "GmresInverse":
        return GmresInverse(self.S.restrict(rows), self.tol, self.max_iter, self.stats)


class InverseChain(ChainOperator):
    """(S_{N−1} ··· S_1 S_0)⁻¹ = S_0⁻¹ S_1⁻¹ ··· S_{N−1}⁻¹, matrix-free: each factor (a one-step map,
    close to the identity when h is small) is inverted by GMRES (:class:`GmresInverse`) to relative
    residual ``tol``. ``max_residual`` and ``inner_iterations`` record what the solves achieved. A
    solve that misses ``tol`` by more than 100× raises :class:`InnerSolveFailed` at once (a nearly
    singular factor, as forward Euler at h = 1 on a mode with hλ ≈ −1 makes): the caller then
    reports a bound instead of spending the budget."""

    def __init__(self, factors: list, tol: float = 1e-12, max_iter: int = 150, _stats: dict | None = None):
        self.step_maps, self.tol, self.max_iter = list(factors), tol, max_iter
        self._stats = {"max_residual": 0.0, "inner_iterations": 0} if _stats is None else _stats
        super().__init__([GmresInverse(S, tol, max_iter, self._stats) for S in reversed(self.step_maps)])

    @property
    def max_residual(self) -> float:
        return self._stats["max_residual"]

    @property
    def inner_iterations(self) -> int:
        return self._stats["inner_iterations"]

    def restrict(self, rows) -> "InverseChain":
        """The chain of the examples ``rows`` only; its solves count in this chain's statistics."""
        return InverseChain([S.restrict(rows) for S in self.step_maps], self.tol, self.max_iter, _stats=self._stats)
