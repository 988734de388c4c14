"""The one entry point: ``integrate(operator, y0, scheme, ...)`` → :class:`Solution`.

Operator, scheme and gradient strategy are three separate objects (DESIGN.md); any operator can
be integrated with any scheme that accepts its kind, over [0, T]:

* fixed-step schemes take ``n_steps`` steps of h = T / n_steps (default: one step per weight set
  of the operator's time grid, which for forward Euler is exactly the paper's ResNet, eq. 3);
* adaptive schemes (torchdiffeq) choose their steps from ``rtol``/``atol``.

Statistics are counted the same way for both: ``n_evals`` is the number of evaluations of the
operator's full right-hand side (a partitioned scheme's evaluation of one half of a Hamiltonian
counts ½; of the free part Y' = V of a second-order operator, 0).
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import torch

from .errors import (IncompatibleSchemeError, IntegrationError, InvalidArgumentError, NonFiniteError, failure_status,
                     require_positive)
from .gradients import Adjoint, OnceDifferentiable, ReversibleFunction, Reversible, get_gradient, grouped
from .replay import ReplayGuard
from .schemes import get_scheme
from .schemes.base import Scheme
from .solution import CountingOperator, Solution, State, Stats  # noqa: F401 - Stats is public here too


from .schemes.adaptive import all_finite as _all_finite


def _host_reads_allowed() -> bool:
    """False inside ``torch.compile`` and during a CUDA graph recording, where reading a device
    value on the host splits the compiled graph or invalidates the recording."""
    return not torch.compiler.is_compiling() and not (torch.cuda.is_available()
                                                      and torch.cuda.is_current_stream_capturing())


class FixedStepRun:
    """n steps of a fixed-step scheme from t0 with step h (used by all gradient strategies)."""

    def __init__(self, scheme, op, t0: float, h: float, n_steps: int, record: bool, check_finite: bool):
        self.scheme, self.op, self.t0, self.h, self.n_steps = scheme, op, t0, h, n_steps
        self.record, self.check_finite = record, check_finite
        self.trajectory: list | None = None
        #: a :class:`~pdenet_analysis.replay.ReplayGuard` where the steps are replayed by a
        #: reversible backward pass, else None
        self.guard = None

    def forward_steps(self, state: State, first: int = 0, stop: int | None = None) -> State:
        """Advance steps ``first`` … ``stop − 1`` (all ``n_steps`` by default) from the state at
        step ``first``.

        NaN/Inf detection costs nothing per step: only the final state is checked, and if it is
        not finite the steps are replayed (deterministically, without autograd) to name the first
        step whose result was not finite. Inside ``torch.compile`` and while a CUDA graph is being
        recorded the host check is left out (it reads the device: that would split the compiled
        graph, and invalidates a recording): there the trainer's device-side check of the loss
        catches non-finite values. A trajectory is started at step 0 and continued by later
        ranges."""
        scheme, op, h = self.scheme, self.op, self.h
        stop = self.n_steps if stop is None else stop
        start = state
        traj = None
        if self.record:
            traj = [scheme.to_state(op, state, h)] if first == 0 else self.trajectory
        for j in range(first, stop):
            state = scheme.step(op, state, self.t0 + j * h, h)
            if traj is not None:
                traj.append(scheme.to_state(op, state, h))
        if self.check_finite and stop > first and _host_reads_allowed() and not _all_finite(state):
            if not _all_finite(start):
                if first == 0:
                    raise NonFiniteError("the initial state contains NaN or Inf", step=0, time=self.t0)
                raise NonFiniteError(f"the state before step {first} contains NaN or Inf", step=first,
                                     time=self.t0 + first * h)
            j = self._first_nonfinite_step(start, first, stop)
            t = self.t0 + j * h
            raise NonFiniteError(
                f"NaN or Inf appeared in step {j} of {self.n_steps} (t = {t:.6g}) of scheme "
                f"{scheme.name!r} with h = {h:.6g}; the step is probably outside the stability region: "
                "use more steps, a stabler scheme, or smaller weights",
                step=j,
                time=t,
            )
        self.trajectory = traj
        return state

    def _first_nonfinite_step(self, state: State, first: int, stop: int) -> int:
        with torch.no_grad():
            for j in range(first, stop):
                state = self.scheme.step(self.op, state, self.t0 + j * self.h, self.h)
                if not _all_finite(state):
                    return j + 1
        return stop


def integrate(
    operator,
    y0,
    scheme: str | Scheme = "rk4",
    *,
    T: float | None = None,
    n_steps: int | None = None,
    gradient="backprop",
    trajectory: bool = False,
    t_eval: torch.Tensor | None = None,
    check_finite: bool = True,
    record_steps: bool = False,
    throw: bool = True,
    **scheme_kwargs,
) -> Solution:
    """Integrate ``operator`` from ``y0`` at t = 0 to t = T with ``scheme``.

    Args:
        operator: an :class:`~pdenet_analysis.operators.Operator`.
        y0: initial state: a tensor (for a Hamiltonian operator, split along channels; for a
            second-order operator, Y₀ with V₀ = 0) or a tuple ((Y₀, Z₀) or (Y₀, V₀)).
        scheme: a :class:`Scheme` or a registered name (``available_schemes()``).
        T: final time; default the operator's (its time grid's T). Must not exceed it.
        n_steps: number of fixed steps; default one per weight set of the operator's grid.
        gradient: "backprop", "reversible" (reversible schemes) or "adjoint" (adaptive schemes).
        trajectory: also return the states after every step (fixed) or at ``t_eval`` (adaptive).
        t_eval: output times for adaptive schemes (default [0, T]).
        check_finite: raise :class:`NonFiniteError` naming the step where NaN/Inf appeared.
        record_steps: adaptive schemes only: keep (t, h, state) of every accepted step in
            ``Solution.accepted_steps`` (the analyses linearise these steps).
        throw: if False, a failed integration (NaN/Inf, an adaptive solver's step budget, any
            :class:`IntegrationError`) returns a :class:`Solution` whose ``status`` says what failed
            instead of raising, so that a sweep can record its unstable points. Invalid arguments
            still raise.
        **scheme_kwargs: options of a scheme given by name (rtol, atol, max_steps).

    Returns:
        :class:`Solution`.
    """
    scheme = get_scheme(scheme, **scheme_kwargs)
    scheme.check_operator(operator)
    grad = get_gradient(gradient)
    grad.check(scheme)
    T_op = operator.T
    if T is None:
        if T_op is None:
            raise InvalidArgumentError("this operator has no time grid: pass the final time T")
        T = T_op
    T = require_positive("final time T", T)
    if T_op is not None and T > T_op * (1 + 1e-12):
        raise InvalidArgumentError(
            f"T = {T:g} exceeds the operator's final time {T_op:g}: θ(t) is only defined on [0, {T_op:g}]"
        )
    state0 = operator.to_state(y0)
    op = CountingOperator(operator)
    if scheme.adaptive:
        run = _integrate_adaptive
    else:
        if n_steps is None:
            grid = operator.grid
            if grid is None:
                raise InvalidArgumentError(f"fixed-step scheme {scheme.name!r} needs n_steps for an operator without a time grid")
            n_steps = grid.n_pieces
        if isinstance(n_steps, bool) or not isinstance(n_steps, (int, float)) or not math.isfinite(n_steps) \
                or int(n_steps) != n_steps or n_steps < 1:
            raise InvalidArgumentError(f"n_steps must be a positive integer, got {n_steps!r}")
        run = _integrate_fixed
    try:
        sol = run(operator, op, y0, state0, scheme, grad, T, int(n_steps or 0), trajectory, t_eval, check_finite, record_steps)
        sol.operator = operator
        return sol
    except IntegrationError as e:
        if throw:
            raise
        status = failure_status(e)
        stats = Stats(n_steps=op.accepted, n_accepted=op.accepted, n_rejected=op.rejected, n_evals=op.evals)
        return Solution(None, None, stats, scheme, T, None if scheme.adaptive else T / n_steps, status=status,
                        message=str(e), failed_step=getattr(e, "step", None), failed_time=getattr(e, "time", None))


def _host_times(t_eval, T: float, n: int, dtype: torch.dtype) -> list[float]:
    """The output times of an adaptive solve as Python floats, each rounded to ``dtype`` as the
    device tensor of them holds it: ``n`` equal steps from 0 to T, or the user's ``t_eval``. Kept
    on the host, so that checking them and ending steps on them reads nothing from the device
    (a user's ``t_eval`` tensor is read once); a 1-D sequence of numbers is required."""
    if t_eval is None:
        values = [T * k / n for k in range(n + 1)]
    elif isinstance(t_eval, torch.Tensor):
        if t_eval.dim() != 1:
            raise InvalidArgumentError(f"t_eval must be a 1-D sequence of times, got shape {tuple(t_eval.shape)}")
        return t_eval.detach().to(dtype).tolist()
    else:
        try:
            values = [float(t) for t in t_eval]
        except (TypeError, ValueError) as e:
            raise InvalidArgumentError(f"t_eval must be a 1-D sequence of times, got {t_eval!r}") from e
    return _rounded(values, dtype)


#: numpy's types of the same IEEE formats, which round a Python float as torch does
_NUMPY_FLOAT = {torch.float64: np.float64, torch.float32: np.float32, torch.float16: np.float16}


def _rounded(values: list[float], dtype: torch.dtype) -> list[float]:
    """``values`` rounded to ``dtype`` (round to nearest even), as Python floats, without a tensor."""
    if dtype in _NUMPY_FLOAT:
        with np.errstate(over="ignore"):  # a time beyond the type's range is ±inf, as in torch
            return np.asarray(values, dtype=np.float64).astype(_NUMPY_FLOAT[dtype]).astype(np.float64).tolist()
    return torch.tensor(values, dtype=dtype).tolist()  # bfloat16: numpy has no such type


def _integrate_adaptive(operator, op, y0, state0, scheme, grad, T, n_steps, trajectory, t_eval, check_finite,
                        record_steps) -> Solution:
    op.step_log = [] if record_steps else None
    grid = operator.grid
    jumps = [] if grid is None else [k * grid.spacing for k in range(1, grid.n_pieces)]
    dtype, device = state0[0].dtype, state0[0].device
    times = _host_times(t_eval, T, n_steps if (trajectory and n_steps) else 1, dtype)
    if len(times) < 2 or not all(map(math.isfinite, times)) or any(b <= a for a, b in zip(times, times[1:])) \
            or times[0] != 0.0 or times[-1] > T * (1 + 1e-12):
        raise InvalidArgumentError(f"t_eval must be increasing finite times from 0 to at most T = {T:g} (θ(t) is only defined "
                                   f"there), got {times if len(times) <= 8 else f'{len(times)} times'}")
    t_eval = torch.tensor(times, dtype=dtype, device=device)  # host to device: no wait for the device
    adjoint = isinstance(grad, Adjoint) and torch.is_grad_enabled()
    # the adjoint's backward pass evaluates the operator again, inside torchdiffeq
    watch = ReplayGuard(operator, "the adjoint gradient", restorable=False).watch(state0[0].device) if adjoint \
        else contextlib.nullcontext()
    try:
        with watch:
            states = scheme.solve(op, state0, times, op, adjoint=isinstance(grad, Adjoint), jumps=jumps,
                                  check_initial=check_finite)
        if adjoint:
            marked = OnceDifferentiable.apply("the adjoint gradient", *states)
            states = marked if isinstance(marked, tuple) else (marked,)
    except AssertionError as exc:  # torchdiffeq signals failure by assert
        raise IntegrationError(
            f"adaptive scheme {scheme.name!r} failed: {exc}. The dynamics may be stiff or blowing up; "
            "loosen rtol/atol, raise max_steps, or use a fixed-step scheme"
        ) from exc
    final = tuple(s[-1] for s in states)
    stats = Stats(n_steps=op.accepted, n_accepted=op.accepted, n_rejected=op.rejected, n_evals=op.evals)
    traj = [tuple(s[i] for s in states) for i in range(len(t_eval))] if trajectory else None
    sol = Solution(operator.from_state(final, y0), final, stats, scheme, T, None,
                   t_eval if trajectory else None, traj, _state=final)
    if record_steps:
        sizes = [s.numel() for s in state0]  # torchdiffeq may hand over the state flattened
        sol.accepted_steps = [(t, h, y if isinstance(y, tuple) else
                               tuple(p.view_as(s) for p, s in zip(y.split(sizes), state0)))
                              for t, h, y in op.step_log]
    return sol


def _integrate_fixed(operator, op, y0, state0, scheme, grad, T, n_steps, trajectory, t_eval, check_finite,
                     record_steps) -> Solution:
    h = T / n_steps

    internal0 = scheme.init(op, state0, 0.0, h)
    run = FixedStepRun(scheme, op, 0.0, h, n_steps, trajectory, check_finite)
    if isinstance(grad, Reversible) and torch.is_grad_enabled():
        _require_accurate_rebuild(scheme, n_steps - min(grad.keep_last, n_steps), internal0[0].dtype)
        params = [p for p in operator.parameters() if p.requires_grad]
        run.guard = ReplayGuard(operator)  # the backward pass evaluates the operator again
        internal = _reversible_apply(run, grad.keep_last, internal0, params)
    else:
        internal = run.forward_steps(internal0)
    stats = Stats(n_steps=n_steps, n_accepted=n_steps, n_rejected=0, n_evals=op.evals)
    times = None
    if trajectory:
        times = torch.linspace(0.0, T, n_steps + 1, dtype=state0[0].dtype, device=state0[0].device)
    sol = Solution(None, internal, stats, scheme, T, h, times, run.trajectory)
    # Every scheme keeps Y first in its internal state; a second-order solution given Y₀ alone is Y.
    only_y = operator.kind == "second_order" and not isinstance(y0, (tuple, list))
    sol.y = internal[0] if only_y else operator.from_state(sol.state, y0)
    return sol


def _reversible_apply(run, keep: int, internal0, params):
    """The final internal state by :class:`ReversibleFunction`, the run's trajectory (if recorded)
    replaced by the function's differentiable outputs; or a clear error where forward-mode AD
    (dual tensors, ``torch.func.jvp``) or a ``torch.func`` transform meets it: it has reverse mode
    only."""
    try:
        out = ReversibleFunction.apply(run, len(internal0), keep, *internal0, *params)
    except (NotImplementedError, RuntimeError) as e:
        if "jvp function" not in str(e) and "setup_context" not in str(e):
            raise
        raise IncompatibleSchemeError(
            "the reversible gradient has reverse mode only (loss.backward(), torch.autograd.grad); forward-mode "
            "AD and torch.func transforms (jvp, grad, vmap, jacrev) need gradient='backprop'") from e
    out = out if isinstance(out, tuple) else (out,)
    n = len(internal0)
    if run.trajectory is not None:  # the recorded states, as outputs of the function: differentiable
        run.trajectory = grouped(out[n:], [len(s) for s in run.trajectory])
    return out[:n]


#: the largest relative round-off the reversible gradient may let its rebuilt states carry
REBUILD_TOLERANCE = 1e-3


def _require_accurate_rebuild(scheme: Scheme, n_rebuilt: int, dtype: torch.dtype) -> None:
    """Refuse a reversible gradient whose rebuilt states would be round-off: a scheme whose inverse
    step multiplies errors by g > 1 (``Scheme.inverse_growth``, 1/λ for the reversible Runge–Kutta
    wrapper) amplifies the final state's rounding by gⁿ over n rebuilt steps, and the gradient with
    it. Allowed while gⁿ·ε ≤ :data:`REBUILD_TOLERANCE` (ε of the state's dtype)."""
    growth = float(scheme.inverse_growth)
    if growth <= 1.0 or n_rebuilt == 0:
        return
    eps = torch.finfo(dtype).eps
    if n_rebuilt * math.log(growth) + math.log(eps) <= math.log(REBUILD_TOLERANCE):
        return
    most = int((math.log(REBUILD_TOLERANCE) - math.log(eps)) / math.log(growth))
    raise InvalidArgumentError(
        f"the reversible gradient would rebuild {n_rebuilt} steps of {scheme.name!r}, whose inverse step multiplies "
        f"round-off by {growth:.3g}: by {growth:.3g}^{n_rebuilt} ≈ 10^{n_rebuilt * math.log10(growth):.0f} in all, so "
        f"the rebuilt states and the gradient would be wrong in {dtype} (at most {most} rebuilt steps keep the error "
        f"below {REBUILD_TOLERANCE:g}). Raise the coupling (e.g. get_scheme({scheme.name!r}, coupling=0.9), or "
        "--coupling 0.9), take "
        "fewer steps, keep the last steps' graph (Reversible(keep_last=k)), or use gradient='backprop'")


def _same_operator(a, b) -> bool:
    """``a`` is ``b``, or has the same kind and the same weights (e.g. a copy in another dtype)."""
    if b is None or a is b:
        return True
    if getattr(a, "kind", None) != getattr(b, "kind", None):
        return False
    pa_, pb = dict(a.named_parameters()), dict(b.named_parameters())
    if pa_.keys() != pb.keys():
        return False
    with torch.no_grad():
        return all(x.shape == pb[k].shape and torch.equal(x.detach().cpu().double(), pb[k].detach().cpu().double())
                   for k, x in pa_.items())


def reverse(operator, solution: Solution, n_steps: int | None = None, check_finite: bool = True) -> State:
    """Run a reversible scheme backwards from ``solution`` to t = 0; returns the first-order state.

    Raises :class:`~pdenet_analysis.errors.IncompatibleSchemeError` for schemes without an inverse.
    """
    scheme, h = solution.scheme, solution.h
    scheme.require_inverse()
    if not solution.ok:
        raise IntegrationError(f"cannot reverse an integration that did not succeed ({solution.status}): {solution.message}")
    n = solution.stats.n_steps
    if n_steps is not None and n_steps != n:
        raise InvalidArgumentError(f"reverse(n_steps={n_steps!r}) but the solution took {n} steps: the inverse steps must undo "
                         "exactly the steps taken; leave n_steps out")
    if not _same_operator(operator, solution.operator):
        raise InvalidArgumentError("reverse() was given another operator than the one the solution was integrated with (its "
                         "kind, shape or weights differ); pass that operator")
    op = CountingOperator(operator)
    state = solution.internal
    for j in reversed(range(n)):
        state = scheme.inverse_step(op, state, j * h, h)
        if check_finite and not _all_finite(state):
            raise NonFiniteError(f"NaN or Inf in inverse step {j + 1} (t = {j * h:.6g})", step=j + 1, time=j * h)
    # internal state at t0 -> first-order state: the inverse of the scheme's start (for leapfrog
    # V₀ = (Y₀ − Y₋₁)/h, plus (h/2)F(Y₀) for the symmetric start)
    return scheme.uninit(op, state, 0.0, h)
