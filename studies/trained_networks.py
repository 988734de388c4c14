"""Stability, conditioning, reversibility and convergence of the networks trained by the paper's
protocol, on real test images: every PDE block of each checkpoint that ``studies/fashion_mnist.py``
wrote, analysed as ``pdenet-analysis analyze CKPT --all-blocks --count-examples 0`` does (the
step-map modes outside the unit circle counted completely for every example), then summarised.

    python studies/trained_networks.py --runs runs/gpu_campaign/fashion_mnist --data-dir data/fashion_mnist \\
        --out studies/results/fashion-mnist-trained
    python studies/trained_networks.py --replot        # the figure and tables again, from summary.json

Writes the reports of each network in ``OUT/<arch>/`` (as ``analyze`` does), ``OUT/summary.json``
(per network and block: the step-map radius, modes outside and largest stable h at every step, κ
of the flow map, the reversibility error and the observed order, with the checkpoints' SHA-256),
``OUT/summary.md`` (the same as tables) and ``OUT/trained_networks.png``. About 11 minutes for the
four Fashion-MNIST networks on 2 CPU cores.
"""

import argparse
import hashlib
import json
import os
import sys
import time

import numpy as np
import torch

from pdenet_analysis.analysis.model import analyze_model
from pdenet_analysis.data import load_dataset, standardize
from pdenet_analysis.training import load_model

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
from _provenance import provenance, save  # noqa: E402

ARCHS = ("parabolic", "hamiltonian", "second_order", "resnet")


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def block_summary(reports: dict) -> dict:
    """What a block's reports say, in numbers (the keys of the reports' ``data``)."""
    st = reports["stability"].data
    out = dict(scheme=st["scheme"], unknowns=st["steps"][0]["examples"][0]["unknowns"],
               steps=[dict(step=s["step"], radius=s["max_amplification"], radius_median=s["step_map_radius"]["median"],
                           unstable_examples=sum(e["n_outside"] > 0 for e in s["examples"]),
                           examples=len(s["examples"]), outside=s["n_outside_max"],
                           exact=s["count_exact"], fraction_outside=s["fraction_outside"],
                           largest_stable_h=s["largest_stable_h_reported"],
                           largest_stable_h_complete=s["largest_stable_h_complete"] is not None,
                           layer_radius=s["spectral_radius"], status=s["status"]) for s in st["steps"]],
               growth_bound=st["growth_bound"]["max"])
    if "conditioning" in reports:
        c = reports["conditioning"].data
        out["conditioning"] = dict(median=c["condition"]["median"], max=c["condition"]["max"],
                                   p5=c["condition"]["p5"], p95=c["condition"]["p95"],
                                   certified=sum(e["condition_status"] == "converged" for e in c["examples"]),
                                   bracketed=sum(e["condition_upper_probable"] is not None for e in c["examples"]),
                                   widest_bracket=max((e["condition_upper_probable"] / e["condition"] - 1
                                                       for e in c["examples"] if e["condition_upper_probable"]),
                                                      default=None),
                                   all_converged=c["all_converged"], method=c["method_min"],
                                   sigma_max=c["sigma_max"]["max"], sigma_min=c["sigma_min"]["min"])
    if "reversibility" in reports:
        rows = reports["reversibility"].rows  # (dtype, steps, h, relative error)
        out["reversibility"] = {r[0]: max(x[3] for x in rows if x[0] == r[0]) for r in rows}
    if "convergence" in reports:
        out["observed_order"] = reports["convergence"].data["observed_order"]
    return out


def saved_reports(folder: str) -> dict | None:
    """The reports a block's analysis wrote as JSON into ``folder`` (name -> an object with the
    report's ``data`` and ``rows``), or None where its stability report is absent (the committed
    results keep only the Markdown)."""
    from types import SimpleNamespace

    if not os.path.exists(os.path.join(folder, "stability.json")):
        return None
    reports = {}
    for name in ("stability", "conditioning", "reversibility", "convergence"):
        path = os.path.join(folder, f"{name}.json")
        if os.path.exists(path):
            with open(path) as f:
                saved = json.load(f)
            reports[name] = SimpleNamespace(data=saved["data"], rows=saved["rows"])
    return reports


