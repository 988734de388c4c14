"""What the reversible and adjoint gradients' safety checks cost.

    python benchmarks/bench_guards.py [--device cpu|cuda] [--repeats 201] [--out PATH]

Three checks run on every call of a block with a gradient that evaluates the operator again
(``pdenet_analysis.replay`` and ``gradients.autograd.require_no_outside_leaves``):

* the replay guard around the forward pass: dropout modules in training mode refused, the random
  generators' states and the operator's buffer versions compared before and after;
* batch norm's running statistics saved and put back around the backward pass (no batch norm in
  the paper's operators: the save is of an empty list);
* one walk of the autograd graph of the newest rebuilt step (tensors requiring grad outside the
  operator's parameters); for the adjoint, one probe evaluation and its walk before the solve.

Each is timed as one forward + backward of the whole block, with the checks and with them
replaced by no-ops, interleaved in one process (median of ``--repeats``). The blocks are the
paper's Hamiltonian (symplectic Euler, 3 steps, reversible) and parabolic (dopri5 at rtol = atol =
10⁻³, adjoint; a tenth of the repeats: a solve takes ~0.1 s) operators at two sizes: tiny (4 channels, 4 × 4, batch 1: the per-call overhead shows fully) and the paper's
first-unit width at a small batch (32 channels, 32 × 32, batch 8).
"""

import argparse
import contextlib
import importlib

import torch

import pdenet_analysis as pa
from pdenet_analysis.networks import PDEBlock
from pdenet_analysis.gradients import autograd
from pdenet_analysis.schemes import adaptive

from pdenet_analysis.benchmarking import interleaved_medians, provenance, result_path, save

integrate_module = importlib.import_module("pdenet_analysis.integrate")

CASES = {
    "reversible": dict(arch="hamiltonian", scheme="symplectic_euler", gradient="reversible", n_steps=3),
    "adjoint": dict(arch="parabolic", scheme="dopri5", gradient="adjoint", n_steps=None, rtol=1e-3, atol=1e-3),
}
SIZES = {"tiny": (4, 4, 1), "paper width": (32, 32, 8)}


class _NoGuard:
    """The replay guard with every check a no-op."""

    def __init__(self, *args, **kwargs):
        pass

    def watch(self, device):
        return contextlib.nullcontext()

    def restoring(self):
        return contextlib.nullcontext()


@contextlib.contextmanager
def checks_off():
    """The three checks replaced by no-ops for the duration."""
    saved = (integrate_module.ReplayGuard, autograd.outside_leaves, adaptive.require_no_outside_leaves)
    integrate_module.ReplayGuard = _NoGuard
    autograd.outside_leaves = lambda outputs, known: []  # what the reversible gradient's check calls
    adaptive.require_no_outside_leaves = lambda outputs, known, method: None
    try:
        yield
    finally:
        integrate_module.ReplayGuard, autograd.outside_leaves, adaptive.require_no_outside_leaves = saved


def measure(case: str, size: str, dev: torch.device, repeats: int) -> dict:
    c = CASES[case]
    channels, pixels, batch = SIZES[size]
    torch.manual_seed(0)
    op = pa.operators.OPERATOR_FACTORIES[c["arch"]](channels, T=3.0, n_pieces=3).to(dev)
    kw = dict(rtol=c["rtol"], atol=c["atol"]) if c["n_steps"] is None else dict(n_steps=c["n_steps"])
    blk = PDEBlock(op, c["scheme"], gradient=c["gradient"], check_finite=False, **kw)
    x = torch.randn(batch, channels, pixels, pixels, device=dev)

    def run():
        op.zero_grad(set_to_none=True)
        blk(x).square().mean().backward()

    def run_without():
        with checks_off():
            run()

    if c["n_steps"] is None:
        repeats = max(5, repeats // 10)
    with_checks, without = interleaved_medians([run, run_without], repeats, dev)
    return dict(case=case, size=size, channels=channels, pixels=pixels, batch=batch, scheme=c["scheme"],
                gradient=c["gradient"], repeats=repeats, seconds_with_checks=with_checks, seconds_without=without,
                overhead_us=1e6 * (with_checks - without), ratio=with_checks / without)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--repeats", type=int, default=201)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    dev = torch.device(args.device)
    out = args.out or result_path("guards", dev)
    rows = []
    for case in CASES:
        for size in SIZES:
            row = measure(case, size, dev, args.repeats)
            rows.append(row)
            print(f"{case:10s} {size:11s}: {1e3 * row['seconds_with_checks']:8.3f} ms with the checks, "
                  f"{1e3 * row['seconds_without']:8.3f} ms without: {row['overhead_us']:+7.1f} µs "
                  f"({row['ratio']:.3f}x)", flush=True)
            save(out, dict(provenance=provenance(device=dev), results=rows))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
