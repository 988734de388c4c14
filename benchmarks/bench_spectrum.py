"""Matrix-free vs dense: the 6 largest-magnitude eigenvalues of ∂F/∂Y for one example.

    python benchmarks/bench_spectrum.py [--device cpu|cuda]

Target (Analysis issue): at the size of the paper's CIFAR-10 first unit (32 channels × 32 × 32 =
32,768 unknowns) under 5 s on 2 CPU cores and ≥ 50× faster than the dense Jacobian + eig. The
dense cost is measured at smaller sizes and extrapolated with its O(n) Jacobian columns and O(n³)
eigendecomposition, fitted to the measurements. On CUDA the STL-10 first unit
(16 × 96 × 96 = 147,456 unknowns) is timed too.
"""

import argparse
import time

import numpy as np
import torch

import pdenet_analysis as pa
from pdenet_analysis import analysis as A

from pdenet_analysis.benchmarking import provenance, result_path, save


def layer_jacobian(c, s, dev):
    torch.manual_seed(0)
    op = pa.parabolic(c, T=3.0, n_pieces=3).to(dev)  # TV-normalised F_sym, the paper's layer
    y = torch.randn(1, c, s, s, device=dev)
    return A.operator_jacobian(op, (y,), 0.0)[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    dev = torch.device(args.device)
    backend = "torch" if dev.type == "cuda" else "scipy"
    results = dict(provenance=provenance(), matrix_free=[], dense=[])
    sizes = [(32, 32)] + ([(16, 96)] if dev.type == "cuda" else [])
    for c, s in sizes:
        J = layer_jacobian(c, s, dev)
        t0 = time.perf_counter()
        r = A.eigs(J, k=6, which="LM", backend=backend, tol=1e-6)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter() - t0
        results["matrix_free"].append(dict(channels=c, size=s, n=c * s * s, seconds=t, status=r.status,
                                           n_matvecs=r.n_matvecs, max_residual=float(r.residuals.max()),
                                           spectral_radius=float(np.abs(r.values).max()), backend=r.method))
        print(results["matrix_free"][-1])
    for c, s in [(8, 8), (8, 12), (16, 12), (16, 16)]:
        J = layer_jacobian(c, s, dev)
        t0 = time.perf_counter()
        D = J.dense().cpu().numpy()
        t_jac = time.perf_counter() - t0
        t0 = time.perf_counter()
        np.linalg.eigvals(D)
        t_eig = time.perf_counter() - t0
        results["dense"].append(dict(channels=c, size=s, n=c * s * s, jacobian_s=t_jac, eig_s=t_eig))
        print(results["dense"][-1])
    n = np.array([d["n"] for d in results["dense"]], float)
    a = np.polyfit(np.log(n), np.log([d["jacobian_s"] for d in results["dense"]]), 1)
    b = np.polyfit(np.log(n), np.log([d["eig_s"] for d in results["dense"]]), 1)
    for mf in results["matrix_free"]:
        N = mf["n"]
        # extrapolate with the fitted exponents but at least O(n) columns and O(n³) eig
        jac = np.exp(np.polyval(a, np.log(n[-1]))) * (N / n[-1]) ** max(a[0], 1.0)
        eig = np.exp(np.polyval(b, np.log(n[-1]))) * (N / n[-1]) ** max(b[0], 3.0)
        mf["dense_extrapolated_s"] = jac + eig
        mf["speedup"] = (jac + eig) / mf["seconds"]
        mf["dense_memory_GiB"] = N * N * 8 / 2**30
        print(f"n = {N}: matrix-free {mf['seconds']:.2f} s, dense ≈ {jac + eig:.0f} s ({mf['dense_memory_GiB']:.1f} GiB) -> {mf['speedup']:.0f}x")
    save(args.out or result_path("spectrum", dev), results)


if __name__ == "__main__":
    main()
