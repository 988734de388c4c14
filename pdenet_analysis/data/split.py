"""What every data reader returns: a train/test split of images and labels."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Split:
    """Images (N, C, H, W) as floats in [0, 1] and int64 labels, for training and for testing."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    name: str
    n_classes: int = 10
