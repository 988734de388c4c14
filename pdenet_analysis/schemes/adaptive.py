"""Adaptive Runge–Kutta solvers, delegated to torchdiffeq (we do not write our own).

``TorchDiffEq(method, rtol, atol)`` integrates the first-order form of any operator with
torchdiffeq's embedded pairs (dopri5, bosh3, adaptive_heun, ...). The step is chosen by error
control, so ``n_steps`` is not used. Gradients come either by backpropagation through the solver's
operations (``Backprop``) or by torchdiffeq's continuous adjoint (``Adjoint``).

Statistics are counted by the integrator as for fixed-step schemes: operator evaluations by a
counting wrapper, accepted and rejected steps through torchdiffeq's step callbacks.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import IncompatibleSchemeError, NonFiniteError, UnknownNameError
from .base import Scheme


def all_finite(tensors) -> bool:
    """True if every entry is finite: one reduction per tensor (a sum is finite iff all entries
    are, barring overflow of the sum itself, which the exact check then rules out)."""
    if all(bool(torch.isfinite(x.sum())) for x in tensors):
        return True
    return all(bool(torch.isfinite(x).all()) for x in tensors)

#: method name -> order of the propagated solution
ADAPTIVE_METHODS = {
    "dopri5": 5,
    "dopri8": 8,
    "tsit5": 5,
    "bosh3": 3,
    "adaptive_heun": 2,
    "fehlberg2": 2,
}


class _Field(nn.Module):
    """torchdiffeq's ``func(t, y)`` for an operator, counting evaluations and steps."""

    def __init__(self, op, counter):
        super().__init__()
        self.op = op  # a counting proxy; parameters are reached through ``module``
        self.module = op.operator
        self.counter = counter

    def forward(self, t, state):
        out = self.op.vector_field(t, state)
        if not all_finite(out):
            raise NonFiniteError(
                f"NaN or Inf in the right-hand side at t = {float(t):.6g} during adaptive integration; "
                "the dynamics blow up: reduce T, tighten the box constraint on the weights, or check the input",
                time=float(t),
            )
        return out

    def callback_accept_step(self, t0, y0, dt):
        self.counter.accepted += 1

    def callback_reject_step(self, t0, y0, dt):
        self.counter.rejected += 1


class TorchDiffEq(Scheme):
    """An adaptive solver of torchdiffeq: ``method`` ∈ ``ADAPTIVE_METHODS``, tolerances rtol/atol."""

    kinds = frozenset({"first_order", "second_order", "hamiltonian"})
    adaptive = True

    def __init__(self, method: str = "dopri5", rtol: float = 1e-6, atol: float = 1e-8, max_steps: int | None = 10_000):
        if method not in ADAPTIVE_METHODS:
            raise UnknownNameError("adaptive method", method, ADAPTIVE_METHODS)
        self.name, self.method = method, method
        self.order = ADAPTIVE_METHODS[method]
        self.rtol, self.atol, self.max_steps = float(rtol), float(atol), max_steps

    def step(self, op, state, t, h):
        raise IncompatibleSchemeError(f"adaptive scheme {self.name!r} chooses its own steps; call integrate()")

    def solve(self, op, state0, times: torch.Tensor, counter, adjoint: bool = False):
        """States at ``times`` (a tuple of tensors with a leading time dimension)."""
        import torchdiffeq

        field = _Field(op, counter)
        options = {} if self.max_steps is None else {"max_num_steps": int(self.max_steps)}
        kw = dict(rtol=self.rtol, atol=self.atol, method=self.method, options=options)
        if adjoint:
            params = tuple(p for p in op.operator.parameters() if p.requires_grad)
            return torchdiffeq.odeint_adjoint(field, state0, times, adjoint_params=params, **kw)
        return torchdiffeq.odeint(field, state0, times, **kw)

    def __repr__(self) -> str:
        return f"TorchDiffEq(method={self.method!r}, rtol={self.rtol:g}, atol={self.atol:g})"
