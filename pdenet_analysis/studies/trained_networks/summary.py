"""The tables and figure of the trained-networks study, from each point's block summaries."""

from __future__ import annotations

import numpy as np


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
    ax_r.set(xlabel="block · step (gaps between blocks)", ylabel=r"$\rho(S_j)$, worst example",
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


def plot_training(results: dict, path: str, dataset: str) -> None:
    """Training loss and validation accuracy per epoch of every network, the best-validation epoch
    marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
    for i, (arch, r) in enumerate(results.items()):
        h = r["history"]
        epochs = [e["epoch"] for e in h]
        ax_loss.semilogy(epochs, [e["train_loss"] for e in h], color=f"C{i}",
                         label=f"{arch} ({r['scheme']}): test {100 * r['test_accuracy']:.2f} %")
        ax_acc.plot(epochs, [100 * e["val_accuracy"] for e in h], color=f"C{i}")
        ax_acc.plot([r["best_epoch"]], [100 * r["best_val_accuracy"]], "o", color=f"C{i}")
    ax_loss.set(xlabel="epoch", ylabel="training loss (cross-entropy)")
    ax_acc.set(xlabel="epoch", ylabel="validation accuracy (%)")
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_loss.legend(fontsize=8)
    fig.suptitle(f"{dataset}, the paper's protocol; dots: the best-validation epoch", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
