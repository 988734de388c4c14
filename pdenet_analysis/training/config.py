"""The settings of a training run by the paper's protocol (:class:`TrainConfig`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 125
    lr: float = 0.1
    lr_milestones: tuple = (0.6, 0.8)
    lr_factor: float = 0.2
    momentum: float = 0.9
    alpha_tv: float = 2e-4
    alpha_decay: float = 2e-4
    tau: float = 1e-3
    box: float = 1.0
    val_fraction: float = 0.2
    augment: bool = True
    flip: bool = True
    seed: int = 0
    device: str = "cpu"
    #: bfloat16 autocast of forward and loss (parameters and optimiser stay float32)
    amp: bool = False
    #: channels-last memory layout for the convolutions (often faster on tensor-core GPUs)
    channels_last: bool = False
    out: str | None = None
    #: the data set's name, stored in the checkpoint so that ``resume`` can refuse another one
    dataset: str | None = None
    resume: bool = False
    progress: bool = True
    #: batches between host reads of the running loss (and its finiteness check). None: every batch
    #: on CPU (costs nothing there), every 50 batches on CUDA, where each read stalls the GPU queue
    sync_every: int | None = None
    #: torch.compile the network for the fixed-step schemes (the step loop is compile-clean)
    compile: bool = False
    #: record the whole training step as a CUDA graph and replay it (fixed-step schemes, one CUDA
    #: process); the first ``graph_warmup`` batches run as ordinary steps
    cuda_graph: bool = False
    graph_warmup: int = 3
    #: reproducible CUDA runs: deterministic kernels (``torch.use_deterministic_algorithms``, cuDNN
    #: without autotuning), slower. Without it two CUDA runs of one seed differ in round-off from
    #: the first batch on (atomic adds, autotuned convolution algorithms), and SGD amplifies that to
    #: a visible difference in the loss within a few epochs (docs/benchmarks.md); CPU runs are
    #: reproducible either way
    deterministic: bool = False

    def lr_at(self, epoch: int) -> float:
        k = sum(epoch >= int(round(m * self.epochs)) for m in self.lr_milestones)
        return self.lr * self.lr_factor**k

    def sync_interval(self, device: torch.device) -> int:
        """Batches between host reads of the running loss on ``device`` (:attr:`sync_every`)."""
        return self.sync_every or (50 if device.type == "cuda" else 1)

    def checks_each_batch(self, device: torch.device, n_ranks: int = 1) -> bool:
        """Whether the loss is read and checked before every update. Then the blocks keep their
        own NaN checks (one host read per block); otherwise they are switched off for training and
        the running loss, read every :meth:`sync_interval` batches, is the one check."""
        return self.sync_interval(device) == 1 and n_ranks == 1 and not self.cuda_graph
