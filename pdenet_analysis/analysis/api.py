"""The single entry point of the analyses: :func:`analyze` a network, a PDE block or an operator.

    import pdenet_analysis as pa
    res = pa.analyze(net, images)                       # every block of a network, from raw images
    res = pa.analyze(net, images, blocks=[2], analyses=["stability"])
    res = pa.analyze(op, y0, "verlet", n_steps=12)      # an operator with a scheme
    res[0]["stability"].max_amplification               # typed results
    res.save("reports/net")                             # JSON, Markdown and PNG, with an index report.md

For a network the input of each block is found by running the network up to it (its own
preprocessing first, in eval mode); for a block, ``x`` is its input; for an operator, ``x`` is
the initial state. ``scheme`` and ``n_steps`` integrate the same weights another way (a
network's or block's own scheme by default; an operator's default is the paper's scheme for its
kind). What each analysis computes is documented on its function (:mod:`.stability`,
:mod:`.conditioning`, :mod:`.density`, :mod:`.flow`, :mod:`.convergence`, :mod:`.network`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch

from ..errors import InvalidArgumentError
from ..progress import Progress
from .model import ANALYSES, COST, analyze_block, block_inputs, planned_analyses, why_not
from .modes import evaluation_mode
from .options import require_options
from .precision import ieee_float32
from .results import Result

#: the analyses of a whole network (its feature map), beside those of each block
NETWORK_ANALYSES = ("features",)


@dataclass
class UnitAnalysis:
    """The results of one analysed unit: a PDE block (``block`` its index in the network, None
    for a block or operator analysed alone) or the whole network's feature map (``block`` is
    "network"). ``results`` maps each analysis's name to its typed result; ``context`` names
    the model and block in every report's title."""

    block: int | str | None
    scheme: str | None
    results: dict[str, Result]
    context: str

    def __getitem__(self, name: str) -> Result:
        try:
            return self.results[name]
        except KeyError:
            raise KeyError(f"no {name!r} analysis here; there are: {', '.join(self.results)}") from None

    def __contains__(self, name: str) -> bool:
        return name in self.results

    @property
    def folder(self) -> str:
        return "network" if self.block == "network" else ("block" if self.block is None else f"block{self.block}")

    def summary(self) -> dict:
        """The numbers of the index table: the worst ρ(S_j) and modes outside, κ (median, worst,
        whether every value is certified), the observed order and the float64 reversibility error
        (each None where that analysis was not run)."""
        r, out = self.results, dict(block=self.block, scheme=self.scheme)
        if "stability" in r and r["stability"].ok:
            st = r["stability"]
            out.update(radius=st.max_amplification, modes_outside=st.n_outside_max, count_exact=st.count_exact,
                       unknowns=st.steps[0].examples[0].count.unknowns)
        if "conditioning" in r and r["conditioning"].ok:
            d = r["conditioning"].condition
            out.update(condition_median=d["median"], condition_worst=d["max"],
                       condition_certified=r["conditioning"].all_converged)
        if "convergence" in r and r["convergence"].ok:
            out.update(observed_order=r["convergence"].observed_order, declared_order=r["convergence"].declared_order)
        if "reversibility" in r and r["reversibility"].ok:
            out.update(reversibility_float64=r["reversibility"].worst("float64"))
        if "features" in r and r["features"].ok:
            d = r["features"].to_dict()
            out.update(features_rank_min=d["rank"]["min"], features=r["features"].features,
                       features_condition_effective=d["condition_effective"]["max"])
        return out


def _cell(v, fmt: str = ".4g") -> str:
    return "—" if v is None else format(v, fmt)


