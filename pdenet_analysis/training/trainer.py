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

import contextlib
import copy
import json
import math
import os
import sys
import time
import warnings
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as nnf

from ..errors import ConfigMismatchError, InvalidArgumentError, NonFiniteError, PDENetError
from ..data.transforms import augment as augment_batch
from . import distributed
from .checkpoint import load_checkpoint, save_checkpoint
from .evaluation import evaluate
from .regulariser import apply_box_constraint, regulariser
from .cuda_graph import CapturedStep, require_capturable, warm_step


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
    #: 3·10⁻³ in the loss within two epochs (measured on an H200, digits); CPU runs are reproducible
    #: either way
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


def _divergence_hint(cfg: TrainConfig, epoch: int, ck_path: str | None) -> str:
    hint = f"lower the learning rate (now {cfg.lr_at(epoch):g}) or the step size h (more steps per block)"
    if ck_path and os.path.exists(ck_path):
        hint += f"; the last good checkpoint is {ck_path}"
    return hint


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


def _compiled(model):
    """``torch.compile`` of the network for training; adaptive schemes (data-dependent step
    counts) are refused, since every new step count would recompile."""
    if any(b.scheme.adaptive for b in model.blocks):
        raise InvalidArgumentError("compile=True is for fixed-step schemes; an adaptive scheme's step count "
                                   "depends on the data and would recompile the network again and again")
    return torch.compile(model)


def _plain(v):
    return list(v) if isinstance(v, tuple) else v


def kernel_settings() -> tuple[bool, bool, bool, bool]:
    """The process's kernel choices that :func:`deterministic_kernels` sets: deterministic
    algorithms, their warn-only mode, cuDNN's deterministic flag and its autotuning."""
    return (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)


def set_kernel_settings(settings: tuple[bool, bool, bool, bool]) -> None:
    """Set what :func:`kernel_settings` returns."""
    torch.use_deterministic_algorithms(settings[0], warn_only=settings[1])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = settings[2], settings[3]


@contextlib.contextmanager
def deterministic_kernels(on: bool):
    """Within: deterministic kernels where ``on`` (a kernel that has none warns), cuDNN autotuning
    where not; the process's settings are restored on leaving."""
    before = kernel_settings()
    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS's condition for determinism
        torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = on, not on
    try:
        yield
    finally:
        set_kernel_settings(before)


def train(model, data, cfg: TrainConfig, log=print, on_epoch=None) -> dict:
    """Train ``model`` on ``data`` (a :class:`~pdenet_analysis.data.Split`); returns the summary.

    ``on_epoch(model, row)``, if given, is called after every epoch (before its checkpoint) with
    the epoch's metrics row; what it returns is stored in ``row["extra"]`` (and so in the history
    and the checkpoint), e.g. analyses of the weights along training."""
    with deterministic_kernels(cfg.deterministic):
        return _train(model, data, cfg, log, on_epoch)


