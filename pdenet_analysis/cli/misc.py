"""The small subcommands: ``schemes``, ``tableaux``, ``presets``, ``demo``, ``quickstart`` and
``study``."""

from __future__ import annotations

import sys
import time

import torch

from .common import HelpFormatter


def add_parsers(sub, formatter=HelpFormatter) -> None:
    d = sub.add_parser("demo", formatter_class=formatter, description="integrate the paper's three operators and print the results")
    d.add_argument("--seed", type=int, default=0, help="seeds the operators' weights and the initial state")
    d.set_defaults(func=demo)
    q = sub.add_parser("quickstart", formatter_class=formatter,
                       description="train the four networks on the embedded digits data, analyse them, write a report")
    q.add_argument("--out", default="reports/quickstart", help="the report's directory")
    q.add_argument("--epochs", type=int, default=15, help="epochs of training per network")
    q.add_argument("--seed", type=int, default=0, help="seeds the weights and the batches")
    q.add_argument("--examples", type=int, default=2, help="test images analysed per block")
    q.add_argument("--quiet", action="store_true", help="no progress on stderr")
    q.set_defaults(func=quickstart)
    st = sub.add_parser("study", formatter_class=formatter, description="run a study (cached sweep, figures, page); --list shows them")
    st.add_argument("name", nargs="?", help="the study (see --list)")
    st.add_argument("--list", action="store_true", help="list the studies and their questions")
    st.add_argument("--quick", action="store_true", help="the small grid: digits, minutes on 2 CPU cores")
    st.add_argument("--device", default="cpu", help="where the points run (cpu, cuda)")
    st.add_argument("--jobs", type=int, default=1, help="points run in parallel local processes")
    st.add_argument("--out", default=None, help="results directory (default: $PDENET_RESULTS/NAME[-quick], or "
                    "~/pdenet-results/NAME[-quick] where PDENET_RESULTS is not set)")
    st.add_argument("--executor", default="local", choices=["local", "submitit-local", "slurm"],
                    help="where points run: this machine, or submitit (job arrays on Slurm)")
    st.add_argument("--slurm", action="append", default=[], metavar="KEY=VALUE",
                    help="submitit executor parameter, e.g. slurm_partition=gpu or timeout_min=120 (repeatable)")
    st.add_argument("--data-root", default=None, metavar="DIR",
                    help="a folder with one subfolder per data set (DIR/fashion_mnist, DIR/cifar10, ...), looked in "
                    "before the system's places; sets PDENET_DATA for the points")
    st.add_argument("--retry-failed", action="store_true", help="run points recorded as failed again")
    st.add_argument("--quiet", action="store_true", help="no progress on stderr")
    st.set_defaults(func=study)
    sc = sub.add_parser("schemes", formatter_class=formatter, description="list schemes and their metadata")
    sc.add_argument("--json", action="store_true", help="machine-readable output")
    sc.set_defaults(func=schemes)
    tb = sub.add_parser("tableaux", formatter_class=formatter,
                        description="the published Butcher tableaux and what each certifies: order by rooted trees, "
                        "embedded order, stage order, symplecticity, symmetry, stability intervals")
    tb.add_argument("name", nargs="?", help="one tableau: its coefficients, certificates and the order conditions "
                    "it misses at the next order")
    tb.add_argument("--json", action="store_true", help="machine-readable output")
    tb.set_defaults(func=tableaux)
    pr = sub.add_parser("presets", formatter_class=formatter, description="list network presets and weight counts")
    pr.add_argument("--json", action="store_true", help="machine-readable output")
    pr.set_defaults(func=presets)


def schemes(args) -> int:
    import json

    from .. import schemes

    rows = []
    for n in schemes.available_schemes():
        s = schemes.get_scheme(n)
        rows.append(dict(name=n, order=s.order, kinds=sorted(s.kinds), symplectic=bool(s.symplectic),
                         reversible=bool(s.reversible), adaptive=bool(s.adaptive)))
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'name':20s} {'order':>5s}  {'kinds':40s} symplectic reversible adaptive")
    for r in rows:
        print(f"{r['name']:20s} {r['order']:5d}  {','.join(r['kinds']):40s} {str(r['symplectic']):10s} "
              f"{str(r['reversible']):10s} {r['adaptive']}")
    return 0


def tableaux(args) -> int:
    import json

    from ..schemes import TABLEAUX, get_tableau
    from ..schemes.tableau import interval_text

    names = [args.name] if args.name else list(TABLEAUX)
    rows = [get_tableau(n).summary() for n in names]  # an unknown name: UnknownNameError, one line
    if args.json:
        for r, n in zip(rows, names):
            tab = get_tableau(n)
            r.update(a=[list(x) for x in tab.a], b=list(tab.b), c=list(tab.c),
                     b_hat=None if tab.b_hat is None else list(tab.b_hat))
            for key in ("real_stability_interval", "imaginary_stability_interval"):
                r[key] = "inf" if r[key] == float("inf") else r[key]  # strict JSON has no Infinity
        print(json.dumps(rows if not args.name else rows[0], indent=1, default=str))
        return 0
    if not args.name:
        print(f"{'name':18s} {'stages':>6s} {'order':>5s} {'embedded':>8s} {'stage':>5s}  {'explicit':8s} {'symplectic':10s} "
              f"{'symmetric':9s} {'FSAL':5s} {'real interval':>13s} {'imag interval':>13s}  A-stable")
        for r in rows:
            emb = "–" if r["embedded_order"] is None else str(r["embedded_order"])
            print(f"{r['name']:18s} {r['stages']:6d} {r['order']:5d} {emb:>8s} {r['stage_order']:5d}  {str(r['explicit']):8s} "
                  f"{str(r['symplectic']):10s} {str(r['symmetric']):9s} {str(r['fsal']):5s} "
                  f"{interval_text(r['real_stability_interval']):>13s} {interval_text(r['imaginary_stability_interval']):>13s}  "
                  f"{r['a_stable']}")
        return 0
    tab = get_tableau(args.name)
    print(tab.to_markdown())
    p = rows[0]["order"]
    at_next = [c for c in tab.order_conditions(p + 1) if c.order == p + 1]
    missed = [c for c in at_next if not c.holds]
    print(f"\norder {p + 1} fails on {len(missed)} of the {len(at_next)} trees with that many nodes:")
    for c in missed[:12]:
        print(f"  {c.notation:12s} Φ = {c.phi:.10g}, 1/γ = {c.expected:.10g}")
    if len(missed) > 12:
        print(f"  … and {len(missed) - 12} more (ButcherTableau.order_conditions lists them all)")
    return 0


