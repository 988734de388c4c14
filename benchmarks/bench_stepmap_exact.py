"""Exact counts of unstable step-map modes for symplectic Euler at the paper's sizes, from the
half-size form (``Scheme.quadratic_reduction``), against the dense step map where that is
affordable.

    python benchmarks/bench_stepmap_exact.py [--no-first-unit]

The CIFAR-10 Hamiltonian preset at random initialisation, one standard-normal image:

* at 12 × 12 pixels (4,608 unknowns in the first unit): the dense eigenvalues of S_0 against the
  half-size route — time and equal counts;
* at 32 × 32, every unit: unit 3 (7,168 unknowns, all 3 steps), unit 2 (16,384, step 0) and, unless
  ``--no-first-unit``, unit 1 (32,768, step 0: about 13 minutes on 2 cores).

For each: unknowns, rows of the half-size matrix, seconds, ρ(S_j), the number of modes with
|ξ| > 1 + 10⁻⁶, and how many of them lie within 1.01 and 1.001 of the circle (why a Krylov
method cannot count them one by one). Results: ``benchmarks/results/stepmap_exact_cpu.json``.
"""

import argparse
import time

import numpy as np
import torch

import pdenet_analysis as pa
from pdenet_analysis import analysis as A
from pdenet_analysis.analysis.model import block_inputs
from pdenet_analysis.analysis.stepmap import _dense_count, reduced_count

from _provenance import provenance, result_path, save


def inputs(size, seed=0):
    torch.manual_seed(seed)
    model = pa.build_preset("cifar10-hamiltonian").double()
    x = torch.randn(1, 3, size, size, dtype=torch.float64)
    return model, block_inputs(model, x)


def exact(block, y, j):
    disc = A.discretise(block.operator, y, block.scheme)
    t, h, point = disc.steps[j]
    t0 = time.perf_counter()
    r = reduced_count(disc.step_scheme, disc.operator, point, t, h, 1 + 1e-6)
    sec = time.perf_counter() - t0
    mod = np.abs(r["outside"])
    row = dict(unknowns=2 * point[0].numel(), half_size_rows=point[0].numel(), step=j, seconds=sec, radius=r["radius"],
               modes_outside=r["count"], fraction_outside=r["count"] / (2 * point[0].numel()),
               outside_within_1_01=int((mod <= 1.01).sum()), outside_within_1_001=int((mod <= 1.001).sum()))
    print(row, flush=True)
    return row, disc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-first-unit", action="store_true", help="skip the 32,768-unknown unit (15 min on 2 cores)")
    ap.add_argument("--out", default=result_path("stepmap_exact_cpu.json"))
    args = ap.parse_args()
    res = dict(provenance=provenance(), small=None, paper_size=[])
    model, ys = inputs(12)
    row, disc = exact(model.blocks[0], ys[0], 0)
    t0 = time.perf_counter()
    d = _dense_count(disc.step_jacobian(0).dense()[0].numpy(), 1 + 1e-6)
    row.update(dense_seconds=time.perf_counter() - t0, dense_radius=d["radius"], dense_modes_outside=d["count"])
    print("dense", row, flush=True)
    res["small"] = row
    model, ys = inputs(32)
    plan = [(2, j) for j in range(3)] + [(1, 0)] + ([] if args.no_first_unit else [(0, 0)])
    for unit, j in plan:
        r, _ = exact(model.blocks[unit], ys[unit], j)
        res["paper_size"].append(dict(unit=unit + 1, **r))
        save(args.out, res)  # what is finished is kept if the run is cut short


if __name__ == "__main__":
    main()
