"""Study ``trained-networks``: the paper's protocol, then the library's analyses of what it trained.

One point per architecture (parabolic, Hamiltonian, second-order, ResNet): the preset is trained by
the paper's protocol (:mod:`pdenet_analysis.training`: SGD with momentum, the schedule, the
regulariser of eq. 13, the box constraint, best-validation weights), its test accuracy measured on
raw test images, and every PDE block of the trained network analysed on the first test images as
``pdenet-analysis analyze CKPT --all-blocks --count-examples 0`` does: every unstable step-map
mode counted for every image, κ of every block's flow map certified or bracketed, reversibility
and the observed order.

Quick grid: digits (8×8), 8 epochs, 2 images. Full grid: Fashion-MNIST, the paper's 100 epochs
(a GPU: on CUDA the step is recorded as a CUDA graph, in bf16 with channels-last), 16 images.
"""

from __future__ import annotations

import os
import tempfile
import time

import torch

from ..runner import Study

ARCHS = ("parabolic", "hamiltonian", "second_order", "resnet")


def grid(quick: bool) -> list[dict]:
    common = dict(dataset="digits", epochs=8, examples=2, batch_size=32) if quick else \
        dict(dataset="fashion_mnist", epochs=100, examples=16, batch_size=125)
    return [dict(arch=a, seed=0, **common) for a in ARCHS]


def run(config: dict) -> dict:
    from ...analysis import Budget, analyze
    from ...data import load_dataset
    from ...networks import build_preset
    from ...training import TrainConfig, load_model, train
    from .summary import block_summary

    dev = torch.device(config["device"])
    data = load_dataset(config["dataset"], config.get("data_dir"))
    torch.manual_seed(config["seed"])
    model = build_preset(f"{config['dataset']}-{config['arch']}")
    fast = dict(cuda_graph=True, amp=True, channels_last=True) if dev.type == "cuda" else {}
    cfg = TrainConfig(epochs=config["epochs"], batch_size=config["batch_size"], seed=config["seed"], device=str(dev),
                      progress=False, dataset=config["dataset"], augment=config["dataset"] != "digits", **fast)
    with tempfile.TemporaryDirectory() as tmp:  # the checkpoint holds the best-validation weights
        cfg.out = tmp
        t0 = time.perf_counter()
        summary = train(model, data, cfg, log=lambda m: None)
        train_s = time.perf_counter() - t0
        trained = load_model(os.path.join(tmp, "checkpoint.pt"), map_location=dev)  # what a user reloads
    hist = summary.pop("history")
    t1 = time.perf_counter()
    x = data.x_test[: config["examples"]].to(dev)  # raw: the network applies its own preprocessing
    res = analyze(trained, x, budget=Budget(count_examples=None), progress=False)
    blocks = [block_summary(res[i].results) for i in range(len(model.blocks))]
    return dict(arch=config["arch"], preset=model.config["preset"], scheme=model.blocks[0].scheme.name,
                weights=model.n_parameters(), test_accuracy=summary["test_accuracy"], test_loss=summary["test_loss"],
                best_val_accuracy=summary["best_val_accuracy"],
                best_epoch=max(hist, key=lambda h: h["val_accuracy"])["epoch"], train_seconds=train_s,
                analysis_seconds=time.perf_counter() - t1,
                history=[dict(epoch=h["epoch"], train_loss=h["train_loss"], val_accuracy=h["val_accuracy"],
                              images_per_s=h["images_per_s"]) for h in hist],
                blocks=blocks)


def aggregate(points: list[dict], out: str, quick: bool) -> str:
    from .summary import markdown, plot, plot_training

    results = {p["result"]["arch"]: p["result"] for p in sorted(points, key=lambda p: ARCHS.index(p["config"]["arch"]))}
    if not results:
        return "No point finished."
    examples = points[0]["config"]["examples"]
    dataset = points[0]["config"]["dataset"]
    summary = dict(examples=examples, networks=results)
    lines = [f"## Training ({dataset}, {points[0]['config']['epochs']} epochs)", "",
             "| network | scheme | weights | test accuracy | best validation accuracy (epoch) | training s |",
             "|---|---|---|---|---|---|"]
    for a, r in results.items():
        lines.append(f"| {a} | {r['scheme']} | {r['weights']:,} | {100 * r['test_accuracy']:.2f} % | "
                     f"{100 * r['best_val_accuracy']:.2f} % ({r['best_epoch']}) | {r['train_seconds']:.0f} |")
    plot_training(results, os.path.join(out, "training.png"), dataset)
    plot(summary, os.path.join(out, "trained_networks.png"))
    lines += ["", "![training curves](training.png)", "",
              f"## The trained networks analysed ({examples} test images, every block, every mode counted)", "",
              markdown(summary), "![growth per step and conditioning of every block](trained_networks.png)", ""]
    return "\n".join(lines)


STUDY = Study(
    name="trained-networks",
    title="The paper's networks trained by its protocol, and analysed",
    question="What accuracy do the paper's four networks reach by its protocol, and are their trained steps stable, "
             "their flow maps well conditioned, their blocks reversible and convergent?",
    grid=grid, run=run, aggregate=aggregate, version=1,
)
