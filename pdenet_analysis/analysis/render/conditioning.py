"""The conditioning report: one row per example (σ_max, σ_min, κ, FTLEs, status), the FTLE and κ
figure, and two sentences: the distribution of κ with the routes, and what is only bounded."""

from __future__ import annotations

import numpy as np

from ..conditioning import ConditioningResult
from ..report import Report
from ..results import renders
from .common import figure_title, integer_ticks, titled


def _bounds_sentence(result: ConditioningResult) -> str:
    """The second note: where values are bounds, and the widest bracket on κ."""
    examples = result.examples
    probable = [(b, e) for b, e in enumerate(examples) if e.condition_upper_probable is not None]
    bounded = [b for b, e in enumerate(examples) if e.condition_status != "converged"]
    parts = []
    if bounded:
        parts.append(f"status 'bound' ({len(bounded)} example(s)): σ_min is an upper bound and κ a lower bound")
    if probable:
        b, e = max(probable, key=lambda be: be[1].condition_upper_probable / be[1].condition)
        parts.append(f"κ ≤ condition_upper_probable for {len(probable)} of {len(examples)} (fails with probability "
                     f"≤ {result.failure_probability:g} per example), widest at example {b}: {e.condition:.6g} ≤ κ ≤ "
                     f"{e.condition_upper_probable:.6g}")
    above = [(b, e) for b, e in enumerate(examples) if e.upper_bracket and e.upper_bracket.condition_upper]
    if above:
        b, e = max(above, key=lambda be: be[1].upper_bracket.condition_upper)
        parts.append(f"certified from above at example {b}: κ ≤ {e.upper_bracket.condition_upper:.4g}")
    return ("; ".join(parts) + ".") if parts else "Every σ_max and σ_min is certified by its forward residual."


@renders(ConditioningResult)
def render(result: ConditioningResult, context: str | None) -> Report:
    examples = result.examples
    kappa = np.array([e.condition for e in examples])
    k, batch = result.k, len(examples)
    rows = [[b, e.sigma_max[0], e.sigma_min[0], e.condition, e.ftle_top[0], e.ftle_bottom[0], e.condition_status,
             max(e.sigma_max_residual + e.sigma_min_residual)] for b, e in enumerate(examples)]

    def plot(fig):
        fig.set_size_inches(8, 3.6)
        ax = fig.add_subplot(121)
        for b, e in enumerate(examples):
            ax.plot(range(1, k + 1), e.ftle_top, "o-", color="C0", alpha=0.5, label="top" if b == 0 else None)
            ax.plot(range(1, k + 1), e.ftle_bottom, "s-", color="C3", alpha=0.5, label="bottom" if b == 0 else None)
        ax.set_xlabel("index $i$")
        ax.set_ylabel(r"FTLE $\frac{1}{T}\log\sigma_i$")
        integer_ticks(ax.xaxis)
        ax.legend(fontsize=7)
        ax.set_title("finite-time Lyapunov exponents", fontsize=9)
        ax2 = fig.add_subplot(122)
        ax2.hist(np.log10(np.maximum(kappa, 1e-300)), bins=max(5, min(30, batch)), color="C1")
        ax2.set_xlabel(r"$\log_{10}\,\kappa(J_\Phi)$")
        ax2.set_ylabel("examples")
        integer_ticks(ax2.yaxis)
        ax2.set_title(f"κ over {batch} example(s)", fontsize=9)
        figure_title(fig, f"conditioning of the flow map (map {result.map})", context, result.scheme)

    d = result.condition
    notes = [f"κ = σ_max/σ_min of the flow map's Jacobian over {d['n']} example(s): median {d['median']:.4g}, "
             f"worst {d['max']:.4g} (example {d['argmax']}); σ_max by Golub–Kahan, σ_min by {result.method_min}.",
             _bounds_sentence(result)]
    return Report("conditioning", titled(f"Conditioning of the flow map ({result.scheme}, map {result.map})", context),
                  ["example", "σ_max", "σ_min", "κ", "FTLE max", "FTLE min", "status", "max residual"], rows,
                  result.to_dict(), plot, notes, result.failure)
