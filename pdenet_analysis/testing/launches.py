"""Kernel launches, counted on any device: what a GPU loop over small tensors is bound by.

``with Launches() as n: f()`` counts the operations dispatched inside the block that would start
a kernel on a GPU: every operation except views (``view``, ``select``, ``expand``, ``detach``,
... — a new header on the same memory), allocations without contents (``empty``) and reads of a
value on the host (counted by :class:`~.host_reads.HostReads`). On a GPU each launch costs the
host a few microseconds whatever the tensor's size, so where the arithmetic is small (the paper's
networks at batch sizes that fit a GPU's cache, an adaptive solve's bookkeeping) a loop runs at
the speed of its launches. The count is the same on the CPU, so a change that adds launches to
an evaluation shows in a CPU test (tests/test_torchode_backend.py) and in
``benchmarks/bench_adaptive.py`` before any GPU time is spent. It is a count, not a time: the
launches of a large convolution and of a scalar addition count one each.
"""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode

_NO_KERNEL = frozenset({
    torch.ops.aten.empty.memory_format, torch.ops.aten.empty_strided.default, torch.ops.aten.empty_like.default,
    torch.ops.aten._unsafe_view.default, torch.ops.aten._local_scalar_dense.default,
})


class Launches(TorchDispatchMode):
    """Counts the operations inside the ``with`` block that launch a kernel on a GPU (``count``;
    ``by_op``: the count per operation name)."""

    def __init__(self):
        super().__init__()
        self.count = 0
        self.by_op: dict[str, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not func.is_view and func not in _NO_KERNEL:
            self.count += 1
            name = func.overloadpacket.__name__
            self.by_op[name] = self.by_op.get(name, 0) + 1
        return func(*args, **(kwargs or {}))
