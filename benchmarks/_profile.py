"""Where one call's time goes: the profiler's breakdown, recorded beside a benchmark's timings.

On a GPU a ratio of wall times does not say whether a method is slower because it runs more or
longer kernels or because the host issues work more slowly than the device executes it (launch or
Python overhead, host synchronisation). :func:`breakdown` answers that for one call: the kernels'
summed device time against the wall time (a busy fraction near 1 means device-bound), the number
of kernels and of operations dispatched, the host synchronisations, and the most expensive
operations.
"""

import time

import torch
from torch.profiler import ProfilerActivity, profile

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
