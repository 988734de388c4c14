"""The ``pdenet-analysis`` command.

    pdenet-analysis quickstart            train the four networks on the embedded digits, analyse them, write a report
    pdenet-analysis train --dataset D --model PRESET [--scheme S [--coupling λ]] [--epochs E] [--device D] [--out DIR] [--resume]
                          [--amp] [--dtype float32|float64] [--channels-last] [--compile] [--cuda-graph] [--deterministic]
    pdenet-analysis analyze MODEL [--scheme NAME [--coupling λ]] [--steps N] [--examples N] [--all-blocks] [--device D] [--out DIR]
    pdenet-analysis study NAME [--quick] [--jobs N] [--device D] [--out DIR] [--executor E]   run a study
    pdenet-analysis study --list          list the studies and the question each answers
    pdenet-analysis demo                  integrate the paper's three operators and print what happened
    pdenet-analysis schemes               list the schemes and their metadata
    pdenet-analysis presets               list the network presets and their weight counts
"""

from __future__ import annotations

import argparse
import sys
import time

import torch


def _cmd_schemes(args) -> int:
    import json

    from . import schemes

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


def _cmd_presets(args) -> int:
    import json

    from .networks import available_presets, build_preset

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


def _cmd_demo(args) -> int:
    """Integrate the paper's three operators with their own and with other schemes."""
    from . import integrate, reverse
    from .operators import hamiltonian, parabolic, second_order

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


def _check_common(args) -> None:
    """Validate the arguments every command shares, before any work is done."""
    import os

    from .errors import PDENetError, require_probability, require_seed

    if getattr(args, "device", None) is not None:
        try:
            dev = torch.device(args.device)
        except RuntimeError as e:
            raise PDENetError(f"--device {args.device!r} is not a device name (try cpu, cuda or cuda:0): {e}") from e
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise PDENetError(f"--device {args.device}: CUDA is not available here (torch {torch.__version__} "
                              f"{'has no CUDA build' if torch.version.cuda is None else 'sees no GPU'}); use --device cpu")
        if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
            raise PDENetError(f"--device {args.device}: this machine has {torch.cuda.device_count()} GPU(s)")
    for name in ("steps", "epochs", "examples", "jobs"):
        v = getattr(args, name, None)
        if v is not None and v < 1:
            raise PDENetError(f"--{name} must be a positive integer, got {v}")
    if getattr(args, "count_examples", None) is not None and args.count_examples < 0:
        raise PDENetError(f"--count-examples must be 0 (count every example) or a positive integer, got {args.count_examples}")
    if getattr(args, "count_budget", None) is not None and args.count_budget < 1:
        raise PDENetError(f"--count-budget must be a positive number of products, got {args.count_budget}")
    for flag in ("reduced_dense_max", "reduced_sparse_max"):
        if getattr(args, flag, None) is not None and getattr(args, flag) < 0:
            raise PDENetError(f"--{flag.replace('_', '-')} must be 0 (never) or a positive number of rows, "
                              f"got {getattr(args, flag)}")
    if getattr(args, "failure_probability", None) is not None:
        require_probability("--failure-probability", args.failure_probability)
    if getattr(args, "seed", None) is not None:
        require_seed(args.seed, "--seed")
    if getattr(args, "lr", None) is not None and not (args.lr > 0 and args.lr < float("inf")):
        raise PDENetError(f"--lr must be a positive finite number, got {args.lr}")
    out = getattr(args, "out", None)
    if out is not None and os.path.exists(out) and not os.path.isdir(out):
        raise PDENetError(f"--out {out} is an existing file; give a directory (it is created if missing)")


def _check_fits(model, x: torch.Tensor, what: str) -> None:
    """The network's expected input channels against the data's."""
    from .errors import ShapeError

    c = model.config["in_channels"]
    if x.shape[1] != c:
        preset = model.config.get("preset") or model.config["architecture"]
        raise ShapeError(f"{preset} takes {c}-channel images, but {what} has {x.shape[1]}-channel "
                         f"{tuple(x.shape[2:])} images; use a preset for this data set (pdenet-analysis presets)")


def _scheme_options(args) -> dict:
    """The scheme's options given on the command line (``--coupling``), checked against --scheme."""
    from .errors import InvalidArgumentError

    if getattr(args, "coupling", None) is None:
        return {}
    if args.scheme is None:
        raise InvalidArgumentError("--coupling is an option of the reversible Runge–Kutta schemes; add --scheme "
                                   "reversible_heun or --scheme reversible_rk4")
    return {"coupling": args.coupling}


