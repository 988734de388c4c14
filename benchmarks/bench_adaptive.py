"""Adaptive solves against the fastest peer: time, evaluations and accuracy on the same field.

    python benchmarks/bench_adaptive.py [--device cpu|cuda] [--repeats 7]

The field is the paper's parabolic operator (16 channels, 32 × 32, a batch of 8 images, T = 3)
in float64 with tanh as σ, so that the right-hand side is smooth in Y and the error controllers,
not ReLU's kinks, decide the steps (with ReLU the tight reference solve alone ran for over 12
minutes). Two versions: θ constant in time, and θ piecewise constant over 3 pieces (the paper's
networks: the right-hand side jumps at t = 1 and 2). Every
solver gets the same rtol = atol and is measured for

* wall time (interleaved medians), right-hand-side evaluations (each evaluates the whole batch),
  accepted and rejected steps;
* the error at T against a reference (torchdiffeq dopri8 at rtol = atol = 1e-11 with its steps
  forced to end at the jumps): the largest per-example relative error ‖y − y_ref‖/‖y_ref‖, so
  that "as fast" is read at the accuracy each solver actually delivers;
* host reads of tensor values per solve (:class:`pdenet_analysis.testing.HostReads`), counted with
  the finiteness checks deferred and θ(t) looked up on the device, as on a GPU: each is a
  synchronisation that stalls a GPU's queue,
  and the count is the same on every device, so the CPU run shows what a GPU run would wait for;
* kernel launches per evaluation, counted in the same run (:class:`pdenet_analysis.testing.Launches`):
  what a GPU solve of a small field is bound by (the evaluation's own launches included).

Solvers: raw ``torchdiffeq.odeint`` (dopri5), ``pa.integrate`` with ``dopri5`` on both engines
(torchdiffeq, the default, and ``backend="torchode"``; both force steps to end at θ's jumps; the
torchode engine also timed with a GPU's settings, ``GPU_SETTINGS``: the finiteness check deferred
to one reduction per evaluation and θ looked up on the device, where on the CPU the check reads
each evaluation's sum on the host and the lookup reads t), and,
when torchode is installed, torchode's own dopri5 and tsit5 with its integral controller (the
same controller as torchdiffeq) and with its default PID coefficients, restarted at each jump of
θ (torchode has no jump times; the benchmark reads θ at the piece's midpoint, a Python float, so
its field does no lookup at all). Results: ``benchmarks/results/adaptive_<device>.json``.

A last case (``overhead_case``) solves a field of 2 channels on 4 × 4 images, batch 2, at
rtol = atol = 1e-8: its evaluations cost almost nothing, so the times compare what each solver
spends around them (Python, dispatch, small bookkeeping operations). That is the regime of the
paper's small networks on a GPU, where a solve is bound by launches, measured on any device.
"""

import argparse
import contextlib
import time

import torch
import torchdiffeq

import pdenet_analysis as pa
from pdenet_analysis.operators import timegrid
from pdenet_analysis.schemes import adaptive
from pdenet_analysis.testing import HostReads, Launches

from pdenet_analysis.benchmarking import interleaved_medians, provenance, result_path, save


class Counted(torch.nn.Module):
    """f(t, y) that counts its calls (one call evaluates the whole batch). With ``flat_shape`` it
    takes torchode's flattened (batch, features) state; ``t_piece`` then fixes the time at which θ
    is read (torchode passes one time per example, and the operator takes one time for the batch:
    within one piece of θ the field does not depend on t)."""

    def __init__(self, op, flat_shape=None):
        super().__init__()
        self.op, self.calls, self.shape, self.t_piece = op, 0, flat_shape, None

    def forward(self, t, y):
        self.calls += 1
        if self.shape is None:
            return self.op.vector_field(t, (y,))[0]
        return self.op.vector_field(self.t_piece, (y.view(self.shape),))[0].reshape(y.shape[0], -1)


GPU_SETTINGS = "pa.integrate dopri5, backend=torchode, GPU settings"


