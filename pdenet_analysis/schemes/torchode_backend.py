"""torchode as an optional engine for the adaptive dopri5 solves (``backend="torchode"``).

Why it exists: on a smooth right-hand side torchdiffeq's dopri5 spends about as long around
each evaluation as in it, because it keeps the stages in one tensor with the stage index last
and combines them by strided products and reductions. Through this engine ``dopri5`` takes less
time than through the torchdiffeq engine on such a field, and about the time of torchode's own
loop with the same controller, also where the field costs nothing and only the work around it
counts (``python benchmarks/bench_adaptive.py``; the measurements, with their machines, are in
docs/benchmarks.md).
torchdiffeq stays the default and the only engine for the continuous adjoint (``Adjoint``); this
one backpropagates through its own operations (torchode's ``AutoDiffAdjoint``).

Semantics are those of the torchdiffeq path, so that a solve does not depend on the engine:

* **one step size for the whole batch.** torchode steps every example on its own; its error norm
  is replaced by the RMS over the whole batch (torchdiffeq's norm), broadcast to every example,
  so all examples accept and reject together and share t. Per-example steps would make each
  example's result independent of the rest of the batch, but θ(t) would then have to be read at
  a different t for each example, which the operators do not do (they read θ once per batch);
* **steps end at every output time and at every jump of θ(t)** (torchdiffeq's ``step_t`` and
  ``jump_t``): the solve restarts there, with a fresh first-same-as-last stage, and starts from
  the step size the controller proposed after the last step not shortened to end there (as
  torchdiffeq carries its step size over a jump) instead of selecting an initial step again;
* evaluations, accepted and rejected steps are counted as for the other engine; torchode's
  failure status (too many steps, a step size that underflows) becomes :class:`IntegrationError`.
"""

from __future__ import annotations

import math

import torch

from ..errors import IncompatibleSchemeError, IntegrationError, InvalidArgumentError

#: the adaptive methods torchode provides with the tableau of our registry's method of that name
METHODS = ("dopri5",)


def require_torchode():
    try:
        import torchode
    except ImportError as e:
        raise InvalidArgumentError("backend='torchode' needs the torchode package: pip install torchode "
                                   "(or use the default backend='torchdiffeq')") from e
    return torchode


def _batch_rms(y: torch.Tensor) -> torch.Tensor:
    """torchdiffeq's error norm, √(mean y²) over every entry of the batch, one value per example."""
    return (torch.linalg.vector_norm(y) / math.sqrt(y.numel())).expand(y.shape[0])


def solve(field, state0: tuple, times: list[float], bounds, rtol: float, atol: float, max_steps, counter,
          jumps=()) -> tuple:
    """States at ``times`` (Python floats, kept on the host), a tuple of tensors with a leading time
    dimension, as :meth:`~.adaptive.TorchDiffEq.solve` returns them. ``field(t, state)`` is the counted,
    finiteness-checked right-hand side; ``bounds`` are the increasing times where a step must
    end (the output times and θ's jumps between the first and the last), ``jumps`` those of them
    where θ jumps.

    What this adds to torchode's loop is kept off the evaluations where it is not needed (each
    operation is a kernel launch on a GPU, where these solves are launch-bound): the left limit
    of θ only on segments that end at a jump, the step size carried to the next segment only on
    segments that have one (``tests/test_torchode_backend.py`` counts the launches)."""
    to = require_torchode()
    if getattr(counter, "step_log", None) is not None:
        raise IncompatibleSchemeError("record_steps (the analyses' accepted steps) needs backend='torchdiffeq': "
                                      "torchode does not report its steps")
    batch = state0[0].shape[0]
    sizes = [s.numel() // batch for s in state0]

    def unflat(y):
        if len(state0) == 1:  # a view, no copy
            return (y.view(state0[0].shape),)
        return tuple(p.reshape(s.shape) for p, s in zip(y.split(sizes, dim=1), state0))

    def flat(state):
        if len(state) == 1:
            return state[0].reshape(batch, -1)
        return torch.cat([c.reshape(batch, -1) for c in state], dim=1)

    seg = {"last": None}

    def f(t, y):
        # θ(t) on [a, b) with its left limit at b (torchdiffeq's perturbation at jump_t): a stage at
        # the end of a step that ends on a jump must not read the next piece's weights
        last = seg["last"]
        return flat(field(t[0] if last is None else torch.minimum(t[0], last), unflat(y)))

    class Controller(to.IntegralController):
        """The integral controller, remembering the step size it proposed after the last accepted
        step that was not shortened to end at the segment's end (``self.end``). The choice is
        made on the device (``torch.where``): a host read per step would stall a GPU's queue. On the
        last segment (``self.end`` None) there is nothing to carry."""

        def adapt_step_size(self, t0, dt, y0, step_result, state, stats):
            accept, dt_next, state, status = super().adapt_step_size(t0, dt, y0, step_result, state, stats)
            if self.end is None:
                return accept, dt_next, state, status
            keep = accept & ((t0 + dt).detach() < self.end - 1e-12 * max(1.0, abs(self.end)))
            self.proposed = torch.where(keep, dt_next.detach(), self.proposed)
            return accept, dt_next, state, status

    term = to.ODETerm(f)
    controller = Controller(atol=atol, rtol=rtol, term=term, norm=_batch_rms)
    dtype, device = state0[0].dtype, state0[0].device
    controller.proposed = torch.full((batch,), math.nan, dtype=dtype, device=device)  # none yet
    solver = to.AutoDiffAdjoint(to.Dopri5(term=term), controller, max_steps=max_steps)
    t_out = [float(t) for t in times]
    y = flat(state0)
    out = [y]
    jumps = set(jumps)
    proposed = False  # has the controller proposed a step size to carry over yet?
    for a, b in zip(bounds[:-1], bounds[1:]):
        span = torch.tensor([a, b], dtype=y.dtype, device=y.device).expand(batch, 2)
        controller.end = b if b != bounds[-1] else None
        seg["last"] = torch.tensor(math.nextafter(b, a), dtype=y.dtype, device=y.device) if b in jumps else None
        dt0 = controller.proposed.clamp(max=b - a) if proposed else None
        sol = solver.solve(to.InitialValueProblem(y, span[:, 0], span[:, 1], span), dt0=dt0)
        # one host read per segment, not per step: the status, the step counts and whether a step
        # size has been proposed, read together
        code, accepted, steps, none_proposed = (int(v) for v in torch.stack([
            sol.status.max().double(), sol.stats["n_accepted"].max().double(), sol.stats["n_steps"].max().double(),
            torch.isnan(controller.proposed[0]).double()]).tolist())
        if code != 0:
            raise IntegrationError(f"adaptive scheme 'dopri5' (torchode) failed on [{a:g}, {b:g}]: "
                                   f"{to.Status(code).name}. The dynamics may be stiff or blowing up; loosen rtol/atol, "
                                   "raise max_steps, or use a fixed-step scheme")
        proposed = not none_proposed
        counter.accepted += accepted
        counter.rejected += steps - accepted
        y = sol.ys[:, -1]
        if b in t_out:
            out.append(y)
    return tuple(torch.stack(c) for c in zip(*(unflat(y) for y in out)))
