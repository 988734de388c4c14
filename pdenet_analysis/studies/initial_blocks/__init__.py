"""Study ``initial-blocks``: are freshly initialised PDE blocks stable, and do the few extreme
layer eigenvalues say so?

One point per architecture, the first PDE block of a digits network at initialisation (seeded),
on the first test images fed through the opening layer:

* the step map's spectral radius and the complete count of its eigenvalues outside the unit disc
  (|ξ| > 1 + 10⁻⁶), per step, worst over the examples, against what the scheme's stability
  function predicts from the 6 largest-magnitude and 2 largest-real layer eigenvalues alone;
* κ of the flow map for the first example by the library's default route (dense SVD at these
  sizes) and by its matrix-free route (``Budget(dense_max=0)``: the exact inverse map, exact
  inverse step maps, or GMRES inverse iteration, certified by forward residuals), against the
  dense SVD of the independently formed Jacobian.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from ..runner import Study, default_dtype

ARCHS = ("parabolic", "hamiltonian", "second_order", "resnet")


def grid(quick: bool) -> list[dict]:
    return [dict(arch=a, seed=0, examples=4) for a in ARCHS]  # the same small grid either way


def run(config: dict) -> dict:
    from ...analysis import Budget, conditioning, discretise, stability
    from ...analysis.model import block_inputs
    from ...data import load_dataset
    from ...networks import build_preset

    with default_dtype(torch.float64):
        x = load_dataset("digits").x_test[: config["examples"]].double()
        torch.manual_seed(config["seed"])
        model = build_preset(f"digits-{config['arch']}").double()
        block = model.blocks[0]
        xin = block_inputs(model, x)[0]
        op = copy.deepcopy(block.operator)
        steps = stability(op, xin, block.scheme, k=6).steps
        row = dict(arch=config["arch"], scheme=block.scheme.name, h=steps[0].h,
                   unknowns_step_map=steps[0].examples[0].count.unknowns,
                   step_map_radius=[s.max_amplification for s in steps], modes_outside=[s.n_outside_max for s in steps],
                   count_exact=[s.count_exact for s in steps],
                   predicted_from_few_layer_eigenvalues=[s.layer.predicted_amplification for s in steps],
                   status=[str(s.status) for s in steps])
        s = np.linalg.svd(discretise(op, xin[:1], block.scheme).flow_jacobian().dense()[0].numpy(), compute_uv=False)
        kappa = float(s[0] / s[-1])
        row.update(kappa_dense=kappa, sigma_min_dense=float(s[-1]))
        for route, dense_max in (("default", 2048), ("matrix_free", 0)):
            cond = conditioning(op, xin[:1], block.scheme, budget=Budget(dense_max=dense_max))
            e = cond.examples[0]
            row[f"kappa_{route}"] = dict(value=e.condition, status=e.condition_status, method=cond.method_min,
                                         relative_error=abs(e.condition - kappa) / kappa, sigma_min=e.sigma_min[0])
    return row


def aggregate(points: list[dict], out: str, quick: bool) -> str:
    rows = sorted((p["result"] for p in points), key=lambda r: ARCHS.index(r["arch"]))
    lines = ["| block | scheme | unknowns | ρ(S_j) per step | modes outside per step | R(z) of 8 layer eigenvalues | "
             "κ dense | κ default route (rel. error) | κ matrix-free route (rel. error) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        d, m = r["kappa_default"], r["kappa_matrix_free"]
        lines.append(f"| {r['arch']} | {r['scheme']} | {r['unknowns_step_map']:,} | "
                     f"{', '.join(f'{v:.4g}' for v in r['step_map_radius'])} | "
                     f"{', '.join(map(str, r['modes_outside']))} | "
                     f"{', '.join(f'{v:.4g}' for v in r['predicted_from_few_layer_eigenvalues'])} | "
                     f"{r['kappa_dense']:.6g} | {d['value']:.6g} ({d['relative_error']:.1e}) | "
                     f"{m['value']:.6g} ({m['relative_error']:.1e}, {m['method'].split(' (')[0]}) |")
    return "\n".join(lines) + "\n"


STUDY = Study(
    name="initial-blocks",
    title="Freshly initialised PDE blocks: stability and conditioning",
    question="Are the paper's PDE blocks stable at initialisation, do the few extreme layer eigenvalues predict their "
             "step maps' growth, and do the matrix-free κ routes give the dense κ?",
    grid=grid, run=run, aggregate=aggregate, version=1,
)
