"""Gradient strategies: how ∂loss/∂(θ, Y₀) is obtained through an integration.

``Backprop``    autograd records every stage of every step (memory O(n_steps · stages)).
``Reversible``  only the final state is kept; the backward pass rebuilds each earlier state with
                the scheme's exact inverse and backpropagates one step at a time (memory O(1) in
                the number of steps). Each evaluation of the operator that rebuilds a state is
                differentiated on the spot (:meth:`~.schemes.base.Scheme.step_back`), so the
                backward pass evaluates the operator once per forward evaluation, as revlib and
                momentumnet do for additive couplings. Requires a reversible scheme (symplectic
                Euler, Verlet, leapfrog; for first-order operators the reversible Runge–Kutta
                wrappers). The gradient equals the backprop gradient up to the
                round-off of the reconstruction (paper §3.2; the authors'
                ``DoubleHamiltonianNN.JTmv`` does the same).

                Its time is about backprop's plus one forward pass without a graph (every
                evaluation of the forward pass is made again, differentiated, in the backward
                pass; benchmarks/bench_reversible_peers.py measures both, and revlib). ``Reversible(keep_last=k)`` trades memory for that time: the last
                k steps record their graph in the forward pass as backprop does (memory k steps,
                still independent of the depth), so the backward pass rebuilds only the first
                n − k steps. For the paper's blocks of 3 steps, k = 1 saves a third of the
                rebuilding.
``Adjoint``     torchdiffeq's continuous adjoint (Chen et al. 2018) for adaptive schemes: solves the
                adjoint ODE backwards; memory O(1), gradient accurate to the solver tolerance.
"""

from __future__ import annotations

import contextlib

import torch

from ..errors import IncompatibleSchemeError, InvalidArgumentError, UnknownNameError
from .autograd import ParamGrads


class GradientStrategy:
    name = ""

    def check(self, scheme) -> None:
        """Raise if this strategy cannot be used with ``scheme``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Backprop(GradientStrategy):
    """Differentiate through the scheme's operations with autograd."""

    name = "backprop"


class Reversible(GradientStrategy):
    """Exact reversible recomputation (see module docstring); the last ``keep_last`` steps keep
    their autograd graph instead of being rebuilt."""

    name = "reversible"

    def __init__(self, keep_last: int = 0):
        if isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 0:
            raise InvalidArgumentError(
                f"Reversible(keep_last=...) is the number of final steps whose graph is kept, an integer ≥ 0; "
                f"got {keep_last!r}")
        self.keep_last = keep_last

    def __repr__(self) -> str:
        return f"Reversible(keep_last={self.keep_last})"

    def check(self, scheme) -> None:
        if not scheme.reversible:
            from ..schemes.registry import reversible_names

            raise IncompatibleSchemeError(
                f"gradient 'reversible' needs a reversible scheme; {scheme.name!r} has no exact inverse. "
                f"Use one of {reversible_names()}, or gradient='backprop'"
            )


class Adjoint(GradientStrategy):
    """torchdiffeq's adjoint method (adaptive schemes only)."""

    name = "adjoint"

    def check(self, scheme) -> None:
        if not scheme.adaptive:
            raise IncompatibleSchemeError(
                f"gradient 'adjoint' is available for the adaptive torchdiffeq schemes, not {scheme.name!r}; "
                "for fixed steps use 'backprop', or 'reversible' with a reversible scheme"
            )


GRADIENTS = {"backprop": Backprop, "reversible": Reversible, "adjoint": Adjoint}


def get_gradient(gradient: str | GradientStrategy) -> GradientStrategy:
    if isinstance(gradient, GradientStrategy):
        return gradient
    if gradient not in GRADIENTS:
        raise UnknownNameError("gradient strategy", str(gradient), GRADIENTS)
    return GRADIENTS[gradient]()


