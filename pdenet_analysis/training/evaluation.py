"""Evaluation of a trained network, and of the same weights integrated in other ways.

* :func:`evaluate` — loss, accuracy and operator evaluations per forward pass on raw images (the
  network applies its own preprocessing).
* :class:`Integration` and :func:`evaluate_grid` — the discrete-versus-continuous question for
  one network: its test accuracy under other fixed-step schemes and step counts, and under an
  adaptive solver at several tolerances (weights shared, :meth:`~pdenet_analysis.networks.PDECNN.with_scheme`).
  A failed integration (an adaptive solver out of steps, NaN) is a row with its error, not an
  exception: a sweep records its unstable points.
* :func:`default_grid` — the grid ``pdenet-analysis evaluate --grid`` uses when none is given.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as nnf

from ..errors import IntegrationError, InvalidArgumentError


@torch.no_grad()
def evaluate(model, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500) -> dict:
    """Mean loss, accuracy and operator evaluations per forward pass (summed over the blocks) on
    raw images ``x`` (the network applies its own preprocessing), moved to the network's device
    and dtype batch by batch."""
    model.eval()
    p = next(model.parameters())
    loss, correct, evals, n = 0.0, 0, 0.0, 0
    for i in range(0, len(y), batch_size):
        xb, yb = x[i : i + batch_size].to(p.device, p.dtype), y[i : i + batch_size].to(p.device)
        logits = model(xb)
        loss += float(nnf.cross_entropy(logits, yb, reduction="sum"))
        correct += int((logits.argmax(1) == yb).sum())
        evals, n = evals + model.evaluations(), n + 1
    return dict(loss=loss / max(len(y), 1), accuracy=correct / max(len(y), 1), evals_per_forward=evals / max(n, 1))


@dataclass(frozen=True)
class Integration:
    """How the blocks are integrated: a fixed-step ``scheme`` with ``n_steps``, or an adaptive one
    with ``rtol`` and ``atol`` (default atol = rtol)."""

    scheme: str
    n_steps: int | None = None
    rtol: float | None = None
    atol: float | None = None

    def __post_init__(self) -> None:
        from ..schemes import get_scheme

        adaptive = get_scheme(self.scheme).adaptive
        if adaptive and self.n_steps is not None:
            raise InvalidArgumentError(f"{self.scheme} chooses its own steps: give rtol (and atol), not n_steps")
        if not adaptive and (self.rtol is not None or self.atol is not None):
            raise InvalidArgumentError(f"{self.scheme} takes fixed steps: give n_steps, not rtol/atol")

    @property
    def label(self) -> str:
        if self.rtol is not None:
            return f"{self.scheme} rtol {self.rtol:.0e}"
        return f"{self.scheme} {self.n_steps} steps" if self.n_steps else self.scheme

    def apply(self, model):
        """The network with its blocks integrated this way (the same weights)."""
        if self.rtol is None and self.atol is None:
            return model.with_scheme(self.scheme, self.n_steps)
        rtol = self.rtol if self.rtol is not None else 1e-6
        return model.with_scheme(self.scheme, None, rtol=rtol, atol=self.atol if self.atol is not None else rtol)


def evaluate_grid(model, x: torch.Tensor, y: torch.Tensor, integrations, batch_size: int = 500, progress=None) -> list:
    """One row per :class:`Integration`: the scheme, step count or tolerances, accuracy, loss,
    evaluations per forward pass, seconds, and ``error`` (None, or why the integration failed).
    ``progress(label)`` is called before each."""
    rows = []
    for it in integrations:
        if progress is not None:
            progress(it.label)
        t0 = time.perf_counter()
        try:
            r, error = evaluate(it.apply(model), x, y, batch_size), None
        except IntegrationError as e:  # an adaptive solver out of steps, NaN on the way: recorded
            r, error = dict(loss=math.nan, accuracy=math.nan, evals_per_forward=math.nan), f"{type(e).__name__}: {e}"
        rows.append(dict(scheme=it.scheme, n_steps=it.n_steps, rtol=it.rtol, atol=it.atol, label=it.label, **r,
                         seconds=time.perf_counter() - t0, error=error))
    return rows


def default_grid(model) -> list[Integration]:
    """The network's own scheme and RK4 at 1, 2, 4 and 8 times its step count, and dopri5 at
    rtol = atol = 10⁻², 10⁻⁴, 10⁻⁶."""
    block = model.blocks[0]
    own = block.scheme
    n = block.n_steps or (block.operator.grid.n_pieces if block.operator.grid else 3)
    fixed = [own.name] if not own.adaptive else []
    fixed += [s for s in ("rk4",) if s not in fixed]
    grid = [Integration(s, n * f) for s in fixed for f in (1, 2, 4, 8)]
    return grid + [Integration("dopri5", rtol=r) for r in (1e-2, 1e-4, 1e-6)]
