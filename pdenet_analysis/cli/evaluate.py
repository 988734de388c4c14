"""``pdenet-analysis evaluate CKPT``: a trained network's test accuracy, loss, operator evaluations
per forward pass and time, integrated as trained or in other ways; ``--grid`` tabulates it under
several schemes, step counts and tolerances (JSON, Markdown and PNG)."""

from __future__ import annotations

import json
import os
import sys
import time

from ..errors import InvalidArgumentError
from .common import HelpFormatter, check_fits, load_model_arg, positive_list, rescheme


def add_parser(sub, formatter=HelpFormatter) -> None:
    e = sub.add_parser("evaluate", formatter_class=formatter,
                       description="Evaluate a checkpoint on its data set's test images (raw: the network applies its "
                                   "own preprocessing). With --scheme/--steps/--rtol the same weights are integrated "
                                   "another way; with --grid under each combination of the comma-separated values "
                                   "given (or a default grid), written as a table.")
    e.add_argument("model", help="a checkpoint file (or its directory) from pdenet-analysis train, or a preset name")
    e.add_argument("--scheme", type=positive_list(str), default=None,
                   help="integrate with this scheme (with --grid: schemes separated by commas)")
    e.add_argument("--steps", type=positive_list(int), default=None,
                   help="steps per block for fixed-step schemes (with --grid: step counts separated by commas)")
    e.add_argument("--rtol", type=positive_list(float), default=None,
                   help="relative tolerance of an adaptive scheme (with --grid: tolerances separated by commas)")
    e.add_argument("--atol", type=float, default=None, help="absolute tolerance of an adaptive scheme (default: the "
                   "rtol)")
    e.add_argument("--coupling", type=float, default=None, metavar="λ",
                   help="with --scheme reversible_heun or reversible_rk4: the coupling λ in (0, 1]")
    e.add_argument("--grid", action="store_true", help="evaluate every combination and write a table (default grid: "
                   "the trained scheme and rk4 at 1, 2, 4, 8 times the trained steps, dopri5 at rtol 1e-2, 1e-4, 1e-6)")
    e.add_argument("--dataset", default=None, help="the data set to evaluate on (default: the one the checkpoint was "
                   "trained on)")
    e.add_argument("--data-dir", default=None, help="where the data set's files are (default: its usual place)")
    e.add_argument("--examples", type=int, default=None, help="evaluate on the first N test images only (default: all)")
    e.add_argument("--batch-size", type=int, default=500, help="images per forward pass")
    e.add_argument("--device", default="cpu", help="where to evaluate (cpu, cuda, cuda:1)")
    e.add_argument("--out", default=None, help="with --grid: the table's directory (default reports/evaluate)")
    e.add_argument("--json", action="store_true", help="print the result as JSON")
    e.add_argument("--quiet", action="store_true", help="no progress on stderr")
    e.set_defaults(func=run)


def _single(args, name: str):
    """The one value of a list option outside --grid (refusing several)."""
    value = getattr(args, name)
    if value is None:
        return None
    if len(value) > 1:
        raise InvalidArgumentError(f"--{name} got {len(value)} values ({','.join(map(str, value))}); several values "
                                   "are a grid: add --grid")
    return value[0]


def _data(args, model, ck):
    from ..data import load_dataset

    dataset = args.dataset or (ck or {}).get("train_config", {}).get("dataset")
    if dataset is None:
        raise InvalidArgumentError("this model records no data set (a preset, or a checkpoint of an older run): name "
                                   "one with --dataset D")
    data = load_dataset(dataset, args.data_dir)
    x, y = data.x_test, data.y_test
    if args.examples is not None:
        x, y = x[: args.examples], y[: args.examples]
    check_fits(model, x, f"the {dataset} data set")
    return dataset, x, y


