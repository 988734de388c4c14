"""What the subcommands share: the help format, the checks every command's arguments get before
any work is done, and reading a model argument (a preset name or a checkpoint file)."""

from __future__ import annotations

import argparse
import os

import torch

from ..errors import InvalidArgumentError, PDENetError, ShapeError, require_probability, require_seed


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every option's help ends with its default (where it has one) and its choices."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.choices and "choices:" not in text and not isinstance(action, argparse._SubParsersAction):
            text += f" (choices: {', '.join(map(str, action.choices))})"
        default = action.default
        if "%(default)" not in text and default not in (None, False, argparse.SUPPRESS) and \
                action.option_strings and not isinstance(default, list):
            text += " (default: %(default)s)"
        return text


def positive_list(kind):
    """An argparse type: one value, or (for --grid) a comma-separated list of values."""
    def parse(text: str):
        try:
            values = [kind(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__} value(s) separated by commas, got {text!r}")
        if not values:
            raise argparse.ArgumentTypeError("expected at least one value")
        return values

    parse.__name__ = f"{kind.__name__} list"
    return parse


def check_common(args) -> None:
    """Validate the arguments every command shares, before any work is done."""
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
    for name in ("epochs", "examples", "jobs", "batch_size"):
        v = getattr(args, name, None)
        if v is not None and v < 1:
            raise PDENetError(f"--{name.replace('_', '-')} must be a positive integer, got {v}")
    steps = getattr(args, "steps", None)
    for v in (steps if isinstance(steps, list) else [steps]):
        if v is not None and v < 1:
            raise PDENetError(f"--steps must be a positive integer, got {v}")
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


def check_fits(model, x: torch.Tensor, what: str) -> None:
    """The network's expected input channels against the data's."""
    c = model.config["in_channels"]
    if x.shape[1] != c:
        preset = model.config.get("preset") or model.config["architecture"]
        raise ShapeError(f"{preset} takes {c}-channel images, but {what} has {x.shape[1]}-channel "
                         f"{tuple(x.shape[2:])} images; use a preset for this data set (pdenet-analysis presets)")


def scheme_options(args, scheme=None) -> dict:
    """The scheme's options given on the command line (``--coupling``, ``--rtol``, ``--atol``),
    checked against the scheme they are for (``scheme``: the one chosen, by --scheme or the
    model's own); an option the scheme does not take is refused, not dropped."""
    from ..schemes import get_scheme

    options = {k: getattr(args, k) for k in ("coupling", "rtol", "atol") if getattr(args, k, None) is not None}
    if not options:
        return {}
    if "coupling" in options and args.scheme is None:
        raise InvalidArgumentError("--coupling is an option of the reversible Runge–Kutta schemes; add --scheme "
                                   "reversible_heun or --scheme reversible_rk4")
    tolerances = sorted({"rtol", "atol"} & set(options))
    name = args.scheme or scheme
    if tolerances and (name is None or not get_scheme(name).adaptive):
        raise InvalidArgumentError(f"--{' and --'.join(tolerances)} set the error control of an adaptive scheme; "
                                   f"{'the model' + chr(39) + 's scheme ' + repr(name) if name else 'this model'} takes "
                                   "fixed steps: add --scheme dopri5 (or another adaptive scheme), or drop them")
    return options


def rescheme(model, args):
    """The model integrated as ``--scheme``, ``--steps`` and the scheme options say (the same
    weights); the model itself where none is given. Options without ``--scheme`` are for the
    model's own scheme (a dopri5-trained network at another ``--rtol``)."""
    own = model.blocks[0].scheme
    options = scheme_options(args, own.name)
    if args.scheme is None and args.steps is None and not options:
        return model
    if options and args.scheme is None:  # the model's own scheme with other options
        options = {**own.options(), **options}
    return model.with_scheme(args.scheme or (own.name if options else None), args.steps, **options)


def load_model_arg(name: str, device):
    """A preset name (random weights, seed 0) or a checkpoint file (or the directory holding its
    checkpoint.pt): (model on ``device``, the checkpoint's contents or None)."""
    from ..errors import DataError
    from ..networks import PRESETS, build_preset
    from ..training import load_model
    from ..training.checkpoint import load_checkpoint

    if name in PRESETS:
        torch.manual_seed(0)
        model, ck = build_preset(name), None
    elif os.path.exists(name):
        if os.path.isdir(name):
            found = os.path.join(name, "checkpoint.pt")
            if not os.path.exists(found):
                raise DataError(f"{name} is a directory without a checkpoint.pt; give a checkpoint file or a preset "
                                "name (pdenet-analysis presets)")
            name = found
        ck = load_checkpoint(name)
        model = load_model(name)
    else:
        from ..errors import UnknownNameError, _nearest

        if name.endswith(".pt") or os.sep in name:
            raise DataError(f"no model file {name}: give a checkpoint written by pdenet-analysis train (its --out "
                            "directory holds checkpoint.pt), or a preset name")
        if _nearest(name, list(PRESETS)):  # a typo of a preset: name it
            raise UnknownNameError("preset", name, PRESETS)
        raise InvalidArgumentError(f"no file or preset named {name!r}; a model is a checkpoint file (from "
                                   "pdenet-analysis train) or a preset (pdenet-analysis presets lists them)")
    return model.to(device), ck
