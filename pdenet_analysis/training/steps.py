"""One SGD step of the paper's objective, and the three ways a step runs.

:class:`Steps` holds the network, the optimiser and the settings, and is called once per batch:

* **eager** — the network as it is (wrapped in DistributedDataParallel under ``torchrun``);
* **compiled** — ``torch.compile`` of the network; if compiling fails on the first step, one
  warning and every step from then on runs eager (nothing is lost: the failure comes before
  ``opt.step``, and the retry starts by clearing the gradients);
* **recorded** — the whole step recorded as a CUDA graph after ``graph_warmup`` ordinary steps and
  replayed, recorded anew when the schedule changes the learning rate it holds
  (:mod:`.cuda_graph`).

A step returns the batch's loss and correct predictions as tensors (no host read) and the
operator evaluations of its forward pass.
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as nnf

from ..errors import InvalidArgumentError, NonFiniteError, PDENetError
from .cuda_graph import CapturedStep, warm_step
from .regulariser import apply_box_constraint, regulariser


def divergence_hint(cfg, epoch: int, ck_path: str | None) -> str:
    """What to change after the loss became NaN or Inf, and where the last good checkpoint is."""
    import os

    hint = f"lower the learning rate (now {cfg.lr_at(epoch):g}) or the step size h (more steps per block)"
    if ck_path and os.path.exists(ck_path):
        hint += f"; the last good checkpoint is {ck_path}"
    return hint


def compiled(model):
    """``torch.compile`` of the network for training; adaptive schemes (data-dependent step
    counts) are refused, since every new step count would recompile."""
    if any(b.scheme.adaptive for b in model.blocks):
        raise InvalidArgumentError("compile=True is for fixed-step schemes; an adaptive scheme's step count "
                                   "depends on the data and would recompile the network again and again")
    return torch.compile(model)


class Steps:
    """The training step of ``model`` with ``opt`` under ``cfg`` on ``dev`` (``n_ranks`` processes);
    ``ck_path`` is named in the hint of a diverged run."""

    def __init__(self, model, opt, cfg, dev: torch.device, n_ranks: int, ck_path: str | None):
        self.model, self.opt, self.cfg, self.dev, self.n_ranks, self.ck_path = model, opt, cfg, dev, n_ranks, ck_path
        # one process reading its loss every batch checks it before the update (weights stay finite) and
        # keeps the blocks' own NaN checks; otherwise the all-reduced running loss is the one check
        self.check_each_batch = cfg.checks_each_batch(dev, n_ranks)
        self.step_model = compiled(model) if cfg.compile else model
        if n_ranks > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.step_model = DistributedDataParallel(self.step_model,
                                                      device_ids=[dev.index] if dev.type == "cuda" else None)
        self.compile_pending = cfg.compile  # the compiled network's first step (where compilation happens) is to come
        self.captured, self.warmed, self.graph_evals = None, 0, 0.0

    def forward_loss(self, xb, yb, n_global):
        cfg = self.cfg
        # a recorded graph must not reuse autocast's cast-weight cache across replays
        with torch.autocast(self.dev.type, dtype=torch.bfloat16, enabled=cfg.amp, cache_enabled=not cfg.cuda_graph):
            logits = self.step_model(xb, preprocessed=True)
            if self.n_ranks == 1:
                return logits, nnf.cross_entropy(logits.float(), yb)
            # DDP averages over ranks: this makes it the global batch's mean loss
            return logits, nnf.cross_entropy(logits.float(), yb, reduction="sum") * (self.n_ranks / n_global)

    def update(self, loss) -> None:
        total = loss + regulariser(self.model, self.cfg)
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        self.opt.step()
        apply_box_constraint(self.model, self.cfg.box)

    def one_step(self, xb, yb, n_global, epoch, b):
        """One SGD step; this batch's loss and hits (what a CUDA graph records, as tensors)."""
        try:
            logits, loss = self.forward_loss(xb, yb, n_global)
        except NonFiniteError as e:
            raise NonFiniteError(f"training diverged in epoch {epoch + 1}, batch {b + 1} ({e}): "
                                 f"{divergence_hint(self.cfg, epoch, self.ck_path)}", step=epoch + 1) from e
        if self.check_each_batch:
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                raise NonFiniteError(f"the training loss became {loss_value} in epoch {epoch + 1}, batch "
                                     f"{b + 1}: {divergence_hint(self.cfg, epoch, self.ck_path)}", step=epoch + 1)
        self.update(loss)
        return loss.detach(), (logits.detach().argmax(1) == yb).sum()

    def first_compiled(self, fn, *args):
        """The first step of a compiled network: if compiling fails, warn once and take this and
        every later step without torch.compile."""
        self.compile_pending = False
        try:
            return fn(*args)
        except PDENetError:
            raise
        except Exception as e:  # noqa: BLE001 — Dynamo and Inductor raise many kinds
            why = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]}"
            if self.n_ranks > 1:  # every rank would have to rebuild its DDP wrapper together
                raise InvalidArgumentError(f"torch.compile failed on the first step ({why}); under torchrun, "
                                           "rerun without --compile") from e
            warnings.warn(f"torch.compile failed on the first step ({why}); training goes on without it",
                          RuntimeWarning, stacklevel=2)
            self.step_model = self.model
            return fn(*args)

    def _run(self, fn, *args):
        return self.first_compiled(fn, *args) if self.compile_pending else fn(*args)

    def _recorded(self, xb, yb, epoch, b):
        """The step as a CUDA graph: ordinary warm-up steps, then one recording per learning rate."""
        lr = self.cfg.lr_at(epoch)
        if self.captured is not None and self.captured.key != lr:
            self.captured = None  # the schedule changed the rate the graph was recorded with
        graph_step = lambda x, y: self.one_step(x, y, len(y), epoch, b)  # noqa: E731
        if self.captured is not None:
            loss_b, hits = self.captured(xb, yb)
        elif self.warmed < self.cfg.graph_warmup:
            loss_b, hits = self._run(warm_step, graph_step, xb, yb)
            self.warmed, self.graph_evals = self.warmed + 1, self.model.evaluations()
        else:
            self.captured = CapturedStep(graph_step, xb, yb, key=lr)
            loss_b, hits = self.captured(xb, yb)
        return loss_b, hits, self.graph_evals  # fixed steps: the count of the ordinary warm-up steps

    def __call__(self, xb, yb, n_global: int, epoch: int, b: int):
        """(this batch's loss, its correct predictions, operator evaluations of its forward pass)."""
        if self.cfg.cuda_graph:
            return self._recorded(xb, yb, epoch, b)
        loss_b, hits = self._run(self.one_step, xb, yb, n_global, epoch, b)
        return loss_b, hits, self.model.evaluations()
