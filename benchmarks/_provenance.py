"""Provenance recorded beside every benchmark and study result."""

import json
import os
import statistics
import time

import torch

from pdenet_analysis.provenance import provenance  # noqa: F401  (re-exported for the scripts)


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


def timed(fn, device):
    """(fn(), its wall-clock seconds), the device synchronised before and after."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - t0


RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def result_path(name: str) -> str:
    """``benchmarks/results/<name>``, wherever the script is run from."""
    return os.path.join(RESULTS, name)


def save(path: str, payload: dict) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(payload, f, indent=2)
    print(f"wrote {path}")
