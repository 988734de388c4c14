"""Exceptions raised by pdenet_analysis.

Every numerical or input problem is reported by one of these classes, with a message that names
the problem and the way to fix it. Nothing is signalled with ``assert``.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable


class PDENetError(Exception):
    """Base class of every error raised by the library."""


class InvalidArgumentError(PDENetError, ValueError):
    """An argument is out of its range or of the wrong kind; the message names what is accepted."""


class ShapeError(PDENetError, ValueError):
    """A tensor has the wrong number of dimensions, channels or size."""


class TensorTypeError(PDENetError, TypeError):
    """An argument that should be a tensor is not one, or its dtype or device differs from the
    weights it meets; the message says which conversion fixes it."""


class UnknownNameError(PDENetError, KeyError):
    """A name (scheme, preset, dataset, ...) is not registered.

    The message lists the valid names, after the nearest one where a name is close (a typo, or the
    parts of a preset name in the other order: "parabolic-digits" for "digits-parabolic").
    """

    def __init__(self, what: str, name: str, valid: Iterable[str]):
        self.what, self.name, self.valid = what, name, sorted(valid)
        plural = (what[:-1] + "ies" if what.endswith("y") and what[-2:-1] not in "aeiou"
                  else what + "x" if what.endswith("eau") else what + "s")
        self.suggestion = _nearest(str(name), self.valid)
        hint = f" (did you mean {self.suggestion!r}?)" if self.suggestion else ""
        super().__init__(f"unknown {what} {name!r}{hint}; valid {plural}: {', '.join(self.valid)}")

    def __str__(self) -> str:  # KeyError would quote the message otherwise
        return self.args[0]


def _nearest(name: str, valid: list) -> str | None:
    """The valid name with the same parts in another order (split at "-", "_", " "), else the
    closest by difflib's ratio (at least 0.75), else None."""
    import difflib
    import re

    def parts(x):
        return sorted(p for p in re.split(r"[-_ ]+", x.lower()) if p)

    same = [v for v in valid if parts(v) == parts(name)]
    if same:
        return same[0]
    close = difflib.get_close_matches(name.lower(), valid, n=1, cutoff=0.75)
    return close[0] if close else None


class IncompatibleSchemeError(PDENetError, TypeError):
    """A scheme was applied to an operator kind it does not accept, or asked for something it
    does not have (an inverse step, a stability function, an adjoint)."""


class IncompatibleOperatorError(PDENetError, TypeError):
    """An operator cannot be used the way it was asked: the reversible gradient needs an operator
    that gives the same values when evaluated again, and this one draws random numbers or changes
    its buffers as it runs (:mod:`pdenet_analysis.replay`)."""


class IntegrationError(PDENetError, RuntimeError):
    """An integration failed: step-size underflow, too many steps, or non-finite values."""


class NonFiniteError(IntegrationError, FloatingPointError):
    """NaN or Inf appeared during integration or training.

    Attributes ``step`` and ``time`` say where it first appeared (``None`` when unknown).
    """

    def __init__(self, message: str, step: int | None = None, time: float | None = None):
        self.step, self.time = step, time
        super().__init__(message)


class ConfigMismatchError(PDENetError, ValueError):
    """A run cannot continue from a checkpoint: another network, data set or training settings."""


class MissingDependencyError(PDENetError, ImportError):
    """An optional package that a feature needs is not installed; the message names the install."""


class DataError(PDENetError, OSError):
    """A data or model file is missing, truncated, corrupt or of another version."""


def require_positive(name: str, value: float) -> float:
    """Return ``value`` if it is a finite number > 0, else raise :class:`InvalidArgumentError` naming it."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"{name} must be a positive number, got {value!r}") from None
    if not (v > 0 and v != float("inf")):
        raise InvalidArgumentError(f"{name} must be a positive finite number, got {value!r}")
    return v


def real_or_nan(value) -> float:
    """``value`` as a float if it is a real number (not a bool or a string), else NaN: range checks
    on the result then reject anything that is not a number."""
    return float(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) else float("nan")


def require_probability(name: str, value: float) -> float:
    """Return ``value`` if it is a number strictly between 0 and 1, else raise
    :class:`InvalidArgumentError` naming it."""
    v = real_or_nan(value)
    if not 0.0 < v < 1.0:
        raise InvalidArgumentError(f"{name} is the chance that a probable bound fails, a number strictly between 0 "
                                   f"and 1 (default 1e-6), got {value!r}")
    return v


def require_tolerance(name: str, value: float) -> float:
    """Return ``value`` if it is a relative tolerance in (0, 1), else raise :class:`InvalidArgumentError`."""
    v = real_or_nan(value)
    if not 0.0 < v < 1.0:
        raise InvalidArgumentError(f"{name} is a relative tolerance, a number strictly between 0 and 1 (e.g. 1e-8), "
                                   f"got {value!r}")
    return v


def require_seed(value, name: str = "seed") -> int:
    """Return ``value`` if it is a non-negative integer (a random generator's seed), else raise
    :class:`InvalidArgumentError` naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidArgumentError(f"{name} must be a non-negative integer (a random generator's seed), got {value!r}")
    return value


def failure_status(error: Exception):
    """The status a failed integration reports with ``throw=False``
    (:class:`~pdenet_analysis.status.SolveStatus`): nonfinite, max_steps_reached (an adaptive
    solver's step budget) or failed."""
    from .status import SolveStatus

    if isinstance(error, NonFiniteError):
        return SolveStatus.NONFINITE
    return SolveStatus.MAX_STEPS_REACHED if "max_num_steps exceeded" in str(error) else SolveStatus.FAILED
