"""The stability function of a Runge–Kutta method on y' = λy, z = hλ, and its intervals.

R(z) = N(z)/D(z) = det(I − zA + z1bᵀ)/det(I − zA) (Hairer & Wanner, *Solving ODEs II*, §IV.3,
Prop. 3.2): a polynomial of degree ≤ s for an explicit tableau (D = 1). Its real stability
interval is the largest r with |R(x)| ≤ 1 on [−r, 0], its imaginary one the largest r with
|R(iy)| ≤ 1 for |y| ≤ r; A-stability is |R| ≤ 1 on the closed left half-plane.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

_EPS = float(np.finfo(float).eps)


@dataclass(frozen=True)
class StabilityFunction:
    """R(z) = N(z) / D(z) with N, D as ascending coefficient arrays (D = [1] when explicit)."""

    numerator: np.ndarray
    denominator: np.ndarray

    @property
    def is_polynomial(self) -> bool:
        return len(self.denominator) == 1

    def __call__(self, z):
        z = np.asarray(z, dtype=complex)
        return np.polyval(self.numerator[::-1], z) / np.polyval(self.denominator[::-1], z)

    def poles(self) -> np.ndarray:
        """The zeros of D (none for an explicit tableau)."""
        return np.roots(self.denominator[::-1]) if len(self.denominator) > 1 else np.array([], dtype=complex)

    def real_interval(self) -> float:
        """The largest r with |R(x)| ≤ 1 on all of [−r, 0] (``inf`` when the whole negative
        real axis is stable): from the first root of N(x)² − D(x)² after which it turns positive."""
        return _first_crossing(_square_difference(self.numerator, self.denominator, real=True),
                               lambda r: abs(self(-r)) ** 2 - 1)

    def imaginary_interval(self) -> float:
        """The largest r with |R(iy)| ≤ 1 for all |y| ≤ r (``inf`` when the whole imaginary axis
        is stable; 0 when no neighbourhood of 0 is, as for forward Euler)."""
        return _first_crossing(_square_difference(self.numerator, self.denominator, real=False),
                               lambda r: abs(self(1j * r)) ** 2 - 1)

    def is_a_stable(self) -> bool:
        """|R(z)| ≤ 1 on the closed left half-plane: no pole with Re ≤ 0 and |R(iy)| ≤ 1 for every
        y (the maximum principle then covers the rest; Hairer & Wanner II, §IV.3)."""
        return bool(np.all(self.poles().real > 0)) and self.imaginary_interval() == math.inf and not self.is_polynomial


def _convolve_abs(p, q):
    return np.convolve(np.abs(p), np.abs(q))


def _square_difference(num: np.ndarray, den: np.ndarray, real: bool) -> tuple[np.ndarray, np.ndarray]:
    """Ascending coefficients in r of |N|² − |D|² at z = −r (``real``) or z = ir, with each
    coefficient's absolute scale (the sum of the magnitudes it was formed from)."""
    def along(p):
        k = np.arange(len(p))
        return p * ((-1.0) ** k if real else (1j) ** k)

    n, d = along(num.astype(complex)), along(den.astype(complex))
    nn = np.convolve(n, n.conj() if not real else n)
    dd = np.convolve(d, d.conj() if not real else d)
    size = max(len(nn), len(dd))
    value = np.pad(nn, (0, size - len(nn))) - np.pad(dd, (0, size - len(dd)))
    scale = np.zeros(size)
    for p in (num, den):
        s = _convolve_abs(p, p)
        scale[: len(s)] += s
    return value.real, scale


def _first_crossing(poly: tuple[np.ndarray, np.ndarray], excess) -> float:
    """The first r > 0 after which |R| exceeds 1 along an axis, ``excess(r)`` = |R|² − 1 there.

    The polynomial |N|² − |D|² (ascending, with its coefficients' scales) decides the behaviour
    at 0 from its lowest coefficient that is not rounding noise (positive: unstable right of 0,
    as forward Euler on the imaginary axis; none: |R| = 1 all along, as Gauss–Legendre there) and
    gives the candidate crossings, its positive real roots. The roots of a degree-2s polynomial
    are not accurate enough to decide by themselves, so each segment between candidates is
    sampled with ``excess``, evaluated from R directly, and the first crossing found is refined by
    bisection. ``inf`` when no segment up to past the last root is unstable and the polynomial's
    leading coefficient is negative (stable far out along the axis)."""
    coeffs, scale = poly
    coeffs = np.where(np.abs(coeffs) <= 256 * _EPS * np.maximum(scale, 1.0), 0.0, coeffs)
    nonzero = np.flatnonzero(coeffs)
    if nonzero.size == 0:
        return math.inf
    if coeffs[nonzero[0]] > 0:
        return 0.0
    coeffs = coeffs[nonzero[0]: nonzero[-1] + 1]
    roots = np.roots(coeffs[::-1]) if len(coeffs) > 1 else np.array([])
    cuts = sorted({float(r.real) for r in roots if r.real > 0 and abs(r.imag) <= 1e-3 * max(1.0, abs(r))})
    last = cuts[-1] if cuts else 1.0
    edges = [0.0, *cuts, 2 * last + 1.0]
    if coeffs[-1] > 0:  # unstable far out: scan until it shows
        edges += [edges[-1] * 2 ** k for k in range(1, 40)]
    unstable = lambda r: excess(r) > 1e-12  # noqa: E731
    for lo, hi in zip(edges[:-1], edges[1:]):
        xs = np.linspace(lo, hi, 65)[1:]
        bad = [x for x in xs if unstable(x)]
        if not bad:
            continue
        good = max([lo, *(x for x in xs if x < bad[0])])
        x_bad = bad[0]
        for _ in range(80):
            mid = 0.5 * (good + x_bad)
            good, x_bad = (good, mid) if unstable(mid) else (mid, x_bad)
        return float(good)
    return math.inf


def det_coefficients(M: np.ndarray) -> np.ndarray:
    """Ascending coefficients of det(I − zM) = Σ p_k z^k, p_0 = 1, by Faddeev–LeVerrier:
    B_0 = I, p_k = −tr(M B_{k−1}) / k, B_k = M B_{k−1} + p_k I."""
    n = M.shape[0]
    coeffs, B = [1.0], np.eye(n)
    for k in range(1, n + 1):
        MB = M @ B
        p = -np.trace(MB) / k
        coeffs.append(float(p))
        B = MB + p * np.eye(n)
    out = np.array(coeffs)
    nz = np.flatnonzero(np.abs(out) > 64 * _EPS * np.abs(out).max())
    return out[: nz[-1] + 1] if nz.size else out[:1]
