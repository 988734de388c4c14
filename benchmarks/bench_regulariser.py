"""The regulariser R (eq. 13) and the box constraint: kernels and time, fused against per parameter.

    python benchmarks/bench_regulariser.py [--device cpu|cuda] [--repeats 51]

For the four CIFAR-10 presets, R's forward and backward pass (and the box constraint) as the
trainer runs them (``pdenet_analysis.training.regulariser``: foreach operations and a closed-form
gradient) against the same R written one expression per parameter and differentiated by autograd
(``regulariser_per_parameter``), in the same process:

* operations dispatched: the top-level ``aten::`` calls in the profiler, on the CPU. On a GPU
  each is (at least) one kernel launch, and the paper's small networks are bound by launches; a
  foreach operation is one call for all parameters (a few launches on a GPU, a loop on the CPU);
* beside them, the operations of the network's own forward and backward pass on a batch of 2
  (``ops_network``), what R is added to in a training step;
* the value of R from both, which must agree to round-off;
* time of R's forward + backward (interleaved medians).

Results: ``benchmarks/results/regulariser_<device>.json``.
"""

import argparse

import torch

import pdenet_analysis as pa
from pdenet_analysis.operators.layers import TimeDependentLayer
from pdenet_analysis.training import TrainConfig, apply_box_constraint, regulariser, regulariser_per_parameter

from pdenet_analysis.benchmarking import breakdown
from pdenet_analysis.benchmarking import interleaved_medians, provenance, result_path, save


def dispatched(fn) -> int:
    """Top-level aten operations that ``fn()`` dispatches (autograd's backward included), counted on the CPU."""
    return breakdown(fn, torch.device("cpu"))["ops_dispatched"]


def box_per_kernel(model, box: float) -> None:
    """The box constraint one kernel at a time (the baseline of :func:`apply_box_constraint`)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, TimeDependentLayer):
                for k in m.kernels():
                    k.clamp_(-box, box)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--repeats", type=int, default=51)
    ap.add_argument("--archs", nargs="+", default=["parabolic", "hamiltonian", "second_order", "resnet"])
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    dev = torch.device(args.device)
    cfg = TrainConfig()
    rows = []
    for arch in args.archs:
        torch.manual_seed(0)
        model = pa.build_preset(f"cifar10-{arch}").to(dev)
        params = [p for p in model.parameters()]

        def fused():
            torch.autograd.grad(regulariser(model, cfg), params, allow_unused=True)

        x = torch.randn(2, 3, 32, 32, device=dev)

        def network():
            torch.autograd.grad(model(x).square().sum(), params, allow_unused=True)

        def per_parameter():
            torch.autograd.grad(regulariser_per_parameter(model, cfg), params, allow_unused=True)

        t_fused, t_per, t_box, t_box_per = interleaved_medians(
            [fused, per_parameter, lambda: apply_box_constraint(model, 1.0), lambda: box_per_kernel(model, 1.0)],
            args.repeats, dev)
        row = dict(model=f"cifar10-{arch}", parameters=len(params),
                   ops_fused=dispatched(fused), ops_per_parameter=dispatched(per_parameter), ops_network=dispatched(network),
                   ops_box=dispatched(lambda: apply_box_constraint(model, 1.0)),
                   ops_box_per_kernel=dispatched(lambda: box_per_kernel(model, 1.0)),
                   value_fused=float(regulariser(model, cfg).detach()),
                   value_per_parameter=float(regulariser_per_parameter(model, cfg).detach()),
                   seconds_fused=t_fused, seconds_per_parameter=t_per, seconds_box=t_box, seconds_box_per_kernel=t_box_per,
                   time_fused_over_per_parameter=t_fused / t_per)
        rows.append(row)
        print(f"{row['model']:22s} R fwd+bwd: {row['ops_fused']:4d} ops against {row['ops_per_parameter']:4d}, "
              f"{t_fused * 1e3:.2f} against {t_per * 1e3:.2f} ms; box: {row['ops_box']} ops against "
              f"{row['ops_box_per_kernel']}; R {row['value_fused']:.9g} / {row['value_per_parameter']:.9g}", flush=True)
        save(args.out or result_path("regulariser", dev), dict(provenance=provenance(device=dev), results=rows))


if __name__ == "__main__":
    main()
