"""Training by the paper's protocol (Ruthotto & Haber §4–§5; spec §5).

* SGD, momentum 0.9, mini-batch 125, learning rate 0.1 divided by 5 at 60% and 80% of the epochs
  (the paper's 0.1 → 0.02 → 0.004 schedule).
* Objective: mean cross-entropy + R (eq. 13):
      α₁ ∫ φ_τ(∂ₜθ) dt ≈ α₁ Σ_j h Σ_p sqrt(((θ_{j+1,p} − θ_{j,p})/h)² + τ)   over all PDE-block parameters,
      (α₂/2)(∫‖θ‖² dt + ‖W‖² + ‖μ‖²) ≈ (α₂/2)(h Σ_j ‖K_j‖² + ‖W‖² + ‖μ‖² + ‖opening/connector kernels‖²),
  with the paper's α (CIFAR: α₁ = α₂ = 2·10⁻⁴; STL-10: α₁ = 4·10⁻⁴, α₂ = 10⁻⁴).
* Box constraint: PDE-block convolution kernels clipped to [−1, 1] after every step.
* Split: 80/20 train/validation; the test accuracy is reported for the best-validation weights.
* The network's own preprocessing (per-image standardisation), then flip + pad-crop augmentation
  when ``augment`` (the zero padding after standardisation, as the authors' code); validation
  and test images go to the network raw, as a user's do, so the recorded accuracies are those
  that ``evaluate(load_model(checkpoint), x, y)`` gives on raw images.
* Optional bfloat16 autocast (``amp``) and channels-last layout (``channels_last``) for GPUs,
  ``torch.compile`` (``compile``) and the whole step recorded as a CUDA graph (``cuda_graph``,
  :mod:`.cuda_graph`) for the fixed-step schemes.
* Any scheme, adaptive ones included (continuous-depth training; use piecewise-linear θ so that
  backpropagation through the adaptive solver sees a θ(t) differentiable in t); the operator
  evaluations per forward pass are logged every epoch.
* Per-epoch metrics as JSON lines; an atomic checkpoint after every epoch; ``resume`` continues
  from it; a NaN loss stops with the epoch and a hint, the last good checkpoint kept.
"""

from __future__ import annotations

import copy
import json
import math
import os
import sys
import time
from dataclasses import asdict

import torch

from ..data.transforms import augment as augment_batch
from ..errors import ConfigMismatchError, NonFiniteError
from . import distributed
from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainConfig
from .cuda_graph import require_capturable
from .evaluation import evaluate
from .kernels import deterministic_kernels
from .regulariser import apply_box_constraint
from .steps import Steps, divergence_hint

#: training settings that must match for ``resume``: another seed or validation fraction would redraw
#: the validation split, another batch size or schedule would make a different run
RESUME_MUST_MATCH = ("seed", "val_fraction", "batch_size", "lr", "lr_milestones", "lr_factor", "momentum", "augment")


def _check_resumable(ck: dict, model, cfg: TrainConfig, ck_path: str) -> None:
    """Refuse to resume a checkpoint of another network or another run's settings."""
    if ck.get("model_config") != model.config:
        theirs, ours = ck.get("model_config") or {}, model.config
        diff = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
        raise ConfigMismatchError(f"cannot resume {ck_path}: it holds another network (differs in {', '.join(diff)}: "
                                  f"checkpoint {theirs.get('preset') or theirs.get('architecture')}); use the same --model, "
                                  "or another --out")
    saved = ck.get("train_config") or {}
    diff = [k for k in RESUME_MUST_MATCH if k in saved and _plain(saved[k]) != _plain(getattr(cfg, k))]
    if diff:
        detail = ", ".join(f"{k} {saved[k]!r} → {getattr(cfg, k)!r}" for k in diff)
        raise ConfigMismatchError(f"cannot resume {ck_path} with other settings ({detail}); rerun with the checkpoint's "
                                  "settings, or train into another --out")
    theirs = next((t.dtype for t in (ck.get("model_state") or {}).values() if t.is_floating_point()), None)
    ours = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
    if theirs is not None and ours is not None and theirs != ours:  # loading would cast it silently
        raise ConfigMismatchError(f"cannot resume {ck_path}: its weights are {str(theirs).replace('torch.', '')}, the model's "
                                  f"{str(ours).replace('torch.', '')}; resume with the checkpoint's --dtype")
    if saved.get("dataset") not in (None, cfg.dataset) and cfg.dataset is not None:
        raise ConfigMismatchError(f"cannot resume {ck_path}: it was trained on {saved['dataset']!r}, not {cfg.dataset!r}")


def _silent(*args, **kwargs) -> None:
    pass


def _plain(v):
    return list(v) if isinstance(v, tuple) else v


def train(model, data, cfg: TrainConfig, log=print, on_epoch=None) -> dict:
    """Train ``model`` on ``data`` (a :class:`~pdenet_analysis.data.Split`); returns the summary.

    ``on_epoch(model, row)``, if given, is called after every epoch (before its checkpoint) with
    the epoch's metrics row; what it returns is stored in ``row["extra"]`` (and so in the history
    and the checkpoint), e.g. analyses of the weights along training."""
    with deterministic_kernels(cfg.deterministic):
        return _train(model, data, cfg, log, on_epoch)


