"""``pdenet-analysis train``: a preset trained on a data set by the paper's protocol, with any
scheme, step count or adaptive tolerance (the discrete-versus-continuous study's settings)."""

from __future__ import annotations

import json
import os
import sys

import torch

from ..errors import InvalidArgumentError
from .common import check_fits, scheme_options


def add_parser(sub, formatter) -> None:
    t = sub.add_parser("train", formatter_class=formatter,
                       description="Train a preset by the paper's protocol (SGD, the regulariser of eq. 13, the box "
                                   "constraint, best-validation weights) and write checkpoint.pt, metrics.jsonl and "
                                   "summary.json into --out.")
    t.add_argument("--dataset", required=True, help="digits (embedded), fashion_mnist, mnist, cifar10, cifar100, stl10")
    t.add_argument("--model", required=True, help="a preset name, e.g. fashion_mnist-hamiltonian (pdenet-analysis "
                   "presets lists them)")
    t.add_argument("--scheme", default=None, help="train with this scheme instead of the preset's (e.g. rk4, or dopri5 "
                   "for continuous-depth training)")
    t.add_argument("--coupling", type=float, default=None, metavar="λ",
                   help="with --scheme reversible_heun or reversible_rk4: the coupling λ in (0, 1] (nearer 1 lets the "
                        "reversible gradient rebuild more steps, and narrows the stable step)")
    t.add_argument("--steps", type=int, default=None, help="steps per PDE block (fixed-step schemes)")
    t.add_argument("--rtol", type=float, default=None, help="with an adaptive --scheme: its relative tolerance "
                   "(library default 1e-6)")
    t.add_argument("--atol", type=float, default=None, help="with an adaptive --scheme: its absolute tolerance "
                   "(library default 1e-8)")
    t.add_argument("--interpolation", default="constant", choices=["constant", "linear"],
                   help="θ(t) between the weight sets: piecewise constant (the paper's, one set per step) or piecewise "
                        "linear (differentiable in t, as continuous-depth training wants)")
    t.add_argument("--gradient", default=None, choices=["backprop", "reversible", "adjoint"],
                   help="how gradients pass through the PDE blocks (reversible: O(1) memory in depth; default backprop)")
    t.add_argument("--keep-last", type=int, default=None, metavar="K",
                   help="with --gradient reversible: the last K steps of every block keep their graph (memory of K "
                        "steps) and are not rebuilt; the gradient is the same")
    t.add_argument("--epochs", type=int, default=10, help="epochs of training")
    t.add_argument("--lr", type=float, default=0.1, help="the initial learning rate (divided by 5 at 60%% and 80%% of "
                   "the epochs)")
    t.add_argument("--device", default="cpu", help="where to train (cpu, cuda, cuda:1)")
    t.add_argument("--out", default="runs/train", help="the run's directory: checkpoint, metrics, summary")
    t.add_argument("--data-dir", default=None, help="where the data set's files are (default: its usual place)")
    t.add_argument("--download", action="store_true", help="fetch the official files into --data-dir (checksum-verified)")
    t.add_argument("--resume", action="store_true", help="continue from --out's checkpoint (refused if it holds another "
                   "run); with none there, say so and start fresh")
    t.add_argument("--no-augment", action="store_true",
                   help="no flip and pad-crop augmentation (digits is never augmented: flips and crops do not suit "
                   "8×8 digits)")
    t.add_argument("--batch-size", type=int, default=None,
                   help="images per SGD step (default: the paper's 125; 32 on digits, whose training set is small)")
    t.add_argument("--quiet", action="store_true", help="no per-batch progress or per-epoch lines on stderr/stdout")
    t.add_argument("--amp", action="store_true", help="bfloat16 autocast of the layers (the reversible state stays float32)")
    t.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                   help="precision of the weights, the data and the training (float64: round-off of 1e-16, for studies "
                        "that compare runs)")
    t.add_argument("--channels-last", action="store_true", help="channels-last layout for the 2-D convolutions")
    t.add_argument("--compile", action="store_true", help="torch.compile the network (fixed-step schemes)")
    t.add_argument("--cuda-graph", action="store_true",
                   help="record the whole training step as a CUDA graph and replay it (CUDA, fixed-step schemes, one "
                        "process): the paper's small networks are bound by kernel launches")
    t.add_argument("--seed", type=int, default=0, help="seeds the weights, the validation split and the batches")
    t.add_argument("--deterministic", action="store_true",
                   help="deterministic kernels: a CUDA run repeats to the bit (slower; CPU runs repeat anyway)")
    t.set_defaults(func=run)


def _gradient(args):
    if args.keep_last is None:
        return args.gradient
    from ..gradients import Reversible

    if args.gradient != "reversible":
        raise InvalidArgumentError("--keep-last is an option of the reversible gradient; add --gradient reversible")
    return Reversible(keep_last=args.keep_last)


def run(args) -> int:
    from ..data import load_dataset
    from ..networks import build_preset
    from ..training import TrainConfig, distributed, train

    gradient = _gradient(args)
    if args.dtype == "float64" and args.amp:
        raise InvalidArgumentError("--amp runs the layers in bfloat16, which --dtype float64 rules out; drop one of them")
    torch.manual_seed(args.seed)
    model = build_preset(args.model, interpolation=args.interpolation)
    options = scheme_options(args, model.blocks[0].scheme.name)
    data = load_dataset(args.dataset, args.data_dir, args.download)
    if args.scheme is not None or args.steps is not None or gradient is not None or options:
        model = model.with_scheme(args.scheme, args.steps, gradient, **options)
    model = model.to(getattr(torch, args.dtype))
    check_fits(model, data.x_train[:1], f"the {args.dataset} data set")
    resume = args.resume
    if resume and not os.path.exists(os.path.join(args.out, "checkpoint.pt")):
        print(f"pdenet-analysis train: nothing to resume in {args.out} (no checkpoint.pt there); starting fresh",
              file=sys.stderr)
        resume = False
    cfg = TrainConfig(epochs=args.epochs, device=args.device, out=args.out, resume=resume, seed=args.seed,
                      dataset=args.dataset, augment=not args.no_augment and args.dataset != "digits", lr=args.lr,
                      batch_size=(32 if args.dataset == "digits" else 125) if args.batch_size is None else args.batch_size, progress=not args.quiet,
                      amp=args.amp, channels_last=args.channels_last, compile=args.compile, cuda_graph=args.cuda_graph,
                      deterministic=args.deterministic)
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