def _grid(args, model):
    """The integrations of --grid: every fixed scheme × step count and adaptive scheme × rtol the
    options name, or :func:`~pdenet_analysis.training.default_grid`."""
    from ..schemes import get_scheme
    from ..training import Integration, default_grid

    if args.scheme is None and args.steps is None and args.rtol is None:
        return default_grid(model)
    block = model.blocks[0]
    schemes = args.scheme or [block.scheme.name]
    fixed = [s for s in schemes if not get_scheme(s).adaptive]
    adaptive = [s for s in schemes if get_scheme(s).adaptive]
    if args.rtol and not adaptive:
        adaptive = ["dopri5"]
    if args.steps and not fixed:
        raise InvalidArgumentError("--steps are for fixed-step schemes, and --scheme names only adaptive ones")
    steps = args.steps or [block.n_steps or 3]
    rtols = args.rtol or [1e-6]
    return [Integration(s, n) for s in fixed for n in steps] + \
        [Integration(s, rtol=r, atol=args.atol) for s in adaptive for r in rtols]


def run(args) -> int:
    from ..training import evaluate, evaluate_grid

    if args.out is not None and not args.grid:
        raise InvalidArgumentError("--out is where --grid writes its table; add --grid or drop --out")
    model, ck = load_model_arg(args.model, args.device)
    if not args.grid:
        for name in ("scheme", "steps", "rtol"):
            setattr(args, name, _single(args, name))
        model = rescheme(model, args)
        dataset, x, y = _data(args, model, ck)
        t0 = time.perf_counter()
        r = evaluate(model, x, y, args.batch_size)
        seconds = time.perf_counter() - t0
        blk = model.blocks[0]
        row = dict(model=args.model, dataset=dataset, images=len(y), scheme=blk.scheme.name, n_steps=blk.n_steps,
                   **r, seconds=seconds, images_per_s=len(y) / seconds)
        if args.json:
            print(json.dumps(row))
        else:
            how = f"{blk.scheme.name}, {blk.n_steps} steps" if blk.n_steps else repr(blk.scheme)
            print(f"{args.model} on {len(y)} {dataset} test images ({how}): accuracy {r['accuracy']:.4f}, loss "
                  f"{r['loss']:.4f}, {r['evals_per_forward']:.1f} operator evaluations per forward pass, "
                  f"{seconds:.2f} s ({len(y) / seconds:.0f} images/s)")
        return 0
    if args.coupling is not None:
        raise InvalidArgumentError("--coupling is for one evaluation; a --grid uses each scheme's default options")
    dataset, x, y = _data(args, model, ck)
    grid = _grid(args, model)
    tick = None if args.quiet else (lambda label: print(f"evaluate: {label}", file=sys.stderr, flush=True))
    rows = evaluate_grid(model, x, y, grid, args.batch_size, progress=tick)
    out = args.out or "reports/evaluate"
    paths = write_grid(rows, out, f"{args.model} on {len(y)} {dataset} test images")
    if args.json:
        print(json.dumps(rows))
    else:
        print(open(paths["md"]).read())
    print(paths["md"])
    return 0


def write_grid(rows: list, out: str, what: str) -> dict:
    """The grid's table as JSON, Markdown and a PNG of accuracy against operator evaluations."""
    from ..analysis.report import Report

    def plot(fig):
        ax = fig.add_subplot(111)
        for scheme in dict.fromkeys(r["scheme"] for r in rows):
            pts = [r for r in rows if r["scheme"] == scheme and r["error"] is None]
            ax.plot([r["evals_per_forward"] for r in pts], [100 * r["accuracy"] for r in pts], "o-", label=scheme)
            for r in pts:
                tag = f"{r['n_steps']}" if r["n_steps"] else f"{r['rtol']:.0e}"
                ax.annotate(tag, (r["evals_per_forward"], 100 * r["accuracy"]), fontsize=6, xytext=(3, 3),
                            textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("operator evaluations per forward pass")
        ax.set_ylabel("test accuracy (%)")
        ax.legend(fontsize=7)
        fig.suptitle(what, fontsize=9)

    table = [[r["label"], r["accuracy"], r["loss"], r["evals_per_forward"], r["seconds"], r["error"] or ""]
             for r in rows]
    rep = Report("evaluate", f"Test accuracy of {what}", ["integration", "accuracy", "loss", "evaluations per forward",
                                                          "seconds", "error"], table, dict(rows=rows), plot,
                 ["The same weights under each integration; evaluations are of the operator, summed over the blocks."])
    os.makedirs(out, exist_ok=True)
    return rep.save(out)
