"""The memory claim as a figure: saved activation memory and time of forward + backward against
depth, per gradient strategy, from ``bench_memory.py``'s JSON.

    python benchmarks/plot_memory.py [--json benchmarks/results/memory_h200.json] [--out docs/img/memory_h200.png]
    python benchmarks/plot_memory.py --json benchmarks/results/memory_cpu.json --out docs/img/memory_cpu.png
"""

import argparse
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", default="benchmarks/results/memory_h200.json")
    ap.add_argument("--out", default="docs/img/memory_h200.png")
    args = ap.parse_args()
    with open(args.json) as f:
        d = json.load(f)
    rows = [r for r in d["results"] if "error" not in r]
    archs = sorted({r["arch"] for r in rows})
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    styles = {"hamiltonian": "-", "second_order": "--"}
    for arch in archs:
        for gradient, colour in (("backprop", "C3"), ("reversible", "C0"), ("reversible (keep_last=1)", "C1"),
                                 ("adjoint", "C2")):
            pts = sorted((r["depth"], r["saved_MiB"], r["seconds"]) for r in rows
                         if r["arch"] == arch and r["gradient"] == gradient)
            if not pts:
                continue
            depth, saved, secs = zip(*pts)
            label = f"{arch}, {gradient}"
            axes[0].loglog(depth, saved, styles.get(arch, "-"), color=colour, marker="o", label=label)
            axes[1].loglog(depth, secs, styles.get(arch, "-"), color=colour, marker="o", label=label)
    axes[0].set(xlabel="depth (steps)", ylabel="saved for backward (MiB)", title="activation memory")
    repeats = sorted({r.get("repeats", 1) for r in rows})
    how = "one run" if repeats == [1] else f"median of {'/'.join(map(str, repeats))}"
    axes[1].set(xlabel="depth (steps)", ylabel=f"forward + backward (s, {how})", title="time")
    axes[0].legend(fontsize=7)
    prov = d["provenance"]
    fig.suptitle(f"{prov['device']}, torch {prov['torch']}, {d['channels']} channels {d['size']}×{d['size']}, "
                 f"batch {d['batch']} ({prov['date'][:10]}, commit {prov['commit']})", fontsize=9)
    fig.tight_layout()
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
