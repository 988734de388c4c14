"""The reversible gradient against revlib on the identical computation, and against its expected cost.

    python benchmarks/bench_reversible_peers.py [--device cpu|cuda] [--depths 4 16 64] [--repeats 15]

revlib (Lucas Nestler, https://github.com/HomebrewNLP/revlib; ``pip install -e ".[peers]"``) is the
reference implementation of additive-coupling reversible networks in PyTorch. Its
``ReversibleSequential`` alternates two streams, x₀ ← x₀ + m(x₁), which is exactly one update of
a partitioned scheme, so both of this project's reversible schemes can be written in it with the
same operator and the same weights:

* Hamiltonian block, symplectic Euler (paper eq. 10): modules F₀, G₀, F₁, G₁, … with
  F_j(z) = h·f(t_j, z) and G_j(y) = h·g(t_j, y) on the channel halves (Y, Z);
* second-order block, leapfrog (eq. 11) in its velocity form, V_{j+½} = V_{j−½} + hF(t_j, Y_j),
  Y_{j+1} = Y_j + hV_{j+½} with V_{j+½} = (Y_{j+1} − Y_j)/h: the same evaluations of F, as two
  additive couplings per step (the second, Y += hV, is free of F). revlib's custom couplings are
  not used: its autograd-function mode carries the gradient of the passed-through stream with the
  coupling's own formula, which is right only for the additive one (measured: a relative gradient
  error of 0.28 for the coupling Y_{j+1} = 2Y_j + h²F(Y_j) − Y_{j−1}).

Our blocks run without their NaN check (``check_finite=False``: a host read per call, which
revlib does not make and the trainer switches off on CUDA). For each, one forward + backward of
the loss mean(y²) is timed (median of interleaved runs) for
``backprop`` (autograd stores every stage), ``reversible`` (this project), ``reversible
keep_last=1`` (the last step's graph kept, memory of one step) and ``revlib``
(``MemoryModes.autograd_function``, its default and lowest-memory mode); every gradient is
compared with backprop's. Beside them, the **expected cost** (the JSON's ``bound``): a reversible
gradient runs the forward pass once without a graph and then, in the backward pass, one
differentiated evaluation per forward evaluation, so it costs about backprop + one no-grad
forward pass; ``bound`` is that sum over backprop's time, measured in the same process. It is
an estimate, not a strict bound: on the CPU the allocator's page faults weigh on backprop's larger
memory too, and two medium-size ratios came out below it.

``--profile`` adds, for the deepest block of each size, the profiler's breakdown of one call of
each method (``pdenet_analysis.benchmarking.breakdown``): kernels and their summed device time against the wall time,
operations dispatched, host synchronisations and the costliest operations. On a GPU this says
whether the reversible gradient's excess over the expected cost is device work or the host's
issuing of it.

**Recorded as a CUDA graph** (on CUDA, the JSON's ``cuda_graph``): on a GPU these blocks are
launch-bound (the H200 profile: the device is busy a quarter of the reversible gradient's wall
time), so the host's cost of issuing the reversible backward pass — an autograd call per
evaluation — weighs more than its arithmetic. The trainer removes that cost by recording the
whole step as a CUDA graph (``training/cuda_graph.py``); here each of backprop, reversible and
``keep_last=1`` is recorded the same way (forward, loss, backward, parameter gradients
only) and replayed, and the parameter gradients of one replay are compared with eager
backprop's. The ratio under recording is the one a training run with ``--cuda-graph`` pays.
revlib is left out of the recording: a
recording that fails can leave the device unusable for the rows after it, and revlib's place is
the eager comparison. ``--recorded eager`` runs the same code with an eager stand-in for the recording (no CUDA needed:
the campaign's dry run uses it to exercise this path on the CPU; its times are eager times).

Two sizes: on the CPU the issue's small configuration (16 channels, 16×16, batch 4, depths 4,
16, 64: per-call overhead dominates) and a medium one (32 channels, 32×32, batch 16: arithmetic
dominates) at depth 3 (the paper's blocks) and 16; on CUDA 32 channels, batch 64 at the same
depths and 64 channels, batch 128 at depths 3 and 16 (32×32 images).
"""