class _Run:
    """The state of one training run: data on the device, optimiser, step runner, files, history."""

    def __init__(self, model, data, cfg: TrainConfig, log):
        self.rank, self.n_ranks, device = distributed.setup(cfg.device)
        self.dev = dev = torch.device(device)
        if cfg.cuda_graph:
            require_capturable(model, dev, self.n_ranks)
        self.log = _silent if self.rank != 0 else log  # one voice: rank 0 logs, prints progress and writes files
        self.model, self.cfg = model, cfg
        torch.manual_seed(cfg.seed)
        model.to(dev)
        if self.n_ranks > 1:
            distributed.use_global_batchnorm(model)
        if cfg.channels_last:  # the 4-D convolutions; PDE kernels are stacked in time (5-D) and stay as they are
            for m in model.modules():
                if isinstance(m, torch.nn.Conv2d):
                    m.to(memory_format=torch.channels_last)
        dtype = next(model.parameters()).dtype  # data follow the model's precision
        # the network's own preprocessing, before augmentation (the paper's order); validation and test images stay raw
        x_all, y_all = model.preprocess(data.x_train.to(dev, dtype)), data.y_train.to(dev)
        self.x_test, self.y_test = data.x_test.to(dev, dtype), data.y_test.to(dev)
        perm_host = torch.randperm(len(y_all), generator=torch.Generator().manual_seed(cfg.seed))
        perm = perm_host.to(dev)
        self.n_val = n_val = int(round(cfg.val_fraction * len(y_all)))
        self.x_val, self.y_val = data.x_train[perm_host[:n_val]].to(dev, dtype), y_all[perm[:n_val]]
        self.x_tr, self.y_tr = x_all[perm[n_val:]], y_all[perm[n_val:]]
        self.opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                   **({"fused": True} if dev.type == "cuda" else {}))
        self.gen = torch.Generator().manual_seed(cfg.seed + 1)
        self.ck_path = os.path.join(cfg.out, "checkpoint.pt") if cfg.out else None
        self.metrics_path = os.path.join(cfg.out, "metrics.jsonl") if cfg.out else None
        self.start, self.best, self.best_state, self.history = 0, -1.0, None, []
        self.steps = Steps(model, self.opt, cfg, dev, self.n_ranks, self.ck_path)

    def resume(self) -> None:
        """Continue from the checkpoint in ``cfg.out`` (refused if it holds another run)."""
        cfg, ck_path = self.cfg, self.ck_path
        if cfg.resume and ck_path and os.path.exists(ck_path):
            ck = load_checkpoint(ck_path, map_location=self.dev)
            _check_resumable(ck, self.model, cfg, ck_path)
            self.model.load_state_dict(ck["model_state"])
            self.opt.load_state_dict(ck["optimizer_state"])
            self.start, self.best, self.best_state, self.history = ck["epoch"], ck["best_val"], ck["best_state"], ck["metrics"]
            self.gen.set_state(ck["rng"]["augment"].cpu())  # map_location moved it
            torch.set_rng_state(ck["rng"]["torch"].cpu())
            if self.metrics_path and self.rank == 0:  # the checkpoint's history is authoritative: drop a lost epoch's rows
                with open(self.metrics_path, "w") as f:
                    f.writelines(json.dumps(r) + "\n" for r in self.history)
            self.log(f"resumed from {ck_path} after epoch {self.start}")
        elif cfg.resume:
            self.log(f"nothing to resume: no checkpoint at {ck_path}; training from epoch 1" if ck_path
                     else "nothing to resume: no --out directory was given; training from epoch 1")

    def epoch(self, epoch: int) -> dict:
        """One epoch of SGD steps; its metrics row (before validation)."""
        cfg, dev, n_ranks, rank = self.cfg, self.dev, self.n_ranks, self.rank
        for g in self.opt.param_groups:
            g["lr"] = cfg.lr_at(epoch)
        self.model.train()
        order = torch.randperm(len(self.y_tr), generator=self.gen).to(dev)
        t0, seen, evals = time.perf_counter(), 0, 0.0
        # running sums stay on the device; the host reads them every ``sync_every`` batches
        loss_sum = torch.zeros((), device=dev, dtype=torch.float64)
        correct = torch.zeros((), device=dev, dtype=torch.int64)
        checked = 0  # batches whose losses have been checked to be finite
        n_batches = len(self.y_tr) // cfg.batch_size or 1
        sync_every = cfg.sync_interval(dev)
        for b in range(n_batches):
            idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            xb, yb = self.x_tr[idx], self.y_tr[idx]
            if cfg.augment:
                xb = augment_batch(xb, self.gen, flip=cfg.flip)
            n_global = len(yb)
            if n_ranks > 1:  # this rank's share of the global batch (augmented alike on every rank)
                xb, yb = xb[rank::n_ranks], yb[rank::n_ranks]
            if cfg.channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            loss_b, hits, step_evals = self.steps(xb, yb, n_global, epoch, b)
            seen += n_global
            loss_sum += loss_b.double() * (n_global / n_ranks)  # this rank's sum of losses
            correct += hits
            evals += step_evals
            if (b + 1) % sync_every == 0 or b + 1 == n_batches:
                running = float(distributed.all_reduce_sum(loss_sum))  # the one host read of this stretch
                if not math.isfinite(running):
                    where = f"batch {b + 1}" if b == checked else f"batches {checked + 1}–{b + 1}"
                    raise NonFiniteError(f"the training loss became {running} in epoch {epoch + 1}, {where}: "
                                         f"{divergence_hint(cfg, epoch, self.ck_path)}", step=epoch + 1)
                checked = b + 1
                if cfg.progress and rank == 0 and sys.stderr.isatty():
                    el = time.perf_counter() - t0
                    print(f"\repoch {epoch + 1}/{cfg.epochs} [{b + 1}/{n_batches}] loss {running / seen:.4f} "
                          f"{seen / el:.0f} img/s", end="", file=sys.stderr)
        loss_sum = float(distributed.all_reduce_sum(loss_sum))
        correct = int(distributed.all_reduce_sum(correct))
        dt = time.perf_counter() - t0
        return dict(epoch=epoch + 1, lr=cfg.lr_at(epoch), train_loss=loss_sum / seen, train_accuracy=correct / seen,
                    seconds=dt, images_per_s=seen / dt, operator_evals_per_forward=evals / n_batches, batches=n_batches)

    def validate(self, epoch: int) -> dict:
        """The validation loss and accuracy (never checkpoint, or call "last good", weights whose
        validation loss is not finite)."""
        try:
            val = evaluate(self.model, self.x_val, self.y_val) if self.n_val else \
                dict(loss=float("nan"), accuracy=float("nan"))
        except NonFiniteError as e:
            val = dict(loss=float("nan"), accuracy=float("nan"), error=str(e))
        if self.n_val and not math.isfinite(val["loss"]):
            why = f" ({val['error']})" if "error" in val else ""
            raise NonFiniteError(f"the validation loss became {val['loss']} after epoch {epoch + 1}{why}: "
                                 f"{divergence_hint(self.cfg, epoch, self.ck_path)}", step=epoch + 1)
        return val

    def record(self, row: dict) -> None:
        """Keep the epoch's row and the best weights; log, append the metrics, checkpoint."""
        cfg = self.cfg
        self.history.append(row)
        if not self.n_val or row["val_accuracy"] > self.best:
            self.best = row["val_accuracy"] if self.n_val else self.best
            self.best_state = copy.deepcopy(self.model.state_dict())
        if cfg.progress and self.rank == 0:
            if sys.stderr.isatty():
                print(file=sys.stderr)
            self.log(json.dumps(row))
        if self.metrics_path and self.rank == 0:
            os.makedirs(cfg.out, exist_ok=True)
            with open(self.metrics_path, "a") as f:
                f.write(json.dumps(row) + "\n")
        if self.ck_path and self.rank == 0:
            save_checkpoint(self.ck_path, dict(model_config=self.model.config, train_config=asdict(cfg),
                                               model_state=self.model.state_dict(), optimizer_state=self.opt.state_dict(),
                                               epoch=row["epoch"], best_val=self.best, best_state=self.best_state,
                                               metrics=self.history,
                                               rng=dict(augment=self.gen.get_state(), torch=torch.get_rng_state())))
        if self.n_ranks > 1:  # no rank runs ahead of the checkpoint it might have to resume from
            torch.distributed.barrier()


