"""Exact counts of unstable step-map modes at the paper's sizes from the schemes' reduced forms
(``Scheme.reduced_step_form`` through the active hidden units): symplectic Euler on the
Hamiltonian preset, against the dense step map where that is affordable, and forward Euler on
the parabolic preset, against ARPACK.

    python benchmarks/bench_stepmap_exact.py [--no-first-unit] [--parts ranking,hamiltonian,parabolic]

The CIFAR-10 Hamiltonian preset at random initialisation, one standard-normal image:

* at 12 × 12 pixels (4,608 unknowns in the first unit): the dense eigenvalues of S_0 against the
  half-size route — time and equal counts;
* at 32 × 32, every unit: unit 3 (7,168 unknowns, all 3 steps), unit 2 (16,384, step 0) and, unless
  ``--no-first-unit``, unit 1 (32,768, step 0).

The half-size matrix M is reduced further to the r × r matrix through the hidden units the ReLU
keeps on (``active_unit_form``): ``dense_rows`` is r, the size of the eigenvalue problem solved.
For each: unknowns, rows of the half-size matrix, seconds, ρ(S_j), the number of modes with
|ξ| > 1 + 10⁻⁶, and how many of them lie within 1.01 and 1.001 of the circle (why a Krylov
method cannot count them one by one).

``parabolic``: forward Euler on the CIFAR-10 parabolic preset, units 3 and 2 at step 0, exactly
through S = I + hM and by ARPACK's doubling search on the same step map.

``ranking``: 32 standard-normal images (as ``pdenet-analysis analyze --examples 32``), every
one counted exactly at every step of unit 3, against the 40-step batched Arnoldi estimate that
``analyze`` ranks examples by when it counts only some: Spearman's rank correlation, the exact
worst example, and where the estimate's pick stands among the exact radii. Results: ``benchmarks/results/stepmap_exact_cpu.json``
(``provenance_by_part`` says which run, commit and date gave each part).
"""

import argparse
import json
import os
import time

import numpy as np
import torch

import pdenet_analysis as pa
from pdenet_analysis import analysis as A
from pdenet_analysis.analysis.model import block_inputs
from pdenet_analysis.analysis.krylov import batched_arnoldi
from pdenet_analysis.analysis.stepmap import _dense_count, _example_step_operator, count_outside, reduced_count

from pdenet_analysis.benchmarking import provenance, result_path, save


def inputs(size, seed=0, batch=1):
    torch.manual_seed(seed)
    model = pa.build_preset("cifar10-hamiltonian").double()
    x = torch.randn(batch, 3, size, size, dtype=torch.float64)
    return model, block_inputs(model, x)


def _ranks(x):
    return np.argsort(np.argsort(-np.asarray(x)))


def ranking(unit=2, batch=32, estimate_steps=40):
    """Every example of a batch counted exactly at every step of ``unit``, against the batched
    Arnoldi estimate that ``step_map_spectra(count_examples=c)`` ranks examples by: does the
    estimate pick the worst example?"""
    model, ys = inputs(32, batch=batch)
    disc = A.discretise(model.blocks[unit].operator, ys[unit], model.blocks[unit].scheme)
    rows = []
    for j in range(disc.n_steps):
        t, h, point = disc.steps[j]
        t0 = time.perf_counter()
        ritz = batched_arnoldi(_example_step_operator(disc, j, list(range(batch))), m=estimate_steps)
        est_sec = time.perf_counter() - t0
        estimate = [float(np.abs(ritz.values[b][0])) for b in range(batch)]
        t0 = time.perf_counter()
        exact_rho = [reduced_count(disc.step_scheme, disc.operator, tuple(c[b : b + 1] for c in point), t, h,
                                   1 + 1e-6)["radius"] for b in range(batch)]
        sec = time.perf_counter() - t0
        pick, worst = int(np.argmax(estimate)), int(np.argmax(exact_rho))
        rank_corr = float(np.corrcoef(_ranks(estimate), _ranks(exact_rho))[0, 1])  # Spearman's ρ
        row = dict(unit=unit + 1, step=j, examples=batch, estimate_steps=estimate_steps, estimate_seconds=est_sec,
                   exact_seconds_all_examples=sec, exact_radius=exact_rho, estimated_radius=estimate,
                   exact_worst_example=worst, exact_worst_radius=exact_rho[worst], estimate_pick=pick,
                   estimate_pick_exact_radius=exact_rho[pick], estimate_pick_exact_rank=int(_ranks(exact_rho)[pick]) + 1,
                   spearman=rank_corr)
        print({k: v for k, v in row.items() if not isinstance(v, list)}, flush=True)
        rows.append(row)
    return rows