import argparse

import torch
from torch import nn

from pdenet_analysis.gradients import Reversible
from pdenet_analysis.networks import PDEBlock
from pdenet_analysis.schemes.base import stage_time

from pdenet_analysis.benchmarking import breakdown
from pdenet_analysis.benchmarking import interleaved_medians, provenance, result_path, save
from bench_memory import deep_operator

SCHEME = {"hamiltonian": "symplectic_euler", "second_order": "leapfrog"}
KEEP1 = "reversible keep_last=1"


class _Part(nn.Module):
    """One revlib module: x ↦ scale·P(t_j, x), P a part of the operator at step j."""

    def __init__(self, fn, s, scale: float):
        super().__init__()
        self.fn, self.s, self.scale = fn, s, scale

    def forward(self, x):
        return self.fn(self.s, x) * self.scale


def _identity(s, x):
    return x


def revlib_block(op, arch: str, depth: int):
    """The same integration as ``PDEBlock(op, SCHEME[arch], n_steps=depth)`` in revlib."""
    import revlib

    h = 1.0  # T = depth, n_steps = depth
    if arch == "hamiltonian":
        mods = []
        for j in range(depth):
            s = stage_time(j * h, 0.0, h)
            mods += [_Part(op.part_f, s, h), _Part(op.part_g, s, h)]
        seq = revlib.ReversibleSequential(*mods, split_dim=1)
        return lambda x: seq(x)
    mods = []
    for j in range(depth):
        mods += [_Part(op.acceleration, stage_time(j * h, 0.0, h), h), _Part(_identity, None, h)]
    seq = revlib.ReversibleSequential(*mods, split_dim=1)

    def run(x):  # streams (V_{−½}, Y₀) = (0, Y₀): the paper's start Y_{−1} = Y₀
        return seq(torch.cat([torch.zeros_like(x), x], dim=1))[:, x.shape[1]:]

    return run


def measure(arch: str, depth: int, channels: int, size: int, batch: int, dev, repeats: int,
            profiled: bool = False, recorder=None) -> dict:
    op = deep_operator(arch, depth, channels, dev)
    # without the blocks' NaN check (a host read per call, which revlib does not make and the
    # trainer switches off on CUDA): the identical computation
    blocks = {g: PDEBlock(op, SCHEME[arch], n_steps=depth, gradient=g, check_finite=False)
              for g in ("backprop", "reversible")}
    blocks[KEEP1] = PDEBlock(op, SCHEME[arch], n_steps=depth, gradient=Reversible(keep_last=1), check_finite=False)
    blocks["revlib"] = revlib_block(op, arch, depth)
    x = torch.randn(batch, channels, size, size, device=dev, requires_grad=True)

    def step(fn):
        def run():
            op.zero_grad(set_to_none=True)
            x.grad = None
            y = fn(x)
            (y * y).mean().backward()
            return y
        return run

    def forward_no_grad():
        with torch.no_grad():
            blocks["backprop"](x)

    grads, outs = {}, {}
    for name, fn in blocks.items():
        outs[name] = step(fn)().detach()
        grads[name] = torch.cat([p.grad.flatten() for p in op.parameters()] + [x.grad.flatten()])
    names = list(blocks)
    seconds = dict(zip(names + ["forward_no_grad"],
                       interleaved_medians([step(blocks[n]) for n in names] + [forward_no_grad], repeats, dev)))
    ref, bp = grads["backprop"], seconds["backprop"]
    row = dict(arch=arch, scheme=SCHEME[arch], depth=depth, channels=channels, size=size, batch=batch,
               seconds=seconds, repeats=repeats,
               time_over_backprop={n: seconds[n] / bp for n in ("reversible", KEEP1, "revlib")},
               reversible_over_revlib=seconds["reversible"] / seconds["revlib"],
               bound=(bp + seconds["forward_no_grad"]) / bp,
               output_rel_diff={n: float((outs[n] - outs["backprop"]).norm() / outs["backprop"].norm())
                                for n in ("reversible", KEEP1, "revlib")},
               grad_rel_diff_vs_backprop={n: float((grads[n] - ref).norm() / ref.norm())
                                          for n in ("reversible", KEEP1, "revlib")})
    if recorder is not None:
        ours = {n: b for n, b in blocks.items() if n != "revlib"}
        row["cuda_graph"] = recorded(ours, op, x.detach(), recorder, repeats, dev,
                                     ref=ref[:ref.numel() - x.numel()])
    if profiled:
        fns = {n: step(blocks[n]) for n in ("backprop", "reversible", "revlib")}
        fns["forward_no_grad"] = forward_no_grad
        row["profile"] = {}
        for name, fn in fns.items():
            try:
                row["profile"][name] = breakdown(fn, dev)
            except Exception as e:  # a profiler that fails on this machine costs the breakdown, not the timings
                row["profile"][name] = dict(error=f"{type(e).__name__}: {e}")
    return row


