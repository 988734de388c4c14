"""The layer Jacobian's extreme eigenvalues over a scheme's stability region, and the largest
stable step they (or a step map's whole spectrum) allow.

The layer spectrum explains the step map's growth in the scheme's linear analysis: the k
extreme eigenvalues of the Jacobian the scheme's linear stability depends on
(:func:`~pdenet_analysis.analysis.linear.operator_jacobian`) are mapped to the scheme's stability
variable (:func:`~pdenet_analysis.schemes.metadata.stability_points`). A point is outside the
stability region when the scheme's amplification exceeds 1. The largest stable step is found
along each eigenvalue's ray (for forward Euler on a real negative spectrum this is the paper's
h ≤ 2/ρ; for leapfrog h²ρ ≤ 4).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ...schemes.metadata import LayerJacobian, StabilityVariable, stability_points
from ...status import Status
from ..eigen import all_eigenvalues, eigs, select
from ..linear import operator_jacobian


def to_stability_variable(mu: np.ndarray, how: str, scheme, h: float) -> np.ndarray:
    """The points z of ``scheme``'s stability analysis for layer eigenvalues ``mu`` of the
    Jacobian kind ``how`` (:func:`~pdenet_analysis.schemes.metadata.stability_points`)."""
    return stability_points(scheme.stability_variable, mu, how, h)


def largest_stable_step(mu: np.ndarray, how: str, scheme, h_max: float = 1e6, z_min: float = 1e-6) -> float:
    """The largest h for which every z(h) of the computed eigenvalues is in the stability region.

    0 when no step with |z| ≥ ``z_min`` for the largest eigenvalue is stable: a point z = hλ with
    Re λ > 0 (or, for z = h²μ, a non-real μ) leaves the region at every h > 0, but only by
    O(|z|·|Re λ|/|λ|), which the round-off tolerance of the amplification (10⁻¹²) hides for
    h ≲ 10⁻¹²/|Re λ|. Searching from h = 0 would report that tolerance (h ≈ 10⁻¹⁰) as a stable
    step; searching from |z| = ``z_min`` reports 0, and an unstable part of relative size above
    about 10⁻⁶ is always seen.
    """
    def ok(h):
        return bool(np.all(scheme.amplification(to_stability_variable(mu, how, scheme, h)) <= 1 + 1e-12))

    scale = float(np.max(np.abs(to_stability_variable(mu, how, scheme, 1.0)), initial=0.0))  # |z| per unit h
    if scale == 0.0:
        return float("inf")
    two_level = StabilityVariable(scheme.stability_variable) is StabilityVariable.H2_LAMBDA
    h_min = np.sqrt(z_min / scale) if two_level else z_min / scale
    if not ok(h_min):
        return 0.0
    lo, hi = h_min, max(1.0, 2 * h_min)
    while ok(hi) and hi < h_max:
        lo, hi = hi, hi * 2
    if hi >= h_max:
        return float("inf")
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo


def complete_largest_stable_step(step_scheme, operator, point: tuple, t: float, h: float, counts: list,
                                 delta: float) -> float | None:
    """The largest stable h from the *whole* spectrum of the step map, where the scheme has a
    reduced form M = h^p·L (``StepForm.h_power``, ``mu_from_roots``): forward Euler on a
    first-order block (S_j = I + hJ: μ = ξ − 1, λ = μ/h) and the two-level schemes (ξ² − (2 + μ)ξ
    + 1 = 0: μ = ξ + 1/ξ − 2 = h²λ, stable only for real μ in [−4, 0]). Every eigenvalue ξ of
    S_j that an exact count computed (``counts``: the examples'
    :class:`~pdenet_analysis.analysis.stepmap.ModeCount`) gives a λ, and the answer is the
    smallest over the examples of :func:`largest_stable_step` on all of them, for L frozen at
    this step's point. Eigenvalues with |μ| ≤ ``delta`` are taken as neutral, as the count takes
    |ξ| ≤ 1 + δ (ReLU-switched-off units give μ = 0, which dense eigenvalues return with errors
    up to about √ε); imaginary parts |Im μ| ≤ δ are taken as round-off (the two-level region is
    the real segment [−4, 0], and near its end the amplification is very sensitive to Im z).
    None unless the scheme has such a form and every example's spectrum is complete: the few
    layer eigenvalues are then the only estimate, and they can be far off (an unconverged Ritz
    value, or complex modes they miss)."""
    form = step_scheme.reduced_step_form(operator, tuple(c[:1] for c in point), t, h)
    if form is None or form.mu_from_roots is None:
        return None
    if not all(c.exact and len(c.computed) == c.unknowns for c in counts):
        return None
    how = LayerJacobian.FIELD if form.h_power == 1 else LayerJacobian.PRODUCT  # z = hλ, or z = h²λ (two-level)
    best = float("inf")
    for c in counts:
        mu = form.mu_from_roots(np.asarray(c.computed, dtype=complex))
        mu = mu[np.abs(mu) > delta]
        mu = np.where(np.abs(mu.imag) <= delta, mu.real + 0j, mu)  # round-off off the real axis
        best = min(best, largest_stable_step(mu / h ** form.h_power, how, step_scheme))
    return best


def symmetry_defect(J, n_probe: int = 3, seed: int = 0) -> float:
    """max |⟨Jv, w⟩ − ⟨v, Jw⟩| / (‖Jv‖‖w‖) over random probes (0 for a symmetric J)."""
    g = torch.Generator().manual_seed(seed)
    worst = 0.0
    for _ in range(n_probe):
        v = torch.randn(J.shape[1], generator=g, dtype=torch.float64).to(J.device, J.dtype)
        w = torch.randn(J.shape[0], generator=g, dtype=torch.float64).to(J.device, J.dtype)
        Jv, Jw = J.matvec(v), J.matvec(w)
        worst = max(worst, float((abs((Jv * w).sum() - (v * Jw).sum()) / (Jv.norm() * w.norm()).clamp_min(1e-300)).detach()))
    return worst


@dataclass
class LayerSpectrum:
    """The k largest-magnitude and 2 largest-real-part eigenvalues of one example's layer
    Jacobian (``jacobian``: its kind), their points ``z`` in the scheme's stability variable, and
    what they predict: the amplification, the largest stable h (an estimate: a few eigenvalues
    can miss a complex or small mode), the symmetry defect of a first-order ∂F/∂Y."""

    jacobian: LayerJacobian
    eigenvalues_LM: np.ndarray
    eigenvalues_LR: np.ndarray
    z: np.ndarray
    predicted_amplification: float
    spectral_radius: float
    max_real: float
    largest_stable_h: float
    layer_status: Status
    symmetry_defect: float


def layer_spectrum(operator, state, t, example: int, step_scheme, h: float, k: int, backend: str, tol: float,
                   dense_max: int = 0) -> LayerSpectrum:
    """:class:`LayerSpectrum` of ``example`` at ``state``, dense up to ``dense_max`` unknowns."""
    J, how = operator_jacobian(operator, state, t, example)
    if J.shape[1] <= dense_max and hasattr(J, "dense"):  # one dense spectrum serves both selections
        vals = all_eigenvalues(J)
        lm, lr = select(vals, min(k, J.shape[1]), "LM"), select(vals, min(2, J.shape[1]), "LR")
    else:
        lm = eigs(J, k=min(k, J.shape[1] - 2), which="LM", backend=backend, tol=tol, maxiter=100)
        # the rightmost eigenvalues of a crowded spectrum: ARPACK rarely converges on them, so a tighter budget
        lr = eigs(J, k=min(2, J.shape[1] - 2), which="LR", backend=backend, tol=tol, maxiter=25,
                  scale=float(np.max(np.abs(lm.values))))
    mu = np.concatenate([np.atleast_1d(lm.values), np.atleast_1d(lr.values)])
    z = to_stability_variable(mu, how, step_scheme, h)
    return LayerSpectrum(
        jacobian=LayerJacobian(how), eigenvalues_LM=np.asarray(lm.values), eigenvalues_LR=np.asarray(lr.values), z=z,
        predicted_amplification=float(np.max(step_scheme.amplification(z))),
        spectral_radius=float(np.max(np.abs(lm.values))), max_real=float(np.max(np.real(lr.values))),
        largest_stable_h=largest_stable_step(mu, how, step_scheme),
        layer_status=Status.CONVERGED if lm.status == lr.status == "converged" else Status.NOT_CONVERGED,
        symmetry_defect=symmetry_defect(J) if how == LayerJacobian.FIELD else float("nan"))
