"""All analyses of a network's PDE blocks, written as one report directory.

For each PDE block, the block's own input is obtained by running the network up to it on the
given images; then: the Jacobian spectrum along the block's trajectory over the scheme's stability
region, the flow-map conditioning, the reversibility error (reversible schemes), the observed
order of convergence of the trained weights, and the norm/energy along time.
"""

from __future__ import annotations

import copy
import os

import torch

from .convergence import convergence_study
from .flow import conditioning, energy, reversibility
from .stability import spectrum_along_trajectory


@torch.no_grad()
def block_inputs(model, x: torch.Tensor) -> list[torch.Tensor]:
    model.eval()
    p = next(model.parameters())
    h = model.opening(x.to(p.device, p.dtype))
    inputs = []
    for unit in model.units:
        inputs.append(h)
        h = unit(h)
    return inputs


def analyze_block(block, x: torch.Tensor, out: str, k: int = 6, convergence_steps=None, backend: str = "auto",
                  with_conditioning: bool = True) -> dict:
    """Run every analysis on one block for input ``x`` (one or a few examples); save reports in ``out``."""
    # analyses run in float64 on a copy of the block (the trained model keeps its dtype)
    op, scheme = copy.deepcopy(block.operator).double(), block.scheme
    n = block.n_steps or (op.grid.n_pieces if op.grid else 8)
    x = x.double()
    reports = {"stability": spectrum_along_trajectory(op, x, scheme, n_steps=n, k=k, backend=backend),
               "energy": energy(op, x, scheme, n_steps=n)}
    if with_conditioning:
        reports["conditioning"] = conditioning(op, x, scheme, n_steps=n, backend=backend)
    if scheme.reversible:
        reports["reversibility"] = reversibility(op, x, scheme, n_steps_list=(n, 4 * n, 16 * n))
    if not scheme.adaptive:
        pieces = op.grid.n_pieces if op.grid else 1
        steps = convergence_steps or [pieces * 2**i for i in range(1, 6)]
        conv = convergence_study(op, x, scheme, steps, reference_factor=8)
        from .report import Report

        def plot(fig, c=conv):
            ax = fig.add_subplot(111)
            ax.loglog(c.h, c.errors, "o-", label=f"{c.scheme}: observed {c.observed_order:.2f}")
            ax.loglog(c.h, [c.errors[-1] * (hh / c.h[-1]) ** c.declared_order for hh in c.h], "k--", label=f"slope {c.declared_order}")
            ax.set_xlabel("h")
            ax.set_ylabel("relative error at T")
            ax.legend()

        reports["convergence"] = Report(
            "convergence", f"Observed order of {conv.scheme} on the trained weights",
            ["steps", "h", "relative error"], [[s, h, e] for s, h, e in zip(conv.n_steps, conv.h, conv.errors)],
            conv.as_dict(), plot, [f"observed order {conv.observed_order:.3f} (declared {conv.declared_order}); reference: {conv.reference}"])
    paths = {name: r.save(out) for name, r in reports.items()}
    return dict(reports=reports, paths=paths)


def analyze_model(model, x: torch.Tensor, out: str, blocks=None, **kw) -> dict:
    """Analyse the PDE blocks (all, or the indices in ``blocks``) of ``model`` on images ``x``."""
    inputs = block_inputs(model, x)
    results = {}
    for i, (block, xi) in enumerate(zip(model.blocks, inputs)):
        if blocks is not None and i not in blocks:
            continue
        results[i] = analyze_block(block, xi, os.path.join(out, f"block{i}"), **kw)
    return results
