"""Conditioning of a block's flow map Φ: Y₀ ↦ Y(T): σ_max, σ_min, κ = σ_max/σ_min and the
finite-time Lyapunov exponents (1/T)·log σ_i, per example, each with a residual and a status.

σ_max and the top k come from Golub–Kahan–Lanczos bidiagonalisation of J_Φ
(:func:`~pdenet_analysis.analysis.krylov.golub_kahan`); σ_min and the bottom k from the first
route of :mod:`.routes` that applies (dense SVD, the exact inverse map, exact inverse step maps
through the active units, GMRES inverse iteration, or Golub–Kahan's bounds) — never by
squaring κ. Whatever the route, a value is "converged" only if its singular triplet passes a
residual check with the *forward* operator; otherwise the smallest certified upper bound is
reported with status "bound" (σ_min ≤ value, κ ≥ value), and κ is bounded from above where a
lower bound on σ_min exists (:mod:`.certificates`).

Every statement also rests on the Krylov iteration's claim that no larger σ_max (smaller σ_min)
was missed. The probable bracket does without it (:mod:`.bracket`): bounds that fail with
probability at most δ/2 each over the random start vector (δ =
``Certification.failure_probability``), whatever the spectrum, converged or not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...errors import InvalidArgumentError
from ..krylov import golub_kahan
from ..modes import analyses_an_operator
from ..options import legacy_options, require_options
from ..results import sweepable
from ..results import Result
from ..steps import discretise, distribution, select_examples
from .bracket import probable_bracket
from .certificates import forward_residual, product_rounding, reduced_inverse_flow, residual_lower_bound, stepwise_bounds
from .routes import METHODS, Context, SigmaMin, smallest_singular_values

MAPS = ("state", "block")


@dataclass
class UpperBracket:
    """κ from above for an example whose σ_min is only bounded: σ_min ≥ ``sigma_min_lower`` (the
    larger of the candidate's residual bound and Π_j σ_min(S_j)), σ_max ≤ ``sigma_max_upper`` (its
    converged value, or Π_j ‖S_j‖; None if neither), κ ≤ ``condition_upper``."""

    sigma_min_lower: float
    sigma_max_upper: float | None
    condition_upper: float | None


@dataclass
class ExampleConditioning:
    """One example: the top and bottom k singular values with residuals and statuses, κ, the
    FTLEs, the probable bracket, and (for a σ_min that is only bounded) the bracket from above."""

    sigma_max: list
    sigma_max_residual: list
    sigma_max_status: str
    sigma_min: list
    sigma_min_residual: list
    sigma_min_status: str
    condition: float
    condition_status: str
    ftle_top: list
    ftle_bottom: list
    sigma_max_upper_probable: float | None
    sigma_min_lower_probable: float | None
    condition_upper_probable: float | None
    upper_bracket: UpperBracket | None = None

    def to_dict(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k != "upper_bracket"}
        if self.upper_bracket is not None:
            out.update(self.upper_bracket.__dict__)
        return out


@dataclass
class ConditioningResult(Result):
    """The flow map's conditioning over a batch of examples (see the module docstring);
    ``smallest`` is the σ_min route's result with its evidence."""

    name = "conditioning"
    scheme: str
    map: str
    n_steps: int
    T: float
    unknowns: int
    k: int
    tol: float
    failure_probability: float
    seed: int
    method_max: str
    smallest: SigmaMin
    examples: list
    failure: dict | None = None

    @property
    def method_min(self) -> str:
        return self.smallest.route

    @property
    def condition(self) -> dict:
        return distribution([e.condition for e in self.examples])

    @property
    def all_converged(self) -> bool:
        return all(e.condition_status == "converged" for e in self.examples)

    def to_dict(self) -> dict:
        return dict(scheme=self.scheme, map=self.map, n_steps=self.n_steps, T=self.T, unknowns=self.unknowns, k=self.k,
                    tol=self.tol, failure_probability=self.failure_probability, seed=self.seed,
                    method_max=self.method_max, method_min=self.method_min, **self.smallest.evidence(),
                    examples=[e.to_dict() for e in self.examples], condition=self.condition,
                    sigma_max=distribution([e.sigma_max[0] for e in self.examples]),
                    sigma_min=distribution([e.sigma_min[0] for e in self.examples]), all_converged=self.all_converged)


def _upper_bracket(smin: SigmaMin, top, b: int) -> UpperBracket | None:
    """σ_min ≥ the larger lower bound (Π_j σ_min(S_j), or the candidate's residual); σ_max ≤ the
    smaller certified upper bound (its converged value, Π_j ‖S_j‖)."""
    step = smin.stepwise[b] if smin.stepwise else None
    lows = ([step["lower"]] if step is not None else []) + ([smin.residual_lower[b]] if smin.residual_lower else [])
    if smin.status[b] == "converged" or not lows:
        return None
    low = max(lows)
    high = min(step["upper"] if step is not None else math.inf,
               top.values[b, 0] * (1 + top.residuals[b, 0]) if top.status[b] == "converged" else math.inf)
    return UpperBracket(low, high if math.isfinite(high) else None, high / low if low > 0 and math.isfinite(high) else None)


