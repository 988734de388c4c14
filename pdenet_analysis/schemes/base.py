"""The scheme interface and its metadata.

A scheme advances a state of an :class:`~pdenet_analysis.operators.Operator` over one step
[t, t + h]. It knows nothing of convolutions: it calls only the operator's views
(``vector_field``, ``part_f``/``part_g``, ``acceleration``).

Every scheme declares the same metadata, which the test-suite and the analysis read:

``name``        registry name
``order``       global order of accuracy p (error O(h^p))
``kinds``       operator kinds it accepts (``first_order``, ``second_order``, ``hamiltonian``)
``symplectic``  whether it preserves the symplectic form of a Hamiltonian flow
``reversible``  whether it has an exact inverse step (``inverse_step``)
``adaptive``    whether the step is chosen by error control (then ``n_steps`` is not used)
``stability_variable``  a :class:`~.metadata.StabilityVariable`: "h*lambda" (one-step methods on
                y' = λy) or "h^2*lambda" (schemes for partitioned / second-order systems, whose
                linear test problem is y'' = λy)
``plain_state``  whether the internal state is the operator's first-order state itself (no
                ``init``/``to_state`` of its own): only then is the flow's Jacobian a product of
                one-step Jacobians on that state, which the analyses invert step by step
``internal_from_state``  whether ``from_state`` rebuilds the internal state from the operator's
                first-order state (False where the internal state carries more, as the reversible
                Runge–Kutta wrapper's second state z): only then is the flow map on the first-order
                state inverted by ``inverse_step``
``inverse_growth``  the factor by which one inverse step can multiply the state's round-off beyond
                what the dynamics do: 1 for the additive updates of the symplectic schemes, 1/λ for
                the reversible Runge–Kutta wrapper (its inverse divides by λ). The reversible
                gradient refuses n rebuilt steps where ``inverse_growth``ⁿ·ε would exceed 10⁻³

A fixed-step scheme keeps an *internal* state, which may differ from the operator's first-order
state (leapfrog keeps (Y_j, Y_{j−1})): ``init`` makes it, ``step``/``inverse_step`` advance it,
``to_state`` converts it back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from ..errors import IncompatibleSchemeError
from ..operators.timegrid import StepTime
from .metadata import StabilityVariable

State = tuple

#: what the error messages of a scheme say about the others: (the names of the registered schemes
#: that accept an operator kind, the registered reversible schemes with their kinds). The registry
#: installs these when it is imported (:mod:`.registry`); this module never imports it.
MESSAGE_HINTS = {"accepting": lambda kind: [], "reversible": lambda: ""}


@dataclass(frozen=True)
class StepForm:
    """The step map's Jacobian S through a smaller matrix: M = ∂fn/∂u at ``u``, where
    fn(u) = post(P(s, u)) and P is the operator's part ``part`` ("f": ``part_f``, "g": ``part_g``,
    "field": the first-order vector field) at the stage time ``s``. The eigenvalues of S are
    ``roots(μ)`` over the eigenvalues μ of M, every one listed (a zero μ gives ξ = 1):

    * the two-level schemes (symplectic Euler, Verlet, leapfrog): M of half the size, both roots
      of ξ² − (2 + μ)ξ + 1 = 0 (``label`` "half size");
    * forward Euler on a first-order operator: S = I + M with M = h ∂F/∂Y, ξ = 1 + μ
      (``identity_plus`` True: then S⁻¹ is exact through the hidden units too,
      :mod:`~pdenet_analysis.analysis.reduced_inverse`).

    Knowing where the part enters lets M be reduced further through the part's hidden units
    (:func:`~pdenet_analysis.analysis.stepmap.active_unit_form`)."""

    u: torch.Tensor
    part: str
    s: float
    post: Callable
    roots: Callable
    label: str
    identity_plus: bool = False  #: S = I + M on the state u itself
    #: M = h^p·(the Jacobian of the stability analysis): 1 for forward Euler (M = h ∂F/∂Y), 2 for the
    #: two-level schemes (z = h²λ)
    h_power: int = 1
    #: the inverse of ``roots``: μ from an eigenvalue ξ of S (ξ − 1; ξ + 1/ξ − 2 for both roots of
    #: ξ² − (2 + μ)ξ + 1 = 0)
    mu_from_roots: Callable | None = None

    def map(self, op) -> Callable:
        """fn: u ↦ post(P(s, u)), whose Jacobian at ``u`` is M."""
        if self.part == "field":
            return lambda u: self.post(op.vector_field(self.s, (u,))[0])
        evaluate = op.part_f if self.part == "f" else op.part_g
        return lambda u: self.post(evaluate(self.s, u))


def stage_time(t: float, c: float, h: float) -> StepTime:
    """The time t + c·h of a stage of the step [t, t + h]."""
    return StepTime(t + c * h, t, h)


class Scheme:
    """Base class of all schemes (see the module docstring for the metadata)."""

    name: ClassVar[str] = ""
    order: int = 0
    kinds: frozenset = frozenset()
    symplectic: bool = False
    reversible: bool = False
    adaptive: bool = False
    stability_variable: ClassVar[StabilityVariable] = StabilityVariable.H_LAMBDA
    internal_from_state: ClassVar[bool] = True
    plain_state: ClassVar[bool] = True
    inverse_growth: float = 1.0

    # ---- compatibility ---------------------------------------------------------------------
    def accepts(self, kind: str) -> bool:
        return kind in self.kinds

    def check_operator(self, operator) -> None:
        if not self.accepts(operator.kind):
            raise IncompatibleSchemeError(
                f"scheme {self.name!r} does not accept {operator.kind} operators; schemes that do: "
                f"{', '.join(MESSAGE_HINTS['accepting'](operator.kind))}"
            )

    # ---- fixed-step interface --------------------------------------------------------------
    def init(self, op, state: State, t0: float, h: float) -> State:
        """Internal state at t0 from the operator's first-order state."""
        return state

    def step(self, op, state: State, t: float, h: float) -> State:
        raise NotImplementedError

    def inverse_step(self, op, state: State, t: float, h: float) -> State:
        """The state at t from the state at t + h (reversible schemes only)."""
        self.require_inverse()
        raise NotImplementedError

    def step_back(self, op, state: State, grads: tuple, acc, t: float, h: float):
        """One step of the reversible gradient: from the state at t + h and the loss's gradient
        with respect to it, the state at t and the gradient with respect to that; the step's
        contribution to the parameters' gradient is added into ``acc`` (a :class:`~pdenet_analysis.gradients.autograd.ParamGrads`).

        This generic version rebuilds the state with :meth:`inverse_step` and differentiates
        :meth:`step` from it: every evaluation of the operator happens twice. The schemes made of
        additive updates override it with :func:`reverse_update`, which differentiates the one
        evaluation that rebuilds the earlier state (as revlib and momentumnet do)."""
        with torch.no_grad():
            prev = self.inverse_step(op, state, t, h)
        with torch.enable_grad():
            inp = tuple(x.detach().requires_grad_(True) for x in prev)
            out = self.step(op, inp, t, h)
        got = acc.backward(out, inp, grads)
        return prev, tuple(torch.zeros_like(x) if g is None else g for x, g in zip(inp, got))

    def options(self) -> dict:
        """The keyword arguments that rebuild this scheme from the registry under its ``name``
        (``get_scheme(name, **options)``): what a network's configuration must record, beside the
        name, so that a checkpoint reloads the same scheme; empty for the schemes that take none."""
        return {}

    def require_inverse(self) -> None:
        """Raise :class:`IncompatibleSchemeError` unless the scheme has an exact inverse step."""
        if self.reversible:
            return
        raise IncompatibleSchemeError(
            f"scheme {self.name!r} is not reversible: it has no exact inverse step. "
            f"Reversible schemes: {MESSAGE_HINTS['reversible']()}"
        )

    def to_state(self, op, state: State, h: float) -> State:
        """The operator's first-order state from the internal state."""
        return state

    def from_state(self, op, state: State, h: float) -> State:
        """The internal state from the operator's first-order state: the inverse of ``to_state``
        (used to run a reversible scheme backwards from a first-order state)."""
        return state

    def uninit(self, op, state: State, t0: float, h: float) -> State:
        """The operator's first-order state at t0 from the internal state at t0: the exact
        inverse of ``init`` (``to_state`` is only its inverse when ``init`` is the identity)."""
        return self.to_state(op, state, h)

    # ---- linear stability ------------------------------------------------------------------
    def reduced_step_form(self, op, state: State, t: float, h: float) -> "StepForm | None":
        """The :class:`StepForm` of one step from ``state`` at t: a matrix M smaller than or as
        large as the step map's Jacobian S, and the map from its eigenvalues to S's (see the
        subclasses). None for a scheme (or operator kind) without one."""
        return None

    def amplification(self, z) -> np.ndarray:
        """Largest modulus of the amplification factor(s) of one step of the linear test
        problem, as a function of the stability variable z (see ``stability_variable``).
        The stability region is {z : amplification(z) ≤ 1}."""
        raise IncompatibleSchemeError(f"scheme {self.name!r} has no linear stability function")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
