"""The observed-order report: errors against h on log axes, with the declared slope."""

from __future__ import annotations

from ..convergence import ConvergenceResult
from ..report import Report
from ..results import renders
from .common import figure_title, titled


@renders(ConvergenceResult)
def render(conv: ConvergenceResult, context: str | None) -> Report:
    successive = conv.reference.startswith("successive")
    what = "‖y_n − y_2n‖/‖y_2n‖" if successive else "relative error at T"

    def plot(fig):
        from matplotlib.ticker import NullFormatter

        ax = fig.add_subplot(111)
        ax.loglog(conv.h, conv.errors, "o-", label=f"{conv.scheme}: observed {conv.observed_order:.2f}")
        ref = [conv.errors[-1] * (hh / conv.h[-1]) ** conv.declared_order for hh in conv.h]
        ax.loglog(conv.h, ref, "k--", label=f"slope {conv.declared_order}")
        ax.set_xticks(conv.h, labels=[f"{v:.3g}" for v in conv.h], fontsize=7)  # the steps taken, no minor labels
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("step size $h$")
        ax.set_ylabel(r"$\|y_n - y_{2n}\| / \|y_{2n}\|$" if successive else "relative error at $T$")
        ax.legend(fontsize=7)
        figure_title(fig, "observed order", context, conv.scheme)

    notes = [f"Observed order {conv.observed_order:.3f} (declared {conv.declared_order}), the least-squares slope of "
             f"log error against log h over the points above round-off; errors against: {conv.reference}.",
             "With ReLU and TV normalisation the right-hand side is only piecewise smooth, so high orders are not "
             "reached."]
    return Report("convergence", titled(f"Observed order of {conv.scheme}", context), ["steps", "h", what],
                  [[s, h, e] for s, h, e in zip(conv.n_steps, conv.h, conv.errors)], conv.to_dict(), plot, notes,
                  conv.failure)