def exact(block, y, j):
    disc = A.discretise(block.operator, y, block.scheme)
    t, h, point = disc.steps[j]
    t0 = time.perf_counter()
    r = reduced_count(disc.step_scheme, disc.operator, point, t, h, 1 + 1e-6)
    sec = time.perf_counter() - t0
    mod = np.abs(r["outside"])
    row = dict(unknowns=2 * point[0].numel(), half_size_rows=point[0].numel(), dense_rows=r["rows"], products=r["n_matvecs"], method=r["method"],
               step=j, seconds=sec, radius=r["radius"],
               modes_outside=r["count"], fraction_outside=r["count"] / (2 * point[0].numel()),
               outside_within_1_01=int((mod <= 1.01).sum()), outside_within_1_001=int((mod <= 1.001).sum()))
    print(row, flush=True)
    return row, disc


def parabolic(units=(2, 1)):
    """Forward Euler on the CIFAR-10 parabolic preset, one image, step 0 of ``units``: the exact
    count from S = I + hM through the active hidden units, against ARPACK's doubling search
    (``count_outside``) on the same step map."""
    torch.manual_seed(0)
    model = pa.build_preset("cifar10-parabolic").double()
    ys = block_inputs(model, torch.randn(1, 3, 32, 32, dtype=torch.float64))
    rows = []
    for unit in units:
        disc = A.discretise(model.blocks[unit].operator, ys[unit], model.blocks[unit].scheme)
        t, h, point = disc.steps[0]
        t0 = time.perf_counter()
        r = reduced_count(disc.step_scheme, disc.operator, point, t, h, 1 + 1e-6)
        sec = time.perf_counter() - t0
        t0 = time.perf_counter()
        a = count_outside(_example_step_operator(disc, 0, 0), 1 + 1e-6)
        row = dict(unit=unit + 1, unknowns=point[0].numel(), method=r["method"], seconds=sec, radius=r["radius"],
                   modes_outside=r["count"], arpack_seconds=time.perf_counter() - t0, arpack_radius=a["radius"],
                   arpack_status=a["status"], arpack_modes_outside=a["count"], arpack_count_complete=a["exact"],
                   arpack_products=a["n_matvecs"])
        print(row, flush=True)
        rows.append(row)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-first-unit", action="store_true", help="skip the 32,768-unknown unit")
    ap.add_argument("--parts", default="ranking,hamiltonian,parabolic",
                    help="comma-separated: ranking, hamiltonian, parabolic (the others in the file are kept)")
    ap.add_argument("--out", default=result_path("stepmap_exact", "cpu"))
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    res = dict(small=None, paper_size=[], ranking=None, parabolic=None)
    if os.path.exists(args.out):
        with open(args.out) as f:
            res.update(json.load(f))
    res["provenance"] = provenance()
    by_part = res.setdefault("provenance_by_part", {})  # the parts kept from earlier runs keep theirs
    for part in parts:
        by_part[part] = res["provenance"]
    if "ranking" in parts:
        res["ranking"] = ranking()
        save(args.out, res)
    if "parabolic" in parts:
        res["parabolic"] = parabolic()
        save(args.out, res)
    if "hamiltonian" not in parts:
        return
    model, ys = inputs(12)
    exact(model.blocks[0], ys[0], 0)  # warm-up: the process's first products and eig carry start-up costs
    row, disc = exact(model.blocks[0], ys[0], 0)
    t0 = time.perf_counter()
    d = _dense_count(disc.step_jacobian(0).dense()[0].numpy(), 1 + 1e-6)
    row.update(dense_seconds=time.perf_counter() - t0, dense_radius=d["radius"], dense_modes_outside=d["count"])
    print("dense", row, flush=True)
    res["small"] = row
    res["paper_size"] = []
    model, ys = inputs(32)
    plan = [(2, j) for j in range(3)] + [(1, 0)] + ([] if args.no_first_unit else [(0, 0)])
    for unit, j in plan:
        r, _ = exact(model.blocks[unit], ys[unit], j)
        res["paper_size"].append(dict(unit=unit + 1, **r))
        save(args.out, res)  # what is finished is kept if the run is cut short


if __name__ == "__main__":
    main()
