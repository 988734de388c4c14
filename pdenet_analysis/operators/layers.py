"""Time-dependent layers: the paper's F_sym (eq. 7) and ResNet layer (eq. 1) with θ(t) on a grid.

Each layer stores its parameters stacked along a leading time dimension of length
``grid.n_nodes``; ``layer(t, y)`` evaluates θ(t) (see :mod:`.timegrid`) and applies the layer.
Stacked storage makes the time-regulariser (differences along dim 0), refinement in time and the
box constraint one tensor operation each.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..errors import ShapeError
from . import functional as F
from .timegrid import TimeGrid, evaluate_all


def truncated_normal_kernel(shape: tuple[int, ...], generator: torch.Generator | None = None) -> torch.Tensor:
    """The authors' kernel initialisation (Meganet ``convKernel.initTheta``; spec §5.2).

    sd = sqrt(2/n), n the number of entries of one kernel (k·k·c_in·c_out); entries are
    N(0, sd²) truncated to [−2sd, 2sd] by clipping, so PDE blocks start close to the identity.
    """
    n = 1
    for d in shape[-4:]:
        n *= d
    sd = (2.0 / n) ** 0.5
    w = torch.randn(shape, generator=generator) * sd
    return w.clamp_(-2 * sd, 2 * sd)


class TimeDependentLayer(nn.Module):
    """Base class: parameters stacked over the nodes of a :class:`TimeGrid`."""

    grid: TimeGrid
    #: names of stacked parameters that are convolution kernels (box constraint, weight decay)
    kernel_names: tuple[str, ...] = ()

    def __init__(
        self,
        channels: int,
        grid: TimeGrid,
        activation: str = "relu",
        normalise: bool = True,
        eps: float = 1e-3,
        kernel_size: int = 3,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if int(channels) != channels or channels < 1:
            raise ShapeError(f"channels must be a positive integer, got {channels!r}")
        self.channels = int(channels)
        self.grid = grid
        self.activation = activation
        self.sigma = F.activation(activation)
        self.normalise = normalise
        self.eps = float(eps)
        self._add_kernels(self.kernel_names, kernel_size, generator)

    def _add_kernels(self, names: tuple[str, ...], kernel_size: int, generator) -> None:
        """Stacked c×c kernels (one per node) and, when normalising, the TV scale and shift."""
        c, n, k = self.channels, self.grid.n_nodes, kernel_size
        for name in names:
            setattr(self, name, nn.Parameter(truncated_normal_kernel((n, c, c, k, k), generator)))
        if self.normalise:
            self.scale = nn.Parameter(torch.ones(n, c))
            self.shift = nn.Parameter(torch.zeros(n, c))

    def params_at(self, t) -> dict[str, torch.Tensor]:
        """θ(t): every parameter of the layer at time t, by name. Read from ``_parameters``
        directly (what ``named_parameters(recurse=False)`` yields, at a fraction of its cost: this
        runs at every evaluation of the layer)."""
        named = [(n, p) for n, p in self._parameters.items() if p is not None]
        return dict(zip((n for n, _ in named), evaluate_all(self.grid, [p for _, p in named], t)))

    def check_input(self, y: torch.Tensor) -> None:
        if y.dim() != 4 or y.shape[1] != self.channels:
            raise ShapeError(
                f"{type(self).__name__} expects a state of shape (batch, {self.channels}, height, "
                f"width), got {tuple(y.shape)}"
            )

    def refined(self, factor: int = 2) -> "TimeDependentLayer":
        """A copy on a grid with ``factor``× more pieces describing the same θ(t)."""
        grid = self.grid.refined(factor)  # validates factor, before any value is refined
        new = copy.deepcopy(self)
        with torch.no_grad():
            for name, p in self.named_parameters(recurse=False):
                setattr(new, name, nn.Parameter(self.grid.refine_values(p.detach(), factor)))
        new.grid = grid
        return new

    def kernels(self) -> list[torch.Tensor]:
        return [getattr(self, n) for n in self.kernel_names]

    def factors(self, t):
        """``(hidden, readout)`` with F(θ(t), y) = readout(hidden(y)), ``readout`` linear: the
        layer through its hidden units σ(N(K₁y)). Where σ' vanishes (a ReLU switched off) a hidden
        unit's row of ∂hidden/∂y is exactly zero, so ∂F/∂y factors through the active units only
        (used by :func:`~pdenet_analysis.analysis.stepmap.active_unit_form`). None for a layer
        without this form."""
        return None

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, T={self.grid.T}, pieces={self.grid.n_pieces}, "
            f"interpolation={self.grid.interpolation!r}, activation={self.activation!r}, "
            f"normalise={self.normalise}"
        )


class SymmetricLayer(TimeDependentLayer):
    """F_sym(θ(t), Y) = −K(t)ᵀ σ(N_tv(K(t) Y))  (paper eq. 7 with eq. 9).

    For nondecreasing σ and N = id its Jacobian −Kᵀ diag(σ'(KY)) K is symmetric negative
    semi-definite, so Y' = F_sym is stable (Theorem 1).
    """

    kernel_names = ("weight",)

    def forward(self, t, y: torch.Tensor, negate: bool = False) -> torch.Tensor:
        """F_sym(θ(t), y), or −F_sym with ``negate`` (at no extra cost, see
        :func:`~pdenet_analysis.operators.functional.symmetric_layer`)."""
        p = self.params_at(t)
        return F.symmetric_layer(y, p["weight"], p.get("scale"), p.get("shift"), self.sigma, self.eps, self.normalise,
                                 negate)

    def factors(self, t):
        """hidden(y) = σ(N(Ky)), readout(a) = −Kᵀa."""
        p = self.params_at(t)
        return (lambda y: F.hidden_units(y, p["weight"], p.get("scale"), p.get("shift"), self.sigma, self.eps, self.normalise),
                lambda a: -F.conv_adjoint(a, p["weight"]))


class ResNetLayer(TimeDependentLayer):
    """F(θ(t), Y) = K₂(t) σ(N_tv(K₁(t) Y))  (paper eq. 1), the standard residual layer."""

    kernel_names = ("weight1", "weight2")

    def forward(self, t, y: torch.Tensor) -> torch.Tensor:
        p = self.params_at(t)
        return F.resnet_layer(
            y, p["weight1"], p["weight2"], p.get("scale"), p.get("shift"), self.sigma, self.eps, self.normalise
        )

    def factors(self, t):
        """hidden(y) = σ(N(K₁y)), readout(a) = K₂a."""
        p = self.params_at(t)
        return (lambda y: F.hidden_units(y, p["weight1"], p.get("scale"), p.get("shift"), self.sigma, self.eps, self.normalise),
                lambda a: F.conv(a, p["weight2"]))
