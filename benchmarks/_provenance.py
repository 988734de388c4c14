"""Provenance recorded beside every benchmark and study result."""

import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import torch


def interleaved_medians(fns, repeats: int, device, warmup: int = 3) -> list[float]:
    """Median seconds of each function; runs interleaved so that machine drift hits all alike."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    ts = [[] for _ in fns]
    for _ in range(repeats):
        for fn, acc in zip(fns, ts):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            acc.append(time.perf_counter() - t0)
    return [statistics.median(a) for a in ts]


def provenance(command: str | None = None) -> dict:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    dev = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads)"
    import torchdiffeq

    return dict(
        command=command or " ".join([os.path.basename(sys.executable)] + sys.argv),
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        device=dev, python=platform.python_version(), torch=torch.__version__,
        torchdiffeq=torchdiffeq.__version__, commit=commit,
    )


RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def result_path(name: str) -> str:
    """``benchmarks/results/<name>``, wherever the script is run from."""
    return os.path.join(RESULTS, name)


def save(path: str, payload: dict) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(payload, f, indent=2)
    print(f"wrote {path}")
