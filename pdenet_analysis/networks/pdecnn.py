"""The paper's PDE-CNN (Ruthotto & Haber §5; layout of the authors' ``cnnDriver.m``, spec §4).

    opening:  3×3 conv (c_in → nf₀, no bias) → batch norm → ReLU
    unit k:   PDE block at width nf_k  →  1×1 conv (nf_k → nf_{k+1}, no bias) → batch norm → ReLU
              → 2×2 average pooling (k < U) or global average pooling (k = U)
    classifier: linear nf_U → n_classes with bias

``widths`` is the authors' vector nf = [nf₀, ..., nf_U]: U = len(widths) − 1 units.

The network owns its preprocessing (``preprocessing``, kept in ``config`` and so in every
checkpoint): "standardize", the paper's per-image standardisation (the authors'
``normalizeData.m``, spec §5.2), by default; "none" for inputs prepared elsewhere. ``net(x)`` takes
raw images and applies it; ``net(x, preprocessed=True)`` takes images it has already been applied
to (the trainer augments standardised images, as the paper's protocol does, then passes them so).
Architectures: ``parabolic`` (F_sym, forward Euler), ``hamiltonian`` (channel split, symplectic
Euler of eq. 10), ``second_order`` (F_sym, leapfrog), ``resnet`` (eq. 1 layer, forward Euler).
Initialisation follows the authors' code (spec §5.2): truncated-normal kernels with
sd = sqrt(2/(k·k·c_in·c_out)), classifier 0.1·N(0,1) clipped to ±0.2, normalisation scale 1, shift 0.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..errors import InvalidArgumentError, ShapeError, TensorTypeError, UnknownNameError
from ..operators import OPERATOR_FACTORIES, truncated_normal_kernel
from .blocks import PDEBlock

ARCHITECTURES = tuple(OPERATOR_FACTORIES)


PREPROCESSING = ("standardize", "none")


class Standardize(nn.Module):
    """Per-image standardisation (:func:`~pdenet_analysis.data.transforms.standardize`): each image
    minus its mean, over max(std, 1/√numel), across all its pixels and channels."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from ..data.transforms import standardize

        return standardize(x)


def _preprocessor(name: str) -> nn.Module:
    if name not in PREPROCESSING:
        raise UnknownNameError("preprocessing", name, PREPROCESSING)
    return Standardize() if name == "standardize" else nn.Identity()


def _conv_bn_relu(c_in: int, c_out: int, k: int, bn_eps: float) -> nn.Sequential:
    conv = nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False)
    with torch.no_grad():
        conv.weight.copy_(truncated_normal_kernel(tuple(conv.weight.shape)))
    return nn.Sequential(conv, nn.BatchNorm2d(c_out, eps=bn_eps, momentum=0.1), nn.ReLU())


class Unit(nn.Module):
    """PDE block → connector → pooling."""

    def __init__(self, block: PDEBlock, connector: nn.Module, pool: nn.Module):
        super().__init__()
        self.block, self.connector, self.pool = block, connector, pool

    def forward(self, x):
        return self.pool(self.connector(self.block(x)))


