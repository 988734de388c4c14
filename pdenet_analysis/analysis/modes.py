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
"""

from __future__ import annotations

import contextlib
import functools

import torch
from torch import nn
from ..errors import IncompatibleOperatorError
from ..replay import draws_at_random, normalises_by_batch


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


def analyses_an_operator(fn):
    """Decorate an analysis whose first argument is the operator: refuse it in a training mode
    that changes its map (:func:`require_prediction_mode`)."""

    @functools.wraps(fn)
    def checked(operator, *args, **kwargs):
        require_prediction_mode(operator)
        return fn(operator, *args, **kwargs)

    return checked
