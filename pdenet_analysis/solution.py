"""What an integration returns: the :class:`Solution` with its :class:`Stats` and status, and the
counting view of an operator (:class:`CountingOperator`) that the statistics come from."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from .errors import IntegrationError
from .schemes.base import Scheme
from .status import SolveStatus

State = tuple


@dataclass
class Stats:
    """Counts of one integration, identical in meaning for fixed and adaptive schemes."""

    n_steps: int = 0
    n_accepted: int = 0
    n_rejected: int = 0
    n_evals: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Solution:
    """Result of :func:`integrate`.

    ``y``          the state at T in the layout of ``y0`` (tensor, or tuple if a tuple was given)
    ``state``      the operator's first-order state at T: (Y,), (Y, V) or (Y, Z)
    ``internal``   the scheme's internal state at T (for leapfrog (Y_N, Y_{N−1}); used by inverse steps)
    ``times``      times of ``trajectory`` (None unless requested)
    ``trajectory`` list of first-order states at ``times``
    ``stats``      :class:`Stats` (for a failed run: the counts up to the failure)
    ``status``     "success"; with ``integrate(..., throw=False)`` a failure is returned instead of
                   raised: "nonfinite" (NaN/Inf; ``failed_step`` and ``failed_time`` say where),
                   "max_steps_reached" (an adaptive solver's step budget) or "failed" (any other
                   :class:`IntegrationError`), with the error's text in ``message``; ``y``,
                   ``internal`` and ``state`` of a failed solution are unavailable
    ``accepted_steps``  adaptive schemes with ``record_steps=True``: (t, h, state) of each accepted step
    """

    y: object
    internal: State
    stats: Stats
    scheme: Scheme
    T: float
    h: float | None = None
    times: torch.Tensor | None = None
    trajectory: list | None = None
    status: SolveStatus = SolveStatus.SUCCESS
    accepted_steps: list | None = field(default=None, repr=False)
    _state: State | None = field(default=None, repr=False)
    message: str = ""
    failed_step: int | None = None
    failed_time: float | None = None
    #: the operator integrated (``reverse`` checks that it is given the same one)
    operator: object = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.status == SolveStatus.SUCCESS

    @property
    def state(self) -> State:
        if not self.ok:
            raise IntegrationError(f"this integration did not succeed ({self.status}): {self.message}")
        if self._state is None:  # built on demand: leapfrog's V costs two passes over the state
            self._state = self.scheme.to_state(None, self.internal, self.h)
        return self._state


class CountingOperator:
    """A view of an operator that counts right-hand-side evaluations and adaptive steps."""

    def __init__(self, operator):
        self.operator = operator
        self.kind = operator.kind
        self.evals = 0.0
        self.accepted = 0
        self.rejected = 0
        self.step_log = None  # adaptive schemes: (t, h, flat state) per accepted step when recording
        self._cf, self._cg = operator.part_costs

    def vector_field(self, t, state):
        self.evals += 1
        return self.operator.vector_field(t, state)

    def part_f(self, t, b):
        self.evals += self._cf
        return self.operator.part_f(t, b)

    def part_g(self, t, a):
        self.evals += self._cg
        return self.operator.part_g(t, a)

    def acceleration(self, t, y):
        self.evals += 1
        return self.operator.acceleration(t, y)
