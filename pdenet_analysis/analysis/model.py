"""All analyses of a network's PDE blocks, written as one report directory.

For each PDE block, the block's own input is obtained by running the network up to it on the
given images (every example is analysed; the Krylov solvers are batched over examples); then:

* ``stability``: per step and example, the step map's spectral radius, complete count of modes
  outside the unit disc and norm, and the layer eigenvalues over the scheme's stability region;
* ``conditioning``: σ_max, σ_min, κ and FTLEs of the flow map, per example (certified values);
* ``density``: SLQ density of the layer Jacobian's symmetric part and wide-Arnoldi Ritz values
  (first example, first step; fixed-step schemes);
* the whole network's feature map (``features``, :mod:`.network`): exact singular values, rank
  and κ per example;
* ``reversibility`` (reversible schemes), ``convergence`` (observed order on the block's weights, trained or not;
  fixed-step schemes — under error control an order in h is meaningless) and ``energy``.
"""

from __future__ import annotations

import copy
import os

import torch

from ..progress import Progress
from .conditioning import conditioning
from .convergence import convergence_study
from .density import spectral_density
from .flow import energy, reversibility
from .modes import evaluation_mode
from .network import features_conditioning
from .precision import ieee_float32
from .report import Report
from .stability import spectrum_along_trajectory
from .reduced_inverse import REDUCED_SPARSE_MAX
from .stepmap import COUNT_BUDGET, REDUCED_DENSE_MAX

ANALYSES = ("stability", "conditioning", "density", "reversibility", "convergence", "energy")

#: relative cost of each analysis of a block, for the progress line's estimate of the time left
#: only: from ``analyze cifar10-hamiltonian --all-blocks --examples 32`` on 2 CPU cores (block 0:
#: stability 238 s, conditioning 72 s, the others 4–7 s; network features 19 s; docs/analysis.md)
COST = dict(stability=1.0, conditioning=0.3, density=0.02, reversibility=0.02, convergence=0.03, energy=0.01,
            features=0.08)


@torch.no_grad()
def block_inputs(model, x: torch.Tensor) -> list[torch.Tensor]:
    """The input of every PDE block for the images ``x``, the network in eval mode
    (:func:`evaluation_mode`)."""
    with evaluation_mode(model):
        p = next(model.parameters())
        h = model.opening(x.to(p.device, p.dtype))
        inputs = []
        for unit in model.units:
            inputs.append(h)
            h = unit(h)
    return inputs


def _convergence_report(conv) -> Report:
    what = "‖y_n − y_2n‖/‖y_2n‖" if conv.reference.startswith("successive") else "relative error at T"

    def plot(fig, c=conv):
        ax = fig.add_subplot(111)
        ax.loglog(c.h, c.errors, "o-", label=f"{c.scheme}: observed {c.observed_order:.2f}")
        ax.loglog(c.h, [c.errors[-1] * (hh / c.h[-1]) ** c.declared_order for hh in c.h], "k--", label=f"slope {c.declared_order}")
        ax.set_xlabel("h")
        ax.set_ylabel(what)
        ax.legend()

    return Report("convergence", f"Observed order of {conv.scheme} on the block's weights",
                  ["steps", "h", what], [[s, h, e] for s, h, e in zip(conv.n_steps, conv.h, conv.errors)],
                  conv.as_dict(), plot,
                  [f"observed order {conv.observed_order:.3f} (declared {conv.declared_order}); reference: {conv.reference}",
                   "with ReLU and TV normalisation the right-hand side is not smooth: high orders are not reached "
                   "(docs/analysis.md)"])


def planned_analyses(block, analyses=ANALYSES, with_conditioning: bool = True) -> list[str]:
    """The analyses that apply to ``block``'s scheme: no density or observed order under error
    control, reversibility only for reversible schemes."""
    scheme = block.scheme
    skip = {"conditioning"} if not with_conditioning else set()
    if scheme.adaptive:
        skip |= {"density", "convergence"}
    if not scheme.reversible:
        skip.add("reversibility")
    return [a for a in analyses if a not in skip]