@contextlib.contextmanager
def gpu_settings():
    """A GPU run's defaults on any device: the finiteness checks deferred to the end of the solve,
    θ(t) looked up on the device."""
    saved = adaptive.HOST_CHECK_EVERY_EVALUATION, timegrid.LOOKUP_ON_DEVICE
    adaptive.HOST_CHECK_EVERY_EVALUATION, timegrid.LOOKUP_ON_DEVICE = False, True
    try:
        yield
    finally:
        adaptive.HOST_CHECK_EVERY_EVALUATION, timegrid.LOOKUP_ON_DEVICE = saved


def solvers(op, x, T, tol, jumps):
    """name -> (run() returning y(T) as a tensor of the batch's shape, its Counted field, stats())."""
    out = {}
    f = Counted(op)
    t = torch.tensor([0.0, T], dtype=x.dtype, device=x.device)
    out["torchdiffeq dopri5 (raw)"] = (lambda: torchdiffeq.odeint(f, x, t, rtol=tol, atol=tol, method="dopri5")[-1], f, None)
    last = {}

    def ours():
        sol = pa.integrate(op, x, pa.schemes.get_scheme("dopri5", rtol=tol, atol=tol), T=T)
        last["stats"] = sol.stats
        return sol.y

    out["pa.integrate dopri5"] = (ours, Counted(op), lambda: last["stats"])
    try:
        import torchode as to
    except ImportError:
        print("torchode is not installed: pip install torchode to compare with it")
        return out

    def ours_torchode():
        sol = pa.integrate(op, x, pa.schemes.get_scheme("dopri5", rtol=tol, atol=tol, backend="torchode"), T=T)
        last["stats_to"] = sol.stats
        return sol.y

    out["pa.integrate dopri5, backend=torchode"] = (ours_torchode, Counted(op), lambda: last["stats_to"])

    def ours_torchode_gpu_settings():
        with gpu_settings():
            return ours_torchode()

    out[GPU_SETTINGS] = (ours_torchode_gpu_settings, Counted(op), lambda: last["stats_to"])
    # torchode has no jump times: it is restarted at each jump of θ (what torchdiffeq's jump_t does)
    bounds = [0.0, *jumps, T]
    for method in ("dopri5", "tsit5"):
        for ctrl_name in ("integral", "pid"):
            h = Counted(op, flat_shape=x.shape)
            term = to.ODETerm(h)
            step = {"dopri5": to.Dopri5, "tsit5": to.Tsit5}[method](term=term)
            if ctrl_name == "integral":
                ctrl = to.IntegralController(atol=tol, rtol=tol, term=term)
            else:
                ctrl = to.PIDController(atol=tol, rtol=tol, pcoeff=0.2, icoeff=0.5, dcoeff=0.0, term=term)
            solver = to.AutoDiffAdjoint(step, ctrl)
            store = {}

            def run(solver=solver, h=h, store=store):
                y, acc, steps = x.reshape(x.shape[0], -1), 0, 0
                for a, b in zip(bounds[:-1], bounds[1:]):
                    h.t_piece = 0.5 * (a + b)
                    t_eval = torch.tensor([a, b], dtype=x.dtype, device=x.device).expand(x.shape[0], 2)
                    sol = solver.solve(to.InitialValueProblem(y, t_eval[:, 0], t_eval[:, -1], t_eval))
                    y = sol.ys[:, -1]
                    acc, steps = acc + sol.stats["n_accepted"].max(), steps + sol.stats["n_steps"].max()
                store["stats"] = dict(n_accepted=acc, n_steps=steps)
                return y.reshape(x.shape)

            out[f"torchode {method} ({ctrl_name})"] = (run, h, (lambda store=store: store["stats"]))
    return out


