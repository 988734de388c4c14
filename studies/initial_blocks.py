"""Stability and conditioning of the first PDE block of freshly initialised digits networks.

    python studies/initial_blocks.py --out studies/results/initial_blocks.json

Input: the first scikit-learn digits test image (per-image standardised), fed through the opening
layer. For each architecture: the spectrum of the block's layer Jacobian along its 3 steps over
the scheme's stability region (max |z|, max amplification per step). For the parabolic block
also: κ of the flow map from the bounded Lanczos (a lower bound when σ_min does not converge)
against the dense SVD (1,024 unknowns: small enough to form).
"""

import argparse
import copy
import os
import sys

import numpy as np
import torch

import pdenet_analysis as pa
from pdenet_analysis.analysis import JacobianOperator, extreme_singular_values, spectrum_along_trajectory
from pdenet_analysis.analysis.model import block_inputs
from pdenet_analysis.data import load_dataset, standardize

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
from _provenance import provenance, save  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="studies/results/initial_blocks.json")
    args = ap.parse_args()
    prov = provenance()
    x = standardize(load_dataset("digits").x_test[:1]).double()
    results = {}
    for arch in ("parabolic", "hamiltonian", "second_order", "resnet"):
        torch.manual_seed(args.seed)
        model = pa.build_preset(f"digits-{arch}").double()
        block = model.blocks[0]
        xin = block_inputs(model, x)[0]
        rep = spectrum_along_trajectory(block.operator, xin, block.scheme, k=6)
        steps = rep.data["steps"]
        row = dict(scheme=block.scheme.name, h=rep.data["h"],
                   max_abs_z=[float(np.max(np.abs(s["z"]))) for s in steps],
                   max_amplification=[s["max_amplification"] for s in steps],
                   fraction_outside=[s["fraction_outside"] for s in steps],
                   status=[s["status"] for s in steps])
        if arch == "parabolic":
            op = copy.deepcopy(block.operator)
            J = JacobianOperator(lambda y: pa.integrate(op, y, block.scheme, check_finite=False).y, xin)
            sv = extreme_singular_values(J, backend="scipy")
            s = np.linalg.svd(J.dense().numpy(), compute_uv=False)
            row.update(kappa_lanczos=sv["condition"], kappa_is_lower_bound=sv["condition_is_lower_bound"],
                       kappa_dense=float(s.max() / s.min()), sigma_min_dense=float(s.min()),
                       sigma_min_lanczos=sv["sigma_min"][0])
        results[arch] = row
        print(arch, {k: v for k, v in row.items() if k != "status"})
    save(args.out, dict(provenance=prov, seed=args.seed, results=results))


if __name__ == "__main__":
    main()
