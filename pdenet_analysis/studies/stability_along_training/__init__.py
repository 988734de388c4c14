"""Study ``stability-along-training``: how stability, conditioning and accuracy of the schemes
evolve while the paper's networks train, and the paper's two theorems as experiments.

Training points (one per architecture × variant): the digits preset trained by the paper's
protocol, with the first PDE block analysed on held-out test images before training and after
every epoch (``train(on_epoch=...)``), in float64:

* step-map stability — ρ(∂Φ_h/∂Y_j) (the growth per step of the worst mode, real or complex,
  complete at these sizes) and the count of modes with |ξ| > 1 + 10⁻⁶, with the layer spectrum's
  prediction R(hλ) beside it (:func:`~pdenet_analysis.analysis.stability`);
* κ, σ_max and σ_min of the block's flow map (:func:`~pdenet_analysis.analysis.conditioning`);
* the observed order of the block's scheme on its trained weights (fixed-step refinement);
* the float32 reconstruction error of reversible schemes; the norm ratio ‖Y(T)‖/‖Y(0)‖.

Variants: ``paper`` (box constraint [−1, 1] and TV normalisation N_tv, as the paper),
``no-box`` (no box constraint), ``no-tv`` (N = id). The quick grid (2 epochs) leaves out
``no-box``: on digits the box constraint does not act within 8 epochs (the full grid's
``paper`` and ``no-box`` runs are identical).

Theorem points:

* ``theorem1``: Theorem 1 (spec §2) — with σ monotone and N = id the parabolic flow is
  non-expansive, ‖Y(T) − Ỹ(T)‖ ≤ ‖Y(0) − Ỹ(0)‖. Measured: the largest ratio over random input pairs
  under the fine flow (RK4, 48 steps) and under the paper's forward Euler at h = 1, and σ_max of the
  flow map (RK4, 12 steps), for kernels at scales 1 and 4, with and without N_tv (for which the paper gives no proof).
* ``theorem2``: Theorem 2 — with θ constant in time and |σ(x)| ≤ |x|, the second-order network
  keeps ‖Y(t) − Ỹ(t)‖ bounded independently of T. Measured: max_t ‖ΔY(t)‖/‖ΔY(0)‖ with leapfrog at
  h = 0.05 for T = 3, 30, 300, with N = id (the theorem) and with N_tv (not covered).
"""

from __future__ import annotations

import copy
import math
import os
import time

import torch

from ..runner import Study, default_dtype

ARCHS = ("parabolic", "hamiltonian", "second_order", "resnet")
VARIANTS = ("paper", "no-box", "no-tv")


def analyse_block(block, x: torch.Tensor) -> dict:
    """Scalars of the analyses of one PDE block on inputs ``x`` (float64 copies; the model is not touched)."""
    from ...analysis import conditioning, convergence_study, stability
    from ...analysis.flow import reversibility

    op, scheme = copy.deepcopy(block.operator).double(), block.scheme
    n = block.n_steps
    x = x.double()
    out = {}
    st = stability(op, x, scheme, n_steps=n, k=4).data["steps"]
    out.update(step_map_radius=max(s["max_amplification"] for s in st),
               modes_outside=max(s["n_outside_max"] for s in st), count_exact=all(s["count_exact"] for s in st),
               predicted_amplification=max(s["predicted_amplification"] for s in st),
               layer_radius=max(s["spectral_radius"] for s in st), layer_max_real=max(s["max_real"] for s in st),
               unknowns=st[0]["examples"][0]["unknowns"])
    c = conditioning(op, x, scheme, n_steps=n).data
    out.update(condition=c["condition"]["max"], sigma_max=c["sigma_max"]["max"], sigma_min=c["sigma_min"]["min"],
               condition_converged=c["all_converged"])
    pieces = op.grid.n_pieces if op.grid else 1
    conv = convergence_study(op, x, scheme, [pieces * 2**i for i in range(1, 5)], reference_factor=8)
    out["observed_order"] = conv.observed_order
    if scheme.reversible:
        r = reversibility(op, x, scheme, n_steps_list=(n,), dtypes=("float32",)).data["results"]
        out["reversibility_float32"] = r[0]["relative_error"]
    with torch.no_grad():
        from ...integrate import integrate

        y_t = integrate(op, x, scheme, n_steps=n).y  # what the block outputs
    out["norm_ratio"] = float(y_t.norm() / x.norm())
    return out


