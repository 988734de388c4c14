"""A whole training step — forward, loss, regulariser, backward, SGD, box constraint — recorded
once as a CUDA graph and replayed for every later batch.

The paper's networks are small (CIFAR-10: 16–64 channels, a few steps per block), so on a GPU
one step is hundreds of short kernels and the time goes to launching them from Python, not to
computing: measured on an H200 (``benchmarks/results/training_h200.json``), bf16 autocast made
a step *slower* and ``torch.compile`` only matched the plain loop. A CUDA graph replays every
kernel of the step with one launch (the technique of PyTorch's "whole-network capture",
``torch.cuda.graphs``).

What a captured step needs, and how the trainer provides it:

* fixed shapes and fixed addresses: the batch is copied into static input tensors before each
  replay; every batch of an epoch has the same size (the trainer drops the remainder);
* no host synchronisation inside the step: the blocks' per-step finiteness checks are off and
  the loss is read at the trainer's sync points only;
* a fixed step count: adaptive schemes are refused;
* constants stay constant: the learning rate is baked into the recorded SGD kernels, so the
  trainer records the step again when the schedule changes it;
* warm-up before recording (lazy initialisation, cuDNN's algorithm search, the momentum buffers
  created at the first ``opt.step``): :func:`warm_step` runs ordinary steps on a side stream.

The gradients are set to ``None`` at the start of the step, so the recorded backward pass writes
them (into the graph's memory pool) rather than accumulating into stale ones.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..errors import InvalidArgumentError

Step = Callable[[torch.Tensor, torch.Tensor], tuple]


def require_capturable(model, device: torch.device, n_ranks: int = 1) -> None:
    """Refuse a set-up a CUDA graph cannot replay correctly, naming the fix."""
    if any(b.scheme.adaptive for b in model.blocks):
        raise InvalidArgumentError("cuda_graph=True needs fixed-step schemes: an adaptive scheme's step count depends "
                                   "on the data, and a recorded graph replays one fixed sequence of kernels")
    if device.type != "cuda":
        raise InvalidArgumentError(f"cuda_graph=True records the step as a CUDA graph and needs a CUDA device, "
                                   f"not {device}; use --device cuda, or leave out --cuda-graph")
    if n_ranks > 1:
        raise InvalidArgumentError("cuda_graph=True runs in one process; under torchrun leave out --cuda-graph "
                                   "(DistributedDataParallel's all-reduce is not recorded into the graph)")


def warm_step(step: Step, x: torch.Tensor, y: torch.Tensor) -> tuple:
    """One ordinary step on a side stream (the warm-up a later capture needs); its outputs."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        out = step(x, y)
    torch.cuda.current_stream().wait_stream(side)
    return out


class CapturedStep:
    """``step(x, y)`` recorded as a CUDA graph on static copies of ``x`` and ``y``.

    Recording runs nothing; calling the object copies the batch into the static inputs, replays
    the graph (so performs the step) and returns the step's outputs — the same tensors every
    time, overwritten by each replay: read or copy them before the next call. ``key`` is what
    the recorded constants were (the trainer's learning rate), to tell when to record again.
    """

    def __init__(self, step: Step, x: torch.Tensor, y: torch.Tensor, key=None):
        self.x = x.detach().clone(memory_format=torch.preserve_format)
        self.y = y.detach().clone()
        self.key = key
        self.graph = torch.cuda.CUDAGraph()
        torch.cuda.synchronize()
        with torch.cuda.graph(self.graph):
            self.out = step(self.x, self.y)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple:
        if x.shape != self.x.shape or y.shape != self.y.shape:
            raise InvalidArgumentError(f"a recorded step replays one batch shape {tuple(self.x.shape)}, got "
                                       f"{tuple(x.shape)}; record it again for another shape")
        self.x.copy_(x)
        self.y.copy_(y)
        self.graph.replay()
        return self.out