def _load_model_arg(name: str, scheme, steps, device, **scheme_kwargs):
    """A preset name (random weights) or a checkpoint file."""
    import os

    from .networks import PRESETS, build_preset
    from .training import load_model

    if name in PRESETS:
        torch.manual_seed(0)
        model = build_preset(name)
        if scheme is not None or steps is not None:
            model = model.with_scheme(scheme, steps, **scheme_kwargs)
    elif os.path.exists(name) or name.endswith(".pt"):
        model = load_model(name, scheme, steps, **scheme_kwargs)
    else:
        from .errors import UnknownNameError

        raise UnknownNameError("preset", name, PRESETS)
    return model.to(device)


def _cmd_analyze(args) -> int:
    from .analysis.model import analyze_model
    from .networks.presets import DATASET_SHAPES

    model = _load_model_arg(args.model, args.scheme, args.steps, args.device, **_scheme_options(args))
    c = model.config["in_channels"]
    ds = model.config.get("preset", "").split("-")[0]
    dataset = args.dataset or ("digits" if ds == "digits" else None)
    if dataset:  # real test images, standardised as in training
        from .data import load_dataset, standardize

        x = standardize(load_dataset(dataset, args.data_dir).x_test[: args.examples]).to(args.device)
        source = f"the first {len(x)} {dataset} test images"
        _check_fits(model, x, f"the {dataset} data set")
    else:
        s = DATASET_SHAPES[ds].image_size if ds in DATASET_SHAPES else args.image_size
        # drawn on the CPU, so that every device analyses the same images (CUDA's generator draws others)
        x = torch.randn(args.examples, c, s, s, generator=torch.Generator().manual_seed(args.seed)).to(args.device)
        source = f"{args.examples} standard-normal images (pass --dataset for real ones)"
    if not args.quiet:
        print(f"analyze: {args.model}, {source}", file=sys.stderr)
    blocks = None if args.all_blocks else [0]
    given = {k: getattr(args, k) for k in ("reduced_dense_max", "reduced_sparse_max", "count_budget")
             if getattr(args, k) is not None}  # else the library's defaults
    res = analyze_model(model, x, args.out, blocks=blocks, with_conditioning=not args.no_conditioning, quiet=args.quiet,
                        count_examples=args.count_examples or None, failure_probability=args.failure_probability,
                        seed=args.seed, **given)
    for i, r in res.items():
        where = "network" if i == "features" else f"block {i}"
        for name, paths in r["paths"].items():
            print(f"{where:8s} {name:14s} {paths['md']}")
    return 0


def _cmd_train(args) -> int:
    import json
    import os

    from .data import load_dataset
    from .networks import build_preset
    from .training import TrainConfig, train

    from .errors import InvalidArgumentError

    gradient = args.gradient
    if args.keep_last is not None:
        from .gradients import Reversible

        if gradient != "reversible":
            raise InvalidArgumentError("--keep-last is an option of the reversible gradient; add --gradient reversible")
        gradient = Reversible(keep_last=args.keep_last)
    if args.dtype == "float64" and args.amp:
        raise InvalidArgumentError("--amp runs the layers in bfloat16, which --dtype float64 rules out; drop one of them")
    data = load_dataset(args.dataset, args.data_dir, args.download)
    torch.manual_seed(args.seed)
    model = build_preset(args.model)
    options = _scheme_options(args)
    if args.scheme is not None or args.steps is not None or gradient is not None:
        model = model.with_scheme(args.scheme, args.steps, gradient, **options)
    model = model.to(getattr(torch, args.dtype))
    _check_fits(model, data.x_train[:1], f"the {args.dataset} data set")
    cfg = TrainConfig(epochs=args.epochs, device=args.device, out=args.out, resume=args.resume, seed=args.seed, dataset=args.dataset,
                      augment=not args.no_augment, lr=args.lr, progress=not args.quiet, amp=args.amp,
                      channels_last=args.channels_last, compile=args.compile, cuda_graph=args.cuda_graph,
                      deterministic=args.deterministic)
    from .training import distributed

    summary = train(model, data, cfg)
    summary.pop("history")
    if distributed.is_main():  # under torchrun, rank 0 writes and prints the summary
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "summary.json"), "w") as f:
            json.dump(summary, f, indent=2)
        print(json.dumps(summary))
    if distributed.world()[1] > 1:
        import torch.distributed as dist

        dist.destroy_process_group()
    return 0