def _train_point(config: dict) -> dict:
    from ...analysis.model import block_inputs
    from ...data import load_dataset
    from ...networks import build_preset
    from ...training import TrainConfig, train

    arch, variant = config["arch"], config["variant"]
    torch.manual_seed(config["seed"])
    model = build_preset(f"digits-{arch}", normalise=variant != "no-tv")
    data = load_dataset("digits")
    probe = data.x_test[: config["examples"]]  # raw: block_inputs applies the network's preprocessing
    cfg = TrainConfig(epochs=config["epochs"], seed=config["seed"], augment=False, progress=False, dataset="digits",
                      box=math.inf if variant == "no-box" else 1.0)

    def analyse(m, row):
        t0 = time.perf_counter()
        res = analyse_block(m.blocks[0], block_inputs(m, probe)[0])
        res["analysis_seconds"] = time.perf_counter() - t0
        return res

    torch.manual_seed(config["seed"])
    epoch0 = dict(epoch=0, **analyse(model, None))
    summary = train(model, data, cfg, log=lambda m: None, on_epoch=analyse)
    rows = [epoch0] + [dict(epoch=h["epoch"], val_accuracy=h["val_accuracy"], train_loss=h["train_loss"], **h["extra"])
                       for h in summary["history"]]
    return dict(kind="training", arch=arch, variant=variant, scheme=model.blocks[0].scheme.name,
                test_accuracy=summary["test_accuracy"], epochs=rows)


def _pair_ratio(op, scheme, n_steps, pairs, T):
    """max over pairs of ‖Y(T) − Ỹ(T)‖/‖Y(0) − Ỹ(0)‖ and of max_t ‖ΔY(t)‖/‖ΔY(0)‖."""
    from ...integrate import integrate

    end, peak = 0.0, 0.0
    with torch.no_grad():
        for y1, y2 in pairs:
            s1 = integrate(op, y1, scheme, T=T, n_steps=n_steps, trajectory=True)
            s2 = integrate(op, y2, scheme, T=T, n_steps=n_steps, trajectory=True)
            d = [float((a[0] - b[0]).norm()) for a, b in zip(s1.trajectory, s2.trajectory)]
            end, peak = max(end, d[-1] / d[0]), max(peak, max(d) / d[0])
    return end, peak


def _pairs(channels: int, n: int, seed: int, size: int = 8):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(1, channels, size, size, generator=g, dtype=torch.float64),
             torch.randn(1, channels, size, size, generator=g, dtype=torch.float64)) for _ in range(n)]


def _scaled(factory, channels, scale, seed, **kw):
    torch.manual_seed(seed)
    op = factory(channels, **kw).double()
    with torch.no_grad():
        for layer in op.layers():
            for w in layer.kernels():
                w.mul_(scale)
    return op


def _theorem1(config: dict) -> dict:
    from ...analysis import conditioning
    from ...operators import parabolic

    op = _scaled(parabolic, 16, config["scale"], config["seed"], T=3.0, n_pieces=3, normalise=config["normalise"])
    pairs = _pairs(16, config["pairs"], config["seed"] + 1)
    flow_end, flow_peak = _pair_ratio(op, "rk4", 48, pairs, 3.0)
    euler_end, euler_peak = _pair_ratio(op, "euler", 3, pairs, 3.0)
    c = conditioning(op, pairs[0][0], "rk4", n_steps=12).data  # the flow to O(h⁴) = 4·10⁻³
    return dict(kind="theorem1", normalise=config["normalise"], scale=config["scale"], flow_ratio=flow_end,
                flow_peak=flow_peak, euler_ratio=euler_end, euler_peak=euler_peak, flow_sigma_max=c["sigma_max"]["max"],
                sigma_converged=c["all_converged"])


