"""The reversibility and energy reports."""

from __future__ import annotations

from ..flow import EnergyResult, ReversibilityResult
from ..precision import UNIT_ROUNDOFF
from ..report import Report
from ..results import renders
from .common import figure_title, titled


@renders(ReversibilityResult)
def render_reversibility(result: ReversibilityResult, context: str | None) -> Report:
    data = result.results
    rows = [[d["dtype"], d["n_steps"], d["h"], d["relative_error"]] for d in data]

    def plot(fig):
        ax = fig.add_subplot(111)
        for dname in dict.fromkeys(d["dtype"] for d in data):
            pts = [(d["n_steps"], d["relative_error"]) for d in data if d["dtype"] == dname]
            ax.loglog([p[0] for p in pts], [max(p[1], 1e-18) for p in pts], "o-", label=dname)
        ax.set_xlabel("number of steps $n$")
        ax.set_ylabel(r"$\|Y_0 - R(\Phi(Y_0))\| \,/\, \|Y_0\|$")
        ax.legend(fontsize=7)
        figure_title(fig, "reversibility", context, result.scheme)

    roundoff = ", ".join(f"{d} {UNIT_ROUNDOFF[d]:.1e}" for d in result.dtypes)
    notes = [f"Relative error of n steps forward and n exact inverse steps back, against the unit round-off ({roundoff}).",
             "tensorfloat32 is float32 storage with TF32 products, the default of float32 convolutions on a GPU."
             if "tensorfloat32" in result.dtypes else "An error near the unit round-off times n is exact reversal."]
    return Report("reversibility", titled(f"Reversibility of {result.scheme}", context),
                  ["dtype", "steps", "h", "relative error"], rows, result.to_dict(), plot, notes, result.failure)


@renders(EnergyResult)
def render_energy(result: EnergyResult, context: str | None) -> Report:
    rows = [[j, t, n, e] for j, (t, n, e) in enumerate(zip(result.times, result.norms, result.energies))]
    has_e = any(e is not None for e in result.energies)

    def plot(fig):
        ax = fig.add_subplot(111)
        ax.plot(result.times, result.norms, "o-", label=r"$\|Y(t)\|$")
        if has_e:
            ax.plot(result.times, result.energies, "s-", label="energy")
        ax.set_xlabel("$t$")
        ax.legend(fontsize=7)
        figure_title(fig, f"norm and energy ({result.kind} operator)", context, result.scheme)

    notes = ["Energy: eq. 12 for a second-order operator, the Hamiltonian H for a Hamiltonian one, defined only "
             "without normalisation (N = id); '—' where undefined."]
    return Report("energy", titled(f"Norm and energy along the trajectory ({result.scheme})", context),
                  ["step", "t", "norm", "energy"], rows, result.to_dict(), plot, notes, result.failure)