@ieee_float32()
def analyze_block(block, x: torch.Tensor, out: str, k: int = 6, convergence_steps=None, backend: str = "auto",
                  with_conditioning: bool = True, analyses=ANALYSES, dense_max: int = 2048, count_examples: int | None = 1,
                  reduced_dense_max: int = REDUCED_DENSE_MAX, reduced_sparse_max: int = REDUCED_SPARSE_MAX,
                  order_estimate: str = "successive", reference_factor: int = 8, failure_probability: float = 1e-6,
                  seed: int = 0, count_budget: int = COUNT_BUDGET, progress=None) -> dict:
    """Run the ``analyses`` on one block for the examples ``x``; save the reports in ``out``.

    ``count_examples``: above ``dense_max`` unknowns, how many examples per step get the complete
    count of unstable step-map modes (chosen by a certified lower bound, see
    :func:`~.stability.spectrum_along_trajectory`; None: all); ``reduced_dense_max``: up to this
    size of their reduced step form through the active hidden units, the two-level schemes and
    forward Euler are counted exactly (:mod:`.stepmap`), and forward Euler's σ_min comes from exact
    inverse step maps (:mod:`.reduced_inverse`), factorised sparse up to ``reduced_sparse_max``
    active units. ``order_estimate``:
    how the observed order's errors are measured (:func:`~.convergence.convergence_study`): "successive" differences of the
    scheme's own solves (default: one extra solve), or "reference" (RK4 with ``reference_factor``×
    the finest step count: about 7× the cost at the paper's sizes). ``failure_probability`` and
    ``seed``: of the probable bounds of stability and conditioning and their Krylov start vectors
    (:func:`~.conditioning.conditioning`). ``count_budget``: the products of each ARPACK count of
    the modes outside (:func:`~.stability.spectrum_along_trajectory`)."""
    # analyses run in float64 on a copy of the block (the trained model keeps its dtype)
    op, scheme = copy.deepcopy(block.operator).double(), block.scheme
    n = None if scheme.adaptive else (block.n_steps or (op.grid.n_pieces if op.grid else 8))
    x = x.double()
    tick = progress or (lambda *a, **kw: None)
    wanted = planned_analyses(block, analyses, with_conditioning)
    reports = {}
    if "stability" in wanted:
        reports["stability"] = spectrum_along_trajectory(op, x, scheme, n_steps=n, k=k, backend=backend, dense_max=dense_max,
                                                         count_examples=count_examples, reduced_dense_max=reduced_dense_max,
                                                         failure_probability=failure_probability, seed=seed,
                                                         count_budget=count_budget,
                                                         progress=lambda where: tick(0, f"stability {where}"))
        tick(1, "stability")
    if "conditioning" in wanted:
        reports["conditioning"] = conditioning(op, x, scheme, n_steps=n, dense_max=dense_max,
                                               reduced_dense_max=reduced_dense_max, reduced_sparse_max=reduced_sparse_max,
                                               failure_probability=failure_probability, seed=seed,
                                               progress=lambda where: tick(0, f"conditioning {where}"))
        tick(1, "conditioning")
    if "density" in wanted:
        reports["density"] = spectral_density(op, x[:1], scheme, n_steps=n)
        tick(1, "density")
    if "reversibility" in wanted:
        reports["reversibility"] = reversibility(op, x, scheme, n_steps_list=(n, 4 * n, 16 * n))
        tick(1, "reversibility")
    if "convergence" in wanted:
        pieces = op.grid.n_pieces if op.grid else 1
        steps = convergence_steps or [pieces * 2**i for i in range(1, 6)]
        reports["convergence"] = _convergence_report(convergence_study(op, x, scheme, steps, estimate=order_estimate,
                                                                                   reference_factor=reference_factor))
        tick(1, "convergence")
    if "energy" in wanted:
        reports["energy"] = energy(op, x, scheme, n_steps=n or 4 * (op.grid.n_pieces if op.grid else 4))
        tick(1, "energy")
    paths = {name: r.save(out) for name, r in reports.items()}
    return dict(reports=reports, paths=paths)


@ieee_float32()
def analyze_model(model, x: torch.Tensor, out: str, blocks=None, quiet: bool = False, with_features: bool = True,
                  **kw) -> dict:
    """Analyse the PDE blocks (all, or the indices in ``blocks``) of ``model`` on images ``x``
    (every example of the batch), with a progress line on stderr unless ``quiet``.

    Results are keyed by block index; with ``with_features`` (fixed-step networks), the key
    ``"features"`` holds the conditioning of the whole feature map (:mod:`.network`), saved in
    ``out/network``. Float32 computations run in IEEE float32 on every device, TensorFloat-32
    switched off (:func:`.precision.ieee_float32`), so that a GPU's report equals the CPU's.

    The network is analysed as it predicts: in eval mode (running statistics, no dropout), every
    module's mode put back afterwards (:func:`evaluation_mode`)."""
    with evaluation_mode(model, graph=True):
        return _analyze_model(model, x, out, blocks, quiet, with_features, **kw)


def _analyze_model(model, x, out, blocks, quiet, with_features, **kw) -> dict:
    inputs = block_inputs(model, x)
    chosen = [i for i in range(len(model.blocks)) if blocks is None or i in blocks]
    with_features = with_features and not any(b.scheme.adaptive for b in model.blocks)
    plans = {i: planned_analyses(model.blocks[i], kw.get("analyses", ANALYSES), kw.get("with_conditioning", True))
             for i in chosen}
    # the weights of the units in the order they finish; a block's cost grows with its unknowns
    largest = max((inputs[i][0].numel() for i in chosen), default=1)
    weights = ([COST["features"]] if with_features else []) + \
        [COST[a] * inputs[i][0].numel() / largest for i in chosen for a in plans[i]]
    progress = Progress(len(weights), "analyze", quiet=quiet, weights=weights or None)
    results = {}
    if with_features:
        progress(0, "network features")
        rep = features_conditioning(model, x)
        results["features"] = dict(reports={"features": rep}, paths={"features": rep.save(os.path.join(out, "network"))})
        progress(1, "network features")
    for i in chosen:
        progress(0, f"block {i}")
        results[i] = analyze_block(model.blocks[i], inputs[i], os.path.join(out, f"block{i}"), progress=progress, **kw)
    if progress.done < progress.total:
        progress(progress.total - progress.done, "done")
    return results