class PDECNN(nn.Module):
    """The PDE-CNN of the paper; ``config`` rebuilds it (see :func:`from_config`)."""

    def __init__(
        self,
        architecture: str,
        widths: list[int],
        in_channels: int = 3,
        n_classes: int = 10,
        T: float = 3.0,
        n_steps: int = 3,
        scheme: str | None = None,
        interpolation: str = "constant",
        activation: str = "relu",
        normalise: bool = True,
        eps: float = 1e-3,
        bn_eps: float = 1e-4,
        gradient: str = "backprop",
        scheme_kwargs: dict | None = None,
        preprocessing: str = "standardize",
    ):
        super().__init__()
        if architecture not in OPERATOR_FACTORIES:
            raise UnknownNameError("architecture", architecture, OPERATOR_FACTORIES)
        if len(widths) < 2:
            raise InvalidArgumentError(f"widths needs at least two entries [nf0, nf1], got {widths!r}")
        scheme_name, scheme_options = _scheme_entry(scheme, scheme_kwargs or {})
        self.config = dict(
            architecture=architecture, widths=list(widths), in_channels=in_channels, n_classes=n_classes,
            T=T, n_steps=n_steps, scheme=scheme_name, interpolation=interpolation, activation=activation,
            normalise=normalise, eps=eps, bn_eps=bn_eps, gradient=gradient, scheme_kwargs=scheme_options,
            preprocessing=preprocessing,
        )
        self.preprocess = _preprocessor(preprocessing)
        factory = OPERATOR_FACTORIES[architecture]
        self.opening = _conv_bn_relu(in_channels, widths[0], 3, bn_eps)
        units = []
        U = len(widths) - 1
        for k in range(U):
            op = factory(widths[k], T=T, n_pieces=n_steps, interpolation=interpolation,
                         activation=activation, normalise=normalise, eps=eps)
            block = PDEBlock(op, scheme, T=T, n_steps=n_steps, gradient=gradient, **(scheme_kwargs or {}))
            pool = nn.AvgPool2d(2) if k < U - 1 else nn.AdaptiveAvgPool2d(1)
            units.append(Unit(block, _conv_bn_relu(widths[k], widths[k + 1], 1, bn_eps), pool))
        self.units = nn.ModuleList(units)
        self.classifier = nn.Linear(widths[-1], n_classes)
        with torch.no_grad():
            self.classifier.weight.copy_((0.1 * torch.randn_like(self.classifier.weight)).clamp_(-0.2, 0.2))
            self.classifier.bias.copy_((0.1 * torch.randn_like(self.classifier.bias)).clamp_(-0.2, 0.2))

    @property
    def blocks(self) -> list[PDEBlock]:
        return [u.block for u in self.units]

    @property
    def min_image_size(self) -> int:
        """Smallest H and W the network takes: each 2×2 average pooling halves the image, and the
        last unit pools globally, so any size from 2^(units − 1) up works (the presets' native sizes
        are only what the paper trained on)."""
        return 2 ** (len(self.units) - 1)

    def check_input(self, x) -> None:
        """Images of shape (N, in_channels, H, W) in the network's dtype, with H, W ≥
        :attr:`min_image_size`, or a clear error naming what it takes."""
        name = self.config.get("preset") or self.config["architecture"]
        c = self.config["in_channels"]
        if not isinstance(x, torch.Tensor):
            raise TensorTypeError(f"{name} takes a torch.Tensor of images, got {type(x).__name__}")
        if x.dim() != 4 or x.shape[1] != c:
            raise ShapeError(f"{name} takes images shaped (N, {c}, H, W), got {tuple(x.shape)}")
        m = self.min_image_size
        if min(x.shape[2:]) < m:
            raise ShapeError(f"{name} pools {len(self.units) - 1} times by 2, so it takes images of at least "
                             f"{m}×{m} pixels, got {x.shape[2]}×{x.shape[3]}: upsample the images or use a "
                             f"network with fewer units")
        p = next(self.parameters())
        if x.dtype != p.dtype and not torch.is_autocast_enabled(x.device.type):
            raise TensorTypeError(f"{name} has {p.dtype} weights but got {x.dtype} images: convert the images with "
                            f"x.to({p.dtype}) or the network with .to({x.dtype})")

    def features(self, x: torch.Tensor, preprocessed: bool = False) -> torch.Tensor:
        """The feature map (everything before the classifier) of images ``x``: raw, or with the
        network's preprocessing already applied (``preprocessed``)."""
        self.check_input(x)
        if not preprocessed:
            x = self.preprocess(x)
        x = self.opening(x)
        for unit in self.units:
            x = unit(x)
        return x.flatten(1)

    def forward(self, x: torch.Tensor, preprocessed: bool = False) -> torch.Tensor:
        """Logits of images ``x``: raw (the network applies its preprocessing), or already
        preprocessed (``preprocessed=True``)."""
        return self.classifier(self.features(x, preprocessed))

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def evaluations(self) -> float:
        """Operator evaluations of the last forward pass, summed over the blocks."""
        return sum(b.last_stats.n_evals for b in self.blocks if b.last_stats is not None)

    def with_scheme(self, scheme=None, n_steps: int | None = None, gradient=None, **scheme_kwargs) -> "PDECNN":
        """The same network (shared weights) with every PDE block integrated differently."""
        new = copy.copy(self)
        new._modules = dict(self._modules)
        units = []
        for u in self.units:
            nu = copy.copy(u)
            nu._modules = dict(u._modules)
            nu.block = u.block.with_scheme(scheme, n_steps, gradient, **scheme_kwargs)
            units.append(nu)
        new.units = nn.ModuleList(units)
        new.config = dict(self.config)
        if scheme is not None:
            new.config["scheme"], new.config["scheme_kwargs"] = _scheme_entry(scheme, scheme_kwargs)
        if n_steps is not None:
            new.config["integration_steps"] = n_steps
        if gradient is not None:
            new.config["gradient"] = gradient if isinstance(gradient, str) else gradient.name
        return new


def _scheme_entry(scheme, scheme_kwargs: dict) -> tuple:
    """(name, options) that rebuild ``scheme`` from the registry: a Scheme object records its own
    options (``Scheme.options``, e.g. a reversible wrapper's coupling), so that a checkpoint
    reloads the scheme it was trained with, not the registry's default."""
    if scheme is None or isinstance(scheme, str):
        return scheme, dict(scheme_kwargs)
    return scheme.name, {**scheme.options(), **scheme_kwargs}


def from_config(config: dict) -> PDECNN:
    """Rebuild a network (random weights) from ``PDECNN.config``."""
    cfg = dict(config)
    steps = cfg.pop("integration_steps", None)
    preset = cfg.pop("preset", None)
    model = PDECNN(**cfg)
    if preset is not None:
        model.config["preset"] = preset
    if steps is not None:
        model = model.with_scheme(n_steps=steps)
    return model
