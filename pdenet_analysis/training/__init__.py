"""Training by the paper's protocol, with checkpoints."""

from .checkpoint import load_checkpoint, load_model, save_checkpoint
from .regulariser import apply_box_constraint, regulariser, regulariser_per_parameter
from .evaluation import Integration, default_grid, evaluate, evaluate_grid
from .config import TrainConfig
from .trainer import train

__all__ = ["load_checkpoint", "load_model", "save_checkpoint", "TrainConfig", "apply_box_constraint", "evaluate",
           "evaluate_grid", "Integration", "default_grid", "regulariser", "regulariser_per_parameter", "train"]
