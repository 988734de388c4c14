"""``pdenet-analysis analyze MODEL``: every analysis of a network's PDE blocks, written as JSON,
Markdown and PNG with an index page."""

from __future__ import annotations

import sys

import torch

from ..errors import InvalidArgumentError
from .common import check_fits, load_model_arg, rescheme


def add_parser(sub, formatter) -> None:
    a = sub.add_parser("analyze", aliases=["analyse"], formatter_class=formatter,
                       description="Analyse the PDE blocks of a network (a preset with random weights, or a checkpoint) "
                                   "on test images or standard-normal ones; writes report.md with links to every "
                                   "analysis's page, JSON and figure.")
    a.add_argument("model", help="a preset name (random weights, seed 0) or a checkpoint file (or its directory)")
    a.add_argument("--scheme", default=None, help="integrate the same weights with this scheme instead of the model's "
                   "own (pdenet-analysis schemes lists them)")
    a.add_argument("--coupling", type=float, default=None, metavar="λ",
                   help="with --scheme reversible_heun or reversible_rk4: the coupling λ in (0, 1]")
    a.add_argument("--steps", type=int, default=None, help="integrate with this many steps instead of the model's own")
    a.add_argument("--rtol", type=float, default=None, help="with an adaptive --scheme: its relative tolerance")
    a.add_argument("--atol", type=float, default=None, help="with an adaptive --scheme: its absolute tolerance")
    a.add_argument("--device", default="cpu", help="where to analyse (cpu, cuda, cuda:1)")
    a.add_argument("--out", default="reports/analyze", help="the reports' directory (created if missing)")
    a.add_argument("--image-size", type=int, default=None, help="the side of the standard-normal images, for a network "
                   "without a native size (a checkpoint of a network built without a preset); a preset's is its data "
                   "set's")
    a.add_argument("--all-blocks", action="store_true", help="analyse every PDE block, not only the first")
    a.add_argument("--no-conditioning", action="store_true", help="skip the conditioning of the flow maps (the "
                   "costliest analysis after stability)")
    a.add_argument("--examples", type=int, default=4, help="examples analysed per block (batched)")
    a.add_argument("--count-examples", type=int, default=1,
                   help="above the dense size, examples per step whose unstable step-map modes are counted completely "
                        "(those with the largest certified lower bound on the radius; 0: every example)")
    a.add_argument("--reduced-dense-max", type=int, default=None,
                   help="count the step map's unstable modes exactly through the active hidden units up to this many "
                        "rows (symplectic Euler, Verlet, leapfrog, forward Euler on first-order blocks; library "
                        "default 8192); forward Euler's σ_min then comes from exact inverse step maps too")
    a.add_argument("--count-budget", type=int, default=None,
                   help="the most Jacobian-vector products one ARPACK count of unstable modes may take (library "
                        "default 4000); a count that runs out is reported as '≥'")
    a.add_argument("--reduced-sparse-max", type=int, default=None,
                   help="forward Euler's σ_min: up to this many active units per example and step, the exact inverse "
                        "step maps use a sparse LU (library default 131072; 0: per-step GMRES, which may give only a "
                        "bound)")
    a.add_argument("--dataset", default=None, help="take the examples from this data set's test split (default: the "
                   "preset's own data set when it is digits, which ships with scikit-learn; otherwise standard-normal "
                   "images)")
    a.add_argument("--data-dir", default=None, help="with --dataset: where its files are")
    a.add_argument("--quiet", action="store_true", help="no progress on stderr")
    a.add_argument("--seed", type=int, default=0, help="seeds the standard-normal images (without --dataset) and the "
                   "Krylov start vectors of the probable bounds")
    a.add_argument("--failure-probability", type=float, default=1e-6,
                   help="per example, the chance that a probable bound (the bracket on κ, the norm bound on each step "
                        "map) fails, whatever the spectrum")
    a.set_defaults(func=run)


def _examples(args, model, ck):
    """The images analysed, and the sentence that says which: the data set's test images, or
    standard-normal images of the network's native size (drawn on the CPU, so that every device
    analyses the same ones)."""
    from ..networks.presets import DATASET_SHAPES

    preset = model.config.get("preset") or ""
    native = preset.split("-")[0] if preset.split("-")[0] in DATASET_SHAPES else None
    trained_on = (ck or {}).get("train_config", {}).get("dataset")
    dataset = args.dataset or ("digits" if (trained_on or native) == "digits" else None)
    if args.image_size is not None and (dataset or native):
        why = f"the {dataset} data set's" if dataset else f"{preset}'s native ({DATASET_SHAPES[native].image_size}×" \
              f"{DATASET_SHAPES[native].image_size})"
        raise InvalidArgumentError(f"--image-size does nothing here: the images are {why}; drop it")
    if args.data_dir is not None and not dataset:
        raise InvalidArgumentError("--data-dir says where --dataset's files are; add --dataset D or drop it")
    if dataset:
        from ..data import load_dataset

        x = load_dataset(dataset, args.data_dir).x_test[: args.examples]
        check_fits(model, x, f"the {dataset} data set")
        return x.to(args.device), f"the first {len(x)} {dataset} test images"
    if native is None and args.image_size is None:
        raise InvalidArgumentError("this network has no native image size (it was not built from a preset): give "
                                   "--image-size N for standard-normal images, or --dataset D")
    s = DATASET_SHAPES[native].image_size if native else args.image_size
    c = model.config["in_channels"]
    x = torch.randn(args.examples, c, s, s, generator=torch.Generator().manual_seed(args.seed)).to(args.device)
    return x, f"{args.examples} standard-normal {s}×{s} images (pass --dataset for real ones)"


def run(args) -> int:
    from ..analysis import Budget, Certification, analyze

    model, ck = load_model_arg(args.model, args.device)
    model = rescheme(model, args)
    x, source = _examples(args, model, ck)
    if not args.quiet:
        print(f"analyze: {args.model}, {source}", file=sys.stderr)
    given = {k: getattr(args, k) for k in ("reduced_dense_max", "reduced_sparse_max", "count_budget")
             if getattr(args, k) is not None}  # else the library's defaults
    budget = Budget(count_examples=args.count_examples or None, **given)
    certification = Certification(failure_probability=args.failure_probability, seed=args.seed)
    analyses = None
    if args.no_conditioning:
        from ..analysis.model import ANALYSES, why_not

        analyses = [a for a in ANALYSES if a != "conditioning" and why_not(model.blocks[0].scheme, a) is None]
        analyses += [] if model.blocks[0].scheme.adaptive else ["features"]
    res = analyze(model, x, blocks=None if args.all_blocks else [0], analyses=analyses, certification=certification,
                  budget=budget, progress=not args.quiet)
    res.source = source
    paths = res.save(args.out)
    for unit in res:
        where = "network" if unit.block == "network" else f"block {unit.block}"
        for name, p in paths[unit.block].items():
            print(f"{where:8s} {name:14s} {p['md']}")
    print(f"{'index':8s} {'':14s} {paths['index']}")
    return 0
