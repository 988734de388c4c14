"""Provenance recorded beside every benchmark, study point and report: command, date, device,
versions and the git commit of the code that ran."""

from __future__ import annotations

import datetime
import functools
import os
import platform
import subprocess
import sys

import torch


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """Short hash of the checkout this package runs from ("" outside a git checkout); looked up
    once per process. ``PDENET_COMMIT`` overrides it, for a copy of the tree without its ``.git``
    (the GPU campaign's machine receives such a copy)."""
    if os.environ.get("PDENET_COMMIT"):
        return os.environ["PDENET_COMMIT"]
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=here, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def device_name(device: str | torch.device | None = None) -> str:
    """The GPU's name, or the CPU with its core and thread counts."""
    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads)"


def provenance(command: str | None = None, device=None) -> dict:
    import torchdiffeq

    return dict(
        command=command or " ".join([os.path.basename(sys.executable)] + sys.argv),
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        device=device_name(device), python=platform.python_version(), torch=torch.__version__,
        torchdiffeq=torchdiffeq.__version__, commit=git_commit(),
    )
