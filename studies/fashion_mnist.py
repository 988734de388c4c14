"""Train the four architectures on Fashion-MNIST by the paper's protocol and record the results.

    python studies/fashion_mnist.py --epochs 5 --device cpu --out studies/results/fashion_mnist_cpu.json
    python studies/fashion_mnist.py --epochs 100 --device cuda --fast --out studies/results/fashion_mnist_cuda.json
    python studies/fashion_mnist.py --replot studies/results/fashion_mnist_cuda.json --figure docs/img/fashion_mnist_cuda.png

Protocol (spec §5.1): 80/20 train/validation split of the 60,000 training images, batch 125, SGD
with momentum 0.9, learning rate 0.1 divided by 5 at 60% and 80% of the epochs, the TV-in-time
regulariser and weight decay (α₁ = α₂ = 2·10⁻⁴), box constraint [−1, 1] on the PDE kernels,
per-image standardisation, flip + pad-crop augmentation; the test accuracy of the weights with
the best validation accuracy on all 10,000 test images. Only the number of epochs is reduced when
the run is on CPU (the paper trains 100).
"""

import argparse
import dataclasses
import json
import os
import sys
import time

import torch

import pdenet_analysis as pa
from pdenet_analysis.data import load_dataset
from pdenet_analysis.training import TrainConfig, train

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
from _provenance import provenance, save  # noqa: E402


def plot(record: dict, path: str) -> None:
    """Training loss and validation accuracy per epoch of every network in a result ``record``
    (what this script writes), the best-validation epoch marked, into ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
    for i, r in enumerate(record["results"]):
        h = r["history"]
        epochs = [e["epoch"] for e in h]
        label = f"{r['model'].split('-', 1)[1]} ({r['scheme']}): test {100 * r['test_accuracy']:.2f} %"
        ax_loss.semilogy(epochs, [e["train_loss"] for e in h], color=f"C{i}", label=label)
        ax_acc.plot(epochs, [100 * e["val_accuracy"] for e in h], color=f"C{i}")
        ax_acc.plot([r["best_epoch"]], [100 * r["best_val_accuracy"]], "o", color=f"C{i}")
    ax_loss.set(xlabel="epoch", ylabel="training loss (cross-entropy)")
    ax_acc.set(xlabel="epoch", ylabel="validation accuracy (%)", ylim=(85, 96))
    ax_loss.legend(fontsize=8)
    prov = record["provenance"]
    fig.suptitle(f"Fashion-MNIST, the paper's protocol ({record['epochs']} epochs; {prov['device']}, commit "
                 f"{prov['commit']}); dots: best-validation epoch", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--runs", default="runs/fashion_mnist")
    ap.add_argument("--out", default="studies/results/fashion_mnist_cpu.json")
    ap.add_argument("--archs", nargs="+", default=["parabolic", "hamiltonian", "second_order", "resnet"])
    ap.add_argument("--limit", type=int, default=None, metavar="N",
                    help="only the first N training and N test images (the GPU campaign's dry run); not the protocol")
    ap.add_argument("--fast", action="store_true",
                    help="the GPU settings: the step recorded as a CUDA graph, bf16 autocast, channels-last")
    ap.add_argument("--figure", default=None, metavar="PNG", help="also draw the training curves into this file")
    ap.add_argument("--replot", default=None, metavar="JSON", help="train nothing: draw --figure from this result file")
    args = ap.parse_args()
    if args.replot:
        if not args.figure:
            ap.error("--replot needs --figure PNG")
        with open(args.replot) as f:
            plot(json.load(f), args.figure)
        print(f"wrote {args.figure}")
        return
    data = load_dataset("fashion_mnist", args.data_dir)
    if args.limit is not None:
        n = args.limit
        data = dataclasses.replace(data, x_train=data.x_train[:n], y_train=data.y_train[:n], x_test=data.x_test[:n],
                                   y_test=data.y_test[:n])
    prov = provenance()  # at the start: the code that ran
    results = []
    fast = dict(cuda_graph=True, amp=True, channels_last=True) if args.fast else {}
    for arch in args.archs:
        torch.manual_seed(args.seed)
        model = pa.build_preset(f"fashion_mnist-{arch}")
        cfg = TrainConfig(epochs=args.epochs, device=args.device, seed=args.seed, out=os.path.join(args.runs, arch),
                          progress=True, resume=True, **fast)  # one line per epoch
        t0 = time.perf_counter()
        s = train(model, data, cfg, log=lambda m: print(arch, m, flush=True))
        hist = s.pop("history")
        results.append(dict(model=f"fashion_mnist-{arch}", scheme=model.blocks[0].scheme.name, **s,
                            wall_seconds=time.perf_counter() - t0,
                            images_per_s=sum(h["images_per_s"] for h in hist) / len(hist),
                            final_train_loss=hist[-1]["train_loss"], best_epoch=max(hist, key=lambda h: h["val_accuracy"])["epoch"],
                            history=hist))
        print(json.dumps({k: v for k, v in results[-1].items() if k != "history"}), flush=True)
        # after every architecture: a run stopped at its time keeps what it finished
        save(args.out, dict(provenance=prov, seed=args.seed, epochs=args.epochs, device=args.device, limit=args.limit,
                            protocol={**cfg.__dict__, "out": args.runs}, results=results))
    if args.figure:
        with open(args.out) as f:
            plot(json.load(f), args.figure)


if __name__ == "__main__":
    main()
