"""The process's kernel choices for reproducible runs: deterministic algorithms and cuDNN's
autotuning, set for a run and restored afterwards."""

from __future__ import annotations

import contextlib
import os

import torch


def kernel_settings() -> tuple[bool, bool, bool, bool]:
    """The process's kernel choices that :func:`deterministic_kernels` sets: deterministic
    algorithms, their warn-only mode, cuDNN's deterministic flag and its autotuning."""
    return (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)


def set_kernel_settings(settings: tuple[bool, bool, bool, bool]) -> None:
    """Set what :func:`kernel_settings` returns."""
    torch.use_deterministic_algorithms(settings[0], warn_only=settings[1])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = settings[2], settings[3]


@contextlib.contextmanager
def deterministic_kernels(on: bool):
    """Within: deterministic kernels where ``on`` (a kernel that has none warns), cuDNN autotuning
    where not; the process's settings are restored on leaving."""
    before = kernel_settings()
    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS's condition for determinism
        torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = on, not on
    try:
        yield
    finally:
        set_kernel_settings(before)
