"""Training by the paper's protocol, with checkpoints."""

from .checkpoint import load_checkpoint, load_model, save_checkpoint
from .regulariser import apply_box_constraint, regulariser, regulariser_per_parameter
from .trainer import TrainConfig, evaluate, train

__all__ = ["load_checkpoint", "load_model", "save_checkpoint", "TrainConfig", "apply_box_constraint", "evaluate", "regulariser",
           "regulariser_per_parameter", "train"]