def case(n_pieces, tol, dev, repeats, shape=(8, 16, 32, 32)):
    """One field (batch, channels, size, size = ``shape``) and tolerance, every solver."""
    torch.manual_seed(0)
    op = pa.parabolic(shape[1], T=3.0, n_pieces=n_pieces, activation="tanh").double().to(dev)
    x = torch.randn(*shape, dtype=torch.float64, device=dev)
    t0 = time.perf_counter()
    with torch.no_grad():
        ref = torchdiffeq.odeint(lambda t, y: op.vector_field(t, (y,))[0], x, torch.tensor([0.0, 3.0], dtype=torch.float64),
                                 rtol=1e-11, atol=1e-11, method="dopri8",
                                 options=dict(jump_t=torch.tensor([1.0, 2.0], dtype=torch.float64)) if n_pieces > 1 else {})[-1]
    print(f"  reference solve {time.perf_counter() - t0:.1f} s", flush=True)
    rows = []
    runs = solvers(op, x, 3.0, tol, [1.0, 2.0] if n_pieces > 1 else [])
    with torch.no_grad():
        times = interleaved_medians([r for r, _, _ in runs.values()], repeats, dev, warmup=1)
        for (name, (run, counted, stats)), sec in zip(runs.items(), times):
            counted.calls = 0
            with gpu_settings(), HostReads() as reads, Launches() as launches:  # the reads a GPU run makes
                y = run()
            err = ((y - ref).flatten(1).norm(dim=1) / ref.flatten(1).norm(dim=1)).max().item()
            row = dict(solver=name, seconds=sec, error=err, host_reads=reads.count, launches=launches.count)
            if name.startswith("pa.integrate"):  # it counts its own evaluations and steps
                s = stats()
                row.update(evals=int(s.n_evals), accepted=int(s.n_accepted), rejected=int(s.n_rejected))
            else:
                row.update(evals=counted.calls)
                st = stats() if stats else None
                if st is not None:  # torchode: per-example steps; the batch loops until the slowest is done
                    row.update(accepted=int(st["n_accepted"]), steps=int(st["n_steps"]))
            rows.append(row)
    base = rows[0]
    for r in rows:
        r["time_vs_torchdiffeq"] = r["seconds"] / base["seconds"]
        r["evals_vs_torchdiffeq"] = r["evals"] / base["evals"]
        r["launches_per_eval"] = r["launches"] / r["evals"]
        print(f"  {r['solver']:38s} {r['seconds']*1e3:9.1f} ms  ×{r['time_vs_torchdiffeq']:.2f}  evals {r['evals']:4d}"
              f"  host reads {r['host_reads']:4d}  launches/eval {r['launches_per_eval']:5.1f}  error {r['error']:.2e}",
              flush=True)
    return dict(field=f"parabolic c={shape[1]} batch={shape[0]} {shape[2]}x{shape[3]} float64, T=3, {n_pieces} piece(s) of θ",
                rtol=tol, atol=tol, rows=rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", default=None)
    ap.add_argument("--quick", action="store_true", help="a 4-channel 8 × 8 field, batch 2, one tolerance (a smoke run)")
    args = ap.parse_args()
    dev = torch.device(args.device)
    t0 = time.perf_counter()
    cases = []
    shape, tols = ((2, 4, 8, 8), (1e-5,)) if args.quick else ((8, 16, 32, 32), (1e-5, 1e-8))
    for n_pieces in (1, 3):
        for tol in tols:
            print(f"{n_pieces} piece(s), rtol = atol = {tol:g}", flush=True)
            cases.append(case(n_pieces, tol, dev, args.repeats, shape))
            save(args.out or result_path("adaptive", dev),  # after every case: kept if stopped
                 dict(provenance=provenance(device=dev), cases=cases, seconds=time.perf_counter() - t0))
    if not args.quick:  # a field so small that a solve's time is its per-evaluation overhead
        print("overhead: 2 channels, 4 × 4, batch 2, rtol = atol = 1e-8", flush=True)
        cases.append(dict(case(1, 1e-8, dev, args.repeats, (2, 2, 4, 4)), overhead_case=True))
        save(args.out or result_path("adaptive", dev),
             dict(provenance=provenance(device=dev), cases=cases, seconds=time.perf_counter() - t0))


if __name__ == "__main__":
    main()
