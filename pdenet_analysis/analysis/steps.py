"""The steps a scheme actually takes, as maps that the analyses can linearise.

:func:`discretise` integrates once and keeps, for every step j, its start time t_j, its size h_j
and the scheme's internal state there (for leapfrog the two-level state (Y_j, Y_{j−1})). For an
adaptive scheme these are the *accepted* steps of the solve, and one step is the propagated
Runge–Kutta solution of its tableau (``TorchDiffEq.step_scheme``): the flow map with the step
sizes frozen, which is what the solver computed. From this one object come

* the one-step maps Φ_j: internal state at t_j ↦ internal state at t_j + h_j, whose Jacobians
  ∂Φ_j/∂Y_j decide the stability of the scheme itself (any scheme, no stability function needed);
* the flow map Y₀ ↦ Y(T) of the first-order state (``map="state"``) or of what the network
  computes (``map="block"``: Y₀ ↦ Y_N with V₀ = 0 for a second-order block);
* for reversible schemes, the exact inverse flow map, whose Jacobian is J_Φ⁻¹.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InvalidArgumentError
from ..integrate import integrate
from ..schemes import get_scheme
from .linear import JacobianOperator
from .modes import analyses_an_operator

MAPS = ("state", "block")


@dataclass
class Discretisation:
    """The steps (t_j, h_j, internal state Y_j) of ``scheme`` on ``operator`` from ``y0``."""

    operator: object
    scheme: object          # the scheme as the user named it
    step_scheme: object     # what takes one step (the tableau step for an adaptive scheme)
    steps: list             # [(t_j, h_j, internal state at t_j)]
    state0: tuple           # first-order state at t = 0
    T: float

    @property
    def n_steps(self) -> int:
        return len(self.steps)

    @property
    def batch(self) -> int:
        return self.state0[0].shape[0]

    def step_map(self, j: int):
        """(Y_j ↦ Φ_j(Y_j), Y_j): the j-th one-step map on the internal state, and its point."""
        t, h, y = self.steps[j]
        op, sch = self.operator, self.step_scheme
        return (lambda s: sch.step(op, s, t, h)), y

    def step_jacobian(self, j: int) -> JacobianOperator:
        fn, y = self.step_map(j)
        return JacobianOperator(fn, y, batched=True)

    def flow(self, state0: tuple) -> tuple:
        """The first-order state at T from the one at 0, through the recorded steps."""
        op, sch = self.operator, self.step_scheme
        t0, h0, _ = self.steps[0]
        s = sch.init(op, state0, t0, h0)
        for t, h, _ in self.steps:
            s = sch.step(op, s, t, h)
        return sch.to_state(op, s, self.steps[-1][1])

    def inverse_flow(self, state_T: tuple) -> tuple:
        """The first-order state at 0 from the one at T, by the scheme's exact inverse steps (a
        reversible scheme whose internal state the first-order state determines; the others raise
        :class:`~pdenet_analysis.errors.IncompatibleSchemeError`)."""
        op, sch = self.operator, self.step_scheme
        sch.require_inverse()
        s = sch.from_state(op, state_T, self.steps[-1][1])
        for t, h, _ in reversed(self.steps):
            s = sch.inverse_step(op, s, t, h)
        return sch.uninit(op, s, self.steps[0][0], self.steps[0][1])

    def flow_jacobian(self, map: str = "state") -> JacobianOperator:
        """J_Φ, batched over the examples, for ``map`` "state" or "block" (see module docstring)."""
        if map not in MAPS:
            raise InvalidArgumentError(f"map must be one of {MAPS}, got {map!r}")
        if map == "block" and self.operator.kind == "second_order":
            v0 = torch.zeros_like(self.state0[1])
            return JacobianOperator(lambda y: self.flow((y, v0))[0], self.state0[0], batched=True)
        return JacobianOperator(self.flow, self.state0, batched=True)

    def inverse_flow_jacobian(self) -> JacobianOperator:
        """J_Φ⁻¹ = ∂Φ⁻¹/∂Y(T) at Y(T), through the exact inverse steps (reversible schemes)."""
        with torch.no_grad():
            state_T = self.flow(self.state0)
        return JacobianOperator(self.inverse_flow, state_T, batched=True)


@analyses_an_operator
def discretise(operator, y0, scheme, *, T=None, n_steps=None, rtol: float = 1e-6, atol: float = 1e-8) -> Discretisation:
    """Integrate once and record every step (accepted steps for adaptive schemes)."""
    if isinstance(scheme, str) and get_scheme(scheme).adaptive:
        scheme = get_scheme(scheme, rtol=rtol, atol=atol)
    scheme = get_scheme(scheme)
    scheme.check_operator(operator)
    with torch.no_grad():
        state0 = tuple(s.detach() for s in operator.to_state(y0))
        if state0[0].dtype not in (torch.float32, torch.float64):
            raise InvalidArgumentError(f"the analyses linearise in float32 or float64, got a {state0[0].dtype} state: "
                                       "convert the operator and the state with .double() (or .float()); what a lower "
                                       "format does to a flow is measured by reversibility(dtypes=...)")
        if scheme.adaptive:
            sol = integrate(operator, y0, scheme, T=T, record_steps=True)
            steps = [(t, h, tuple(s.detach() for s in y)) for t, h, y in sol.accepted_steps]
            return Discretisation(operator, scheme, scheme.step_scheme, steps, state0, sol.T)
        # a trajectory that reaches NaN/Inf has no Jacobians to analyse: NonFiniteError names the step
        sol = integrate(operator, y0, scheme, T=T, n_steps=n_steps)
        h, n = sol.h, sol.stats.n_steps
        s = scheme.init(operator, state0, 0.0, h)
        steps = []
        for j in range(n):
            steps.append((j * h, h, s))
            s = scheme.step(operator, s, j * h, h)
    return Discretisation(operator, scheme, scheme, steps, state0, sol.T)


def select_examples(y0, examples):
    """``y0`` (a tensor or a tuple of tensors) restricted to the batch indices ``examples`` (all if None)."""
    if examples is None:
        return y0
    return tuple(t[examples] for t in y0) if isinstance(y0, (tuple, list)) else y0[examples]


def distribution(values) -> dict:
    """Median, 5th and 95th percentiles, worst (largest) and best of per-example values."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if v.size == 0:
        return dict(n=0)
    return dict(n=int(v.size), median=float(np.median(v)), p5=float(np.percentile(v, 5)),
                p95=float(np.percentile(v, 95)), max=float(v.max()), min=float(v.min()),
                argmax=int(np.nanargmax(np.asarray(values, dtype=float))))

