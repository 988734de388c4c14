"""Host reads of tensor values: the synchronisations that stall a GPU's queue, counted on any device.

``with HostReads() as reads: f()`` counts, inside the block, the calls of
``aten::_local_scalar_dense`` (every ``.item()``, ``float(t)``, ``int(t)`` and ``bool(t)`` of a
tensor, an ``if`` on a tensor too) and every ``.tolist()`` and ``.numpy()`` of a tensor (one read
each, of the whole tensor: on a GPU they copy it to the host and wait for it; on the CPU they
dispatch no operation, so a dispatch mode alone would not see them). On a GPU each read waits until
every queued kernel has run, so a loop that reads once per step or per evaluation runs at the
speed of its launches instead of its kernels. The count is the same on the CPU, where the wait
costs nothing, so a change that adds a read per step shows in a CPU test (tests/test_layers.py,
tests/test_torchode_backend.py) and in ``benchmarks/bench_adaptive.py`` before any GPU time is
spent. Code that means to read nothing keeps host-side values (times, step ends) as Python
numbers, never as CPU tensors, so that this count is what a GPU run would wait for.
"""

from __future__ import annotations

import contextlib

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode


#: the tensor methods that bring a whole tensor's values to Python
WHOLE_TENSOR_READS = (torch.Tensor.tolist, torch.Tensor.numpy)


class _ScalarReads(TorchDispatchMode):
    def __init__(self, meter):
        super().__init__()
        self.meter = meter

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            self.meter.count += 1
        return func(*args, **(kwargs or {}))


class _WholeTensorReads(TorchFunctionMode):
    def __init__(self, meter):
        super().__init__()
        self.meter = meter

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in WHOLE_TENSOR_READS:
            self.meter.count += 1
        return func(*args, **(kwargs or {}))


class HostReads:
    """Counts the reads of tensor values on the host inside the ``with`` block (``count``): scalar
    reads and whole-tensor reads (:data:`WHOLE_TENSOR_READS`), one each."""

    def __init__(self):
        self.count = 0
        self._modes = contextlib.ExitStack()

    def __enter__(self):
        self._modes.enter_context(_WholeTensorReads(self))
        self._modes.enter_context(_ScalarReads(self))
        return self

    def __exit__(self, *exc):
        return self._modes.__exit__(*exc)
