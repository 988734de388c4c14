"""The probable bracket on κ: an upper bound on σ_max and a lower bound on σ_min, each failing
with probability at most δ/2 over the Krylov start vectors, whatever the spectrum."""

from __future__ import annotations

import numpy as np

from ..krylov import ritz_rounding
from ..precision import UNIT_ROUNDOFF, dtype_named
from .routes import SigmaMin


def probable_bracket(J, top, smin: SigmaMin, failure_probability: float) -> tuple[np.ndarray, np.ndarray]:
    """(upper bounds on σ_max, lower bounds on σ_min) per example, each failing with probability at
    most δ/2 (δ = ``failure_probability``) over the Krylov start vectors, whatever the spectrum
    (:func:`~pdenet_analysis.analysis.krylov.lanczos_polynomial_bound`), so that the bracket on κ
    they give fails with probability at most δ (the union of the two events; the runs may share
    their start vector).

    σ_max from its Golub–Kahan run ``top``; σ_min from that of the exact inverse (routes
    "inverse-map" and "reduced-inverse": σ_min(J) = 1/σ_max(J⁻¹)), widened by the factor
    1 − e − 10·d of :func:`~.certificates.residual_lower_bound` (the candidate's forward residual e
    and a product's rounding d: in float32, without it, the bound exceeded σ_min); on the dense
    route both are the SVD's, widened by its rounding 10·n·u·σ_max (the SVD is backward stable),
    and σ_max's bound is at least the Golub–Kahan value reported, so that the bracket contains κ
    as reported. 0 where no lower bound is available (GMRES inverses are not linear operators to
    the bound's precision; Golub–Kahan's smallest Ritz values bound σ_min from above only)."""
    u = UNIT_ROUNDOFF[dtype_named(J.dtype)[0]]
    n = J.shape[1]
    if smin.dense_sigma_max is not None:  # the whole spectrum is known, up to the SVD's rounding
        s_max = np.maximum(smin.dense_sigma_max, top.values[:, 0])
        pad = float(ritz_rounding(n, u)) * s_max
        return s_max + pad, np.maximum(smin.values[:, 0] - pad, 0.0)
    delta = failure_probability / 2.0  # per end: the bracket on κ fails with probability ≤ δ
    smax_hi = top.probable_upper_bound(n, delta, u)
    if smin.inverse_run is not None:
        inv_hi = smin.inverse_run.probable_upper_bound(n, delta, u)
        widen = np.clip(1.0 - smin.candidate_error, 0.0, 1.0)
        smin_lo = np.where(np.isfinite(inv_hi), widen / np.maximum(inv_hi, 1e-300), 0.0)
    else:
        smin_lo = np.zeros(J.batch)
    return smax_hi, smin_lo