@dataclass
class Analysis:
    """What :func:`analyze` found: one :class:`UnitAnalysis` per analysed block (keyed by the
    block's index; 0 for a block or operator analysed alone) and, for a network, its feature map
    (key "network"). ``res[i]["stability"]`` is block i's stability result."""

    target: str
    source: str
    units: dict = field(default_factory=dict)

    def __getitem__(self, key) -> UnitAnalysis:
        try:
            return self.units[key]
        except KeyError:
            raise KeyError(f"nothing analysed under {key!r}; analysed: {', '.join(map(str, self.units))}") from None

    def __iter__(self):
        return iter(self.units.values())

    def index_markdown(self, paths: dict | None = None) -> str:
        """The index page: one summary row per analysed block (radius, modes outside, κ, order,
        reversibility error), the network's feature map, and links to the detailed pages."""
        lines = [f"# Analysis of {self.target}", "", f"Input: {self.source}.", "",
                 "| block | scheme | ρ(S_j) max | modes outside | κ median / worst | order observed / declared | "
                 "reversibility error (float64) |", "|---|---|---|---|---|---|---|"]
        for unit in self:
            if unit.block == "network":
                continue
            s = unit.summary()
            modes = "—" if "modes_outside" not in s else \
                f"{'' if s['count_exact'] else '≥ '}{s['modes_outside']} of {s['unknowns']}"
            ge = "" if s.get("condition_certified", True) else "≥ "
            kappa = "—" if "condition_median" not in s else \
                f"{ge}{s['condition_median']:.4g} / {ge}{s['condition_worst']:.4g}"
            order = "—" if "observed_order" not in s else f"{s['observed_order']:.2f} / {s['declared_order']}"
            lines.append(f"| {unit.folder} | {s['scheme']} | {_cell(s.get('radius'), '.6g')} | {modes} | {kappa} | "
                         f"{order} | {_cell(s.get('reversibility_float64'), '.1e')} |")
        net = self.units.get("network")
        if net is not None and "features" in net:
            s = net.summary()
            lines += ["", f"Network feature map: rank at least {s['features_rank_min']:.0f} of {s['features']}, "
                      f"worst κ on the rank {s['features_condition_effective']:.4g}."]
        lines += ["", "ρ(S_j): the spectral radius of the one-step map's Jacobian, worst over the steps and examples; "
                  "modes outside: its eigenvalues with |ξ| > 1 + δ ('≥': a count that stopped at its budget); κ: of "
                  "the flow map ('≥': σ_min only bounded). Each page explains its table; docs/analysis.md the methods.",
                  ""]
        if paths:
            for unit in self:
                links = ", ".join(f"[{name}]({os.path.relpath(p['md'], os.path.dirname(paths['index']))})"
                                  for name, p in paths[unit.block].items())
                lines.append(f"- {unit.context}: {links}")
        return "\n".join(lines) + "\n"

    def save(self, out: str) -> dict:
        """Write every report (JSON, Markdown, PNG) under ``out``/<unit> and the index
        ``out``/report.md; returns {unit key: {analysis: {json, md, png}}, "index": path}."""
        paths = {unit.block: {name: r.save(os.path.join(out, unit.folder), unit.context)
                              for name, r in unit.results.items()} for unit in self}
        paths["index"] = os.path.join(out, "report.md")
        os.makedirs(out, exist_ok=True)
        with open(paths["index"], "w") as f:
            f.write(self.index_markdown(paths))
        return paths


def _target_name(model) -> str:
    cfg = getattr(model, "config", {})
    return cfg.get("preset") or cfg.get("architecture") or type(model).__name__


def _check_blocks(blocks, n: int) -> list[int]:
    if blocks is None:
        return list(range(n))
    if isinstance(blocks, int) and not isinstance(blocks, bool):
        blocks = [blocks]
    bad = [b for b in blocks if isinstance(b, bool) or not isinstance(b, int) or not 0 <= b < n]
    if bad or not blocks:
        raise InvalidArgumentError(f"blocks must be indices of the network's {n} PDE block(s) (0 to {n - 1}), got "
                                   f"{blocks!r}")
    return sorted(set(blocks))


def _split_analyses(analyses, network: bool):
    """(the block analyses asked for, or None for all that apply; whether to analyse the feature map)."""
    if analyses is None:
        return None, network
    if isinstance(analyses, str):
        analyses = [analyses]
    analyses = list(analyses)
    unknown = [a for a in analyses if a not in ANALYSES + NETWORK_ANALYSES]
    if unknown:
        raise InvalidArgumentError(f"unknown analysis {', '.join(map(repr, unknown))}; choose from "
                                   f"{', '.join(ANALYSES + NETWORK_ANALYSES)}")
    if "features" in analyses and not network:
        raise InvalidArgumentError("'features' is the conditioning of a whole network's feature map; it needs a "
                                   "network (a PDECNN), not a block or an operator")
    return [a for a in analyses if a != "features"], "features" in analyses


@ieee_float32()
def analyze(target, x, scheme=None, *, n_steps: int | None = None, analyses=None, blocks=None, out: str | None = None,
            certification=None, budget=None, progress: bool = True, **options) -> Analysis:
    """Run the analyses on ``target`` — a network (:class:`~pdenet_analysis.networks.PDECNN`), a
    :class:`~pdenet_analysis.networks.PDEBlock` or an operator — for the examples ``x``.

    * ``x``: a network's raw images (its own preprocessing is applied), a block's input, or an
      operator's initial state (a tensor, or a tuple for a Hamiltonian/second-order state);
    * ``scheme``, ``n_steps``: integrate the same weights another way (default: the network's or
      block's own; for an operator, the paper's scheme for its kind);
    * ``analyses``: which to run (:data:`~.model.ANALYSES`, and "features" for a network); by
      default every one that applies to the scheme. One that does not apply is refused;
    * ``blocks``: a network's blocks to analyse (indices; default all);
    * ``out``: save every report and an index ``report.md`` there (:meth:`Analysis.save`);
    * ``certification``, ``budget``: :class:`~.options.Certification` and
      :class:`~.options.Budget`;
    * ``progress``: a progress line on stderr with the time left;
    * ``options``: of :func:`~.model.analyze_block` (``k``, ``convergence_steps``,
      ``order_estimate``, ``reference_factor``).

    The network is analysed as it predicts, in eval mode, every module's mode put back
    afterwards; float32 computations run in IEEE float32 on every device, so a GPU's report
    equals the CPU's."""
    from ..networks import PDEBlock, PDECNN
    from ..operators.operators import Operator

    certification, budget = require_options(certification, budget)
    block_options = dict(certification=certification, budget=budget, **_check_block_options(options))
    if isinstance(target, PDECNN):
        return _analyze_network(target, x, scheme, n_steps, analyses, blocks, out, progress, block_options)
    if blocks is not None:
        raise InvalidArgumentError("blocks chooses among a network's PDE blocks; a block or an operator is analysed "
                                   "whole: drop blocks=")
    if isinstance(target, PDEBlock):
        block = target if scheme is None and n_steps is None else target.with_scheme(scheme, n_steps)
    elif isinstance(target, Operator):
        block = PDEBlock(target, scheme, n_steps=n_steps)
    else:
        raise InvalidArgumentError(f"analyze takes a network (PDECNN), a PDEBlock or an operator, got "
                                   f"{type(target).__name__}")
    wanted, _ = _split_analyses(analyses, network=False)
    name = type(target.operator if isinstance(target, PDEBlock) else target).__name__
    context = f"{name} ({block.scheme.name})"
    plan = planned_analyses(block, wanted)
    tick = Progress(len(plan), "analyze", quiet=not progress, weights=[COST[a] for a in plan] or None)
    results = analyze_block(block, x, analyses=plan, progress=tick, **block_options)
    res = Analysis(name, f"{_batch(x)} example(s) given", {0: UnitAnalysis(None, block.scheme.name, results, context)})
    if out is not None:
        res.save(out)
    return res


