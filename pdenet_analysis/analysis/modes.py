"""The mode an operator or a network is analysed in: as it predicts.

An analysis linearises the map a network computes. Two kinds of layer compute another map in
training mode than in eval mode: dropout draws a new mask at every evaluation (the Jacobian-vector
products of one Krylov run would belong to different maps), and batch normalisation normalises
with the batch's own statistics (every example's output then depends on the others, and the
running statistics move at every one of the thousands of evaluations an analysis makes).

* :func:`analyze_model <pdenet_analysis.analysis.model.analyze_model>`, a whole-network command,
  puts the network in eval mode for its run and hands it back in the modes it came in
  (:func:`evaluation_mode`).
* The analyses of an operator (:func:`~.steps.discretise`, :func:`~.conditioning.conditioning`,
  :func:`~.stability.spectrum_along_trajectory`, …) refuse an operator with such a layer in
  training mode (:func:`analyses_an_operator`), naming it: some of them return objects that
  evaluate the operator later, beyond the reach of a mode switched for the call. Call
  ``operator.eval()`` first.
* Any other layer that computes another map at every evaluation is found by evaluating the
  operator once at the analysis's initial state before the analysis starts
  (:func:`require_one_map`): a draw from the random generator (noise, functional dropout, a
  custom random layer, in any mode) or a write to one of its buffers (spectral normalisation's
  power iteration in training mode) is refused, naming what happened. The generator's state is
  put back after that evaluation, so the check changes no random number the caller draws later.
  The same record is kept over the whole analysis (the analyses themselves draw only from their
  own seeded generators), so a layer that draws or writes only at some t > 0, or only from its
  second call on, is refused when the analysis ends instead of its result returned. What an
  analysis returns and evaluates later (:func:`~.steps.discretise`'s step maps) is checked only
  by the first evaluation.
"""

from __future__ import annotations

import contextlib
import functools

import torch
from torch import nn
from ..errors import IncompatibleOperatorError, PDENetError
from ..replay import draws_at_random, normalises_by_batch, side_effects


@contextlib.contextmanager
def evaluation_mode(model: nn.Module, graph: bool = False):
    """``model`` in eval mode (batch norm with its running statistics, no dropout), and without
    a graph unless ``graph``; every module's own mode is put back afterwards, so an analysis in
    the middle of training leaves the model as it found it."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.set_grad_enabled(graph and torch.is_grad_enabled()):
            yield model
    finally:
        for m, mode in modes:
            m.training = mode


def _training_only(module: nn.Module) -> bool:
    """A layer that computes another map in training mode: dropout (p > 0) or batch norm."""
    return draws_at_random(module) or normalises_by_batch(module)


def require_prediction_mode(operator) -> None:
    """Raise :class:`IncompatibleOperatorError` if ``operator`` has dropout or batch norm in
    training mode (see the module docstring)."""
    if not isinstance(operator, nn.Module) or not any(_training_only(m) for m in operator.modules()):
        return
    names = [name or type(operator).__name__ for name, m in operator.named_modules() if _training_only(m)]
    raise IncompatibleOperatorError(
        f"{', '.join(names)} is in training mode, where it computes another map at every evaluation (dropout) or "
        "couples the examples and moves its running statistics (batch norm); the analyses linearise the map the "
        "operator computes as it predicts: call operator.eval() first")


def _probe_state(operator, y0) -> tuple | None:
    """The state an evaluation of ``operator`` takes, from an analysis's initial value (or state)
    ``y0``; None where it cannot be formed (the analysis then reports the problem itself)."""
    if isinstance(y0, (tuple, list)) and getattr(operator, "kind", None) == "first_order":
        return tuple(y0)
    try:
        return operator.to_state(y0)
    except (PDENetError, NotImplementedError):
        return None


def _refuse_side_effects(seen, when: str) -> None:
    """Raise :class:`IncompatibleOperatorError` for what :func:`~pdenet_analysis.replay.side_effects`
    saw the operator do ``when`` (a phrase: "when it was evaluated", ...), if anything."""
    if seen.drew:
        raise IncompatibleOperatorError(
            f"the operator drew random numbers {when} (noise, functional dropout or another random "
            "layer): every evaluation is then another map, and an analysis linearises one map; make the layer "
            "deterministic for the analysis (its eval mode, or a fixed draw)")
    if seen.written:
        raise IncompatibleOperatorError(
            f"the operator changed its buffer(s) {', '.join(seen.written)} {when} (spectral "
            "normalisation's power iteration does so in training mode): every evaluation is then another map, "
            "and an analysis linearises one map; call operator.eval() first")


def require_one_map(operator, y0) -> None:
    """Raise :class:`IncompatibleOperatorError` if one evaluation of ``operator`` at the state of
    ``y0`` (at t = 0) draws random numbers or writes one of its buffers: then the Jacobian-vector
    products of one analysis would belong to different maps. The generator states are put back
    after the evaluation. Where the operator cannot be evaluated at ``y0`` as given (a dtype the
    analysis converts first, a shape it refuses with its own message), nothing is checked here."""
    if not isinstance(operator, nn.Module) or not hasattr(operator, "vector_field"):
        return
    state = _probe_state(operator, y0)
    if state is None or not all(isinstance(x, torch.Tensor) for x in state):
        return
    try:
        with torch.no_grad(), side_effects(operator, state[0].device, restore_generators=True) as seen:
            operator.vector_field(0.0, state)
    except (PDENetError, NotImplementedError):
        return  # an input the analysis converts first (a dtype, say), or refuses with its own message
    _refuse_side_effects(seen, "when it was evaluated")


def _device_of(operator, y0) -> torch.device:
    """Where the operator's CUDA generator would be drawn from: its parameters' device, else the
    initial value's, else the CPU."""
    for p in operator.parameters():
        return p.device
    first = y0[0] if isinstance(y0, (tuple, list)) and y0 else y0
    return first.device if isinstance(first, torch.Tensor) else torch.device("cpu")


def analyses_an_operator(fn):
    """Decorate an analysis whose first two arguments are the operator and its initial value (or
    state): refuse it in a training mode that changes its map (:func:`require_prediction_mode`),
    before it starts where one evaluation draws random numbers or writes a buffer
    (:func:`require_one_map`), and after it ends where any evaluation during it did (the result
    is then not returned)."""

    @functools.wraps(fn)
    def checked(operator, *args, **kwargs):
        require_prediction_mode(operator)
        y0 = args[0] if args else kwargs.get("y0", kwargs.get("state"))
        if y0 is not None:
            require_one_map(operator, y0)
        if not isinstance(operator, nn.Module):
            return fn(operator, *args, **kwargs)
        # and throughout: a layer that draws or writes only at some t, or only after the first call, is
        # seen when the analysis ends (its result is then refused, not returned)
        with side_effects(operator, _device_of(operator, y0), restore_generators=True) as seen:
            out = fn(operator, *args, **kwargs)
        _refuse_side_effects(seen, "during the analysis")
        return out

    return checked
