"""The typed result of the stability analysis: per step, per example, the step map's mode count."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...status import Status
from ..results import Result
from ..stepmap import ModeCount
from .layer import LayerSpectrum


@dataclass
class ExampleStep:
    """One example at one step: the step map's :class:`~..stepmap.ModeCount` and ‖S_j‖₂ (with the
    status of its Golub–Kahan run)."""

    example: int
    count: ModeCount
    step_norm: float
    step_norm_status: Status

    def to_dict(self) -> dict:
        c = self.count
        return dict(example=self.example, step_map_radius=c.radius, step_map_radius_upper=c.radius_upper,
                    step_map_radius_lower=c.radius_lower, step_map_radius_residual=c.radius_residual,
                    step_map_status=c.status, n_outside=c.count, count_exact=c.exact, unknowns=c.unknowns,
                    step_map_method=c.method, eigenvalues_outside=np.asarray(c.outside), step_norm=self.step_norm,
                    step_norm_status=self.step_norm_status)


@dataclass
class StepStability:
    """Step j of the solve (t, h): every example's :class:`ExampleStep`, the layer spectrum of the
    worst example (for comparison), and what they give:

    * ``max_amplification`` — the worst ρ(S_j) over the counted and norm-certified examples (the
      growth per step of the worst mode, real or complex); ``max_amplification_estimated`` over
      all examples, estimates included;
    * ``n_outside_max`` — the most modes outside over those examples; ``count_exact`` whether
      every count is complete;
    * ``largest_stable_h_complete`` — from the whole spectrum of the step map where the scheme
      has a reduced form and every count is exact (None otherwise);
      ``largest_stable_h_reported`` that, or the layer eigenvalues' estimate.
    """

    step: int
    t: float
    h: float
    examples: list[ExampleStep]
    layer: LayerSpectrum
    layer_example: int
    largest_stable_h_complete: float | None
    status: Status

    @property
    def sure(self) -> list[ExampleStep]:
        """The counted and norm-certified examples (not estimates)."""
        return [e for e in self.examples if e.count.status != Status.ESTIMATE]

    @property
    def radii(self) -> list[float]:
        return [e.count.radius for e in self.examples]

    @property
    def max_amplification(self) -> float:
        return float(max(e.count.radius for e in self.sure))

    @property
    def max_amplification_estimated(self) -> float:
        return float(max(self.radii))

    @property
    def n_outside_max(self) -> int:
        return int(max(e.count.count for e in self.sure))

    @property
    def count_exact(self) -> bool:
        return all(e.count.exact for e in self.examples)

    @property
    def worst(self) -> ExampleStep:
        return self.examples[int(np.argmax(self.radii))]

    @property
    def largest_stable_h_reported(self) -> float:
        c = self.largest_stable_h_complete
        return self.layer.largest_stable_h if c is None else c

    def to_dict(self) -> dict:
        from ..steps import distribution

        layer = dict(self.layer.__dict__)
        return dict(step=self.step, t=self.t, h=self.h, examples=[e.to_dict() for e in self.examples], **layer,
                    max_amplification=self.max_amplification,
                    max_amplification_estimated=self.max_amplification_estimated,
                    counted_examples=[e.example for e in self.sure], step_map_radius=distribution(self.radii),
                    n_outside_max=self.n_outside_max, n_outside=distribution([e.count.count for e in self.examples]),
                    count_exact=self.count_exact, fraction_outside=self.n_outside_max / self.worst.count.unknowns,
                    step_norm=distribution([e.step_norm for e in self.examples]), layer_example=self.layer_example,
                    largest_stable_h_complete=self.largest_stable_h_complete,
                    largest_stable_h_reported=self.largest_stable_h_reported, status=self.status)


@dataclass
class StabilityResult(Result):
    """Stability of a scheme along its own solve: one :class:`StepStability` per step (the
    accepted steps of an adaptive scheme), the a-priori growth bound Π_j ‖S_j‖₂ per example, and
    the settings that qualify the answers (δ, the failure probability of the norm bounds, the
    count budget and how many examples were counted).

    ``step_scheme`` is the scheme whose step maps were analysed (an adaptive scheme's propagated
    Runge–Kutta step); the renderer draws its stability region."""

    name = "stability"
    scheme: str
    h: float | None
    steps: list[StepStability]
    examples: int
    delta: float
    failure_probability: float
    count_budget: int
    seed: int
    k: int
    count_examples: int | None
    growth_bound_per_example: list
    step_scheme: object = field(default=None, repr=False)
    failure: dict | None = None

    @property
    def max_amplification(self) -> float:
        """The worst ρ(S_j) over the steps and counted examples."""
        return max(s.max_amplification for s in self.steps)

    @property
    def n_outside_max(self) -> int:
        return max(s.n_outside_max for s in self.steps)

    @property
    def count_exact(self) -> bool:
        return all(s.count_exact for s in self.steps)

    def to_dict(self) -> dict:
        from ..steps import distribution

        return dict(scheme=self.scheme, h=self.h, steps=[s.to_dict() for s in self.steps], examples=self.examples,
                    delta=self.delta, failure_probability=self.failure_probability, count_budget=self.count_budget,
                    seed=self.seed, growth_bound=distribution(self.growth_bound_per_example),
                    growth_bound_per_example=list(self.growth_bound_per_example))
