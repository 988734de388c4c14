"""Training by the paper's protocol, with checkpoints."""

from .checkpoint import load_checkpoint, load_model, save_checkpoint
from .trainer import TrainConfig, apply_box_constraint, evaluate, regulariser, train

__all__ = ["load_checkpoint", "load_model", "save_checkpoint", "TrainConfig", "apply_box_constraint", "evaluate", "regulariser", "train"]
