"""The status words results carry, as string enums: a status compares equal to its word
(``status == "converged"``) and is written as that word in JSON, so saved reports read the same.

* :class:`SolveStatus` — an integration (:class:`~pdenet_analysis.integrate.Solution`): it
  succeeded, met NaN/Inf, or ran out of an adaptive solver's steps;
* :class:`Status` — an analysis value: converged (certified by its residual), not converged, a
  bound (a certified upper or lower bound, not the value), or an estimate (a short Krylov run's,
  with no certificate).
"""

from __future__ import annotations

from enum import Enum


class Word(str, Enum):
    """A string enum that prints and formats as its word (``f"{s}"`` is ``"converged"``)."""

    def __str__(self) -> str:
        return str.__str__(self)

    def __format__(self, spec: str) -> str:
        return str.__format__(str.__str__(self), spec)


class Status(Word):
    CONVERGED = "converged"
    NOT_CONVERGED = "not_converged"
    BOUND = "bound"
    ESTIMATE = "estimate"


class SolveStatus(Word):
    SUCCESS = "success"
    NONFINITE = "nonfinite"
    MAX_STEPS_REACHED = "max_steps_reached"
    FAILED = "failed"
