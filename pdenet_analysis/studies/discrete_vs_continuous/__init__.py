"""Study ``discrete-vs-continuous``: does a trained PDE-CNN depend on the scheme it was trained with?

For each of the four architectures, three trainings (one grid point each):

* ``paper``: the paper's scheme (Euler for parabolic and ResNet, symplectic Euler for Hamiltonian,
  leapfrog for second order) at 3 steps of h = 1, θ piecewise constant (one weight set per step);
* ``rk4-12``: RK4 at 12 steps (h = 1/4), same θ — a fixed-step scheme fine enough to approximate
  the ODE, as in Queiruga et al. (2020);
* ``dopri5``: dopri5 (rtol = atol = 10⁻³) with θ piecewise linear in time, the continuous-depth
  (neural-ODE) training of Ott et al. (ICLR 2021).

Each trained network is then evaluated on the test set under every compatible scheme and step
count (3 … 48 steps) and dopri5 at rtol 10⁻³ … 10⁻⁷ (weights shared, see
:meth:`PDECNN.with_scheme`). Ott et al. found that neural ODEs trained with a coarse fixed-step
solver lose their accuracy when integrated more accurately ("ResNet after all"), while
adaptive-trained ones do not; the study measures whether the paper's networks behave the same.

Quick grid: digits (8×8), 12 epochs. Full grid: Fashion-MNIST by the paper's protocol (needs the
IDX files and, at the full 100 epochs, a GPU).
"""

from __future__ import annotations

import math
import os
import time

import torch

from ...errors import UnknownNameError
from ..runner import Study

ARCHS = ("parabolic", "hamiltonian", "second_order", "resnet")
TRAININGS = ("paper", "rk4-12", "dopri5")
STEPS_QUICK, STEPS_FULL = (3, 6, 12, 24, 48), (3, 6, 12, 24, 48)
RTOLS_QUICK, RTOLS_FULL = (1e-3, 1e-5, 1e-7), (1e-3, 1e-4, 1e-5, 1e-6, 1e-7)
SEEDS_QUICK, SEEDS_FULL = (0, 1, 2), (0,)


def _build(arch: str, dataset: str, training: str):
    from ...networks import build_preset

    if training == "paper":
        return build_preset(f"{dataset}-{arch}")
    if training == "rk4-12":
        return build_preset(f"{dataset}-{arch}", scheme="rk4", n_steps=12)
    if training == "dopri5":
        return build_preset(f"{dataset}-{arch}", scheme="dopri5", interpolation="linear",
                            scheme_kwargs=dict(rtol=1e-3, atol=1e-3))
    raise UnknownNameError("training", str(training), TRAININGS)


def eval_schemes(arch: str, quick: bool) -> list[str]:
    """Fixed-step schemes a network of ``arch`` is evaluated with (its own first)."""
    from ...networks import build_preset
    from ...schemes import get_scheme, names_accepting

    own = build_preset(f"digits-{arch}").blocks[0].scheme.name
    kind = build_preset(f"digits-{arch}").blocks[0].operator.kind
    if quick:
        names = [own, "rk4"] + (["verlet"] if kind != "first_order" else ["heun"])
    else:
        names = [own] + [n for n in names_accepting(kind) if n != own and not get_scheme(n).adaptive]
    return list(dict.fromkeys(names))


def run(config: dict) -> dict:
    from ...data import load_dataset
    from ...training import TrainConfig, evaluate, train

    arch, training, dataset = config["arch"], config["training"], config["dataset"]
    dev = torch.device(config["device"])
    torch.manual_seed(config["seed"])
    model = _build(arch, dataset, training)
    data = load_dataset(dataset, config.get("data_dir"))
    cfg = TrainConfig(epochs=config["epochs"], seed=config["seed"], device=str(dev), augment=dataset != "digits",
                      progress=False, dataset=dataset)
    t0 = time.perf_counter()
    summary = train(model, data, cfg, log=lambda m: None)
    train_s = time.perf_counter() - t0
    hist = summary["history"]
    x = data.x_test.to(dev, next(model.parameters()).dtype)  # raw: the network applies its own preprocessing
    y = data.y_test.to(dev)

    def accuracy(m):
        """Test accuracy and operator evaluations per forward pass under another scheme."""
        r = evaluate(m, x, y)
        return r["accuracy"], r["evals_per_forward"]

    evals = []
    for scheme in eval_schemes(arch, config["quick"]):
        for n in config["steps"]:
            t1 = time.perf_counter()
            acc, ev = accuracy(model.with_scheme(scheme, n))
            evals.append(dict(scheme=scheme, n_steps=n, rtol=None, accuracy=acc, evals_per_forward=ev,
                              seconds=time.perf_counter() - t1))
    for rtol in config["rtols"]:
        t1 = time.perf_counter()
        try:
            acc, ev, err = *accuracy(model.with_scheme("dopri5", None, rtol=rtol, atol=rtol)), None
        except Exception as e:  # noqa: BLE001 — e.g. the step budget at a tight tolerance; recorded
            acc, ev, err = math.nan, math.nan, f"{type(e).__name__}: {e}"
        evals.append(dict(scheme="dopri5", n_steps=None, rtol=rtol, accuracy=acc, evals_per_forward=ev,
                          seconds=time.perf_counter() - t1, error=err))
    return dict(arch=arch, training=training, dataset=dataset, test_accuracy=summary["test_accuracy"],
                train_seconds=train_s, epochs=config["epochs"],
                evals_per_epoch=sum(h["operator_evals_per_forward"] * h["batches"] for h in hist) / len(hist),
                final_train_loss=hist[-1]["train_loss"], val_accuracy=[h["val_accuracy"] for h in hist],
                evaluations=evals)