def markdown(summary: dict) -> str:
    lines = []
    for arch, net in summary["networks"].items():
        acc = f", test accuracy {100 * net['test_accuracy']:.2f} %" if net.get("test_accuracy") is not None else ""
        lines += [f"### {arch} ({net['blocks'][0]['scheme']}{acc})", "",
                  "| block | unknowns | step | ρ(S_j) worst (median) | images unstable | modes outside | "
                  "largest stable h | ρ(∂F/∂Y) |",
                  "|---|---|---|---|---|---|---|---|"]
        for i, b in enumerate(net["blocks"]):
            for s in b["steps"]:
                h = f"{s['largest_stable_h']:.4g}" + ("" if s["largest_stable_h_complete"] else " (est.)")
                median = f" ({s['radius_median']:.4g})" if "radius_median" in s else ""
                unstable = f"{s['unstable_examples']} of {s['examples']}" if "unstable_examples" in s else "—"
                lines.append(f"| {i} | {b['unknowns']:,} | {s['step']} | {s['radius']:.4g}{median} | {unstable} | "
                             f"{'' if s['exact'] else '≥ '}{s['outside']} ({100 * s['fraction_outside']:.2g} %) | {h} | "
                             f"{s['layer_radius']:.4g} |")
        lines += ["", "| block | κ median | κ 5–95 % | κ worst | certified | probable bracket, widest | "
                  "reversibility error (float64 / float32) | observed order |",
                  "|---|---|---|---|---|---|---|---|"]
        for i, b in enumerate(net["blocks"]):
            c = b.get("conditioning", {})
            rev = b.get("reversibility")
            rev_txt = f"{rev['float64']:.2g} / {rev['float32']:.2g}" if rev else "— (not reversible)"
            band = f"{c['p5']:.3g}–{c['p95']:.3g}" if "p5" in c else "—"
            n = summary["examples"]
            certified = f"{c['certified']} of {n}" if "certified" in c else ("yes" if c.get("all_converged") else "no")
            bracket = (f"{c['bracketed']} of {n}, {c['widest_bracket']:.1e}" if c.get("widest_bracket") is not None
                       else "—")
            lines.append(f"| {i} | {c.get('median', float('nan')):.4g} | {band} | {c.get('max', float('nan')):.4g} | "
                         f"{certified} | {bracket} | {rev_txt} | {b.get('observed_order', float('nan')):.3g} |")
        lines.append("")
    return "\n".join(lines)


