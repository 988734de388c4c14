"""Whether an operator gives the same values when it is evaluated again: what the reversible
gradient needs of it.

The reversible gradient (:class:`~pdenet_analysis.gradients.Reversible`) keeps no intermediate
state: its backward pass rebuilds each state with the scheme's inverse step and evaluates the
operator again there (paper §3.2). That is exact only when an evaluation is a function of its
input, its parameters and t. Two kinds of layer break this without any error of their own:

* **Randomness.** Dropout in training mode, or noise drawn inside a layer, draws new numbers in
  the backward pass. The inverse steps then rebuild states the forward pass never visited and the
  gradient belongs to another network (the failure momentumnet's users met with dropout,
  momentumnet issue 25). Detected two ways: a dropout module (``nn.Dropout``, ``Dropout2d``, …,
  ``AlphaDropout``) in training mode with p > 0 is refused before anything runs, and any other
  draw shows as a change of the random generator's state during the forward pass (the CPU
  generator, and the CUDA one of the state's device).
* **Buffers that change as the layer runs.** Batch normalisation in training mode normalises with
  the batch's own statistics, a function of the batch, so its values are replayed exactly; but it
  also moves its running statistics at every evaluation, and the backward pass would move them a
  second time (memcnn issue 12). :meth:`ReplayGuard.restoring` puts them back after the backward
  pass, so they end where backprop leaves them. Any other buffer that changes during the forward
  pass (spectral normalisation's power iteration, a cache) makes the layer a different function
  at every call: refused, naming the buffer.

A third requirement is checked in the backward pass itself
(:func:`~pdenet_analysis.schemes.base.outside_leaves`): the operator may depend on no tensor that
requires grad other than the state and its own parameters (a conditioning tensor computed by
another network, say). The reversible gradient returns gradients for those two only, so such a
tensor's would be lost; the kept steps' graph and the newest rebuilt step are walked once per
backward pass. The adjoint gradient has the same limit, and its solve walks one evaluation's
graph before it starts.

Refusals raise :class:`~pdenet_analysis.errors.IncompatibleOperatorError`, with the fix: the
layer in eval mode, the randomness outside the block, or ``gradient="backprop"``. The generator
check is skipped inside ``torch.compile`` and while a CUDA graph is recorded (reading the CUDA
generator's state is refused there); the eager steps that precede both (the trainer's warm-up)
run it.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.dropout import _DropoutNd

from .errors import IncompatibleOperatorError

_FIX = "put the layer in eval mode (module.eval()), move it out of the block, or use gradient='backprop'"


def draws_at_random(module: nn.Module) -> bool:
    """A dropout layer (any of PyTorch's) in training mode with p > 0."""
    return isinstance(module, (_DropoutNd, nn.AlphaDropout, nn.FeatureAlphaDropout)) and module.training \
        and module.p > 0


def normalises_by_batch(module: nn.Module) -> bool:
    """A batch norm layer in training mode: it normalises with the batch's own statistics."""
    return isinstance(module, _BatchNorm) and module.training


def _keeps_running_statistics(module: nn.Module) -> bool:
    return normalises_by_batch(module) and module.track_running_stats


def _generator_states(device: torch.device) -> list[torch.Tensor]:
    """The states of the generators an evaluation on ``device`` may draw from (empty where they
    cannot be read: inside torch.compile, or during a CUDA graph recording)."""
    if torch.compiler.is_compiling():
        return []
    states = [torch.random.get_rng_state()]
    if device.type == "cuda" and not torch.cuda.is_current_stream_capturing():
        states.append(torch.cuda.get_rng_state(device))
    return states


class SideEffects:
    """What :func:`side_effects` saw: ``drew`` (a generator's state changed) and ``written`` (the
    names of the buffers whose contents changed)."""

    def __init__(self):
        self.drew, self.written = False, []


@contextmanager
def side_effects(module: nn.Module, device: torch.device, allowed=(), restore_generators: bool = False):
    """Records what ``module`` did beyond computing, inside the block: a draw from the CPU
    generator or the CUDA one of ``device`` (seen as a change of its state), and a write to any
    of its buffers but those in ``allowed`` (seen by the tensors' version counters). Either makes
    the next evaluation another function of the same input. With ``restore_generators`` the
    generators are put back as they were, also if the block raised: a probe then draws nothing
    its caller would see."""
    seen = SideEffects()
    before = _generator_states(device)
    allowed = {id(b) for b in allowed}
    buffers = [(name, b, b._version) for name, b in module.named_buffers() if id(b) not in allowed]
    try:
        yield seen
    finally:
        after = _generator_states(device)
        seen.drew = len(after) == len(before) and any(not torch.equal(a, b) for a, b in zip(before, after))
        seen.written = [name for name, b, version in buffers if b._version != version]
        if restore_generators and len(after) == len(before):
            torch.random.set_rng_state(before[0])
            if len(before) > 1:
                torch.cuda.set_rng_state(before[1], device)


class ReplayGuard:
    """Checks that ``module`` (an operator) can be evaluated again by a reversible backward pass,
    and keeps its batch-norm running statistics from being moved twice (see the module docstring).

    ``ReplayGuard(module)`` refuses dropout modules in training mode at once; :meth:`watch` wraps
    the forward pass and refuses a generator draw or a buffer write it sees there;
    :meth:`restoring` wraps the backward pass. ``by`` names the method that evaluates again.
    With ``restorable=False`` (the adjoint, whose backward pass runs inside torchdiffeq, out of
    reach of :meth:`restoring`) batch norm in training mode is refused too."""

    def __init__(self, module: nn.Module, by: str = "the reversible gradient", restorable: bool = True):
        self.module, self.by = module, by
        if not restorable and any(_keeps_running_statistics(m) for m in module.modules()):
            names = [name for name, m in module.named_modules() if _keeps_running_statistics(m)]
            raise IncompatibleOperatorError(
                f"{by} evaluates the operator again in its backward pass, and {', '.join(names)} would move "
                f"its running statistics at every such evaluation; {_FIX}")
        if any(draws_at_random(m) for m in module.modules()):  # names only for the message
            random = [name or type(module).__name__ for name, m in module.named_modules() if draws_at_random(m)]
            raise IncompatibleOperatorError(
                f"{self.by} evaluates the operator again in the backward pass, and "
                f"{', '.join(random)} draws a new dropout mask at every evaluation in training mode, so the "
                f"rebuilt states and the gradient would be wrong; {_FIX}")
        self.running = [b for m in module.modules() if _keeps_running_statistics(m)
                        for b in m.buffers(recurse=False)]

    @contextmanager
    def watch(self, device: torch.device):
        """Around the forward pass: refuse it if it drew random numbers or wrote a buffer other
        than batch norm's running statistics."""
        with side_effects(self.module, device, allowed=self.running) as seen:
            yield
        if seen.drew:
            raise IncompatibleOperatorError(
                f"{self.by} evaluates the operator again in the backward pass, and the operator "
                "drew random numbers in the forward pass (noise or functional dropout in a layer): the "
                f"backward pass would draw others, so the rebuilt states and the gradient would be wrong; {_FIX}")
        if seen.written:
            raise IncompatibleOperatorError(
                f"{self.by} evaluates the operator again in the backward pass, and the operator "
                f"changed its buffer(s) {', '.join(seen.written)} while it ran (spectral normalisation's power "
                f"iteration does so in training mode), so a second evaluation is another function; {_FIX}")

    @contextmanager
    def restoring(self):
        """Around the backward pass: batch norm's running statistics end as they were before it."""
        saved = [b.detach().clone() for b in self.running]
        try:
            yield
        finally:
            for b, s in zip(self.running, saved):
                # through .data, as batch norm's own update writes them: without a version bump, so
                # that a graph that saved them (a start step outside the block's function) stays valid
                b.data.copy_(s)