def _train(model, data, cfg: TrainConfig, log, on_epoch) -> dict:
    rank, n_ranks, device = distributed.setup(cfg.device)
    dev = torch.device(device)
    if cfg.cuda_graph:
        require_capturable(model, dev, n_ranks)
    if rank != 0:  # one voice: rank 0 logs, prints progress and writes files
        log = _silent
    torch.manual_seed(cfg.seed)
    model.to(dev)
    if n_ranks > 1:
        distributed.use_global_batchnorm(model)
    if cfg.channels_last:  # the 4-D convolutions; PDE kernels are stacked in time (5-D) and stay as they are
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.to(memory_format=torch.channels_last)
    dtype = next(model.parameters()).dtype  # data follow the model's precision
    # the network's own preprocessing, before augmentation (the paper's order); validation and test images stay raw
    x_all, y_all = model.preprocess(data.x_train.to(dev, dtype)), data.y_train.to(dev)
    x_test, y_test = data.x_test.to(dev, dtype), data.y_test.to(dev)
    perm_host = torch.randperm(len(y_all), generator=torch.Generator().manual_seed(cfg.seed))
    perm = perm_host.to(dev)
    n_val = int(round(cfg.val_fraction * len(y_all)))
    x_val, y_val = data.x_train[perm_host[:n_val]].to(dev, dtype), y_all[perm[:n_val]]
    x_tr, y_tr = x_all[perm[n_val:]], y_all[perm[n_val:]]
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                          **({"fused": True} if dev.type == "cuda" else {}))
    sync_every = cfg.sync_interval(dev)
    # one process reading its loss every batch checks it before the update (weights stay finite) and
    # keeps the blocks' own NaN checks; otherwise the all-reduced running loss is the one check
    check_each_batch = cfg.checks_each_batch(dev, n_ranks)
    block_checks = [blk.check_finite for blk in model.blocks]
    step_model = _compiled(model) if cfg.compile else model
    if n_ranks > 1:
        from torch.nn.parallel import DistributedDataParallel

        step_model = DistributedDataParallel(step_model, device_ids=[dev.index] if dev.type == "cuda" else None)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    ck_path = os.path.join(cfg.out, "checkpoint.pt") if cfg.out else None
    metrics_path = os.path.join(cfg.out, "metrics.jsonl") if cfg.out else None
    start, best, best_state, history = 0, -1.0, None, []
    if cfg.resume and ck_path and os.path.exists(ck_path):
        ck = load_checkpoint(ck_path, map_location=dev)
        _check_resumable(ck, model, cfg, ck_path)
        model.load_state_dict(ck["model_state"])
        opt.load_state_dict(ck["optimizer_state"])
        start, best, best_state, history = ck["epoch"], ck["best_val"], ck["best_state"], ck["metrics"]
        gen.set_state(ck["rng"]["augment"].cpu())  # map_location moved it
        torch.set_rng_state(ck["rng"]["torch"].cpu())
        if metrics_path and rank == 0:  # the checkpoint's history is authoritative: drop rows of a lost epoch
            with open(metrics_path, "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in history)
        log(f"resumed from {ck_path} after epoch {start}")
    elif cfg.resume:
        log(f"nothing to resume: no checkpoint at {ck_path}; training from epoch 1" if ck_path
            else "nothing to resume: no --out directory was given; training from epoch 1")
    apply_box_constraint(model, cfg.box)

    def forward_loss(xb, yb, n_global):
        # a recorded graph must not reuse autocast's cast-weight cache across replays
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cfg.amp, cache_enabled=not cfg.cuda_graph):
            logits = step_model(xb, preprocessed=True)
            if n_ranks == 1:
                return logits, nnf.cross_entropy(logits.float(), yb)
            # DDP averages over ranks: this makes it the global batch's mean loss
            return logits, nnf.cross_entropy(logits.float(), yb, reduction="sum") * (n_ranks / n_global)

    def update(loss):
        total = loss + regulariser(model, cfg)
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        apply_box_constraint(model, cfg.box)

    def one_step(xb, yb, n_global, epoch, b):
        """One SGD step; this batch's loss and hits (what a CUDA graph records, as tensors)."""
        try:
            logits, loss = forward_loss(xb, yb, n_global)
        except NonFiniteError as e:
            raise NonFiniteError(f"training diverged in epoch {epoch + 1}, batch {b + 1} ({e}): "
                                 f"{_divergence_hint(cfg, epoch, ck_path)}", step=epoch + 1) from e
        if check_each_batch:
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                raise NonFiniteError(f"the training loss became {loss_value} in epoch {epoch + 1}, batch "
                                     f"{b + 1}: {_divergence_hint(cfg, epoch, ck_path)}", step=epoch + 1)
        update(loss)
        return loss.detach(), (logits.detach().argmax(1) == yb).sum()

    compile_pending = cfg.compile  # the compiled network's first step (where compilation happens) is still to come

    def first_compiled(fn, *args):
        """The first step of a compiled network: if compiling fails, warn once and take this and every
        later step without torch.compile. Nothing is lost: the failure comes before ``opt.step``,
        and the retry starts by clearing the gradients."""
        nonlocal step_model, compile_pending
        compile_pending = False
        try:
            return fn(*args)
        except PDENetError:
            raise
        except Exception as e:  # noqa: BLE001 — Dynamo and Inductor raise many kinds
            why = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]}"
            if n_ranks > 1:  # every rank would have to rebuild its DDP wrapper together
                raise InvalidArgumentError(f"torch.compile failed on the first step ({why}); under torchrun, "
                                           "rerun without --compile") from e
            warnings.warn(f"torch.compile failed on the first step ({why}); training goes on without it",
                          RuntimeWarning, stacklevel=2)
            step_model = model
            return fn(*args)

    captured, warmed, graph_evals = None, 0, 0.0
    if not check_each_batch:  # no per-block host read inside the forward pass
        for blk in model.blocks:
            blk.check_finite = False
    try:
        for epoch in range(start, cfg.epochs):
            for g in opt.param_groups:
                g["lr"] = cfg.lr_at(epoch)
            model.train()
            order = torch.randperm(len(y_tr), generator=gen).to(dev)
            t0, seen, evals = time.perf_counter(), 0, 0.0
            # running sums stay on the device; the host reads them every ``sync_every`` batches
            loss_sum = torch.zeros((), device=dev, dtype=torch.float64)
            correct = torch.zeros((), device=dev, dtype=torch.int64)
            checked = 0  # batches whose losses have been checked to be finite
            n_batches = len(y_tr) // cfg.batch_size or 1
            for b in range(n_batches):
                idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
                xb, yb = x_tr[idx], y_tr[idx]
                if cfg.augment:
                    xb = augment_batch(xb, gen, flip=cfg.flip)
                n_global = len(yb)
                if n_ranks > 1:  # this rank's share of the global batch (augmented alike on every rank)
                    xb, yb = xb[rank::n_ranks], yb[rank::n_ranks]
                if cfg.channels_last:
                    xb = xb.contiguous(memory_format=torch.channels_last)
                if cfg.cuda_graph:
                    if captured is not None and captured.key != cfg.lr_at(epoch):
                        captured = None  # the schedule changed the rate the graph was recorded with
                    graph_step = lambda x, y: one_step(x, y, len(y), epoch, b)  # noqa: E731
                    if captured is not None:
                        loss_b, hits = captured(xb, yb)
                    elif warmed < cfg.graph_warmup:
                        loss_b, hits = (first_compiled(warm_step, graph_step, xb, yb) if compile_pending
                                        else warm_step(graph_step, xb, yb))
                        warmed, graph_evals = warmed + 1, model.evaluations()
                    else:
                        captured = CapturedStep(graph_step, xb, yb, key=cfg.lr_at(epoch))
                        loss_b, hits = captured(xb, yb)
                    step_evals = graph_evals  # fixed steps: the count of the ordinary warm-up steps
                else:
                    loss_b, hits = (first_compiled(one_step, xb, yb, n_global, epoch, b) if compile_pending
                                    else one_step(xb, yb, n_global, epoch, b))
                    step_evals = model.evaluations()
                seen += n_global
                loss_sum += loss_b.double() * (n_global / n_ranks)  # this rank's sum of losses
                correct += hits
                evals += step_evals
                if (b + 1) % sync_every == 0 or b + 1 == n_batches:
                    running = float(distributed.all_reduce_sum(loss_sum))  # the one host read of this stretch
                    if not math.isfinite(running):
                        where = f"batch {b + 1}" if b == checked else f"batches {checked + 1}–{b + 1}"
                        raise NonFiniteError(f"the training loss became {running} in epoch {epoch + 1}, {where}: "
                                             f"{_divergence_hint(cfg, epoch, ck_path)}", step=epoch + 1)
                    checked = b + 1
                    if cfg.progress and rank == 0 and sys.stderr.isatty():
                        el = time.perf_counter() - t0
                        print(f"\repoch {epoch + 1}/{cfg.epochs} [{b + 1}/{n_batches}] loss {running / seen:.4f} "
                              f"{seen / el:.0f} img/s", end="", file=sys.stderr)
            loss_sum = float(distributed.all_reduce_sum(loss_sum))
            correct = int(distributed.all_reduce_sum(correct))
            dt = time.perf_counter() - t0
            try:
                val = evaluate(model, x_val, y_val) if n_val else dict(loss=float("nan"), accuracy=float("nan"))
            except NonFiniteError as e:
                val = dict(loss=float("nan"), accuracy=float("nan"), error=str(e))
            if n_val and not math.isfinite(val["loss"]):  # never checkpoint (or call "last good") such weights
                why = f" ({val['error']})" if "error" in val else ""
                raise NonFiniteError(f"the validation loss became {val['loss']} after epoch {epoch + 1}{why}: "
                                     f"{_divergence_hint(cfg, epoch, ck_path)}", step=epoch + 1)
            row = dict(epoch=epoch + 1, lr=cfg.lr_at(epoch), train_loss=loss_sum / seen, train_accuracy=correct / seen,
                       val_loss=val["loss"], val_accuracy=val["accuracy"], seconds=dt, images_per_s=seen / dt,
                       operator_evals_per_forward=evals / n_batches, batches=n_batches)
            if on_epoch is not None:
                extra = on_epoch(model, dict(row))
                model.train()
                if extra is not None:
                    row["extra"] = extra
            history.append(row)
            if not n_val or val["accuracy"] > best:
                best = val["accuracy"] if n_val else best
                best_state = copy.deepcopy(model.state_dict())
            if cfg.progress and rank == 0:
                if sys.stderr.isatty():
                    print(file=sys.stderr)
                log(json.dumps(row))
            if metrics_path and rank == 0:
                os.makedirs(cfg.out, exist_ok=True)
                with open(metrics_path, "a") as f:
                    f.write(json.dumps(row) + "\n")
            if ck_path and rank == 0:
                save_checkpoint(ck_path, dict(model_config=model.config, train_config=asdict(cfg), model_state=model.state_dict(),
                                              optimizer_state=opt.state_dict(), epoch=epoch + 1, best_val=best,
                                              best_state=best_state, metrics=history,
                                              rng=dict(augment=gen.get_state(), torch=torch.get_rng_state())))
            if n_ranks > 1:  # no rank runs ahead of the checkpoint it might have to resume from
                torch.distributed.barrier()
    finally:
        for blk, flag in zip(model.blocks, block_checks):
            blk.check_finite = flag
    final_state = copy.deepcopy(model.state_dict())
    if best_state is not None:
        model.load_state_dict(best_state)
    test = evaluate(model, x_test, y_test)
    model.load_state_dict(final_state)
    return dict(epochs=cfg.epochs, best_val_accuracy=best, test_accuracy=test["accuracy"], test_loss=test["loss"],
                parameters=model.n_parameters(), history=history,
                train_seconds=sum(r["seconds"] for r in history))