def plot(summary: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_r, ax_k) = plt.subplots(1, 2, figsize=(10, 3.8))
    for i, (arch, net) in enumerate(summary["networks"].items()):
        xs, radii, kappas = [], [], []
        for bi, b in enumerate(net["blocks"]):
            for s in b["steps"]:
                xs.append(bi * (len(b["steps"]) + 1) + s["step"])
                radii.append(s["radius"])
            xs.append(xs[-1] + 1)  # a gap between blocks
            radii.append(np.nan)
            kappas.append((bi, b.get("conditioning", {}).get("median", np.nan), b.get("conditioning", {}).get("max", np.nan)))
        ax_r.semilogy(xs, radii, "o-", color=f"C{i}", label=f"{arch} ({net['blocks'][0]['scheme']})")
        ax_k.semilogy([k[0] + 0.08 * i for k in kappas], [k[2] for k in kappas], "v", color=f"C{i}", label=f"{arch}, worst")
        ax_k.semilogy([k[0] + 0.08 * i for k in kappas], [k[1] for k in kappas], "o", color=f"C{i}", mfc="none",
                      label=f"{arch}, median")
    ax_r.axhline(1.0, color="k", lw=0.6)
    ax_r.set(xlabel="block · step (gaps between blocks)", ylabel="ρ(S_j), worst example",
             title="growth per step of the worst mode (h = 1)")
    ax_k.set(xlabel="block", ylabel="κ of the block's flow map", title="conditioning of each block")
    ax_k.set_xticks(range(max(len(n["blocks"]) for n in summary["networks"].values())))
    ax_r.legend(fontsize=7)
    lo, hi = ax_k.get_ylim()
    ax_k.set_ylim(lo, hi * (hi / lo) ** 0.35)  # room above the points for the legend (log axis)
    ax_k.legend(fontsize=6, ncol=2, loc="upper center")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", default="runs/gpu_campaign/fashion_mnist", help="one folder per network with checkpoint.pt")
    ap.add_argument("--archs", nargs="+", default=list(ARCHS))
    ap.add_argument("--dataset", default="fashion_mnist")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--examples", type=int, default=4, help="test images analysed per network")
    ap.add_argument("--training", default="studies/results/fashion_mnist_cuda.json",
                    help="the training study's result file, for the test accuracies (optional)")
    ap.add_argument("--out", default="studies/results/fashion-mnist-trained")
    ap.add_argument("--replot", action="store_true",
                    help="analyse nothing: the figure and tables again from OUT/summary.json, its block summaries "
                         "rebuilt from the reports' JSON in OUT/<arch>/block*/ where they are present")
    args = ap.parse_args()
    if args.replot:
        with open(os.path.join(args.out, "summary.json")) as f:
            summary = json.load(f)
        for arch, net in summary["networks"].items():  # the block summaries again, from the reports where saved
            for i in range(len(net["blocks"])):
                reports = saved_reports(os.path.join(args.out, arch, f"block{i}"))
                if reports is not None:
                    net["blocks"][i] = block_summary(reports)
        save(os.path.join(args.out, "summary.json"), summary)
        with open(os.path.join(args.out, "summary.md"), "w") as f:
            f.write(markdown(summary))
        plot(summary, os.path.join(args.out, "trained_networks.png"))
        print(f"wrote {os.path.join(args.out, 'summary.md')} and trained_networks.png")
        return
    missing = [a for a in args.archs if not os.path.exists(os.path.join(args.runs, a, "checkpoint.pt"))]
    if missing:
        sys.exit(f"trained_networks: no checkpoint for {', '.join(missing)} under {args.runs}/<arch>/checkpoint.pt: "
                 "train them first with studies/fashion_mnist.py (--runs names that folder)")
    accuracy = {}
    if os.path.exists(args.training):
        with open(args.training) as f:
            accuracy = {r["model"].split("-", 1)[1]: r["test_accuracy"] for r in json.load(f)["results"]}
    prov = provenance()
    x = standardize(load_dataset(args.dataset, args.data_dir).x_test[: args.examples])
    networks = {}
    for arch in args.archs:
        ckpt = os.path.join(args.runs, arch, "checkpoint.pt")
        torch.manual_seed(0)
        model = load_model(ckpt)
        t0 = time.perf_counter()
        print(f"trained_networks: {arch} ({ckpt})", file=sys.stderr, flush=True)
        res = analyze_model(model, x, os.path.join(args.out, arch), count_examples=None)
        networks[arch] = dict(checkpoint=ckpt, sha256=_sha256(ckpt), preset=model.config.get("preset"),
                              test_accuracy=accuracy.get(arch), seconds=time.perf_counter() - t0,
                              blocks=[block_summary(res[i]["reports"]) for i in range(len(model.blocks))])
        summary = dict(provenance=prov, dataset=args.dataset, examples=len(x), networks=networks)
        save(os.path.join(args.out, "summary.json"), summary)  # after every network: a stopped run keeps what it did
        with open(os.path.join(args.out, "summary.md"), "w") as f:
            f.write(markdown(summary))
    plot(summary, os.path.join(args.out, "trained_networks.png"))
    print(f"wrote {os.path.join(args.out, 'summary.md')} and trained_networks.png")


if __name__ == "__main__":
    main()
