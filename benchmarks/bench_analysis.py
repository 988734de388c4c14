"""Each analysis at the paper's sizes: time and operator products, against dense extrapolated.

    python benchmarks/bench_analysis.py [--device cpu|cuda] [--stl10] [--datasets cifar10 stl10] [--skip-dense]

Sizes: the CIFAR-10 first unit (32 channels × 32 × 32 = 32,768 unknowns per example) and, with
``--stl10`` or on CUDA, the STL-10 first unit (16 × 96 × 96 = 147,456). Random weights of the
Table 1 presets (the analyses cost the same for trained ones), one standard-normal example drawn
on the CPU for every device, so a GPU's numbers describe the same input as the CPU's. The
Hamiltonian block's stability is measured last at each size (at STL-10's on a GPU it is the
longest row), and prints each step as it finishes.

Measured:
* the cost of one Jacobian product in evaluations of F: plain forward mode (``jvp``), the traced
  linearisation (``linearize``, what ``JacobianOperator`` uses), and a VJP;
* stability (step-map radius, complete count of modes outside, norm, layer eigenvalues) of the
  parabolic block with forward Euler and of the Hamiltonian block with symplectic Euler;
* conditioning: σ_max by Golub–Kahan, σ_min by the exact inverse map (Hamiltonian) and, for the
  parabolic block with forward Euler, by exact inverse step maps through the active units (the
  "reduced-inverse" route, sparse LU on the host at these sizes; on CUDA, at CIFAR-10's size, also
  with dense LU on the GPU, ``reduced_dense_max`` raised) and by per-step GMRES, side by side;
* the SLQ spectral density (8 probes × 60 Lanczos steps);
* dense: forming the step-map Jacobian and its eigenvalues / SVD at small sizes, extrapolated with
  O(n) columns and O(n³) factorisation to the benchmark size.
"""

import argparse
import functools

import numpy as np
import torch

import pdenet_analysis as pa
from pdenet_analysis import analysis as A

from pdenet_analysis.benchmarking import interleaved_medians, provenance, result_path, save, timed


def block_input(preset, dev, seed=0):
    torch.manual_seed(seed)
    model = pa.build_preset(preset).double().to(dev)
    # drawn on the CPU for every device, so that a GPU run analyses the input the CPU run analyses
    x = torch.randn(1, model.config["in_channels"], *([pa.networks.presets.DATASET_SHAPES[preset.split("-")[0]].image_size] * 2),
                    dtype=torch.float64).to(dev)
    from pdenet_analysis.analysis.model import block_inputs

    return model.blocks[0], block_inputs(model, x)[0]


def product_costs(block, x, dev):
    op = block.operator
    f = lambda y: op.vector_field(0.5, (y,))[0] if op.kind == "first_order" else op.part_f(0.5, y)  # noqa: E731
    y = x if op.kind == "first_order" else op.to_state(x)[1]
    v = torch.randn_like(y)
    J = A.JacobianOperator(f, y)
    J.n_matvecs = J.linearize_after  # trace now
    J.matvec(v.reshape(-1))
    _, vjp_fn = torch.func.vjp(f, y)
    t_f, t_jvp, t_lin, t_vjp = interleaved_medians(
        [lambda: f(y), lambda: torch.func.jvp(f, (y,), (v,)), lambda: J.matvec(v.reshape(-1)), lambda: vjp_fn(v)], 5, dev)
    return dict(F_seconds=t_f, jvp_in_F=t_jvp / t_f, linearize_in_F=t_lin / t_f, vjp_in_F=t_vjp / t_f)


#: (channels, size) of the dense step-map Jacobians whose cost is extrapolated; the --quick ones
DENSE_SIZES, QUICK_DENSE_SIZES = ((8, 8), (8, 12), (16, 12), (16, 16)), ((4, 4), (4, 6), (8, 6))


