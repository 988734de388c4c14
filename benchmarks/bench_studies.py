"""Overhead of the study runner and the speed-up of parallel points.

    python benchmarks/bench_studies.py [--points 16] [--work 3.0]

A synthetic study whose every point does a fixed amount of torch work (``--work`` seconds on one
thread, a dense matrix product loop). Measured in one process:

* ``direct``: calling ``run`` on every configuration in a loop (the baseline);
* ``runner --jobs 1``: :func:`run_study` with an empty cache (hashing, provenance, atomic point
  files, aggregation) — the overhead per point is (runner − direct)/points;
* ``runner --jobs 2``: two spawned worker processes of one torch thread each;
* ``cached``: a second runner call that finds every point done.

The issue's goals: no measurable overhead per point, and ≥ 1.6× the points/s with 2 jobs on 2 cores.
"""

import argparse
import os
import shutil
import tempfile
import time

import torch

from pdenet_analysis.benchmarking import provenance, result_path, save
from pdenet_analysis.studies import Study, run_study

WORK = {"seconds": 0.25}


def busy(config: dict) -> dict:
    """A fixed amount of single-threaded work: products of 256×256 matrices for about ``work`` s."""
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(config["i"])
    a = torch.randn(256, 256, generator=g)
    for _ in range(config["reps"]):
        a = torch.tanh(a @ a / 16)
    return {"i": config["i"], "trace": float(a.trace())}


def _calibrate(seconds: float) -> int:
    torch.set_num_threads(1)
    busy(dict(i=0, reps=20))  # warm-up
    t0 = time.perf_counter()
    busy(dict(i=0, reps=200))
    per = (time.perf_counter() - t0) / 200
    return max(1, int(seconds / per))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=16)
    ap.add_argument("--work", type=float, default=3.0, help="seconds of work per point")
    args = ap.parse_args()
    prov = provenance()
    reps = _calibrate(args.work)
    study = Study(name="bench", title="bench", question="-", run=busy, aggregate=lambda p, o, q: "",
                  grid=lambda quick: [dict(i=i, reps=reps) for i in range(args.points)])
    configs = [dict(c, device="cpu") for c in study.grid(False)]
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    for c in configs:
        busy(c)
    direct = time.perf_counter() - t0
    out = {}
    for jobs in (1, 2):
        d = tempfile.mkdtemp()
        try:
            t0 = time.perf_counter()
            run_study(study, d, jobs=jobs, quiet=True)
            out[jobs] = time.perf_counter() - t0
            if jobs == 1:
                t0 = time.perf_counter()
                run_study(study, d, quiet=True)
                cached = time.perf_counter() - t0
        finally:
            shutil.rmtree(d)
    res = dict(points=args.points, work_per_point_s=direct / args.points, direct_s=direct, runner_jobs1_s=out[1],
               runner_jobs2_s=out[2], cached_s=cached,
               overhead_per_point_ms=1e3 * (out[1] - direct) / args.points,
               overhead_fraction=out[1] / direct - 1, speedup_jobs2=out[1] / out[2], cpu_count=os.cpu_count())
    for k, v in res.items():
        print(f"{k:24s} {v:.4g}" if isinstance(v, float) else f"{k:24s} {v}")
    save(result_path("studies", "cpu"), dict(provenance=prov, results=res))


if __name__ == "__main__":
    main()
