"""The stability report: one row per step (ρ(S_j), modes outside, ‖S_j‖, what the layer
eigenvalues predict, the largest stable h, status), a three-panel figure (layer eigenvalues over
the stability region, radius and norm along the steps, the eigenvalues ξ of the worst step map),
and two sentences of notes."""

from __future__ import annotations

import numpy as np

from ...schemes.metadata import StabilityVariable
from ...status import Status
from ..report import Report
from ..results import renders
from ..stability.result import StabilityResult, StepStability
from .common import figure_title, integer_ticks, titled


def _radius_cell(step: StepStability):
    """ρ(S_j) as the table shows it: a value, "≤ bound" where the norm certified it, or the
    bracket [largest certain |ξ|, ‖S_j‖₂] where a count did not converge."""
    if step.worst.count.method == "norm bound":  # every radius certified ≤ 1 + δ by ‖S_j‖₂
        return f"≤ {step.max_amplification:.7g}"
    if any(e.count.status != Status.CONVERGED for e in step.examples):
        lows = [e.count.radius_lower for e in step.examples if np.isfinite(e.count.radius_lower)]
        hi = max(e.count.radius_upper for e in step.examples)
        if lows:
            return f"[{max(lows):.8g}, {hi:.4g}]"
        return f"≤ {hi:.4g} (est. {step.max_amplification_estimated:.5g})"
    return step.max_amplification


def _status_cell(step: StepStability, batch: int) -> str:
    counted_ok = all(e.count.status == Status.CONVERGED for e in step.sure) and len(step.sure) < batch
    return f"{len(step.sure)} of {batch} counted" if counted_ok else str(step.status)


def rows(result: StabilityResult) -> list[list]:
    return [[s.step, round(s.t, 6), s.h, _radius_cell(s), ("" if s.count_exact else "≥ ") + str(s.n_outside_max),
             float(max(e.step_norm for e in s.examples)), s.layer.predicted_amplification, s.layer.spectral_radius,
             s.largest_stable_h_reported, _status_cell(s, result.examples)] for s in result.steps]


def _region(ax, result: StabilityResult) -> None:
    """The layer eigenvalues' points z over the scheme's stability region."""
    step_scheme, steps = result.step_scheme, result.steps
    variable = StabilityVariable(step_scheme.stability_variable)
    zs = np.concatenate([s.layer.z for s in steps])
    r = max(2.5, 1.2 * float(np.max(np.abs(zs)))) if len(zs) else 2.5
    if variable is StabilityVariable.H2_LAMBDA:  # the two-level schemes' region is the real interval [−4, 0]
        r = max(r, 4.5)
        ax.plot([-4, 0], [0, 0], color="#3b6e99", lw=6, alpha=0.35, solid_capstyle="butt", label="stable: [−4, 0]")
        ax.set_xlim(-r, max(0.5, 1.2 * float(np.max(np.real(zs))) if len(zs) else 0.5))
        ax.set_ylim(-r / 4, r / 4)
    else:
        xx, yy = np.meshgrid(np.linspace(-r, r / 2, 300), np.linspace(-r, r, 300))
        amp = step_scheme.amplification(xx + 1j * yy)
        ax.contourf(xx, yy, amp <= 1 + 1e-12, levels=[0.5, 1.5], colors=["#cfe3f3"])
        ax.contour(xx, yy, amp, levels=[1.0], colors=["#3b6e99"], linewidths=1)
    for s in steps[:12]:
        ax.scatter(np.real(s.layer.z), np.imag(s.layer.z), s=10, label=f"step {s.step}")
    tex = variable.tex.strip("$")
    ax.set_xlabel(rf"Re $z$,  $z = {tex}$")
    ax.set_ylabel(r"Im $z$")
    ax.set_title("layer eigenvalues over the stability region", fontsize=8)
    ax.axhline(0, color="k", lw=0.5)
    ax.axvline(0, color="k", lw=0.5)
    if len(steps) <= 12:
        ax.legend(fontsize=6)


