"""The spectral-density report: SLQ density of the layer Jacobian's symmetric part and the wide
Arnoldi Ritz values over the scheme's stability region."""

from __future__ import annotations

import numpy as np

from ...schemes.metadata import StabilityVariable
from ..density import DensityResult
from ..report import Report
from ..results import renders
from .common import figure_title, titled


@renders(DensityResult)
def render(result: DensityResult, context: str | None) -> Report:
    nodes, weights = result.slq["nodes"], result.slq["weights"]
    lam_min, lam_max = result.bendixson["re_min"], result.bendixson["re_max"]
    below = result.symmetric_part_below_edge
    edge = below["edge"]
    values, residuals = np.asarray(result.arnoldi["values"]), np.asarray(result.arnoldi["residuals"])
    converged = residuals < 1e-6
    variable = StabilityVariable(result.step_scheme.stability_variable)
    rows = [["λ(H) range (Bendixson: Re λ(J) within)", f"[{lam_min:.4g}, {lam_max:.4g}]"],
            [f"eigenvalues of H below {edge:.4g} (SLQ)", f"{below['estimate']:.1f} ± {below['standard_error']:.1f}"],
            ["Arnoldi Ritz values (converged / computed)", f"{int(converged.sum())} / {len(values)}"]]
    bound = result.parabolic_bound
    if bound:
        rho = float(np.max(np.abs(values)))
        rows.append(["‖K‖₂ per piece", ", ".join(f"{b['norm_K']:.4g}" for b in bound)])
        if bound[0]["rho_bound"] is not None:
            rows.append(["ρ(∂F/∂Y) ≤ max ‖K‖₂² (certified) vs computed ρ",
                         f"{max(b['rho_bound'] for b in bound):.4g} vs {rho:.4g}"])
            rows.append(["forward Euler stable for h ≤ 2/max‖K‖₂²", f"{min(b['euler_h_bound'] for b in bound):.4g}"])

    def plot(fig):
        fig.set_size_inches(8, 3.6)
        ax = fig.add_subplot(121)
        pad = 0.05 * (lam_max - lam_min + 1e-12)
        x = np.linspace(lam_min - pad, lam_max + pad, 400)
        width = max((lam_max - lam_min) / 60, 1e-12)
        dens = sum((w[None, :] * np.exp(-0.5 * ((x[:, None] - t[None, :]) / width) ** 2)).sum(1)
                   for t, w in zip(nodes, weights)) / (len(nodes) * width * np.sqrt(2 * np.pi))
        ax.plot(x, dens, color="C0")
        ax.axvline(edge, color="C3", ls="--", lw=0.8, label=f"edge {edge:.3g}")
        ax.set_xlabel(r"eigenvalue of $(J + J^T)/2$")
        ax.set_title("SLQ spectral density", fontsize=8)
        ax.legend(fontsize=7)
        ax2 = fig.add_subplot(122)
        z = result.h ** variable.power * values.astype(complex)
        r = max(2.5, 1.2 * float(np.max(np.abs(z)))) if len(z) else 2.5
        if variable is StabilityVariable.H2_LAMBDA:
            ax2.plot([-4, 0], [0, 0], color="#3b6e99", lw=6, alpha=0.35, label="stable: [−4, 0]")
        else:
            xx, yy = np.meshgrid(np.linspace(-r, r / 2, 300), np.linspace(-r, r, 300))
            ax2.contourf(xx, yy, result.step_scheme.amplification(xx + 1j * yy) <= 1 + 1e-12, levels=[0.5, 1.5],
                         colors=["#cfe3f3"])
        ax2.scatter(z.real[converged], z.imag[converged], s=8, color="C0", label="converged Ritz")
        ax2.scatter(z.real[~converged], z.imag[~converged], s=8, facecolors="none", edgecolors="C1", label="unconverged")
        ax2.set_xlabel(rf"Re $z$,  $z = {variable.tex.strip('$')}$")
        ax2.set_ylabel(r"Im $z$")
        ax2.set_title(f"wide Arnoldi ({len(values)} Ritz values)", fontsize=8)
        ax2.legend(fontsize=6)
        figure_title(fig, f"layer spectrum at step {result.step}, example {result.example}", context, result.scheme)

    notes = [f"H = (J + Jᵀ)/2 of the {result.jacobian} Jacobian at step {result.step}, example {result.example}; the "
             f"count below the edge is an SLQ estimate ({result.slq['n_vectors']} probes × "
             f"{result.slq['lanczos_steps']} Lanczos steps) ± one standard error.",
             "The exact number of the scheme's unstable modes is the stability report's (its step map)."]
    return Report("density", titled(f"Spectral density of the layer Jacobian ({result.scheme}, step {result.step})",
                                    context), ["quantity", "value"], rows, result.to_dict(), plot, notes, result.failure)