def dense_costs(dev, sizes=DENSE_SIZES):
    """Dense step-map Jacobian + eig and flow-map SVD at small sizes (parabolic, Euler)."""
    rows = []
    for c, s in sizes:
        torch.manual_seed(0)
        op = pa.parabolic(c).double().to(dev)
        y = torch.randn(1, c, s, s, dtype=torch.float64, device=dev)
        disc = A.discretise(op, y, "euler")
        D, t_jac = timed(lambda: disc.step_jacobian(0).dense()[0].cpu().numpy(), dev)
        _, t_eig = timed(lambda: np.linalg.eigvals(D), dev)
        _, t_svd = timed(lambda: np.linalg.svd(D, compute_uv=False), dev)
        rows.append(dict(channels=c, size=s, n=c * s * s, jacobian_s=t_jac, eig_s=t_eig, svd_s=t_svd))
        print("dense", rows[-1], flush=True)
    return rows


def dense_eig_devices(dev, sizes=(1500, 3000, 6000)):
    """torch.linalg.eigvals of a random float64 matrix on the CPU and on ``dev`` (the exact step-map
    counts end in one such call, r × r with r up to ``stepmap.REDUCED_DENSE_MAX``); the CPU's
    largest size is left out (O(n³), extrapolated from the smaller ones)."""
    rows = []
    for n in sizes:
        A = torch.randn(n, n, dtype=torch.float64, generator=torch.Generator().manual_seed(n))
        row = dict(n=n)
        if n < max(sizes):
            _, row["cpu_s"] = timed(lambda: torch.linalg.eigvals(A), torch.device("cpu"))
        if dev.type != "cpu":
            Ad = A.to(dev)
            _, row[f"{dev.type}_s"] = timed(lambda: torch.linalg.eigvals(Ad), dev)
        rows.append(row)
        print("dense eigvals", row, flush=True)
    return rows


