"""What the benchmark scripts share: timings, where results go, and the profiler's breakdown.

* :func:`interleaved_medians` times several functions in turn, repeat after repeat, and returns
  each one's median: a drift of the machine (another job, the clock, the thermals) then hits all
  of them alike, so their ratio, which is what a benchmark reports, stays fair.
* :func:`result_path` names a result ``benchmarks/results/<benchmark>[-<variant>]_<machine>.json``:
  one file per benchmark (and variant, such as ``training-graph``) and machine, where the machine
  is ``cpu`` or the GPU's model in lower case (``h100``, ``h200``; :func:`machine_name`). A new run
  replaces the file; its provenance (command, date, device, versions, commit) is inside.
* :func:`breakdown` says where one call's time goes. On a GPU a ratio of wall times does not say
  whether a method is slower because it runs more or longer kernels or because the host issues
  work more slowly than the device executes it (launch or Python overhead, host
  synchronisation): the kernels' summed device time against the wall time (a busy fraction near
  1 means device-bound), the kernels and operations dispatched, the host synchronisations and
  the most expensive operations answer that.
"""

import json
import os
import re
import statistics
import time

import torch
from torch.profiler import ProfilerActivity, profile

from .provenance import provenance

__all__ = ["interleaved_medians", "timed", "machine_name", "result_path", "save", "breakdown", "provenance"]


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


def machine_name(device) -> str:
    """``cpu``, or the CUDA device's model in lower case: "NVIDIA H200" → ``h200``,
    "NVIDIA H100 80GB HBM3" → ``h100``; another GPU's name sanitised to letters and digits."""
    device = torch.device(device)
    if device.type != "cuda":
        return device.type
    name = torch.cuda.get_device_name(device).lower().replace("nvidia", "").strip()
    model = re.search(r"\b([a-z]\d{2,4}[a-z]?)\b", name)  # h100, h200, a100, v100, l4...
    return model.group(1) if model else re.sub(r"[^a-z0-9]+", "-", name).strip("-")


def _results_dir() -> str:
    """The repository's ``benchmarks/results`` (the package's parent folder holds ``benchmarks/``
    in a checkout), else ``benchmarks/results`` under the current folder."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    base = repo if os.path.isdir(os.path.join(repo, "benchmarks")) else os.getcwd()
    return os.path.join(base, "benchmarks", "results")


def result_path(benchmark: str, device="cpu", variant: str | None = None) -> str:
    """``benchmarks/results/<benchmark>[-<variant>]_<machine>.json`` (see the module's docstring)."""
    stem = benchmark + (f"-{variant}" if variant else "")
    return os.path.join(_results_dir(), f"{stem}_{machine_name(device)}.json")


def save(path: str, payload: dict) -> None:
    """Write ``payload`` as indented JSON to ``path`` (its folder made if needed) and say so."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(payload, f, indent=2)
    print(f"wrote {path}")


#: operations that wait for the device from the host
SYNC_OPS = ("aten::_local_scalar_dense", "cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize")


def breakdown(fn, device: torch.device, top: int = 8) -> dict:
    """Profile one call of ``fn`` (warm it up first) on ``device`` ("cpu" or "cuda")."""
    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    if cuda:
        torch.cuda.synchronize()
    with profile(activities=activities) as prof:
        t0 = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        wall = time.perf_counter() - t0
    events = prof.events()
    dispatched = [e for e in events if e.name.startswith("aten::") and _is_top_level(e)]
    out = dict(wall_s=wall, ops_dispatched=len(dispatched),
               host_syncs=sum(1 for e in events if e.name in SYNC_OPS))
    averages = prof.key_averages()
    if cuda:
        kernels = [e for e in events if e.device_type == torch.autograd.DeviceType.CUDA]
        busy = sum(e.device_time_total for e in kernels) / 1e6 if kernels else 0.0
        out.update(kernels=len(kernels), kernel_s=busy, device_busy_fraction=busy / wall if wall else None)
        key = "self_device_time_total"
    else:
        key = "self_cpu_time_total"
    ranked = sorted(averages, key=lambda e: -getattr(e, key, 0.0))[:top]
    out["top"] = [dict(op=e.key, count=e.count, self_s=getattr(e, key, 0.0) / 1e6) for e in ranked]
    return out


def _is_top_level(event) -> bool:
    """Dispatched from Python or from autograd's engine, not from inside another aten operation."""
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith("aten::"):
            return False
        parent = parent.cpu_parent
    return True