def autocast_state(device_type: str) -> tuple[str, bool, torch.dtype]:
    """The autocast settings in force for ``device_type`` (to replay them later)."""
    return device_type, torch.is_autocast_enabled(device_type), torch.get_autocast_dtype(device_type)


class ReversibleFunction(torch.autograd.Function):
    """Integrate n steps keeping only the final state; backward by inverse steps.

    With ``keep`` > 0 the last ``keep`` steps run with autograd inside the forward pass (on
    detached copies of the state, so their graph stays private to this function) and the backward
    pass differentiates that graph first, then rebuilds the first n − keep steps.

    Trajectory: where the run records the state after every step, each record is an output of the
    function too, so a loss on intermediate states is differentiated exactly as under backprop: the
    backward pass adds a record's gradient (through ``scheme.to_state``) when the rebuild reaches
    its step. The records are held because the caller asked for them; the memory the gradient
    itself keeps stays that of the final state.

    Replay: the backward pass evaluates the operator again, so the operator must give the same
    values when it does; the run's :class:`~pdenet_analysis.replay.ReplayGuard` refuses one that
    draws random numbers or changes its buffers in the forward pass, and puts batch norm's running
    statistics back after the backward pass.

    Mixed precision: the backward pass rebuilds each state with the inverse step and
    differentiates the forward step again, so it must run the layers in exactly the precision the
    forward pass used, or the rebuilt states and the gradient belong to another network. The
    forward pass records the autocast state (device, enabled, dtype) and the backward pass replays
    it, as ``torch.amp.custom_fwd``/``custom_bwd`` do, for any device type. The state itself stays
    in its own dtype: a float32 state with bf16 layers (:class:`~pdenet_analysis.networks.PDEBlock`
    keeps it so) reverses to float32 round-off, since the inverse step recomputes bit-identical bf16
    layer outputs from the same float32 inputs.
    """

    @staticmethod
    def forward(ctx, run, n_state: int, keep: int, *tensors):
        state, params = tensors[:n_state], tensors[n_state:]
        ctx.autocast = autocast_state(state[0].device.type)
        ctx.head = head = run.n_steps - min(keep, run.n_steps)
        tail_records = ()
        with _watched(run, state[0].device):
            with torch.no_grad():
                final = run.forward_steps(tuple(state), 0, head)
            ctx.tail = None
            if head < run.n_steps:
                with torch.enable_grad():
                    leaves = tuple(x.detach().requires_grad_(True) for x in final)
                    out = run.forward_steps(leaves, head, run.n_steps)
                if run.trajectory is not None:  # the kept steps' records, on their private graph
                    tail_records = tuple(run.trajectory[head + 1:])
                ctx.tail = (leaves, out, tail_records)
                final = tuple(x.detach() for x in out)
        records, ctx.record_sizes = (), []
        if run.trajectory is not None:
            run.trajectory = [tuple(x.detach() for x in s) for s in run.trajectory]
            ctx.record_sizes = [len(s) for s in run.trajectory]
            records = tuple(x for s in run.trajectory for x in s)
        ctx.run, ctx.n_state = run, n_state
        ctx.params = params
        ctx.save_for_backward(*final)
        return (*final, *records)

    @staticmethod
    def backward(ctx, *grad_out):
        _refuse_double_backward("the reversible gradient", "rebuilds the states without a graph")
        run, params, n = ctx.run, ctx.params, ctx.n_state
        # per recorded state; none where the loss used no record
        record_grads = [] if all(g is None for g in grad_out[n:]) else grouped(grad_out[n:], ctx.record_sizes)
        state = tuple(x.detach() for x in ctx.saved_tensors)
        grads = tuple(torch.zeros_like(x) if g is None else g for x, g in zip(state, grad_out[:n]))
        acc = ParamGrads(params)
        # a tensor the operator uses that is neither state nor parameter would get no gradient:
        # checked on the kept steps' graph and on the newest rebuilt step (one walk of each graph)
        acc.check_outside = True
        if ctx.tail is not None:  # the kept steps: their graph, then the state before them is known
            (leaves, out, tail_records), ctx.tail = ctx.tail, None
            pairs = [(x, g) for x, g in zip(out, grads)]
            pairs += [(x, g) for rec, gs in zip(tail_records, record_grads[ctx.head + 1:]) for x, g in zip(rec, gs)
                      if g is not None and x.requires_grad]
            got = acc.backward([x for x, _ in pairs], leaves, [g for _, g in pairs])
            grads = tuple(torch.zeros_like(x) if g is None else g for x, g in zip(leaves, got))
            state = tuple(x.detach() for x in leaves)
        device_type, enabled, dtype = ctx.autocast
        restoring = run.guard.restoring() if run.guard is not None else contextlib.nullcontext()
        with restoring, torch.autocast(device_type, dtype=dtype, enabled=enabled):
            for j in reversed(range(ctx.head)):  # newest first
                if record_grads:
                    grads = _add_record_grad(run, state, grads, record_grads[j + 1], acc)
                state, grads = run.scheme.step_back(run.op, state, grads, acc, run.t0 + j * run.h, run.h)
                acc.check_outside = False
            if record_grads:
                grads = _add_record_grad(run, state, grads, record_grads[0], acc)
        return (None, None, None, *grads, *acc.sums)


