"""The paper's PDE-CNNs and their presets."""

from .blocks import DEFAULT_SCHEMES, PDEBlock
from .pdecnn import ARCHITECTURES, PDECNN, Unit, from_config
from .presets import DATASET_SHAPES, PRESETS, available_presets, build_preset

__all__ = ["DEFAULT_SCHEMES", "PDEBlock", "ARCHITECTURES", "PDECNN", "Unit", "from_config",
           "DATASET_SHAPES", "PRESETS", "available_presets", "build_preset"]