def extrapolate(rows, key, N, min_exponent):
    n = np.array([r["n"] for r in rows], float)
    a = np.polyfit(np.log(n), np.log([r[key] for r in rows]), 1)
    return float(np.exp(np.polyval(a, np.log(n[-1]))) * (N / n[-1]) ** max(a[0], min_exponent))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--stl10", action="store_true", help="also the STL-10 first unit (147,456 unknowns)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--count-budget", type=int, default=A.COUNT_BUDGET,
                    help="products per ARPACK count of the step maps' modes outside (the analyses' count_budget; "
                         "raise it where the STL-10 counts stop at '≥')")
    ap.add_argument("--quick", action="store_true",
                    help="the digits presets' first unit and tiny dense sizes instead (a smoke run of every part)")
    ap.add_argument("--datasets", nargs="+", choices=["cifar10", "stl10"], default=None,
                    help="the first units to measure (default: cifar10, and stl10 with --stl10 or on CUDA)")
    ap.add_argument("--skip-dense", action="store_true",
                    help="leave out the dense Jacobian timings and their extrapolation (a lease that has them "
                         "already spends its minutes on the large sizes)")
    args = ap.parse_args()
    dev = torch.device(args.device)
    res = dict(provenance=provenance(), sizes=[], quick=args.quick, count_budget=args.count_budget)
    out = args.out or result_path("analysis", dev, variant="stl10" if args.datasets == ["stl10"] else None)
    dense = None
    if not args.skip_dense:
        dense = dense_costs(dev, QUICK_DENSE_SIZES if args.quick else DENSE_SIZES)
        res["dense"] = dense
        if dev.type != "cpu":
            res["dense_eigvals_by_device"] = dense_eig_devices(dev, (100, 200, 400) if args.quick else (1500, 3000, 6000))
            save(out, res)
    if args.quick:
        datasets = ["digits"]
    elif args.datasets:
        datasets = list(dict.fromkeys(args.datasets))
    else:
        datasets = ["cifar10"] + (["stl10"] if args.stl10 or dev.type == "cuda" else [])
    for ds in datasets:
        entry = dict(dataset=ds)
        res["sizes"].append(entry)
        block, x = block_input(f"{ds}-parabolic", dev)
        n = x[0].numel()
        entry["unknowns"] = n
        entry["products"] = product_costs(block, x, dev)
        print(ds, "products", entry["products"], flush=True)
        save(out, res)  # kept if the run is stopped
        rep, t = timed(lambda: A.spectrum_along_trajectory(block.operator, x, "euler", k=6,
                                                            count_budget=args.count_budget), dev)
        s0 = rep.data["steps"]
        entry["stability_parabolic_euler"] = dict(
            seconds=t, steps=len(s0), radius=[s["max_amplification"] for s in s0], modes_outside=[s["n_outside_max"] for s in s0],
            count_exact=[s["count_exact"] for s in s0], status=[s["status"] for s in s0],
            method=[s["examples"][0]["step_map_method"] for s in s0])
        print(ds, "stability parabolic", entry["stability_parabolic_euler"], flush=True)
        save(out, res)  # kept if the run is stopped
        hblock, hx = block_input(f"{ds}-hamiltonian", dev)
        rep, t = timed(lambda: A.spectral_density(block.operator, x, "euler", n_vectors=8, m=60, n_arnoldi=100), dev)
        entry["density_parabolic"] = dict(seconds=t, bendixson=rep.data["bendixson"],
                                          arnoldi_converged=rep.data["arnoldi"]["n_converged"])
        print(ds, "density", entry["density_parabolic"], flush=True)
        save(out, res)  # kept if the run is stopped
        variants = [("conditioning_parabolic_euler", "auto", {}),
                    ("conditioning_parabolic_euler_gmres", "inverse-iteration", {})]
        if dev.type == "cuda" and ds == "cifar10":  # I + R factorised dense on the GPU (14,334 rows: 1.6 GB);
            # STL-10's 75,000 would take 45 GB per example
            variants.append(("conditioning_parabolic_euler_device_lu", "auto", dict(reduced_dense_max=1 << 15)))
        for key, method, extra in variants:
            rep, t = timed(lambda: A.conditioning(block.operator, x, "euler", k=1, dense_max=0, max_iter=150, method=method,
                                                  **extra), dev)
            e = rep.data["examples"][0]
            entry[key] = dict(seconds=t, method_min=rep.data["method_min"], sigma_max=e["sigma_max"][0],
                              sigma_max_status=e["sigma_max_status"], sigma_min=e["sigma_min"][0],
                              sigma_min_status=e["sigma_min_status"], condition=e["condition"])
            print(ds, key, entry[key], flush=True)
            save(out, res)  # kept if the run is stopped
        rep, t = timed(lambda: A.conditioning(hblock.operator, hx, hblock.scheme, k=1, dense_max=0), dev)
        e = rep.data["examples"][0]
        entry["conditioning_hamiltonian_symplectic_euler"] = dict(
            seconds=t, method_min=rep.data["method_min"], sigma_max=e["sigma_max"][0], sigma_min=e["sigma_min"][0],
            condition=e["condition"], status=e["condition_status"])
        print(ds, "conditioning hamiltonian", entry["conditioning_hamiltonian_symplectic_euler"], flush=True)
        save(out, res)  # kept if the run is stopped
        # last: at STL-10's size on a GPU this count is the longest row, so a capped run keeps the others
        tick = functools.partial(print, ds, "stability hamiltonian:", flush=True)  # after each step
        rep, t = timed(lambda: A.spectrum_along_trajectory(hblock.operator, hx, hblock.scheme, k=6,
                                                            count_budget=args.count_budget, progress=tick), dev)
        s0 = rep.data["steps"]
        entry["stability_hamiltonian_symplectic_euler"] = dict(
            seconds=t, unknowns=sum(c.numel() for c in hx) if isinstance(hx, tuple) else hx.numel(), steps=len(s0),
            radius=[s["max_amplification"] for s in s0], radius_upper=[s["examples"][0]["step_map_radius_upper"] for s in s0],
            modes_outside=[s["n_outside_max"] for s in s0], count_exact=[s["count_exact"] for s in s0],
            status=[s["status"] for s in s0], method=[s["examples"][0]["step_map_method"] for s in s0])
        print(ds, "stability hamiltonian", entry["stability_hamiltonian_symplectic_euler"], flush=True)
        save(out, res)  # kept if the run is stopped
        if dense is None:
            continue
        entry["dense_extrapolated"] = dict(
            step_jacobian_s=extrapolate(dense, "jacobian_s", n, 1.0), eig_s=extrapolate(dense, "eig_s", n, 3.0),
            svd_s=extrapolate(dense, "svd_s", n, 3.0), memory_GiB=n * n * 8 / 2**30)
        print(ds, "dense extrapolated", entry["dense_extrapolated"], flush=True)
        save(out, res)  # kept if the run is stopped


if __name__ == "__main__":
    main()