def _theorem2(config: dict) -> dict:
    from ...operators import second_order

    op = _scaled(second_order, 16, config["scale"], config["seed"], T=config["T"], n_pieces=1,
                 normalise=config["normalise"])
    h = config["h"]
    n = int(round(config["T"] / h))
    pairs = _pairs(16, config["pairs"], config["seed"] + 1)
    end, peak = _pair_ratio(op, "leapfrog_symmetric", n, pairs, config["T"])
    out = dict(kind="theorem2", normalise=config["normalise"], scale=config["scale"], T=config["T"], h=h,
               n_steps=n, end_ratio=end, peak_ratio=peak)
    if not config["normalise"]:  # the energy of eq. 12, the quantity the proof bounds, along one trajectory
        from ...analysis.flow import energy

        e = [v for v in energy(op, pairs[0][0], "leapfrog_symmetric", T=config["T"], n_steps=n).data["energies"]
             if v is not None]
        out.update(energy_max_ratio=max(e) / e[0], energy_end_ratio=e[-1] / e[0])
    return out


def run(config: dict) -> dict:
    """A training point (networks in float32, as trained; analyses in float64 copies) or a theorem
    point (float64)."""
    kind = config["kind"]
    if kind == "training":
        with default_dtype(torch.float32):
            return _train_point(config)
    with default_dtype(torch.float64):
        return _theorem1(config) if kind == "theorem1" else _theorem2(config)


def grid(quick: bool) -> list[dict]:
    epochs, examples, pairs = (2, 1, 3) if quick else (8, 1, 8)
    variants = ("paper", "no-tv") if quick else VARIANTS  # quick: the box constraint never acts within 2 epochs
    pts = [dict(kind="training", arch=a, variant=v, epochs=epochs, examples=examples, seed=0)
           for a in ARCHS for v in variants]
    pts += [dict(kind="theorem1", normalise=nz, scale=s, pairs=pairs, seed=0) for nz in (False, True) for s in (1.0, 4.0)]
    pts += [dict(kind="theorem2", normalise=nz, scale=1.0, T=T, h=0.05, pairs=pairs, seed=0)
            for nz in (False, True) for T in (3.0, 30.0, 300.0)]
    return pts


QUANTITIES = [("val_accuracy", "validation accuracy", False), ("step_map_radius", "max ρ(∂Φ_h/∂Y_j)", False),
              ("modes_outside", "modes with |ξ| > 1 + 1e-6", False), ("condition", "κ of the flow map", True),
              ("observed_order", "observed order", False), ("norm_ratio", "‖Y(T)‖ / ‖Y(0)‖", False)]


