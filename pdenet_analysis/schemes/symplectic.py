"""Explicit symplectic and reversible schemes for partitioned and second-order systems.

A partitioned system A' = f(t, B), B' = g(t, A) covers the paper's Hamiltonian operator
((A, B) = (Y, Z), f = F_sym(θ¹, ·), g = −F_sym(θ², ·)) and the first-order form of a second-order
operator ((A, B) = (Y, V), f = id, g = F).

Linear stability. On the linear test problem A' = B, B' = λA (y'' = λy) one step of any scheme
here is a 2×2 map of trace 2 + z and determinant 1, with z = h²λ. Both eigenvalues lie in the closed
unit disc iff z ∈ [−4, 0]; so for a Jacobian with real non-positive spectrum the step is stable
iff h²·ρ ≤ 4 (spec §2, "standard linear analysis"). For the Hamiltonian operator the relevant
λ are the eigenvalues of (∂g/∂Y)(∂f/∂Z).

References: Hairer, Lubich & Wanner, *Geometric Numerical Integration*, 2nd ed., §I.1, §VI.3.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import InvalidArgumentError
from ..gradients.autograd import differentiated_part, reverse_update
from .base import StepForm, Scheme, stage_time
from .metadata import StabilityVariable


def two_step_roots(z) -> tuple[np.ndarray, np.ndarray]:
    """The roots (ξ₁, ξ₂) of ξ² − (2 + z)ξ + 1 = 0, |ξ₁| ≥ 1 ≥ |ξ₂| = 1/|ξ₁|.

    The discriminant (2 + z)² − 4 is computed as z(4 + z), free of the cancellation that near
    z = 0 (a double root ξ = 1, common where ReLUs switch channels off) would put an error of
    √ε into |ξ|; the smaller root is 1/ξ₁ (product of the roots 1)."""
    z = np.asarray(z, dtype=complex)
    tr, disc = 2.0 + z, np.sqrt(z * (4.0 + z))
    big = np.where(np.abs(tr + disc) >= np.abs(tr - disc), tr + disc, tr - disc) / 2
    return big, 1.0 / big


def _both_roots(z) -> np.ndarray:
    """Both roots of ξ² − (2 + z)ξ + 1 = 0 for every z: the step map's eigenvalues from M's."""
    return np.concatenate(two_step_roots(z))


def _mu_of_roots(xi) -> np.ndarray:
    """μ = ξ + 1/ξ − 2 for a root ξ of ξ² − (2 + μ)ξ + 1 = 0 (both roots give the same μ)."""
    xi = np.asarray(xi)
    return xi + 1.0 / xi - 2.0


def two_step_amplification(z) -> np.ndarray:
    """max |ξ| over the roots of ξ² − (2 + z)ξ + 1 = 0."""
    return np.abs(two_step_roots(z)[0])


class _PartitionedScheme(Scheme):
    """Shared by the partitioned schemes. One step linearises to S = [[I, hA], [hB, I + h²BA]] (up
    to similarity) with A = ∂f/∂B and B = ∂g/∂A at the points the step evaluates them, and by the
    Schur complement det(S − ξI) = det((1 − ξ)²I − ξh²BA): the eigenvalues of S are exactly the
    roots of ξ² − (2 + μ)ξ + 1 = 0 over μ ∈ spec(h²BA), a problem of half the size
    (:meth:`reduced_step_form`; tests/test_symplectic_structure.py)."""

    kinds = frozenset({"hamiltonian", "second_order"})
    symplectic = True
    reversible = True
    stability_variable = StabilityVariable.H2_LAMBDA

    def amplification(self, z) -> np.ndarray:
        return two_step_amplification(z)


class SymplecticEuler(_PartitionedScheme):
    """Symplectic Euler, the paper's Hamiltonian update (eq. 10):

        A_{j+1} = A_j + h f(t_j, B_j),      B_{j+1} = B_j + h g(t_j, A_{j+1}).

    For the Hamiltonian operator: Y_{j+1} = Y_j + h F_sym(θ¹, Z_j),
    Z_{j+1} = Z_j − h F_sym(θ², Y_{j+1}). Order 1, symplectic. Exact inverse:
    B_j = B_{j+1} − h g(t_j, A_{j+1}), A_j = A_{j+1} − h f(t_j, B_j).
    """

    name = "symplectic_euler"
    order = 1

    def step(self, op, state, t, h):
        a, b = state
        s = stage_time(t, 0.0, h)
        a = torch.add(a, op.part_f(s, b), alpha=h)
        b = torch.add(b, op.part_g(s, a), alpha=h)
        return (a, b)

    def reduced_step_form(self, op, state, t, h):
        """M = h²BA with A = ∂f/∂B at B_j and B = ∂g/∂A at A_{j+1}: the Jacobian at u = B_j of
        u ↦ h·g(A_j + h f(u)), the increment of B as a function of B_j through A_{j+1}."""
        a, _ = state
        s = stage_time(t, 0.0, h)
        return StepForm(state[1], "f", s, lambda v: h * op.part_g(s, torch.add(a, v, alpha=h)), _both_roots, "half size",
                        h_power=2, mu_from_roots=_mu_of_roots)

    def inverse_step(self, op, state, t, h):
        a, b = state
        s = stage_time(t, 0.0, h)
        b = torch.add(b, op.part_g(s, a), alpha=-h)
        a = torch.add(a, op.part_f(s, b), alpha=-h)
        return (a, b)

    def step_back(self, op, state, grads, acc, t, h):
        """The reversible gradient's step with one evaluation of f and one of g (:func:`reverse_update`)."""
        (a, b), (ga, gb), s = state, grads, stage_time(t, 0.0, h)
        b, ga = reverse_update(op.part_g, s, a, b, h, gb, ga, acc)
        a, gb = reverse_update(op.part_f, s, b, a, h, ga, gb, acc)
        return (a, b), (ga, gb)


