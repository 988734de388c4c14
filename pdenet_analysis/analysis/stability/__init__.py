"""Stability along a trajectory: the step map's spectrum (the scheme itself,
:mod:`~pdenet_analysis.analysis.stepmap`) and the layer Jacobian's extreme eigenvalues placed over
the scheme's stability region (:mod:`.layer`).

The step map decides: its spectral radius is the growth per step of the worst mode, real or
complex, whatever the scheme. The layer spectrum explains it in the scheme's linear analysis,
and is kept for comparison: a few eigenvalues can miss unstable complex modes, the step map's
radius cannot.
"""

from __future__ import annotations

import warnings

import numpy as np

from ...errors import InvalidArgumentError, real_or_nan
from ...schemes.base import stage_time
from ...status import Status
from ..modes import analyses_an_operator
from ..options import legacy_options, require_options
from ..precision import UNIT_ROUNDOFF, dtype_named
from ..results import sweepable
from ..stepmap import step_map_spectra
from .layer import (LayerSpectrum, complete_largest_stable_step, largest_stable_step, layer_spectrum, symmetry_defect,
                    to_stability_variable)
from .result import ExampleStep, StabilityResult, StepStability


def _check(delta, k) -> float:
    if not 0.0 <= real_or_nan(delta) < 1.0:
        raise InvalidArgumentError(f"delta is the margin of the unit circle, |ξ| > 1 + delta counting as unstable: a "
                                   f"number in [0, 1) (default 1e-6), got {delta!r}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidArgumentError(f"k is the number of largest-magnitude layer eigenvalues shown, a positive "
                                   f"integer, got {k!r}")
    return float(delta)


@sweepable("stability")
@analyses_an_operator
def stability(operator, y0, scheme="euler", *, T=None, n_steps=None, k: int = 6, delta: float = 1e-6, examples=None,
              certification=None, budget=None, progress=None, **legacy) -> StabilityResult:
    """Stability of ``scheme`` along its own solve from ``y0``, for every example (or ``examples``).

    At every step j (the accepted steps of an adaptive scheme, whose tolerances are the
    scheme's own: ``get_scheme("dopri5", rtol=...)``):

    * the step map's spectral radius ρ(S_j), its eigenvalues outside |ξ| ≤ 1 + ``delta`` (counted
      completely, :mod:`~pdenet_analysis.analysis.stepmap`) and ‖S_j‖₂ — the stability of the
      scheme itself, per example. Where ‖S_j‖₂ ≤ 1 + δ certifies that no mode is outside, that
      bound is reported as the radius (method "norm bound"); ``step_map_radius_upper`` = ‖S_j‖₂
      brackets every radius from above by the Lanczos polynomial bound, which fails with
      probability at most ``Certification.failure_probability`` per example and step over the
      random start, whatever the spectrum;
    * for the example with the largest ρ(S_j), the k largest-magnitude and 2 largest-real-part
      eigenvalues of the layer Jacobian for the scheme's linear analysis, mapped to its stability
      variable z (:class:`~.layer.LayerSpectrum`).

    ``budget`` (:class:`~pdenet_analysis.analysis.options.Budget`) bounds the work: above
    ``dense_max`` unknowns only ``count_examples`` examples per step get the complete count
    (those with the largest certified lower bound on ρ; the others keep a short Arnoldi
    estimate, status "estimate"); the two-level schemes and forward Euler are counted exactly
    through the active hidden units up to ``reduced_dense_max`` rows, others by ARPACK with at
    most ``count_budget`` products per example and step — a count that runs out is the lower
    bound it is ("≥", status "not_converged").

    ``progress(where)``, if given, is called after each example of each step with a label such
    as "step 2/3, example 5/32".
    """
    from ..krylov import golub_kahan
    from ..steps import discretise, select_examples

    if "example" in legacy:  # the former single-example selection
        warnings.warn("stability(example=b) is deprecated: pass examples=[b]", DeprecationWarning, stacklevel=3)
        one = legacy.pop("example")
        examples = examples if one is None else [one]
    scheme, certification, budget = legacy_options("stability", legacy, scheme, certification, budget)
    certification, budget = require_options(certification, budget)
    delta = _check(delta, k)
    y0 = select_examples(y0, examples)
    disc = discretise(operator, y0, scheme, T=T, n_steps=n_steps)
    scheme, step_scheme = disc.scheme, disc.step_scheme
    batch, steps = disc.batch, []
    norm_product = np.ones(batch)
    for j, (t0, h, internal) in enumerate(disc.steps):
        S = disc.step_jacobian(j)
        # ‖S_j‖₂ to 1e-13 and on until "‖S_j‖₂ ≤ 1 + δ?" is decided by the probable bound or the Ritz value: a
        # converged residual alone can leave a contractive step (‖S_j‖₂ = 1) above 1 + δ
        norms = golub_kahan(S, k=1, which="largest", tol=min(certification.tol, 1e-13), seed=certification.seed,
                            certify_below=1 + delta, failure_probability=certification.failure_probability,
                            unit_roundoff=UNIT_ROUNDOFF[dtype_named(S.dtype)[0]])
        norm_product *= norms.values[:, 0]
        done = iter(range(1, batch + 1))
        tick = (lambda j=j: progress(f"step {j + 1}/{disc.n_steps}, example {next(done)}/{batch}")) if progress else None
        counts = step_map_spectra(disc, j, delta=delta, budget=budget, certification=certification, norms=norms,
                                  progress=tick, S=S)
        per_ex = [ExampleStep(b, c, float(norms.values[b, 0]), Status(norms.status[b])) for b, c in enumerate(counts)]
        worst = per_ex[int(np.argmax([e.count.radius for e in per_ex]))]
        # the layer spectrum of the worst example, for comparison only, on a bounded budget
        state = step_scheme.to_state(operator, internal, h)
        layer = layer_spectrum(operator, state, stage_time(t0, 0.0, h), worst.example, step_scheme, h, k,
                               budget.backend, certification.tol, budget.dense_max)
        converged = all(e.count.status == e.step_norm_status == Status.CONVERGED for e in per_ex)
        steps.append(StepStability(j, float(t0), float(h), per_ex, layer, worst.example,
                                   complete_largest_stable_step(step_scheme, operator, internal, t0, h, counts, delta),
                                   Status.CONVERGED if converged else Status.NOT_CONVERGED))
    return StabilityResult(scheme=scheme.name, h=None if scheme.adaptive else disc.steps[0][1], steps=steps,
                           examples=batch, delta=delta, failure_probability=certification.failure_probability,
                           count_budget=budget.count_budget, seed=certification.seed, k=k,
                           count_examples=budget.count_examples, growth_bound_per_example=norm_product.tolist(),
                           step_scheme=step_scheme)


def spectrum_along_trajectory(*args, **kwargs) -> StabilityResult:
    """Deprecated name of :func:`stability` (the same analysis, the same result)."""
    warnings.warn("spectrum_along_trajectory is deprecated: call pdenet_analysis.analysis.stability (the same "
                  "analysis), or pdenet_analysis.analyze for every analysis at once", DeprecationWarning, stacklevel=2)
    return stability(*args, **kwargs)


__all__ = ["stability", "spectrum_along_trajectory", "StabilityResult", "StepStability", "ExampleStep", "LayerSpectrum",
           "largest_stable_step", "complete_largest_stable_step", "symmetry_defect", "to_stability_variable"]
