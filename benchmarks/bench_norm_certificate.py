"""What the norm certificate costs at the paper's size, and what it saves.

    python benchmarks/bench_norm_certificate.py [--device cpu|cuda] [--examples 4] [--quick]

The parabolic operator without normalisation, F(Y) = −Kᵀσ(KY), is stable by construction
(paper §3.1, eq. 8): its Jacobian −KᵀDK (D = σ′ ∈ [0, 1]) is symmetric negative semi-definite
with spectral radius at most ‖K‖₂², so forward Euler's step map S = I − hKᵀDK has ‖S‖₂ ≤ 1 for
h ≤ 2/‖K‖₂². The stability analysis certifies that no mode is outside |ξ| ≤ 1 + δ from an upper
bound on ‖S_j‖₂ alone (method "norm bound", :func:`~pdenet_analysis.analysis.stepmap.step_map_spectra`),
which needs Golub–Kahan converged to about 10⁻¹³ so that the probable bound falls below 1 + δ.
Measured at CIFAR-10's first unit (32 channels × 32 × 32 = 32,768 unknowns per example, the
default initialisation, standard-normal examples), at h = 1/‖K‖₂² and at the edge h = 2/‖K‖₂²:

* the whole stability analysis (every example counted, ``dense_max=0``), its methods per step
  and its time; and the step-map spectra with ‖S_j‖₂ from Golub–Kahan to a residual of 10⁻¹³
  alone, as the analysis did before it went on until the certificate was decided;
* Golub–Kahan on S_0 to 10⁻⁸, to 10⁻¹³, and to 10⁻¹³ and on until the probable bound decides
  ‖S_0‖₂ ≤ 1 + δ (what the stability analysis runs): steps, time and the bound;
* the count the certificate replaces, for one example of step 0: ARPACK's
  (:func:`~pdenet_analysis.analysis.stepmap.count_outside`; the active units exceed
  ``reduced_dense_max``, so no exact reduced count), steps and time.
"""

import argparse

import torch

import pdenet_analysis as pa
from pdenet_analysis import analysis as A
from pdenet_analysis.analysis.density import parabolic_bound
from pdenet_analysis.analysis.stepmap import _example_step_operator, count_outside

from pdenet_analysis.benchmarking import provenance, result_path, save, timed


def measure(channels: int, size: int, examples: int, factor: float, dev) -> dict:
    """The three measurements at h = factor/‖K‖₂² (the largest ‖K‖ over the weight sets)."""
    def build(T):
        torch.manual_seed(0)
        return pa.parabolic(channels, T=T, n_pieces=3, normalise=False).double().to(dev)

    first = build(3.0)
    norm_k = max(b["norm_K"] for b in parabolic_bound(first, (size, size)))
    h = factor / norm_k**2
    op = build(3 * h)  # the same weights on [0, 3h]
    if not all(torch.equal(a, b) for a, b in zip(first.parameters(), op.parameters())):
        raise RuntimeError("the weights depend on T: the step size above is not that of these weights")
    x = torch.randn(examples, channels, size, size, dtype=torch.float64, device=dev)
    rep, t_all = timed(lambda: A.spectrum_along_trajectory(op, x, "euler", n_steps=3, dense_max=0, k=2), dev)
    steps = [dict(step=s["step"], methods=sorted({e["step_map_method"] for e in s["examples"]}),
                  n_outside_max=s["n_outside_max"], count_exact=s["count_exact"],
                  step_norm_max=s["step_norm"]["max"],
                  radius_upper_max=max(e["step_map_radius_upper"] for e in s["examples"])) for s in rep.data["steps"]]
    disc = A.discretise(op, x, "euler", n_steps=3)

    def residual_only():  # the norms to a residual of 1e-13 alone, as before certify_below: the same spectra call
        out = []
        for j in range(disc.n_steps):
            S_j = disc.step_jacobian(j)
            norms = A.golub_kahan(S_j, k=1, which="largest", tol=1e-13)
            out.append(sorted({e["method"] for e in A.step_map_spectra(disc, j, dense_max=0, norms=norms, S=S_j)}))
        return out

    before, t_before = timed(residual_only, dev)
    S = disc.step_jacobian(0)
    gkl = {}
    for name, tol, certify in (("1e-08", 1e-8, None), ("1e-13", 1e-13, None), ("1e-13, until decided", 1e-13, 1 + 1e-6)):
        r, t = timed(lambda tol=tol, c=certify: A.golub_kahan(S, k=1, which="largest", tol=tol, certify_below=c,
                                                             unit_roundoff=2.0**-53), dev)
        gkl[name] = dict(seconds=t, iterations=int(max(r.example_iterations)), status=r.status,
                         probable_upper_max=float(max(r.probable_upper_bound(S.shape[1], 1e-6, 2.0**-53))))
    c, t_count = timed(lambda: count_outside(_example_step_operator(disc, 0, 0), 1 + 1e-6), dev)
    return dict(h=h, h_over_euler_bound=factor / 2, norm_K=norm_k, unknowns=x[0].numel(), examples=examples,
                stability_seconds=t_all, steps=steps, golub_kahan_step0=gkl,
                residual_only=dict(seconds=t_before, methods=before,
                                   note="the step-map spectra of every step with ‖S_j‖₂ from Golub–Kahan to a residual "
                                        "of 1e-13 alone (without certify_below): what the analysis did before; no "
                                        "layer spectrum, so a little less work than stability_seconds"),
                count_replaced=dict(seconds=t_count, n_matvecs=c["n_matvecs"], count=c["count"], exact=c["exact"],
                                    radius=c["radius"], method=c["method"]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--examples", type=int, default=4)
    ap.add_argument("--quick", action="store_true", help="8 channels at 12 × 12 (a smoke run)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    dev = torch.device(args.device)
    channels, size = (8, 12) if args.quick else (32, 32)
    res = dict(provenance=provenance(), channels=channels, size=size, runs=[])
    out = args.out or result_path("norm_certificate", dev, variant="quick" if args.quick else None)
    for factor in (1.0, 2.0):
        row = measure(channels, size, args.examples, factor, dev)
        res["runs"].append(row)
        print(f"h = {row['h']:.4g} ({row['h_over_euler_bound']:.2f} of 2/‖K‖²): stability {row['stability_seconds']:.1f} s, "
              f"methods {[s['methods'] for s in row['steps']]} (residual alone: {row['residual_only']['seconds']:.1f} s, "
              f"{row['residual_only']['methods']}); GKL to 1e-8 / 1e-13 / until decided: "
              + " / ".join(f"{g['iterations']} steps, {g['seconds']:.2f} s, bound {g['probable_upper_max']:.10g}"
                           for g in row["golub_kahan_step0"].values()) + "; "
              f"the count it replaces (one example): {row['count_replaced']['seconds']:.1f} s, "
              f"{row['count_replaced']['n_matvecs']} products", flush=True)
        save(out, res)


if __name__ == "__main__":
    main()
