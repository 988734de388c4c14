"""Host reads of tensor values: the synchronisations that stall a GPU's queue, counted on any device.

``with HostReads() as reads: f()`` counts the calls of ``aten::_local_scalar_dense`` inside the
block: every ``.item()``, ``float(t)``, ``int(t)`` and ``bool(t)`` of a tensor (an ``if`` on a
tensor too). On a GPU each one waits until every queued kernel has run, so a loop that reads once
per step or per evaluation runs at the speed of its launches instead of its kernels. The count
is the same on the CPU, where the wait costs nothing, so a change that adds a read per step shows
in a CPU test (tests/test_layers.py, tests/test_torchode_backend.py) and in
``benchmarks/bench_adaptive.py`` before any GPU time is spent.
"""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode


class HostReads(TorchDispatchMode):
    """Counts the reads of a tensor's value on the host inside the ``with`` block (``count``)."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            self.count += 1
        return func(*args, **(kwargs or {}))