def _train(model, data, cfg: TrainConfig, log, on_epoch) -> dict:
    run = _Run(model, data, cfg, log)
    run.resume()
    apply_box_constraint(model, cfg.box)
    block_checks = [blk.check_finite for blk in model.blocks]
    if not run.steps.check_each_batch:  # no per-block host read inside the forward pass
        for blk in model.blocks:
            blk.check_finite = False
    try:
        for epoch in range(run.start, cfg.epochs):
            row = run.epoch(epoch)
            val = run.validate(epoch)
            row = dict(list(row.items())[:4] + [("val_loss", val["loss"]), ("val_accuracy", val["accuracy"])]
                       + list(row.items())[4:])
            if on_epoch is not None:
                extra = on_epoch(model, dict(row))
                model.train()
                if extra is not None:
                    row["extra"] = extra
            run.record(row)
    finally:
        for blk, flag in zip(model.blocks, block_checks):
            blk.check_finite = flag
    final_state = copy.deepcopy(model.state_dict())
    if run.best_state is not None:
        model.load_state_dict(run.best_state)
    test = evaluate(model, run.x_test, run.y_test)
    model.load_state_dict(final_state)
    return dict(epochs=cfg.epochs, best_val_accuracy=run.best, test_accuracy=test["accuracy"], test_loss=test["loss"],
                parameters=model.n_parameters(), history=run.history,
                train_seconds=sum(r["seconds"] for r in run.history))