def grouped(flat, sizes) -> list[tuple]:
    """``flat`` cut into consecutive tuples of the given sizes (a trajectory's records, flattened
    into the reversible function's outputs, back into one tuple per recorded state)."""
    out, i = [], 0
    for k in sizes:
        out.append(tuple(flat[i:i + k]))
        i += k
    return out


def _add_record_grad(run, state, grads, record_grad, acc):
    """``grads`` (at the internal ``state``) plus the gradient that reaches the state through its
    record in the trajectory, ``scheme.to_state(state)``, with cotangent ``record_grad``."""
    if all(g is None for g in record_grad):
        return grads
    with torch.enable_grad():
        leaves = tuple(x.detach().requires_grad_(True) for x in state)
        record = run.scheme.to_state(run.op, leaves, run.h)
    pairs = [(x, g) for x, g in zip(record, record_grad) if g is not None and x.requires_grad]
    got = acc.backward([x for x, _ in pairs], leaves, [g for _, g in pairs])
    return tuple(g if d is None else g + d for g, d in zip(grads, got))


class OnceDifferentiable(torch.autograd.Function):
    """The identity on tensors whose gradient comes from a method that is differentiable once
    (the adjoint: its backward pass solves the adjoint ODE without a graph). A backward pass with
    ``create_graph=True`` through it raises :class:`IncompatibleSchemeError` instead of returning a
    first derivative with no graph, which a second derivative or a gradient penalty would then
    silently treat as a constant."""

    @staticmethod
    def forward(ctx, what: str, *xs):
        ctx.what = what
        return tuple(x.view_as(x) for x in xs)

    @staticmethod
    def backward(ctx, *grads):
        _refuse_double_backward(ctx.what, "runs without a graph")
        return (None, *grads)


def _refuse_double_backward(what: str, why: str) -> None:
    """Inside a backward pass: raise if it runs with ``create_graph=True`` (grad mode on), that is,
    if a second derivative is to be taken through a method whose backward pass ``why``."""
    if torch.is_grad_enabled():
        raise IncompatibleSchemeError(
            f"{what} is differentiable once: its backward pass {why}, so a second derivative through it "
            "(backward(create_graph=True), a Hessian-vector product, a gradient penalty) would miss every term "
            "that passes through what it does not record; use gradient='backprop' for higher derivatives")


def _watched(run, device: torch.device):
    """The run's replay guard watching the forward pass (no check where the run has none)."""
    return run.guard.watch(device) if run.guard is not None else contextlib.nullcontext()
