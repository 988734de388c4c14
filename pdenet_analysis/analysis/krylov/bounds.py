"""Bounds from a Golub–Kahan run: the rounding of its Ritz values, and the probable upper bound on
σ_1 through the Lanczos polynomial (van Dorsselaer, Hochstenbach & van der Vorst, SIAM J. Matrix
Anal. Appl. 22(3), 2000), which holds with a chosen probability whatever the spectrum."""

from __future__ import annotations

import math

import numpy as np


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


def decided(result, n: int, c: float, failure_probability: float, unit_roundoff: float,
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
                     for ok, val, th, lg in zip(converged, result.values[:, 0], result.theta, result.log_gamma)])
