"""κ of a parabolic block's flow map (forward Euler) by the two matrix-free routes for σ_min: exact
inverse step maps through the active units ("reduced-inverse", sparse LU at these sizes) and
per-step GMRES ("inverse-iteration"), side by side, at the paper's sizes.

    python benchmarks/bench_reduced_inverse.py [--presets stl10-parabolic cifar10-parabolic] [--device cpu]

Random weights of the Table 1 presets, one standard-normal image carried to the first block (as
``bench_analysis.py``). Records per route: seconds, σ_max, σ_min and their status, κ, and, where
σ_min is not certified, the upper bound ‖J u‖/‖u‖ at the inverse route's vector and, on the
reduced-inverse route, each step's certified σ_min(S_j) and ‖S_j‖ and the bracket they give
(σ_min ≥ Π_j σ_min(S_j) and σ_max ≤ Π_j ‖S_j‖, so κ ≤ Π_j ‖S_j‖ / Π_j σ_min(S_j)); and the
probable bracket (``condition_upper_probable``: each end fails with probability at most
``failure_probability`` over the random start vectors, whatever the spectrum; Kuczyński &
Woźniakowski 1992), with the iterations it rests on.
"""

import argparse
import time

import torch

from pdenet_analysis import analysis as A

from pdenet_analysis.benchmarking import provenance, result_path, save
from bench_analysis import block_input


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--presets", nargs="+", default=["stl10-parabolic"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--max-iter", type=int, default=150)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    dev = torch.device(args.device)
    out = args.out or result_path("reduced_inverse", dev)
    res = dict(provenance=provenance(device=dev), max_iter=args.max_iter, sizes=[])
    for preset in args.presets:
        block, x = block_input(preset, dev)
        entry = dict(preset=preset, unknowns=x[0].numel())
        res["sizes"].append(entry)
        for method in ("auto", "inverse-iteration"):
            t0 = time.perf_counter()
            rep = A.conditioning(block.operator, x, "euler", k=1, dense_max=0, max_iter=args.max_iter, method=method)
            e, d = rep.data["examples"][0], rep.data
            entry[method] = dict(seconds=time.perf_counter() - t0, method_min=d["method_min"], sigma_max=e["sigma_max"][0],
                                 sigma_max_status=e["sigma_max_status"], sigma_min=e["sigma_min"][0],
                                 sigma_min_status=e["sigma_min_status"], sigma_min_residual=e["sigma_min_residual"][0],
                                 condition=e["condition"], rayleigh_upper_bound=d.get("rayleigh_upper_bound"),
                                 reduced_rows_max=d.get("reduced_rows_max"), sigma_min_lower=e.get("sigma_min_lower"),
                                 sigma_max_upper=e.get("sigma_max_upper"), condition_upper=e.get("condition_upper"),
                                 stepwise=(d.get("stepwise") or [None])[0], method_max=d["method_max"],
                                 inverse_iterations=d.get("inverse_iterations"),
                                 failure_probability=d["failure_probability"],
                                 sigma_max_upper_probable=e["sigma_max_upper_probable"],
                                 sigma_min_lower_probable=e["sigma_min_lower_probable"],
                                 condition_upper_probable=e["condition_upper_probable"])
            print(preset, method, entry[method], flush=True)
            save(out, res)  # kept if the run is stopped


if __name__ == "__main__":
    main()