class EagerStep:
    """The interface of :class:`~pdenet_analysis.training.cuda_graph.CapturedStep` without the
    recording: ``step`` runs eagerly at every call (``--recorded eager``, the CPU dry run)."""

    def __init__(self, step, x, y):
        self.step = step

    def __call__(self, x, y):
        return self.step(x, y)


def _cuda_graph_recorder():
    from pdenet_analysis.training.cuda_graph import CapturedStep, warm_step

    def record(step, x, y):
        for _ in range(3):  # lazy initialisation and cuDNN's search happen before the recording
            warm_step(step, x, y)
        return CapturedStep(step, x, y)

    return record


def recorded(blocks: dict, op, x: torch.Tensor, recorder, repeats: int, dev, ref: torch.Tensor) -> dict:
    """Each method's forward + backward (parameter gradients; ``x`` is data, as in training)
    recorded with ``recorder(step, x, y)`` and replayed: median seconds, ratios to recorded
    backprop, and the parameter gradients of one replay against ``ref`` (eager backprop's). A
    method that fails to record gives its error instead of a time."""
    params = list(op.parameters())
    no_target = torch.zeros(1, device=dev)
    runs, out = {}, dict(seconds={}, grad_rel_diff_vs_backprop={}, errors={})
    for name, fn in blocks.items():
        def step(xb, _y, fn=fn):
            for p in params:
                p.grad = None  # the recorded backward writes the gradients, not adds to stale ones
            y = fn(xb)
            loss = (y * y).mean()
            loss.backward()
            return (loss.detach(),)
        try:
            replay = recorder(step, x, no_target)
            replay(x, no_target)
            got = torch.cat([p.grad.flatten() for p in params])  # read before the next recording
        except Exception as e:  # one method that cannot be recorded costs its row, not the others'
            out["errors"][name] = f"{type(e).__name__}: {e}"
            continue
        out["grad_rel_diff_vs_backprop"][name] = float((got - ref).norm() / ref.norm())
        runs[name] = (lambda replay=replay: replay(x, no_target))
    out["seconds"] = dict(zip(runs, interleaved_medians(list(runs.values()), repeats, dev)))
    if "backprop" in out["seconds"]:
        bp = out["seconds"]["backprop"]
        out["time_over_backprop"] = {n: t / bp for n, t in out["seconds"].items() if n != "backprop"}
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--depths", type=int, nargs="+", default=[4, 16, 64], help="depths of the small configuration")
    ap.add_argument("--repeats", type=int, default=15, help="timed runs per method (median reported)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--quick", action="store_true", help="4 channels, 8 × 8, batch 2 at --depths only (a smoke run)")
    ap.add_argument("--profile", action="store_true",
                    help="also the profiler's breakdown of one call of each method at the deepest block of each size")
    ap.add_argument("--recorded", choices=["auto", "cuda-graph", "eager", "none"], default="auto",
                    help="also time each method recorded as a CUDA graph (auto: on CUDA only; eager: the "
                         "same code path without recording, for a CPU dry run)")
    args = ap.parse_args()
    try:
        import revlib  # noqa: F401
    except ImportError:
        raise SystemExit("bench_reversible_peers needs revlib: pip install -e \".[peers]\" (or pip install revlib)")
    dev = torch.device(args.device)
    mode = args.recorded if args.recorded != "auto" else ("cuda-graph" if dev.type == "cuda" else "none")
    if mode == "cuda-graph" and dev.type != "cuda":
        raise SystemExit("--recorded cuda-graph records CUDA graphs and needs --device cuda; use --recorded eager "
                         "to run the same code on the CPU")
    recorder = {"cuda-graph": _cuda_graph_recorder, "eager": lambda: EagerStep, "none": lambda: None}[mode]()
    if args.quick:
        configs = [(d, 4, 8, 2) for d in args.depths]
    elif dev.type == "cuda":  # the CPU's small sizes would time kernel launches only
        configs = [(d, 32, 32, 64) for d in args.depths] + [(3, 64, 32, 128), (16, 64, 32, 128)]
    else:
        configs = [(d, 16, 16, 4) for d in args.depths] + [(3, 32, 32, 16), (16, 32, 32, 16)]
    out = args.out or result_path("reversible_peers", dev)
    rows = []
    deepest = {}  # the deepest block of each size, the one profiled
    for depth, channels, size, batch in configs:
        deepest[channels, size, batch] = max(depth, deepest.get((channels, size, batch), 0))
    for arch in ("hamiltonian", "second_order"):
        for depth, channels, size, batch in configs:
            profiled = args.profile and depth == deepest[channels, size, batch]
            row = measure(arch, depth, channels, size, batch, dev, args.repeats, profiled, recorder)
            rows.append(row)
            print(f"{arch:12s} depth {depth:3d} {channels}ch {size}px batch {batch:2d}: "
                  f"reversible {row['time_over_backprop']['reversible']:.3f}x backprop "
                  f"(keep_last=1: {row['time_over_backprop'][KEEP1]:.3f}x), "
                  f"revlib {row['time_over_backprop']['revlib']:.3f}x, expected {row['bound']:.3f}x; "
                  f"reversible/revlib {row['reversible_over_revlib']:.3f}; grad diff "
                  f"{row['grad_rel_diff_vs_backprop']['reversible']:.1e} / {row['grad_rel_diff_vs_backprop']['revlib']:.1e}",
                  flush=True)
            if "cuda_graph" in row:
                g = row["cuda_graph"]
                ratios = ", ".join(f"{n} {r:.3f}x" for n, r in g.get("time_over_backprop", {}).items())
                fails = "".join(f"; {n} not recorded ({e})" for n, e in g["errors"].items())
                print(f"    recorded ({mode}): {ratios or 'no ratio'} backprop{fails}", flush=True)
            for name, p in row.get("profile", {}).items():
                if "error" in p:
                    print(f"    profile {name}: failed ({p['error']})", flush=True)
                    continue
                busy = f", device busy {p['device_busy_fraction']:.2f} ({p['kernels']} kernels)" if "kernels" in p else ""
                print(f"    profile {name:16s} {1e3 * p['wall_s']:8.2f} ms, {p['ops_dispatched']} ops dispatched, "
                      f"{p['host_syncs']} host syncs{busy}", flush=True)
            save(out, dict(provenance={**provenance(device=dev), "revlib": _revlib_version()}, results=rows))


def _revlib_version() -> str:
    from importlib.metadata import version
    return version("revlib")


if __name__ == "__main__":
    main()
