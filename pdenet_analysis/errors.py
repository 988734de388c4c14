"""Exceptions raised by pdenet_analysis.

Every numerical or input problem is reported by one of these classes, with a message that names
the problem and the way to fix it. Nothing is signalled with ``assert``.
"""

from __future__ import annotations

from collections.abc import Iterable


class PDENetError(Exception):
    """Base class of every error raised by the library."""


class InvalidArgumentError(PDENetError, ValueError):
    """An argument is out of its range or of the wrong kind; the message names what is accepted."""


class ShapeError(PDENetError, ValueError):
    """A tensor has the wrong number of dimensions, channels or size."""


class UnknownNameError(PDENetError, KeyError):
    """A name (scheme, preset, dataset, ...) is not registered.

    The message lists the valid names.
    """

    def __init__(self, what: str, name: str, valid: Iterable[str]):
        self.what, self.name, self.valid = what, name, sorted(valid)
        super().__init__(f"unknown {what} {name!r}; valid {what}s: {', '.join(self.valid)}")

    def __str__(self) -> str:  # KeyError would quote the message otherwise
        return self.args[0]


class IncompatibleSchemeError(PDENetError, TypeError):
    """A scheme was applied to an operator kind it does not accept, or asked for something it
    does not have (an inverse step, a stability function, an adjoint)."""


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


class DataError(PDENetError, OSError):
    """A data or model file is missing, truncated, corrupt or of another version."""


def require_positive(name: str, value: float) -> float:
    """Return ``value`` if it is a finite number > 0, else raise ``ValueError`` naming it."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"{name} must be a positive number, got {value!r}") from None
    if not (v > 0 and v != float("inf")):
        raise InvalidArgumentError(f"{name} must be a positive finite number, got {value!r}")
    return v


def failure_status(error: Exception) -> str:
    """The status word a failed integration reports with ``throw=False``: "nonfinite",
    "max_steps_reached" (an adaptive solver's step budget) or "failed"."""
    if isinstance(error, NonFiniteError):
        return "nonfinite"
    return "max_steps_reached" if "max_num_steps exceeded" in str(error) else "failed"
