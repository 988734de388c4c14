"""The analyses of one PDE block, and the inputs of a network's blocks.

For a block and its input, :func:`analyze_block` runs the analyses that apply to its scheme
(:func:`planned_analyses`) on a float64 copy of its operator, every example at once:

* ``stability``: per step and example, the step map's spectral radius, complete count of modes
  outside the unit disc and norm, and the layer eigenvalues over the scheme's stability region;
* ``conditioning``: σ_max, σ_min, κ and FTLEs of the flow map, per example (certified values);
* ``density``: SLQ density of the layer Jacobian's symmetric part and wide-Arnoldi Ritz values
  (first example, first step; fixed-step schemes);
* ``reversibility`` (reversible schemes), ``convergence`` (observed order on the block's
  weights, trained or not; fixed-step schemes — under error control an order in h is
  meaningless) and ``energy``.

:func:`block_inputs` runs a network up to each block: the network's own preprocessing first, in
eval mode (:func:`~.modes.evaluation_mode`). The single entry point that puts these together for
a network, a block or an operator is :func:`~.api.analyze`.
"""

from __future__ import annotations

import copy

import torch

from ..errors import InvalidArgumentError
from .conditioning import conditioning
from .convergence import convergence_study
from .density import spectral_density
from .flow import energy, reversibility
from .modes import evaluation_mode
from .precision import ieee_float32
from .stability import stability

ANALYSES = ("stability", "conditioning", "density", "reversibility", "convergence", "energy")

#: relative cost of each analysis of a block, for the progress line's estimate of the time left
#: only (stability dominates, then conditioning; the others are small)
COST = dict(stability=1.0, conditioning=0.3, density=0.02, reversibility=0.02, convergence=0.03, energy=0.01,
            features=0.08)


@torch.no_grad()
def block_inputs(model, x: torch.Tensor) -> list[torch.Tensor]:
    """The input of every PDE block for the images ``x`` (raw: the network's own preprocessing is
    applied first), the network in eval mode (:func:`evaluation_mode`)."""
    with evaluation_mode(model):
        p = next(model.parameters())
        h = model.opening(model.preprocess(x.to(p.device, p.dtype)))
        inputs = []
        for unit in model.units:
            inputs.append(h)
            h = unit(h)
    return inputs


def why_not(scheme, analysis: str) -> str | None:
    """Why ``analysis`` does not apply to ``scheme`` (None: it does)."""
    if analysis in ("density", "convergence") and scheme.adaptive:
        return (f"{analysis} needs fixed steps, and {scheme.name!r} chooses its steps by error control; evaluate a "
                "fixed-step version of the same weights (e.g. scheme='rk4', n_steps=12)")
    if analysis == "reversibility" and not scheme.reversible:
        return f"reversibility needs a scheme with an exact inverse step, and {scheme.name!r} has none"
    return None


def planned_analyses(block, analyses=None, with_conditioning: bool = True) -> list[str]:
    """The analyses to run on ``block``: those asked for (``analyses``; each must exist and apply
    to the block's scheme, or it is refused), or, by default, every one that applies (no density
    or observed order under error control, reversibility only for reversible schemes)."""
    scheme = block.scheme
    if analyses is None:
        wanted = [a for a in ANALYSES if why_not(scheme, a) is None]
        return [a for a in wanted if with_conditioning or a != "conditioning"]
    unknown = [a for a in analyses if a not in ANALYSES]
    if unknown:
        raise InvalidArgumentError(f"unknown analysis {', '.join(map(repr, unknown))}; the analyses of a block are "
                                   f"{', '.join(ANALYSES)} (and 'features' of a whole network)")
    for a in analyses:
        reason = why_not(scheme, a)
        if reason is not None:
            raise InvalidArgumentError(f"analysis {a!r} was asked for, but {reason}")
    return [a for a in ANALYSES if a in analyses]


@ieee_float32()
def analyze_block(block, x: torch.Tensor, *, analyses=None, certification=None, budget=None, k: int = 6,
                  convergence_steps=None, order_estimate: str = "successive", reference_factor: int = 8,
                  progress=None) -> dict:
    """Run the analyses on one block for the examples ``x`` (its input); returns {name: result}.

    They run in float64 on a copy of the block's operator (the trained model keeps its dtype).
    ``certification`` and ``budget``: :class:`~.options.Certification`, :class:`~.options.Budget`.
    ``convergence_steps``: the step counts of the observed order (default: 2, 4, ..., 32 times the
    pieces of θ); ``order_estimate``: how its errors are measured
    (:func:`~.convergence.convergence_study`): "successive" differences of the scheme's own solves
    (one extra solve), or "reference" (RK4 with ``reference_factor``× the finest step count).
    ``progress(n, label)`` is told of each finished analysis."""
    op, scheme = copy.deepcopy(block.operator).double(), block.scheme
    n = None if scheme.adaptive else (block.n_steps or (op.grid.n_pieces if op.grid else 8))
    x = x.double()
    tick = progress or (lambda *a, **kw: None)
    options = dict(certification=certification, budget=budget)
    results = {}
    for name in planned_analyses(block, analyses):
        if name == "stability":
            results[name] = stability(op, x, scheme, n_steps=n, k=k, progress=lambda where: tick(0, f"stability {where}"),
                                      **options)
        elif name == "conditioning":
            results[name] = conditioning(op, x, scheme, n_steps=n, progress=lambda where: tick(0, f"conditioning {where}"),
                                         **options)
        elif name == "density":
            results[name] = spectral_density(op, x[:1], scheme, n_steps=n)
        elif name == "reversibility":
            results[name] = reversibility(op, x, scheme, n_steps_list=(n, 4 * n, 16 * n))
        elif name == "convergence":
            pieces = op.grid.n_pieces if op.grid else 1
            steps = convergence_steps or [pieces * 2**i for i in range(1, 6)]
            results[name] = convergence_study(op, x, scheme, steps, estimate=order_estimate,
                                              reference_factor=reference_factor)
        elif name == "energy":
            results[name] = energy(op, x, scheme, n_steps=n or 4 * (op.grid.n_pieces if op.grid else 4))
        tick(1, name)
    return results