def _batch(x) -> int:
    return (x[0] if isinstance(x, (tuple, list)) else x).shape[0]


def _check_block_options(options: dict) -> dict:
    allowed = ("k", "convergence_steps", "order_estimate", "reference_factor")
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise InvalidArgumentError(f"analyze() got unexpected keyword argument(s) {', '.join(unknown)}; it takes "
                                   f"scheme, n_steps, analyses, blocks, out, certification, budget, progress and "
                                   f"{', '.join(allowed)}")
    return options


def _analyze_network(model, x, scheme, n_steps, analyses, blocks, out, progress, block_options) -> Analysis:
    if scheme is not None or n_steps is not None:
        model = model.with_scheme(scheme, n_steps)
    chosen = _check_blocks(blocks, len(model.blocks))
    wanted, features = _split_analyses(analyses, network=True)
    fixed = not any(b.scheme.adaptive for b in model.blocks)
    if features and not fixed and analyses is not None:
        raise InvalidArgumentError("'features' differentiates the whole network, which needs fixed-step blocks; "
                                   "analyse model.with_scheme('rk4', n_steps=12) for a fine fixed-step version")
    features = features and fixed
    target = _target_name(model)
    with evaluation_mode(model, graph=True):
        inputs = block_inputs(model, x)
        plans = {i: planned_analyses(model.blocks[i], wanted) for i in chosen}
        # the weights of the units in the order they finish; a block's cost grows with its unknowns
        largest = max((inputs[i][0].numel() for i in chosen), default=1)
        weights = ([COST["features"]] if features else []) + \
            [COST[a] * inputs[i][0].numel() / largest for i in chosen for a in plans[i]]
        tick = Progress(len(weights), "analyze", quiet=not progress, weights=weights or None)
        res = Analysis(target, f"{_batch(x)} image(s) of {tuple(x.shape[1:])}")
        if features:
            from .network import features_conditioning

            tick(0, "network features")
            res.units["network"] = UnitAnalysis("network", None, {"features": features_conditioning(model, x)},
                                                f"{target}, network")
            tick(1, "network features")
        for i in chosen:
            tick(0, f"block {i}")
            blk = model.blocks[i]
            results = analyze_block(blk, inputs[i], analyses=plans[i], progress=tick, **block_options)
            res.units[i] = UnitAnalysis(i, blk.scheme.name, results, f"{target}, block {i}")
        if tick.done < tick.total:
            tick(tick.total - tick.done, "done")
    if out is not None:
        res.save(out)
    return res


def analyze_model(model, x: torch.Tensor, out: str, blocks=None, quiet: bool = False, with_features: bool = True,
                  **options) -> dict:
    """Deprecated: :func:`pdenet_analysis.analyze` (the single entry point) does this and more.

    Analyses the PDE blocks of ``model`` on the images ``x`` and saves the reports in ``out``;
    returns {block index or "features": {"reports": {name: result}, "paths": {name: paths}}}."""
    import warnings

    warnings.warn("analyze_model is deprecated: call pdenet_analysis.analyze(model, x, out=...)", DeprecationWarning,
                  stacklevel=2)
    scheme = model.blocks[0].scheme  # with_scheme gives every block the same scheme
    analyses = [a for a in ANALYSES if why_not(scheme, a) is None]
    if options.pop("with_conditioning", True) is False:
        analyses.remove("conditioning")
    if with_features and not scheme.adaptive:
        analyses.append("features")
    res = analyze(model, x, blocks=blocks, analyses=analyses, progress=not quiet, **options)
    paths = res.save(out)
    return {key: dict(reports=unit.results, paths=paths[key]) for key, unit in res.units.items()}