def grid(quick: bool) -> list[dict]:
    """Every architecture × training × seed. The quick grid has three seeds: on digits' 359 test
    images one image is 0.28 points, and one seed could not tell a drop of 1–7 images from noise."""
    common = dict(dataset="digits", epochs=12, steps=list(STEPS_QUICK), rtols=list(RTOLS_QUICK)) if quick else \
        dict(dataset="fashion_mnist", epochs=100, steps=list(STEPS_FULL), rtols=list(RTOLS_FULL))
    return [dict(arch=a, training=t, seed=s, quick=quick, **common)
            for a in ARCHS for t in TRAININGS for s in (SEEDS_QUICK if quick else SEEDS_FULL)]


def _label(e: dict) -> str:
    return f"dopri5 {e['rtol']:.0e}" if e["scheme"] == "dopri5" else f"{e['scheme']} {e['n_steps']}"


def _by_network(points: list[dict]) -> dict:
    """(arch, training) -> that network's results, one per seed in seed order."""
    res = {}
    for p in sorted(points, key=lambda p: p["config"]["seed"]):
        r = p["result"]
        res.setdefault((r["arch"], r["training"]), []).append(dict(r, seed=p["config"]["seed"]))
    return res


def _accuracy(r: dict, key: tuple) -> float:
    """Test accuracy of one trained network under the evaluation ``key`` = (scheme, n_steps, rtol)."""
    for e in r["evaluations"]:
        if (e["scheme"], e["n_steps"], e["rtol"]) == key:
            return e["accuracy"]
    return math.nan


def _key(e: dict) -> tuple:
    return e["scheme"], e["n_steps"], e["rtol"]


def _spread(values, scale: float = 1.0, digits: int = 3) -> str:
    """``mean`` for one value, ``mean (min–max)`` for several; — where none is finite."""
    v = [x * scale for x in values if not math.isnan(x)]
    if not v:
        return "—"
    mean = sum(v) / len(v)
    return f"{mean:.{digits}f}" if len(v) == 1 else f"{mean:.{digits}f} ({min(v):.{digits}f} to {max(v):.{digits}f})"


def aggregate(points: list[dict], out: str, quick: bool) -> str:
    """The study's page: per architecture the accuracy matrix (trained with × evaluated with, the
    mean over seeds, and its heatmap), accuracy against evaluation steps, and per network the
    paired drop from its own scheme to the converged solution (dopri5 at the tightest rtol), seed
    by seed."""
    import matplotlib

    matplotlib.use("Agg")
    res = _by_network(points)
    seeds = sorted({p["config"]["seed"] for p in points})
    lines = ["## Test accuracy: trained with (rows) × evaluated with (columns)", "",
             f"Mean over {len(seeds)} seed{'s' * (len(seeds) > 1)} ({', '.join(map(str, seeds))}); the "
             "spread is in the last table.", ""]
    for arch in ARCHS:
        lines += _matrix_section(arch, res, seeds, out)
    _plot_accuracy_vs_steps(res, seeds, quick, os.path.join(out, "accuracy_vs_steps.png"))
    lines += ["## Accuracy against evaluation steps", "", "![accuracy against steps](accuracy_vs_steps.png)", ""]
    return "\n".join(lines + _drop_table(res, quick)) + "\n"


