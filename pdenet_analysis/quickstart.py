"""The quickstart main job: on scikit-learn's digits (no files, CPU), train the parabolic,
Hamiltonian, second-order and ResNet networks, analyse them, and write a report."""

from __future__ import annotations

import json
import os
import platform
import sys
import time

import torch

from .analysis import analyze
from .data import load_dataset
from .networks import build_preset
from .training import TrainConfig, train

ARCHS = ("parabolic", "hamiltonian", "second_order", "resnet")


def run_quickstart(out: str = "reports/quickstart", epochs: int = 15, seed: int = 0, examples: int = 2,
                   quiet: bool = False) -> str:
    os.makedirs(out, exist_ok=True)
    data = load_dataset("digits")
    x_probe = data.x_test[:examples]  # raw: each network applies its own preprocessing
    rows, details = [], {}
    for arch in ARCHS:
        torch.manual_seed(seed)
        model = build_preset(f"digits-{arch}")
        t0 = time.perf_counter()
        if not quiet:
            print(f"quickstart: training {arch} on digits ({epochs} epochs)", file=sys.stderr, flush=True)
        summary = train(model, data, TrainConfig(epochs=epochs, augment=False, seed=seed, progress=False,
                                                 out=os.path.join(out, arch)))
        train_s = time.perf_counter() - t0
        everything = analyze(model, x_probe, blocks=[0], progress=not quiet)
        everything.save(os.path.join(out, arch))
        res = everything[0].results
        feat = everything["network"]["features"].data
        st = res["stability"].data["steps"]
        rev = res.get("reversibility")
        conv = res.get("convergence")
        cond = res["conditioning"].data
        row = dict(model=arch, scheme=model.blocks[0].scheme.name, parameters=model.n_parameters(),
                   test_accuracy=summary["test_accuracy"], test_loss=summary["test_loss"], train_seconds=train_s,
                   examples=examples, max_spectral_radius=max(s["spectral_radius"] for s in st),
                   max_modes_outside=max(s["n_outside_max"] for s in st), unknowns=st[0]["examples"][0]["unknowns"],
                   max_amplification=max(s["max_amplification"] for s in st),
                   predicted_amplification=max(s["predicted_amplification"] for s in st),
                   min_largest_stable_h=min(s["largest_stable_h_reported"] for s in st), h=res["stability"].data["h"],
                   reversibility_float32=None if rev is None else max(
                       d["relative_error"] for d in rev.data["results"] if d["dtype"] == "float32"),
                   observed_order=None if conv is None else conv.data["observed_order"],
                   declared_order=model.blocks[0].scheme.order,
                   condition_median=cond["condition"]["median"], condition_worst=cond["condition"]["max"],
                   condition_converged=cond["all_converged"], features=feat["features"],
                   features_rank_min=feat["rank"]["min"], features_condition_effective=feat["condition_effective"]["max"])
        rows.append(row)
        details[arch] = {k: r.to_dict() for k, r in res.items()}
    meta = dict(command=f"pdenet-analysis quickstart --out {out} --epochs {epochs} --seed {seed}",
                seed=seed, epochs=epochs, device="cpu", torch=torch.__version__, python=platform.python_version(),
                date=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()))
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump(dict(meta=meta, summary=rows, details=details), f, indent=2, default=str)
    path = os.path.join(out, "report.md")
    with open(path, "w") as f:
        f.write("# pdenet_analysis quickstart: scikit-learn digits (8×8), CPU\n\n")
        f.write(f"Command: `{meta['command']}`; torch {meta['torch']}; {meta['date']}.\n\n")
        f.write(f"Analyses are of the first PDE block on the first {examples} test images (its input is the opening "
                "layer's output). 'ρ(S_j)' is the spectral radius of the one-step map (growth per step of the worst "
                "mode, real or complex); 'modes outside' counts its eigenvalues with |ξ| > 1 + 1e-6, of all unknowns; "
                "'R(z), few λ' is what the scheme's stability function predicts from the 6 largest-magnitude and 2 "
                "largest-real layer eigenvalues alone.\n\n")
        f.write("| model | scheme | weights | test acc | test loss | train s | ρ(∂F/∂Y) max | ρ(S_j) max | modes outside | R(z), few λ | largest stable h | h | reversibility err (fp32) | order obs/decl | κ(flow) median / worst | features: rank, κ on the rank (worst) |\n")
        f.write("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
        for r in rows:
            rev = "—" if r["reversibility_float32"] is None else f"{r['reversibility_float32']:.1e}"
            order = "—" if r["observed_order"] is None else f"{r['observed_order']:.2f}/{r['declared_order']}"
            ge = "" if r["condition_converged"] else "≥ "
            f.write(f"| {r['model']} | {r['scheme']} | {r['parameters']:,} | {r['test_accuracy']:.3f} | {r['test_loss']:.3f} | "
                    f"{r['train_seconds']:.1f} | {r['max_spectral_radius']:.3g} | {r['max_amplification']:.4g} | "
                    f"{r['max_modes_outside']} / {r['unknowns']} | {r['predicted_amplification']:.4g} | "
                    f"{r['min_largest_stable_h']:.3g} | {r['h']:.3g} | {rev} | {order} | "
                    f"{ge}{r['condition_median']:.3g} / {ge}{r['condition_worst']:.3g} | "
                    f"{r['features_rank_min']:.0f}/{r['features']}, {r['features_condition_effective']:.3g} |\n")
        for arch in ARCHS:
            f.write(f"\n## {arch}\n\n")
            md = os.path.join(out, arch, "network", "features.md")
            if os.path.exists(md):
                f.write(open(md).read().replace("### ", "### network · ") + "\n")
                f.write(f"![features]({arch}/network/features.png)\n\n")
            for name in ("stability", "conditioning", "density", "convergence", "reversibility", "energy"):
                md = os.path.join(arch, "block0", f"{name}.md")
                if os.path.exists(os.path.join(out, md)):
                    f.write(open(os.path.join(out, md)).read().replace("### ", "### block 0 · ") + "\n")
                    if os.path.exists(os.path.join(out, arch, "block0", f"{name}.png")):
                        f.write(f"![{name}]({arch}/block0/{name}.png)\n\n")
    return path
