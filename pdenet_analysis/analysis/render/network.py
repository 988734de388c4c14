"""The report of the whole network's feature map."""

from __future__ import annotations

from ..network import FeaturesResult
from ..report import Report
from ..results import renders
from .common import figure_title, titled


@renders(FeaturesResult)
def render(result: FeaturesResult, context: str | None) -> Report:
    m, n, per = result.features, result.inputs, result.examples
    rows = [[b, e["sigma_max"], e["sigma_min"], f"{e['rank']}/{m}", e["condition"], e["condition_effective"]]
            for b, e in enumerate(per)]

    def plot(fig):
        ax = fig.add_subplot(111)
        for e in per:
            ax.semilogy(range(1, m + 1), e["singular_values"], "-", color="C0", alpha=max(0.15, 1.0 / len(per)))
        ax.set_xlabel("index $i$")
        ax.set_ylabel(r"$\sigma_i$ of $\partial\varphi/\partial x$")
        figure_title(fig, f"feature map $R^{{{n}}} \\to R^{{{m}}}$, {len(per)} example(s)", context)

    d = result.to_dict()["condition_effective"]
    notes = [f"Exact singular values of the feature map's Jacobian (R^{n} → R^{m}, dense SVD); κ on the rank over "
             f"{d['n']} example(s): median {d['median']:.4g}, worst {d['max']:.4g} (example {d['argmax']}).",
             "The rank counts singular values above max(m, n)·ε·σ_max: a feature a ReLU switched off gives a zero "
             "one, and then κ = ∞."]
    return Report("features", titled("Conditioning of the network's feature map", context),
                  ["example", "σ_max", "σ_min", "rank", "κ", "κ on the rank"], rows, result.to_dict(), plot, notes,
                  result.failure)