def _cmd_quickstart(args) -> int:
    from .quickstart import run_quickstart

    path = run_quickstart(args.out, epochs=args.epochs, seed=args.seed, examples=args.examples, quiet=args.quiet)
    print(f"report written to {path}")
    return 0


def _cmd_study(args) -> int:
    import os

    from .errors import PDENetError
    from .studies import available_studies, get_study, run_study

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
    out = args.out or os.path.join("studies", "results", study.name + ("-quick" if args.quick else ""))
    cmd = "pdenet-analysis " + " ".join(sys.argv[1:]) if sys.argv and "study" in sys.argv else None
    summary = run_study(study, out, quick=args.quick, device=args.device, jobs=args.jobs, executor=args.executor,
                        retry_failed=args.retry_failed, quiet=args.quiet, slurm_args=slurm, command=cmd)
    print(os.path.join(out, "README.md"))
    return 0 if not summary["failed"] else 3


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pdenet-analysis", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--debug", action="store_true", help="show the traceback of an internal error")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="integrate the paper's three operators and print the results")
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(func=_cmd_demo)
    q = sub.add_parser("quickstart", help="train the four networks on the embedded digits data, analyse them, write a report")
    q.add_argument("--out", default="reports/quickstart")
    q.add_argument("--epochs", type=int, default=15)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--examples", type=int, default=2, help="test images analysed per block")
    q.add_argument("--quiet", action="store_true", help="no progress on stderr")
    q.set_defaults(func=_cmd_quickstart)
    t = sub.add_parser("train", help="train a preset on a data set by the paper's protocol")
    t.add_argument("--dataset", required=True)
    t.add_argument("--model", required=True, help="preset name, e.g. fashion_mnist-hamiltonian")
    t.add_argument("--scheme", default=None)
    t.add_argument("--coupling", type=float, default=None, metavar="λ",
                   help="with --scheme reversible_heun or reversible_rk4: the coupling λ in (0, 1] (default 0.5; "
                        "nearer 1 lets the reversible gradient rebuild more steps, and narrows the stable step)")
    t.add_argument("--steps", type=int, default=None)
    t.add_argument("--gradient", default=None, choices=["backprop", "reversible", "adjoint"],
                   help="how gradients pass through the PDE blocks (reversible: O(1) memory in depth)")
    t.add_argument("--keep-last", type=int, default=None, metavar="K",
                   help="with --gradient reversible: the last K steps of every block keep their graph (memory of "
                        "K steps) and are not rebuilt; the gradient is the same")
    t.add_argument("--epochs", type=int, default=10)
    t.add_argument("--lr", type=float, default=0.1)
    t.add_argument("--device", default="cpu")
    t.add_argument("--out", default="runs/train")
    t.add_argument("--data-dir", default=None)
    t.add_argument("--download", action="store_true", help="fetch the official files into --data-dir (checksum-verified)")
    t.add_argument("--resume", action="store_true")
    t.add_argument("--no-augment", action="store_true")
    t.add_argument("--quiet", action="store_true", help="no per-batch progress or per-epoch lines on stderr/stdout")
    t.add_argument("--amp", action="store_true", help="bfloat16 autocast of the layers (the reversible state stays float32)")
    t.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                   help="precision of the weights, the data and the training (float64: round-off of 1e-16, for studies "
                        "that compare runs)")
    t.add_argument("--channels-last", action="store_true", help="channels-last layout for the 2-D convolutions")
    t.add_argument("--compile", action="store_true", help="torch.compile the network (fixed-step schemes)")
    t.add_argument("--cuda-graph", action="store_true",
                   help="record the whole training step as a CUDA graph and replay it (CUDA, fixed-step schemes, "
                        "one process): the paper's small networks are bound by kernel launches")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--deterministic", action="store_true",
                   help="deterministic kernels: a CUDA run repeats to the bit (slower; CPU runs repeat anyway)")
    t.set_defaults(func=_cmd_train)
    a = sub.add_parser("analyze", help="spectra, stability, conditioning, reversibility, convergence, energy")
    a.add_argument("model", help="a preset name (random weights) or a checkpoint file")
    a.add_argument("--scheme", default=None)
    a.add_argument("--coupling", type=float, default=None, metavar="λ",
                   help="with --scheme reversible_heun or reversible_rk4: the coupling λ in (0, 1]")
    a.add_argument("--steps", type=int, default=None)
    a.add_argument("--device", default="cpu")
    a.add_argument("--out", default="reports/analyze")
    a.add_argument("--image-size", type=int, default=32)
    a.add_argument("--all-blocks", action="store_true", help="analyse every PDE block, not only the first")
    a.add_argument("--no-conditioning", action="store_true")
    a.add_argument("--examples", type=int, default=4, help="examples analysed per block (batched)")
    a.add_argument("--count-examples", type=int, default=1,
                   help="above the dense size, examples per step whose unstable step-map modes are counted completely "
                        "(those with the largest certified lower bound on the radius, else the first; 0: every example)")
    a.add_argument("--reduced-dense-max", type=int, default=None,
                   help="symplectic Euler, Verlet, leapfrog and forward Euler on first-order blocks: count the step "
                        "map's unstable modes exactly from its reduced form through the active hidden units up to this "
                        "many rows (default 8192; dense eigenvalues, per counted example and step on 2 cores: about 2 s "
                        "at 2000 rows, 8 s at 3000, 1 min at 6000); forward Euler's σ_min then also comes from "
                        "exact inverse step maps (one LU of that size per example and step)")
    a.add_argument("--count-budget", type=int, default=None,
                   help="where the step map's unstable modes are counted by ARPACK (above --reduced-dense-max, or "
                        "schemes without a reduced form), the most Jacobian-vector products one count may take "
                        "(default 4000); a count that runs out is reported as '≥': raise this for a complete one")
    a.add_argument("--reduced-sparse-max", type=int, default=None,
                   help="forward Euler's σ_min: above --reduced-dense-max and up to this many active units per example "
                        "and step, the exact inverse step maps use a sparse LU (default 131072; at STL-10's first unit "
                        "about 1-2 min and 3-4 GB per example and step on 2 cores); 0: no sparse LU (per-step GMRES instead, "
                        "which may give only a bound)")
    a.add_argument("--dataset", default=None, help="take the examples from this data set's test split "
                   "(default: digits for digits presets, otherwise standard-normal images)")
    a.add_argument("--data-dir", default=None)
    a.add_argument("--quiet", action="store_true", help="no progress on stderr")
    a.add_argument("--seed", type=int, default=0, help="seeds the standard-normal images (without --dataset) and the "
                   "Krylov start vectors of the probable bounds (default 0; another seed draws new ones)")
    a.add_argument("--failure-probability", type=float, default=1e-6,
                   help="per example, the chance that a probable bound (the bracket on kappa, the norm bound on each "
                        "step map) fails, whatever the spectrum (default 1e-6)")
    a.set_defaults(func=_cmd_analyze)
    st = sub.add_parser("study", help="run a study (cached sweep, figures, page); --list shows them")
    st.add_argument("name", nargs="?", help="the study (see --list)")
    st.add_argument("--list", action="store_true", help="list the studies and their questions")
    st.add_argument("--quick", action="store_true", help="the small grid: digits, minutes on 2 CPU cores")
    st.add_argument("--device", default="cpu")
    st.add_argument("--jobs", type=int, default=1, help="points run in parallel local processes")
    st.add_argument("--out", default=None, help="results directory (default studies/results/NAME[-quick])")
    st.add_argument("--executor", default="local", choices=["local", "submitit-local", "slurm"],
                    help="where points run: this machine, or submitit (job arrays on Slurm)")
    st.add_argument("--slurm", action="append", default=[], metavar="KEY=VALUE",
                    help="submitit executor parameter, e.g. slurm_partition=gpu or timeout_min=120 (repeatable)")
    st.add_argument("--retry-failed", action="store_true", help="run points recorded as failed again")
    st.add_argument("--quiet", action="store_true", help="no progress on stderr")
    st.set_defaults(func=_cmd_study)
    sc = sub.add_parser("schemes", help="list schemes and their metadata")
    sc.add_argument("--json", action="store_true", help="machine-readable output")
    sc.set_defaults(func=_cmd_schemes)
    pr = sub.add_parser("presets", help="list network presets and weight counts")
    pr.add_argument("--json", action="store_true", help="machine-readable output")
    pr.set_defaults(func=_cmd_presets)
    return p


def main(argv: list[str] | None = None) -> int:
    from .errors import PDENetError

    args = build_parser().parse_args(argv)
    try:
        _check_common(args)
        return args.func(args)
    except (PDENetError, ValueError) as e:
        if args.debug:
            raise
        print(f"pdenet-analysis: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pdenet-analysis: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug of the library, not a user mistake
        if args.debug:
            raise
        print(f"pdenet-analysis: internal error: {type(e).__name__}: {e} (rerun with --debug for the traceback, "
              "and please report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