def aggregate(points: list[dict], out: str, quick: bool) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train_pts = {(p["result"]["arch"], p["result"]["variant"]): p["result"] for p in points
                 if p["result"]["kind"] == "training"}
    lines = ["## Along training (first PDE block, digits)", "",
             "Before training (epoch 0) and after the last epoch. ρ: the step map's spectral radius (max over "
             "steps and examples); 'R(hλ)': what the layer spectrum predicts through the stability function; "
             "'outside': modes with |ξ| > 1 + 1e-6 (complete count).", "",
             "| arch | variant | scheme | test acc | ρ epoch 0 → last | R(hλ) last | outside 0 → last | κ 0 → last | "
             "order 0 → last | rev. err fp32 last | ‖Y(T)‖/‖Y(0)‖ last |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (arch, var), r in sorted(train_pts.items()):
        a, b = r["epochs"][0], r["epochs"][-1]
        rev = f"{b['reversibility_float32']:.1e}" if "reversibility_float32" in b else "—"
        lines.append(f"| {arch} | {var} | {r['scheme']} | {r['test_accuracy']:.3f} | {a['step_map_radius']:.4g} → "
                     f"{b['step_map_radius']:.4g} | {b['predicted_amplification']:.4g} | {a['modes_outside']} → "
                     f"{b['modes_outside']} | {a['condition']:.3g} → {b['condition']:.3g} | "
                     f"{a['observed_order']:.2f} → {b['observed_order']:.2f} | {rev} | {b['norm_ratio']:.3g} |")
    lines.append("")
    if train_pts:
        fig, axes = plt.subplots(len(QUANTITIES), len(ARCHS), figsize=(4 * len(ARCHS), 2.4 * len(QUANTITIES)),
                                 sharex=True, squeeze=False)
        for j, arch in enumerate(ARCHS):
            axes[0][j].set_title(arch)
            for var in VARIANTS:
                r = train_pts.get((arch, var))
                if r is None:
                    continue
                for i, (key, label, log) in enumerate(QUANTITIES):
                    ep = [(e["epoch"], e[key]) for e in r["epochs"] if e.get(key) is not None]
                    if ep:
                        (axes[i][j].semilogy if log else axes[i][j].plot)(*zip(*ep), marker="o", ms=3, label=var)
                    axes[i][0].set_ylabel(label, fontsize=8)
            axes[-1][j].set_xlabel("epoch")
        axes[0][-1].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(os.path.join(out, "along_training.png"), dpi=100)
        plt.close(fig)
        lines += ["![analyses along training](along_training.png)", ""]
    t1 = [p["result"] for p in points if p["result"]["kind"] == "theorem1"]
    if t1:
        lines += ["## Theorem 1: parabolic contractivity", "",
                  "Largest ‖Y(T) − Ỹ(T)‖/‖Y(0) − Ỹ(0)‖ over random input pairs (16 channels, 8×8, T = 3), and σ_max "
                  "of the flow map's Jacobian at the first pair. The theorem covers N = id (≤ 1 for the flow).", "",
                  "| N | kernel scale | flow (RK4 ×48) end | flow peak | σ_max(J_flow) | Euler h = 1 end | Euler peak |",
                  "|---|---|---|---|---|---|---|"]
        for r in sorted(t1, key=lambda r: (r["normalise"], r["scale"])):
            lines.append(f"| {'N_tv' if r['normalise'] else 'id'} | {r['scale']:g} | {r['flow_ratio']:.4f} | "
                         f"{r['flow_peak']:.4f} | {r['flow_sigma_max']:.4f} | {r['euler_ratio']:.4g} | {r['euler_peak']:.4g} |")
        lines.append("")
    t2 = [p["result"] for p in points if p["result"]["kind"] == "theorem2"]
    if t2:
        lines += ["## Theorem 2: second order, θ constant", "",
                  "max over t and random pairs of ‖Y(t) − Ỹ(t)‖/‖Y(0) − Ỹ(0)‖, leapfrog (symmetric start) at h = 0.05.", "",
                  "| N | T | steps | max_t ratio | ratio at T | max_t E(t)/E(0) (eq. 12, N = id) |",
                  "|---|---|---|---|---|---|"]
        for r in sorted(t2, key=lambda r: (r["normalise"], r["T"])):
            en = f"{r['energy_max_ratio']:.4g}" if "energy_max_ratio" in r else "—"
            lines.append(f"| {'N_tv' if r['normalise'] else 'id'} | {r['T']:g} | {r['n_steps']} | {r['peak_ratio']:.4g} | "
                         f"{r['end_ratio']:.4g} | {en} |")
        lines.append("")
    return "\n".join(lines) + "\n"


STUDY = Study(
    name="stability-along-training",
    title="Stability and convergence along training, and the paper's theorems as experiments",
    question="How do step-map stability, flow-map conditioning and observed order of the paper's networks change "
             "while they train (with and without the box constraint and N_tv), and do Theorems 1 and 2 hold?",
    grid=grid, run=run, aggregate=aggregate, version=1,
)