class StormerVerlet(_PartitionedScheme):
    """Störmer–Verlet (velocity form), a Strang composition of two symplectic Euler half steps:

        B_{½} = B_j + (h/2) g(t_j, A_j)
        A_{j+1} = A_j + h f(t_j + h/2, B_{½})
        B_{j+1} = B_{½} + (h/2) g(t_j + h, A_{j+1})

    Order 2, symplectic, symmetric; the inverse runs the three updates backwards.
    """

    name = "verlet"
    order = 2

    def step(self, op, state, t, h):
        a, b = state
        b = torch.add(b, op.part_g(stage_time(t, 0.0, h), a), alpha=0.5 * h)
        a = torch.add(a, op.part_f(stage_time(t, 0.5, h), b), alpha=h)
        b = torch.add(b, op.part_g(stage_time(t, 1.0, h), a), alpha=0.5 * h)
        return (a, b)

    def reduced_step_form(self, op, state, t, h):
        """S = K₂DK₁ with the kicks K_i = [[I, 0], [(h/2)B_i, I]] (B₁ = ∂g/∂A at A_j, B₂ at A_{j+1})
        and the drift D = [[I, hA], [0, I]] (A = ∂f/∂B at B_½). S is similar to K₁K₂D =
        [[I, hA], [hB̄, I + h²B̄A]] with B̄ = (B₁ + B₂)/2, so M = h²B̄A: the Jacobian at u = B_½ of
        u ↦ (h/2)[g(t_j, A(u) − A_{j+1} + A_j) + g(t_j + h, A(u))], A(u) = A_j + h f(t_j + h/2, u)."""
        a, b = state
        t0, tm, t1 = stage_time(t, 0.0, h), stage_time(t, 0.5, h), stage_time(t, 1.0, h)
        with torch.no_grad():
            b_half = torch.add(b, op.part_g(t0, a), alpha=0.5 * h)
            shift = h * op.part_f(tm, b_half)  # A_{j+1} − A_j

        def post(v):  # v = f(t_j + h/2, u)
            a_next = torch.add(a, v, alpha=h)
            return 0.5 * h * (op.part_g(t0, a_next - shift) + op.part_g(t1, a_next))

        return StepForm(b_half, "f", tm, post, _both_roots, "half size",
                        h_power=2, mu_from_roots=_mu_of_roots)

    def inverse_step(self, op, state, t, h):
        a, b = state
        b = torch.add(b, op.part_g(stage_time(t, 1.0, h), a), alpha=-0.5 * h)
        a = torch.add(a, op.part_f(stage_time(t, 0.5, h), b), alpha=-h)
        b = torch.add(b, op.part_g(stage_time(t, 0.0, h), a), alpha=-0.5 * h)
        return (a, b)

    def step_back(self, op, state, grads, acc, t, h):
        """The reversible gradient's step with one evaluation per kick and drift (:func:`reverse_update`)."""
        (a, b), (ga, gb) = state, grads
        b, ga = reverse_update(op.part_g, stage_time(t, 1.0, h), a, b, 0.5 * h, gb, ga, acc)
        a, gb = reverse_update(op.part_f, stage_time(t, 0.5, h), b, a, h, ga, gb, acc)
        b, ga = reverse_update(op.part_g, stage_time(t, 0.0, h), a, b, 0.5 * h, gb, ga, acc)
        return (a, b), (ga, gb)


