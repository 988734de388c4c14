"""Data: readers for real data sets, the paper's preprocessing and augmentation."""

from .datasets import DATASETS, load_dataset
from .split import Split
from .transforms import augment, random_crop, random_flip, standardize

__all__ = ["DATASETS", "Split", "load_dataset", "augment", "random_crop", "random_flip", "standardize"]