def _along_steps(ax, result: StabilityResult) -> None:
    steps, batch = result.steps, result.examples
    js = [s.step for s in steps]
    ax.plot(js, [s.max_amplification for s in steps], "o-", color="C3", label=r"$\rho(S_j)$, worst counted example")
    if any(len(s.sure) < batch for s in steps):  # Ritz estimates: not eigenvalues, drawn apart
        ax.plot(js, [s.max_amplification_estimated for s in steps], "x:", color="C1",
                label="largest estimate, uncounted examples")
    else:
        ax.fill_between(js, [np.percentile(s.radii, 5) for s in steps], [np.percentile(s.radii, 95) for s in steps],
                        color="C3", alpha=0.2, label=r"$\rho(S_j)$, 5–95%")
    ax.plot(js, [max(e.step_norm for e in s.examples) for s in steps], "s--", color="C0", label=r"$\|S_j\|_2$, worst")
    ax.axhline(1.0, color="k", lw=0.6)
    ax.set_xlabel("step $j$")
    integer_ticks(ax.xaxis)
    ax.set_title("step map: radius and norm", fontsize=8)
    ax.legend(fontsize=6)


def _worst_spectrum(ax, result: StabilityResult) -> None:
    worst_step = max(result.steps, key=lambda s: s.max_amplification)
    ex = max(worst_step.sure or worst_step.examples, key=lambda e: e.count.radius)  # a whole spectrum where counted
    xi = np.asarray(ex.count.computed)
    out_ = np.abs(xi) > 1 + result.delta
    circle = np.exp(1j * np.linspace(0, 2 * np.pi, 400))
    ax.plot(circle.real, circle.imag, color="k", lw=0.6)
    ax.scatter(xi.real[~out_], xi.imag[~out_], s=4, color="C0", label=r"$|\xi| \leq 1 + \delta$")
    ax.scatter(xi.real[out_], xi.imag[out_], s=6, color="C3", label=rf"$|\xi| > 1 + \delta$ ({int(out_.sum())})")
    ax.set_aspect("equal")
    ax.set_title(rf"eigenvalues $\xi$ of $S_{{{worst_step.step}}}$ (example {ex.example})", fontsize=8)
    ax.legend(fontsize=6)


def _notes(result: StabilityResult) -> list[str]:
    """Two sentences: what the table's radius and count are, and where they are only bounds or
    estimates."""
    first = (f"ρ(S_j) is the spectral radius of the one-step map's Jacobian (the growth per step of its worst mode), "
             f"worst over {result.examples} example(s), and 'modes outside' counts its eigenvalues with "
             f"|ξ| > 1 + {result.delta:g}; ‖S_j‖₂ bounds ρ from above with failure probability ≤ "
             f"{result.failure_probability:g} per example and step, and 'R(z) max' is what the {result.k} + 2 extreme "
             "layer eigenvalues alone predict.")
    caveats = []
    if not result.count_exact:
        caveats.append(f"'≥' marks a count that stopped at its budget ({result.count_budget} products: raise "
                       "Budget.count_budget) and its radius is shown as [certain |ξ|, ‖S_j‖₂]")
    if any(len(s.sure) < result.examples for s in result.steps):
        caveats.append(f"only {result.count_examples} example(s) per step were counted (Budget.count_examples; the "
                       "others keep an estimate)")
        above = [(s.step, e.example) for s in result.steps for e in s.examples
                 if e.count.status == Status.ESTIMATE and e.count.radius > s.max_amplification * (1 + 1e-9)]
        if above:
            caveats.append(f"at {len(above)} (step, example) pair(s), first {above[0]}, an uncounted example's "
                           "estimate exceeds the counted radius: count every example (Budget(count_examples=None)) "
                           "to know which is less stable")
    if any(s.largest_stable_h_complete is None for s in result.steps):
        caveats.append("'largest stable h' is then estimated from the few layer eigenvalues")
    second = ("Where marked, " + "; ".join(caveats) + " (see docs/analysis.md).") if caveats else \
        "Every count is complete and every radius certified (see docs/analysis.md for the methods)."
    return [first, second]


@renders(StabilityResult)
def render(result: StabilityResult, context: str | None) -> Report:
    def plot(fig):
        fig.set_size_inches(10.5, 4.2)
        _region(fig.add_subplot(131), result)
        _along_steps(fig.add_subplot(132), result)
        _worst_spectrum(fig.add_subplot(133), result)
        figure_title(fig, "stability along the steps", context, result.scheme)

    title = f"Stability of {result.scheme} along its steps" + (f" (h = {result.h:.4g})" if result.h else
                                                                " (accepted steps)")
    return Report("stability", titled(title, context),
                  ["step", "t", "h", "ρ(S_j) max", "modes outside", "‖S_j‖ max", "R(z) max (few λ)", "ρ(∂F/∂Y)",
                   "largest stable h", "status"], rows(result), result.to_dict(), plot, _notes(result), result.failure)
