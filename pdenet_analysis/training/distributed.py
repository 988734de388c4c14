"""Data-parallel training on PyTorch's DistributedDataParallel (launched by ``torchrun``).

    torchrun --nproc_per_node 2 -m pdenet_analysis train --dataset digits --model digits-hamiltonian --out runs/ddp

Every rank loads the data set, draws the same validation split and the same batch order from the
shared seed, and keeps the training images on its device. A global batch of B images (the
single-process batch) is augmented identically on every rank, and rank r trains on its images
r, r + W, r + 2W, … of it (W ranks). Then:

* the loss of rank r is W/B times the sum of its cross-entropies, so DDP's gradient average is
  the gradient of the global batch's mean loss;
* batch normalisation uses the statistics of the whole global batch
  (:class:`GlobalBatchNorm2d`: sums and sums of squares all-reduced with a differentiable
  all-reduce, so its backward pass is that of one process on the whole batch; it works with gloo
  on CPU, where ``nn.SyncBatchNorm`` does not);
* the running training loss and accuracy are all-reduced at each host read, so that every rank
  sees the same numbers and all stop together on a non-finite loss;
* rank 0 alone writes checkpoints (atomically) and metrics; ``--resume`` loads them on every rank.

The result: the same global batches give the same weights as one process, to float round-off
(tests/test_distributed.py). The reversible gradient's custom backward returns the parameter
gradients as ordinary autograd outputs, so DDP's hooks reduce them like any other.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn


def world() -> tuple[int, int]:
    """(rank, world size): (0, 1) outside a distributed run."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def setup(device: str) -> tuple[int, int, str]:
    """Join the process group ``torchrun`` describes (env WORLD_SIZE > 1), once; return
    (rank, world size, this rank's device). gloo on CPU, nccl on CUDA."""
    n = int(os.environ.get("WORLD_SIZE", "1"))
    if n > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    rank, size = world()
    if size > 1 and device.startswith("cuda"):
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    return rank, size, device


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks, differentiable: the gradient of a sum over ranks is the sum over ranks of
    the gradients (each rank's loss depends on every rank's contribution)."""

    @staticmethod
    def forward(ctx, t):
        t = t.clone()
        dist.all_reduce(t)
        return t

    @staticmethod
    def backward(ctx, g):
        g = g.clone()
        dist.all_reduce(g)
        return g


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the batch on all ranks together."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rank, size = world()
        if not (self.training and size > 1):
            return super().forward(x)
        c = x.shape[1]
        xf = x.float() if x.dtype in (torch.bfloat16, torch.float16) else x
        local = torch.cat([xf.sum((0, 2, 3)), xf.square().sum((0, 2, 3)),
                           torch.full((1,), xf.numel() // c, dtype=xf.dtype, device=xf.device)])
        tot = _AllReduceSum.apply(local)  # the backward pass all-reduces the gradients too
        n = tot[2 * c]
        mean = tot[:c] / n
        var = (tot[c:2 * c] / n - mean.square()).clamp_min(0.0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), m)
                unbiased = var.detach() * n / (n - 1).clamp_min(1.0)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), m)
        shape = (1, c, 1, 1)
        y = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def use_global_batchnorm(model: nn.Module) -> nn.Module:
    """Replace every BatchNorm2d of ``model`` by :class:`GlobalBatchNorm2d` in place (same
    parameters and buffers, so checkpoints are interchangeable with single-process runs)."""
    for name, child in list(model.named_children()):
        if type(child) is nn.BatchNorm2d:
            like = next(iter(child.parameters()), child.running_mean)  # float64 stays float64
            new = GlobalBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats,
                                    **({} if like is None else dict(device=like.device, dtype=like.dtype)))
            new.load_state_dict(child.state_dict())
            setattr(model, name, new)
        else:
            use_global_batchnorm(child)
    return model


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum over ranks (identity in a single process)."""
    if world()[1] > 1:
        t = t.clone()
        dist.all_reduce(t)
    return t


def is_main() -> bool:
    return world()[0] == 0