def _matrix_section(arch: str, res: dict, seeds: list, out: str) -> list[str]:
    """One architecture's accuracy matrix as a table (with training time and evaluations per
    epoch) and as a heatmap written into ``out``."""
    import matplotlib.pyplot as plt
    import numpy as np

    nets = [(t, res[(arch, t)]) for t in TRAININGS if (arch, t) in res]
    if not nets:
        return []
    keys = [_key(e) for e in nets[0][1][0]["evaluations"]]
    cols = [_label(e) for e in nets[0][1][0]["evaluations"]]
    lines = [f"### {arch}", "", "| trained with | train s | evals/epoch | " + " | ".join(cols) + " |",
             "|---|---|---|" + "---|" * len(cols)]
    mat = []
    for t, runs in nets:
        per_key = [[_accuracy(r, k) for r in runs] for k in keys]
        accs = [math.nan if all(math.isnan(a) for a in v) else float(np.nanmean(v)) for v in per_key]
        mat.append(accs)
        lines.append(f"| {t} | {np.mean([r['train_seconds'] for r in runs]):.0f} | "
                     f"{np.mean([r['evals_per_epoch'] for r in runs]):.3g} | "
                     + " | ".join("—" if math.isnan(a) else f"{a:.3f}" for a in accs) + " |")
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(cols)), 2.2))
    im = ax.imshow(np.array(mat, dtype=float), vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_yticks(range(len(nets)), [t for t, _ in nets])
    ax.set_xticks(range(len(cols)), cols, rotation=70, fontsize=7)
    for i, accs in enumerate(mat):
        for j, a in enumerate(accs):
            if not math.isnan(a):
                ax.text(j, i, f"{a:.2f}", ha="center", va="center", fontsize=6, color="w" if a < 0.6 else "k")
    ax.set_title(f"{arch}: test accuracy (mean of {len(seeds)} seeds), trained with × evaluated with", fontsize=9)
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    fig.savefig(os.path.join(out, f"heatmap_{arch}.png"), dpi=110)
    plt.close(fig)
    return lines + ["", f"![{arch} heatmap](heatmap_{arch}.png)", ""]


def _plot_accuracy_vs_steps(res: dict, seeds: list, quick: bool, path: str) -> None:
    """Accuracy against the evaluation steps, own scheme and rk4, one panel per architecture,
    the seeds' range as a band."""
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, len(ARCHS), figsize=(4 * len(ARCHS), 3.2), sharey=True)
    for ax, arch in zip(axes, ARCHS):
        own = eval_schemes(arch, quick)[0]
        for t in TRAININGS:
            runs = res.get((arch, t), [])
            for scheme, style in ((own, "-"), ("rk4", "--")):
                steps = sorted({e["n_steps"] for r in runs for e in r["evaluations"] if e["scheme"] == scheme})
                if not steps:
                    continue
                acc = np.array([[_accuracy(r, (scheme, n, None)) for n in steps] for r in runs])
                line, = ax.semilogx(steps, acc.mean(0), style, marker="o", label=f"{t} → {'own scheme' if scheme == own else scheme}")
                if len(runs) > 1:  # the seeds' range
                    ax.fill_between(steps, acc.min(0), acc.max(0), color=line.get_color(), alpha=0.15, lw=0)
        ax.set_title(arch)
        ax.set_xlabel("evaluation steps")
        steps = sorted({e["n_steps"] for rs in res.values() for r in rs for e in r["evaluations"] if e["n_steps"]})
        ax.minorticks_off()
        ax.set_xticks(steps, [str(n) for n in steps])
    axes[0].set_ylabel(f"test accuracy (mean, band: {len(seeds)} seeds' range)" if len(seeds) > 1 else "test accuracy")
    drawn = [ax for ax in axes if ax.get_legend_handles_labels()[0]]
    if drawn:
        drawn[-1].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _drop_table(res: dict, quick: bool) -> list[str]:
    """Per network: own accuracy, converged accuracy, the paired drop seed by seed, the worst
    under any other fixed scheme."""
    lines = ["## Drop when leaving the training scheme", "",
             "Per network: the accuracy under its training configuration ('own'), under dopri5 at the tightest "
             "tolerance (the converged solution of the ODE its weights define), the paired drop own − converged in "
             "percentage points seed by seed, and the worst accuracy under any other fixed scheme and step count. "
             "Mean over the seeds, with their range in brackets.", "",
             "| arch | trained with | own | converged | drop, points (per seed) | worst other fixed |",
             "|---|---|---|---|---|---|"]
    for arch in ARCHS:
        for t in TRAININGS:
            runs = res.get((arch, t))
            if not runs:
                continue
            own = [_own_accuracy(r, arch, quick) for r in runs]
            conv = [[e["accuracy"] for e in r["evaluations"] if e["scheme"] == "dopri5"][-1] for r in runs]
            drop = [o - c for o, c in zip(own, conv)]
            worst = [min(e["accuracy"] for e in r["evaluations"] if e["scheme"] != "dopri5") for r in runs]
            per_seed = ", ".join("—" if math.isnan(d) else f"{100 * d:+.1f}" for d in drop)
            drops = per_seed if len(runs) == 1 else f"{_spread(drop, 100, 1)} [{per_seed}]"
            lines.append(f"| {arch} | {t} | {_spread(own)} | {_spread(conv)} | {drops} | {_spread(worst)} |")
    return lines


def _own_accuracy(r: dict, arch: str, quick: bool) -> float:
    """Accuracy of the network under the configuration it was trained with."""
    if r["training"] == "paper":
        return _accuracy(r, (eval_schemes(arch, quick)[0], 3, None))
    if r["training"] == "rk4-12":
        return _accuracy(r, ("rk4", 12, None))
    return _accuracy(r, ("dopri5", None, 1e-3))


STUDY = Study(
    name="discrete-vs-continuous",
    title="Discrete versus continuous-depth training",
    question="Does a PDE-CNN trained with a fixed-step scheme depend on that scheme (Ott et al. 2021), "
             "and does continuous-depth (dopri5) training remove the dependence?",
    grid=grid, run=run, aggregate=aggregate, version=1,
)
