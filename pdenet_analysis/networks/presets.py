"""Network presets: the paper's Table 1 and small-input variants.

Names are ``"<dataset>-<architecture>"``, e.g. ``"cifar10-hamiltonian"``. The Table 1 widths are
the authors' (spec §4.2) with 3 time steps of size 1 per unit; their trainable-weight counts are
those of the paper's Table 1 exactly (tests/test_networks.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UnknownNameError
from .pdecnn import ARCHITECTURES, PDECNN


@dataclass(frozen=True)
class DatasetShape:
    in_channels: int
    image_size: int
    n_classes: int
    widths: tuple[int, ...]


DATASET_SHAPES = {
    "stl10": DatasetShape(3, 96, 10, (16, 32, 64, 128, 128)),
    "cifar10": DatasetShape(3, 32, 10, (32, 64, 112, 112)),
    "cifar100": DatasetShape(3, 32, 100, (32, 64, 128, 256)),
    "fashion_mnist": DatasetShape(1, 28, 10, (16, 32, 64, 64)),
    "mnist": DatasetShape(1, 28, 10, (16, 32, 64, 64)),
    "digits": DatasetShape(1, 8, 10, (16, 32, 32)),
}

PRESETS = {f"{d}-{a}": (d, a) for d in DATASET_SHAPES for a in ARCHITECTURES}


def available_presets() -> list[str]:
    return sorted(PRESETS)


def build_preset(name: str, **overrides) -> PDECNN:
    """The network called ``name`` (see :data:`PRESETS`); keyword arguments override its config."""
    if name not in PRESETS:
        raise UnknownNameError("preset", name, PRESETS)
    dataset, arch = PRESETS[name]
    shape = DATASET_SHAPES[dataset]
    kw = dict(architecture=arch, widths=list(shape.widths), in_channels=shape.in_channels,
              n_classes=shape.n_classes, T=3.0, n_steps=3)
    kw.update(overrides)
    model = PDECNN(**kw)
    model.config["preset"] = name
    return model
