"""Explicit Runge–Kutta schemes from Butcher tableaux.

They integrate the first-order form of any operator (Y for first order, (Y, V) for second order,
(Y, Z) for Hamiltonian), so they accept every kind. Stability: |R(hλ)| ≤ 1 with R the tableau's
stability polynomial (:meth:`ButcherTableau.stability_polynomial`). A scheme is built from any
explicit tableau, a published one from :func:`~pdenet_analysis.schemes.catalogue.get_tableau`
included; its declared order is checked against the tableau's rooted-tree order on construction.

References: Hairer, Nørsett & Wanner, *Solving Ordinary Differential Equations I*, §II.1.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import IncompatibleSchemeError, InvalidArgumentError
from .base import Scheme, StepForm, stage_time
from .tableau import ButcherTableau


class ExplicitRungeKutta(Scheme):
    """An explicit RK scheme defined by a :class:`ButcherTableau` and its declared order (the
    tableau's certified order when ``order`` is None). A declared order above the one Butcher's
    conditions certify is refused, naming the first condition that fails."""

    kinds = frozenset({"first_order", "second_order", "hamiltonian"})

    def __init__(self, tableau: ButcherTableau, order: int | None = None, name: str = "explicit_rk"):
        if not isinstance(tableau, ButcherTableau):
            raise InvalidArgumentError(f"ExplicitRungeKutta takes a ButcherTableau, got {type(tableau).__name__}")
        if not tableau.is_explicit:
            raise IncompatibleSchemeError(
                f"tableau {tableau.name or name!r} is implicit (A has entries on or above the diagonal): "
                "ExplicitRungeKutta steps explicit tableaux only; an implicit tableau's order, stability function "
                "and symplecticity are still certified by its ButcherTableau methods")
        if order is not None and (isinstance(order, bool) or not isinstance(order, int) or order < 1):
            raise InvalidArgumentError(f"order must be a positive integer, got {order!r}")
        order = tableau.order() if order is None else order
        failed = tableau.missing_condition(order) if order > 0 else None
        if order < 1 or failed is not None:
            raise InvalidArgumentError(
                f"tableau of {name!r} does not satisfy the order conditions of order {max(order, 1)}: Butcher's "
                f"conditions certify order {tableau.order(max(order, 1))}"
                + (f"; the tree {failed.notation} ({failed.order} nodes) has Φ = {failed.phi!r} against 1/γ = "
                   f"{failed.expected!r}" if failed is not None else ""))
        self.tableau, self.order, self.name = tableau, int(order), name
        stepped = tableau.truncated()  # trailing stages of weight 0 (an FSAL stage) change nothing in a step
        self._c = stepped.c
        self._rows = [[(j, a) for j, a in enumerate(row[:i]) if a != 0.0] for i, row in enumerate(stepped.a)]
        self._weights = [(i, b) for i, b in enumerate(stepped.b) if b != 0.0]

    @property
    def n_stages(self) -> int:
        """Evaluations of the vector field per step."""
        return len(self._rows)

    def step(self, op, state, t: float, h: float):
        ks = []
        for i, row in enumerate(self._rows):
            y = state
            for j, a in row:
                y = tuple(torch.add(yi, kj, alpha=h * a) for yi, kj in zip(y, ks[j]))
            ks.append(op.vector_field(stage_time(t, self._c[i], h), y))
        out = state
        for i, b in self._weights:
            out = tuple(torch.add(yi, ki, alpha=h * b) for yi, ki in zip(out, ks[i]))
        return out

    def stability_function(self, z) -> np.ndarray:
        """R(z) on y' = λy, z = hλ (the tableau's :meth:`~ButcherTableau.stability_function`)."""
        return self.tableau.stability_function()(z)

    def amplification(self, z) -> np.ndarray:
        return np.abs(self.stability_function(z))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class ForwardEuler(ExplicitRungeKutta):
    """y⁺ = y + h f(t, y). Order 1; stable for |1 + hλ| ≤ 1. Eq. 3 of the paper with h = 1."""

    name = "euler"

    def __init__(self):
        super().__init__(ButcherTableau.explicit([], [1.0]), 1, "euler")

    def reduced_step_form(self, op, state, t, h):
        """On a first-order operator S = I + h ∂F/∂Y at Y_j: M = h ∂F/∂Y, ξ = 1 + μ — the
        eigenvalues of the step map are its stability function R(z) = 1 + z on the exact layer
        spectrum, with no Krylov method (and through the active hidden units, a smaller matrix)."""
        if op.kind != "first_order":
            return None
        return StepForm(state[0], "field", stage_time(t, 0.0, h), lambda v: h * v, lambda mu: 1.0 + np.asarray(mu),
                        "S = I + hM", identity_plus=True, h_power=1, mu_from_roots=lambda xi: np.asarray(xi) - 1.0)


class Heun(ExplicitRungeKutta):
    """Heun's method (explicit trapezoidal rule). Order 2; R(z) = 1 + z + z²/2."""

    name = "heun"

    def __init__(self):
        super().__init__(ButcherTableau.explicit([[1.0]], [0.5, 0.5]), 2, "heun")


class Midpoint(ExplicitRungeKutta):
    """Explicit midpoint rule. Order 2; R(z) = 1 + z + z²/2."""

    name = "midpoint"

    def __init__(self):
        super().__init__(ButcherTableau.explicit([[0.5]], [0.0, 1.0]), 2, "midpoint")


class RK4(ExplicitRungeKutta):
    """The classical fourth-order Runge–Kutta method. R(z) = Σ_{k≤4} z^k/k!."""

    name = "rk4"

    def __init__(self):
        super().__init__(
            ButcherTableau.explicit([[0.5], [0.0, 0.5], [0.0, 0.0, 1.0]], [1 / 6, 1 / 3, 1 / 3, 1 / 6]), 4, "rk4"
        )
