"""Stability and conditioning of the first PDE block of freshly initialised digits networks.

    python studies/initial_blocks.py --out studies/results/initial_blocks.json

Input: the first 4 scikit-learn digits test images (per-image standardised), fed through the
opening layer. For each architecture, with its paper scheme:

* the step map's spectral radius and the complete count of its eigenvalues outside the unit
  disc (|ξ| > 1 + 10⁻⁶), per step, worst over the examples, against what the scheme's stability
  function predicts from the 6 largest-magnitude and 2 largest-real layer eigenvalues alone;
* κ of the flow map for the first example, by the library's default route (dense SVD at these
  sizes, 1,024 or 2,048 unknowns) and by its matrix-free route (``dense_max=0``: exact inverse
  map, or per-step GMRES inverse iteration, certified by forward residuals), against the dense
  SVD of the independently formed Jacobian.
"""

import argparse
import copy
import os
import sys

import numpy as np
import torch

import pdenet_analysis as pa
from pdenet_analysis.analysis import conditioning, discretise, spectrum_along_trajectory
from pdenet_analysis.analysis.model import block_inputs
from pdenet_analysis.data import load_dataset, standardize

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
from _provenance import provenance, save  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--examples", type=int, default=4)
    ap.add_argument("--out", default="studies/results/initial_blocks.json")
    args = ap.parse_args()
    prov = provenance()
    x = standardize(load_dataset("digits").x_test[: args.examples]).double()
    results = {}
    for arch in ("parabolic", "hamiltonian", "second_order", "resnet"):
        torch.manual_seed(args.seed)
        model = pa.build_preset(f"digits-{arch}").double()
        block = model.blocks[0]
        xin = block_inputs(model, x)[0]
        op = copy.deepcopy(block.operator)
        steps = spectrum_along_trajectory(op, xin, block.scheme, k=6).data["steps"]
        row = dict(scheme=block.scheme.name, h=steps[0]["h"], unknowns_step_map=steps[0]["examples"][0]["unknowns"],
                   step_map_radius=[s["max_amplification"] for s in steps],
                   modes_outside=[s["n_outside_max"] for s in steps],
                   count_exact=[s["count_exact"] for s in steps],
                   predicted_from_few_layer_eigenvalues=[s["predicted_amplification"] for s in steps],
                   status=[s["status"] for s in steps])
        disc = discretise(op, xin[:1], block.scheme)
        s = np.linalg.svd(disc.flow_jacobian().dense()[0].numpy(), compute_uv=False)
        row.update(kappa_dense=float(s[0] / s[-1]), sigma_min_dense=float(s[-1]))
        for route, dense_max in (("default", 2048), ("matrix_free", 0)):
            cond = conditioning(op, xin[:1], block.scheme, dense_max=dense_max).data
            e = cond["examples"][0]
            row[f"kappa_{route}"] = dict(value=e["condition"], status=e["condition_status"], method=cond["method_min"],
                                         relative_error=float(abs(e["condition"] - s[0] / s[-1]) / (s[0] / s[-1])),
                                         sigma_min=e["sigma_min"][0])
        results[arch] = row
        print(arch, {k: v for k, v in row.items() if k != "status"}, flush=True)
    save(args.out, dict(provenance=prov, seed=args.seed, examples=args.examples, results=results))


if __name__ == "__main__":
    main()