def presets(args) -> int:
    import json

    from ..networks import available_presets, build_preset

    rows = []
    for n in available_presets():
        m = build_preset(n)
        rows.append(dict(name=n, weights=m.n_parameters(), architecture=m.config["architecture"],
                         in_channels=m.config["in_channels"], n_classes=m.config["n_classes"], widths=list(m.config["widths"])))
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    for r in rows:
        print(f"{r['name']:28s} {r['weights']:>10,d} weights")
    return 0


def demo(args) -> int:
    """Integrate the paper's three operators with their own and with other schemes."""
    from .. import integrate, reverse
    from ..operators import hamiltonian, parabolic, second_order

    torch.manual_seed(args.seed)
    y0 = torch.randn(4, 16, 32, 32)
    rows = []
    for name, op, schemes in (
        ("parabolic", parabolic(16), ("euler", "rk4", "dopri5")),
        ("hamiltonian", hamiltonian(16), ("symplectic_euler", "verlet", "dopri5")),
        ("second_order", second_order(16), ("leapfrog", "leapfrog_symmetric", "dopri5")),
    ):
        with torch.no_grad():
            for sch in schemes:
                t0 = time.perf_counter()
                sol = integrate(op, y0, sch, rtol=1e-5, atol=1e-7) if sch == "dopri5" else integrate(op, y0, sch)
                dt = time.perf_counter() - t0
                rev = ""
                if sol.scheme.reversible:
                    back = op.from_state(reverse(op, sol), y0)
                    rev = f"{float((back - y0).abs().max()):.1e}"
                rows.append((name, sch, sol.stats.n_steps, sol.stats.n_evals,
                             float(sol.y.norm() / y0.norm()), rev, dt))
    print(f"{'operator':13s} {'scheme':20s} {'steps':>5s} {'evals':>6s} {'|Y_T|/|Y_0|':>11s} {'inverse err':>11s} {'time s':>7s}")
    for r in rows:
        print(f"{r[0]:13s} {r[1]:20s} {r[2]:5d} {r[3]:6.1f} {r[4]:11.4f} {r[5]:>11s} {r[6]:7.3f}")
    return 0


def quickstart(args) -> int:
    from ..quickstart import run_quickstart

    path = run_quickstart(args.out, epochs=args.epochs, seed=args.seed, examples=args.examples, quiet=args.quiet)
    print(f"report written to {path}")
    return 0


def default_results(name: str) -> str:
    """Where a study writes without --out: $PDENET_RESULTS/NAME, or ~/pdenet-results/NAME (never
    the current directory by accident)."""
    import os

    root = os.environ.get("PDENET_RESULTS") or os.path.join(os.path.expanduser("~"), "pdenet-results")
    return os.path.join(root, name)


def study(args) -> int:
    import os

    from ..errors import PDENetError
    from ..studies import available_studies, get_study, run_study

    if args.list or args.name is None:
        if args.name is None and not args.list:
            raise PDENetError("give a study name, or --list to see them: " + ", ".join(available_studies()))
        for n in available_studies():
            print(f"{n:26s} {get_study(n).question}")
        return 0
    study = get_study(args.name)
    slurm = {}
    for kv in args.slurm:
        k, sep, v = kv.partition("=")
        if not sep or not k:
            raise PDENetError(f"--slurm takes KEY=VALUE (a submitit parameter such as slurm_partition=gpu), got {kv!r}")
        slurm[k] = int(v) if v.isdigit() else v
    if args.data_root is not None:
        if not os.path.isdir(args.data_root):
            raise PDENetError(f"--data-root {args.data_root!r} is not a folder; give the folder that holds one "
                              "subfolder per data set, e.g. data/ for data/fashion_mnist")
        os.environ["PDENET_DATA"] = os.path.abspath(args.data_root)  # the points' processes inherit it
    out = args.out or default_results(study.name + ("-quick" if args.quick else ""))
    if not args.quiet:
        print(f"study {study.name}: results in {out}", file=sys.stderr)
    cmd = "pdenet-analysis " + " ".join(sys.argv[1:]) if sys.argv and "study" in sys.argv else None
    summary = run_study(study, out, quick=args.quick, device=args.device, jobs=args.jobs, executor=args.executor,
                        retry_failed=args.retry_failed, quiet=args.quiet, slurm_args=slurm, command=cmd)
    print(os.path.join(out, "README.md"))
    return 0 if not summary["failed"] else 3