@sweepable("conditioning")
@analyses_an_operator
def conditioning(operator, y0, scheme="euler", *, T=None, n_steps=None, k: int = 3, map: str = "state",
                 method: str = "auto", examples=None, certification=None, budget=None, progress=None,
                 **legacy) -> ConditioningResult:
    """σ_max, σ_min, κ and FTLEs of the flow map's Jacobian for every example of ``y0``
    (all at once: the Krylov solvers are batched over examples).

    ``map``: "state" (the first-order state (Y, V) or (Y, Z)) or "block" (what the network maps:
    Y₀ ↦ Y_N; differs from "state" only for second-order blocks). ``method`` forces a σ_min
    route (:data:`METHODS`; "auto" picks as :mod:`.routes` says). ``examples``: indices to use
    (default all). Adaptive schemes are linearised along their accepted steps (their tolerances
    are the scheme's: ``get_scheme("dopri5", rtol=...)``). ``certification``
    (:class:`~pdenet_analysis.analysis.options.Certification`): the residual tolerance, the
    failure probability δ of the probable bracket (per example, the chance that κ lies outside
    [κ found, ``condition_upper_probable``]) and the seed of its start vectors; ``budget``
    (:class:`~pdenet_analysis.analysis.options.Budget`): dense and reduced sizes, iterations.
    ``progress(where)``, if given, is called after each factorisation of the reduced-inverse
    route (each can take minutes at the paper's largest sizes on a CPU: docs/benchmarks.md)."""
    scheme, certification, budget = legacy_options("conditioning", legacy, scheme, certification, budget)
    certification, budget = require_options(certification, budget)
    if method not in METHODS:
        raise InvalidArgumentError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if map not in MAPS:
        raise InvalidArgumentError(f"map must be 'state' (the first-order state) or 'block' (Y₀ ↦ Y_N), got {map!r}")
    tol, seed = certification.tol, certification.seed
    y0 = select_examples(y0, examples)
    disc = discretise(operator, y0, scheme, T=T, n_steps=n_steps)
    J = disc.flow_jacobian(map)
    k = min(k, J.shape[1])
    inner_tol = certification.inner_tol if certification.inner_tol is not None else \
        max(tol * 1e-2 / max(disc.n_steps, 1), 1e-14)
    top = golub_kahan(J, k=k, which="largest", tol=tol, max_iter=budget.max_iter, seed=seed)
    ctx = Context(J, disc, map, k, tol, inner_tol, budget, seed, top_norm=top.values[:, 0],
                  top_certified=[s_ == "converged" for s_ in top.status], progress=progress)
    smin = smallest_singular_values(ctx, method)
    smax = top.values
    kappa = smax[:, 0] / np.maximum(smin.values[:, 0], 1e-300)
    smax_hi, smin_lo = probable_bracket(J, top, smin, certification.failure_probability)
    Tf = disc.T
    per_example = []
    for b in range(J.batch):
        finite_hi, has_lo = math.isfinite(smax_hi[b]), smin_lo[b] > 0
        per_example.append(ExampleConditioning(
            sigma_max=smax[b].tolist(), sigma_max_residual=top.residuals[b].tolist(), sigma_max_status=top.status[b],
            sigma_min=smin.values[b].tolist(), sigma_min_residual=smin.residuals[b].tolist(),
            sigma_min_status=smin.status[b], condition=float(kappa[b]),
            condition_status="converged" if top.status[b] == smin.status[b] == "converged" else "bound",
            ftle_top=[math.log(s) / Tf for s in smax[b]], ftle_bottom=[math.log(max(s, 1e-300)) / Tf for s in smin.values[b]],
            sigma_max_upper_probable=float(smax_hi[b]) if finite_hi else None,
            sigma_min_lower_probable=float(smin_lo[b]) if has_lo else None,
            condition_upper_probable=float(smax_hi[b] / smin_lo[b]) if finite_hi and has_lo else None,
            upper_bracket=_upper_bracket(smin, top, b)))
    return ConditioningResult(scheme=disc.scheme.name, map=map, n_steps=disc.n_steps, T=Tf, unknowns=J.shape[1], k=k,
                              tol=tol, failure_probability=certification.failure_probability, seed=seed,
                              method_max=f"golub-kahan ({top.iterations} iterations)", smallest=smin,
                              examples=per_example)


__all__ = ["conditioning", "ConditioningResult", "ExampleConditioning", "UpperBracket", "SigmaMin", "METHODS", "MAPS",
           "forward_residual", "product_rounding", "reduced_inverse_flow", "residual_lower_bound", "stepwise_bounds"]
