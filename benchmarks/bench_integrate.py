"""integrate() overhead against a hand-written loop, and adaptive evaluations against raw torchdiffeq.

    python benchmarks/bench_integrate.py [--device cpu|cuda] [--repeats 20]

Targets (Core issue): fixed-step integrate() within 10% of the hand loop of the same convolutions;
adaptive solves use the same operator evaluations as calling torchdiffeq directly.
"""

import argparse
import torch
import torchdiffeq

import pdenet_analysis as pa
from pdenet_analysis.operators import functional as F

from pdenet_analysis.benchmarking import interleaved_medians as timeit, provenance, result_path, save


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--out", default=result_path("integrate", "cpu"))
    args = ap.parse_args()
    dev = torch.device(args.device)
    torch.manual_seed(0)
    rows = []
    for arch, scheme, c, batch in [("parabolic", "euler", 32, 16), ("hamiltonian", "symplectic_euler", 32, 16),
                                   ("second_order", "leapfrog", 32, 16), ("parabolic", "euler", 16, 64)]:
        op = pa.operators.OPERATOR_FACTORIES[arch](c, T=3.0, n_pieces=3).to(dev)
        x = torch.randn(batch, c, 32, 32, device=dev)

        def sym(layer, j, y):
            return F.symmetric_layer(y, layer.weight[j], layer.scale[j], layer.shift[j], torch.relu, layer.eps, True)

        if arch == "parabolic":
            def hand():
                y = x
                for j in range(3):
                    y = y + 1.0 * sym(op.layer, j, y)
                return y
        elif arch == "hamiltonian":
            def hand():
                Y, Z = x.split(c // 2, dim=1)
                for j in range(3):
                    Y = Y + 1.0 * sym(op.layer_y, j, Z)
                    Z = Z - 1.0 * sym(op.layer_z, j, Y)
                return torch.cat([Y, Z], 1)
        else:
            def hand():
                y, y_old = x, x
                for j in range(3):
                    y, y_old = 2 * y - y_old + sym(op.layer, j, y), y
                return y

        with torch.no_grad():
            t_hand, t_lib = timeit([hand, lambda: pa.integrate(op, x, scheme).y], args.repeats, dev)
        rows.append(dict(case=f"{arch}/{scheme} c={c} batch={batch} 32x32, 3 steps", hand_s=t_hand, integrate_s=t_lib,
                         ratio=t_lib / t_hand))
        print(f"{rows[-1]['case']:55s} hand {t_hand*1e3:8.2f} ms  integrate {t_lib*1e3:8.2f} ms  ratio {t_lib/t_hand:.3f}")

    # adaptive: evaluations of integrate(dopri5) vs torchdiffeq.odeint on the same field
    op = pa.parabolic(16, T=3.0, n_pieces=3, interpolation="linear").to(dev)
    x = torch.randn(8, 16, 32, 32, device=dev)
    calls = [0]

    def f(t, y):
        calls[0] += 1
        return op.vector_field(t, (y,))[0]

    with torch.no_grad():
        t_raw, t_lib = timeit([lambda: torchdiffeq.odeint(f, x, torch.tensor([0.0, 3.0], device=dev), rtol=1e-5, atol=1e-7),
                               lambda: pa.integrate(op, x, "dopri5", rtol=1e-5, atol=1e-7)], 3, dev)
        calls[0] = 0
        torchdiffeq.odeint(f, x, torch.tensor([0.0, 3.0], device=dev), rtol=1e-5, atol=1e-7)
        sol = pa.integrate(op, x, "dopri5", rtol=1e-5, atol=1e-7)
    adaptive = dict(case="parabolic c=16 batch=8 32x32, dopri5 rtol=1e-5", torchdiffeq_evals=calls[0],
                    integrate_evals=sol.stats.n_evals, accepted=sol.stats.n_accepted, rejected=sol.stats.n_rejected,
                    torchdiffeq_s=t_raw, integrate_s=t_lib, ratio=t_lib / t_raw)
    print(adaptive)
    save(args.out, dict(provenance=provenance(), fixed_step=rows, adaptive=adaptive))


if __name__ == "__main__":
    main()
