"""Time-dependent parameters θ(t) on a grid of [0, T].

The paper trains one weight set per time step (θ piecewise constant in time, §3). To evaluate
the same network with another scheme, finer steps or an adaptive solver, θ must be a function of
continuous t. Two interpolations are offered:

``"constant"``
    ``n_pieces`` weight sets; θ(t) = θ_j on [t_j, t_{j+1}), t_j = j·T/n_pieces. This is the
    paper's parametrisation: forward Euler with n_steps = n_pieces is exactly the ResNet of eq. 3.
``"linear"``
    ``n_pieces + 1`` weight sets at the nodes t_0..t_N, linearly interpolated in between, so θ is
    continuous and an adaptive solver may evaluate it at any t.

:meth:`TimeGrid.refined` doubles the number of pieces while describing **the same function**
θ(t) (copies for constant pieces, midpoint averages for linear nodes), so a trained block can be
re-integrated with finer steps: the ODE stays the same and only the discretisation changes.

Discontinuities. With piecewise-constant θ the right-hand side jumps at the t_j. A one-step
scheme keeps its order only if every stage of a step uses the weights of the piece that holds
the step, also at the end point t_{j+1}. Schemes therefore pass stage times as :class:`StepTime`,
a float that remembers the step it belongs to, and piecewise-constant lookup uses the step's
midpoint. A plain float (as an adaptive solver passes) is looked up right-continuously.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import torch

from ..errors import InvalidArgumentError, UnknownNameError, require_positive

INTERPOLATIONS = ("constant", "linear")


def _value(x):
    return x.value if isinstance(x, StepTime) else x


class StepTime:
    """A stage time t_j + c·h that knows its step [t_j, t_j + h].

    It behaves as the float ``value`` in arithmetic (with floats, ints and tensors; results are
    plain floats or tensors), comparisons, ``float()``, ``math`` and numpy functions, and
    formatting. :class:`TimeGrid` uses ``midpoint`` to pick the piece of a piecewise-constant θ,
    so that all stages of one step see one weight set.

    It is a plain class, not a ``float`` subclass, so that ``torch.compile`` can trace its
    construction inside a scheme's step (Dynamo cannot trace the construction of a subclass of a
    builtin number): the fixed-step loop compiles to one graph (``fullgraph=True``).
    """

    __slots__ = ("value", "midpoint")

    def __init__(self, t: float, step_start: float, step_size: float):
        self.value = float(t)
        self.midpoint = float(step_start) + 0.5 * float(step_size)

    def __float__(self) -> float:
        return self.value

    def __repr__(self) -> str:
        return f"StepTime({self.value!r}, midpoint={self.midpoint!r})"

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    def __array__(self, dtype=None, copy=None):
        import numpy as np

        return np.asarray(self.value, dtype=dtype)

    def __bool__(self) -> bool:
        return bool(self.value)

    def __hash__(self) -> int:  # equal to its float value, so it hashes as that float
        return hash(self.value)

    def __neg__(self):
        return -self.value

    def __pos__(self):
        return self.value

    def __abs__(self):
        return abs(self.value)

    def __round__(self, ndigits=None):
        return round(self.value, ndigits)


def _binary(fn, reflected: bool = False):
    """A StepTime operator method: ``fn`` applied to the float value and the other operand."""
    if reflected:
        return lambda self, o: fn(_value(o), self.value)
    return lambda self, o: fn(self.value, _value(o))


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow"):
    setattr(StepTime, f"__{_name}__", _binary(getattr(operator, _name)))
    setattr(StepTime, f"__r{_name}__", _binary(getattr(operator, _name), reflected=True))
for _name in ("eq", "ne", "lt", "le", "gt", "ge"):
    setattr(StepTime, f"__{_name}__", _binary(getattr(operator, _name)))


@dataclass(frozen=True)
class TimeGrid:
    """A uniform grid of ``n_pieces`` pieces on [0, T] and how θ is interpolated on it."""

    T: float
    n_pieces: int
    interpolation: str = "constant"

    def __post_init__(self) -> None:
        require_positive("final time T", self.T)
        if int(self.n_pieces) != self.n_pieces or self.n_pieces < 1:
            raise InvalidArgumentError(f"n_pieces must be a positive integer, got {self.n_pieces!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise UnknownNameError("interpolation", self.interpolation, INTERPOLATIONS)

    @property
    def n_nodes(self) -> int:
        """Number of stored weight sets."""
        return self.n_pieces + (self.interpolation == "linear")

    @property
    def spacing(self) -> float:
        return self.T / self.n_pieces

    def refined(self, factor: int = 2) -> "TimeGrid":
        """The grid with every piece split into ``factor`` pieces (a positive integer)."""
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
            raise InvalidArgumentError(f"refined(factor) needs a positive integer factor, got {factor!r}")
        return TimeGrid(self.T, self.n_pieces * factor, self.interpolation)

    def coefficients(self, t: float | torch.Tensor) -> tuple[int, int, float]:
        """(i, k, s) such that θ(t) = (1 − s)·θ_i + s·θ_k."""
        if isinstance(t, torch.Tensor):
            t = float(t.detach())
        if self.interpolation == "constant":
            u = getattr(t, "midpoint", t) / self.spacing
            j = min(max(int(math.floor(u)), 0), self.n_pieces - 1)
            return j, j, 0.0
        u = min(max(_value(t) / self.spacing, 0.0), float(self.n_pieces))
        j = min(int(math.floor(u)), self.n_pieces - 1)
        return j, j + 1, u - j

    def refine_values(self, values: torch.Tensor, factor: int = 2) -> torch.Tensor:
        """Node values of the refined grid that describe the same θ(t) (leading dim = nodes)."""
        if self.interpolation == "constant":
            return values.repeat_interleave(factor, dim=0)
        s = torch.arange(factor, dtype=values.dtype, device=values.device) / factor
        s = s.view(1, factor, *([1] * (values.dim() - 1)))
        left, right = values[:-1].unsqueeze(1), values[1:].unsqueeze(1)
        inner = ((1 - s) * left + s * right).flatten(0, 1)
        return torch.cat([inner, values[-1:]], dim=0)


def evaluate(grid: TimeGrid, values: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """θ(t) from the stacked node values (leading dimension = ``grid.n_nodes``).

    For a tensor ``t`` (as adaptive solvers pass) a piecewise-linear θ stays differentiable in t:
    backpropagation through an adaptive solver differentiates its step sizes, whose effect on the
    result passes through ∂θ/∂t; cutting it gives wrong gradients.
    """
    return evaluate_all(grid, (values,), t)[0]


#: how θ(t) is looked up at a tensor t (adaptive solvers pass one at every evaluation): on the
#: weights' device without reading t (True), by reading t on the host (False), or None: on the
#: device unless t is on the CPU. There a host read costs nothing, and the device lookup's few
#: extra small operations are a noticeable share of an adaptive solve of a tiny operator; on a
#: GPU each host read stalls the queue once per evaluation.
LOOKUP_ON_DEVICE: bool | None = None


def evaluate_all(grid: TimeGrid, values, t: float | torch.Tensor) -> list[torch.Tensor]:
    """θ(t) of each stacked tensor in ``values`` (see :func:`evaluate`), the piece of t looked
    up once for all of them: a layer evaluates all its parameters at every call."""
    if isinstance(t, torch.Tensor):
        on_device = LOOKUP_ON_DEVICE if LOOKUP_ON_DEVICE is not None else t.device.type != "cpu"
        if on_device:
            return _evaluate_at_tensor(grid, values, t)
    i, k, s = grid.coefficients(t)
    if isinstance(t, torch.Tensor) and i != k and t.requires_grad:
        w = (t / grid.spacing - i).clamp(0.0, 1.0)
        return [v[i] + w.to(v.dtype) * (v[k] - v[i]) for v in values]
    if s == 0.0:
        return [v[i] for v in values]
    if s == 1.0:
        return [v[k] for v in values]
    return [torch.lerp(v[i], v[k], s) for v in values]


def _evaluate_at_tensor(grid: TimeGrid, values, t: torch.Tensor) -> list[torch.Tensor]:
    """:func:`evaluate_all` at a tensor time without reading it on the host: the piece is found
    and gathered on the weights' device. Adaptive solvers pass t as a tensor at every evaluation,
    and a host read there stalls a GPU's queue once per evaluation. The arithmetic is that of
    :meth:`TimeGrid.coefficients` (in float64, as its Python floats), so both give the same θ.
    A piecewise-linear θ stays differentiable in t (:func:`evaluate`)."""
    if grid.interpolation == "constant" and grid.n_pieces == 1:  # θ does not depend on t
        return [v[0] for v in values]
    dev = values[0].device
    u = t.reshape(()).to(device=dev, dtype=torch.float64) / grid.spacing
    if grid.interpolation == "constant":
        j = u.floor().clamp(0, grid.n_pieces - 1).long().reshape(1)
        return [v.index_select(0, j).squeeze(0) for v in values]
    u = u.clamp(0.0, float(grid.n_pieces))
    j = u.detach().floor().clamp(max=grid.n_pieces - 1)
    w = u - j
    ends = torch.stack([j, j + 1]).long()
    out = []
    for v in values:
        left, right = v.index_select(0, ends).unbind(0)
        out.append(torch.lerp(left, right, w.to(v.dtype)))
    return out