class Leapfrog(Scheme):
    """Leapfrog for Y'' = F(t, Y) (paper eq. 11):

        Y_{j+1} = 2Y_j − Y_{j−1} + h² F(t_j, Y_j).

    The internal state is (Y_j, Y_{j−1}); the exact inverse is
    Y_{j−1} = 2Y_j − Y_{j+1} + h² F(t_j, Y_j).

    Start. ``start="paper"`` uses the paper's Y_{−1} = Y₀ − h V₀ (Y_{−1} = Y₀ when V₀ = 0), a
    one-sided difference for Y'(0): the first step then carries an O(h²) error that the
    recursion turns into a **first-order** global error. ``start="symmetric"`` uses the central
    difference, Y_{−1} = Y₀ − h V₀ + (h²/2) F(t₀, Y₀), which keeps the scheme second order.
    Both are reversible and symplectic (as maps on (Y_j, Y_{j−1})). The order is that of Y; the
    velocity reported in the first-order state, V_N = (Y_N − Y_{N−1})/h, is first order only. Stable for h²ρ(∂F/∂Y) ≤ 4
    when the spectrum is real and non-positive.
    """

    kinds = frozenset({"second_order"})
    symplectic = True
    reversible = True
    plain_state = False  # the internal state (Y_j, Y_{j−1}) carries the previous step
    stability_variable = StabilityVariable.H2_LAMBDA

    def __init__(self, start: str = "paper"):
        if start not in ("paper", "symmetric"):
            raise InvalidArgumentError(f"leapfrog start must be 'paper' or 'symmetric', got {start!r}")
        self.start = start
        self.name = "leapfrog" if start == "paper" else "leapfrog_symmetric"
        self.order = 1 if start == "paper" else 2

    def init(self, op, state, t0, h):
        y, v = state
        y_prev = torch.add(y, v, alpha=-h)
        if self.start == "symmetric":
            y_prev = torch.add(y_prev, op.acceleration(stage_time(t0, 0.0, h), y), alpha=0.5 * h * h)
        return (y, y_prev)

    def step(self, op, state, t, h):
        y, y_prev = state
        return (torch.add(2 * y - y_prev, op.acceleration(stage_time(t, 0.0, h), y), alpha=h * h), y)

    def reduced_step_form(self, op, state, t, h):
        """S = [[2I + h²J, −I], [I, 0]] with J = ∂F/∂Y at Y_j, so det(S − ξI) = det(ξ²I −
        ξ(2I + h²J) + I) and M = h²J: the Jacobian at u = Y_j of u ↦ h²F(t_j, u)."""
        return StepForm(state[0], "g", stage_time(t, 0.0, h), lambda v: h * h * v, _both_roots, "half size",
                        h_power=2, mu_from_roots=_mu_of_roots)  # F is part_g

    def inverse_step(self, op, state, t, h):
        y_next, y = state
        return (y, torch.add(2 * y - y_next, op.acceleration(stage_time(t, 0.0, h), y), alpha=h * h))

    def step_back(self, op, state, grads, acc, t, h):
        """The reversible gradient's step with one evaluation of F. The step maps (Y_j, Y_{j−1}) to
        (2Y_j − Y_{j−1} + h²F(Y_j), Y_j): with gradients (g₁, g₂) at the new state, Y_j gets
        2g₁ + h²(∂F/∂Y)ᵀg₁ + g₂ and Y_{j−1} gets −g₁."""
        (y_next, y), (g_next, g_y) = state, grads
        # Y_{j−1} = 2Y_j − Y_{j+1} + h²F(Y_j), with F differentiated against g₁h² on the spot
        f, g_f = differentiated_part(op.acceleration, stage_time(t, 0.0, h), y, g_next * (h * h), acc)
        y_prev = torch.mul(y, 2.0).sub_(y_next).add_(f, alpha=h * h)
        g_y = torch.add(g_y, g_next, alpha=2.0)
        if g_f is not None:
            g_y.add_(g_f)
        return (y, y_prev), (g_y, -g_next)

    def to_state(self, op, state, h):
        y, y_prev = state
        return (y, (y - y_prev) / h)

    def from_state(self, op, state, h):
        y, v = state
        return (y, torch.add(y, v, alpha=-h))

    def uninit(self, op, state, t0, h):
        """(Y₀, V₀) from (Y₀, Y₋₁): the inverse of :meth:`init`, V₀ = (Y₀ − Y₋₁)/h [+ (h/2) F(t₀, Y₀)]."""
        y, v = self.to_state(op, state, h)
        if self.start == "symmetric":
            v = torch.add(v, op.acceleration(stage_time(t0, 0.0, h), y), alpha=0.5 * h)
        return (y, v)

    def amplification(self, z):
        return two_step_amplification(z)

    def __repr__(self) -> str:
        return f"Leapfrog(start={self.start!r})"


