"""Test problems with exact solutions, one per operator kind.

They are :class:`~pdenet_analysis.operators.Operator`\\ s on states of shape (batch, n), so every
scheme can be run on them and its error measured against ``exact``:

* :class:`LinearFirstOrder`   Y' = A Y                     Y(t) = exp(tA) Y₀
* :class:`TimeDependentLinear`  Y' = cos(t) A Y            Y(t) = exp(sin(t) A) Y₀
* :class:`LinearHamiltonian`  Y' = A Z, Z' = B Y           (Y, Z)(t) = exp(t[[0, A], [B, 0]]) (Y₀, Z₀)
* :class:`LinearSecondOrder`  Y'' = M Y                    (Y, V)(t) = exp(t[[0, I], [M, 0]]) (Y₀, V₀)

``harmonic_oscillator(omega)`` is the Hamiltonian Y' = ωZ, Z' = −ωY, whose energy Y² + Z² is
conserved. States are row vectors: Y ↦ Y Aᵀ.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg
import torch

from ..operators.operators import Operator


def _mat(x, dtype=torch.float64) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x), dtype=dtype)


class _LinearProblem(Operator):
    """Common code: ``system`` is the first-order system matrix S with state' = S state."""

    system: np.ndarray

    def exact(self, t: float, state0: tuple) -> tuple:
        """The exact first-order state at time t from ``state0`` (a tuple as from ``to_state``)."""
        E = scipy.linalg.expm(t * self.system)
        x0 = torch.cat(state0, dim=-1)
        x = x0 @ _mat(E.T, x0.dtype).to(x0.device)
        return tuple(torch.split(x, [s.shape[-1] for s in state0], dim=-1))

    def from_state(self, state, like=None):
        return tuple(state) if isinstance(like, (tuple, list)) or len(state) > 1 else state[0]


class LinearFirstOrder(_LinearProblem):
    kind = "first_order"

    def __init__(self, A):
        super().__init__()
        self.register_buffer("A", _mat(A))
        self.system = np.asarray(A, dtype=float)

    def to_state(self, y0):
        return (y0,)

    def vector_field(self, t, state):
        return (state[0] @ self.A.T.to(state[0].dtype),)


class TimeDependentLinear(_LinearProblem):
    """Y' = cos(t)·A Y, exact solution Y(t) = exp(sin(t)·A) Y₀ (A commutes with itself at all
    times). Its right-hand side depends on t, so a scheme whose stages use wrong times loses
    its order here while keeping it on autonomous problems."""

    kind = "first_order"

    def __init__(self, A):
        super().__init__()
        self.register_buffer("A", _mat(A))
        self.system = np.asarray(A, dtype=float)

    def exact(self, t: float, state0: tuple) -> tuple:
        E = scipy.linalg.expm(np.sin(t) * self.system)
        x0 = state0[0]
        return (x0 @ _mat(E.T, x0.dtype).to(x0.device),)

    def to_state(self, y0):
        return (y0,)

    def vector_field(self, t, state):
        return (math.cos(float(t)) * (state[0] @ self.A.T.to(state[0].dtype)),)


class LinearHamiltonian(_LinearProblem):
    kind = "hamiltonian"

    def __init__(self, A, B):
        super().__init__()
        self.register_buffer("A", _mat(A))
        self.register_buffer("B", _mat(B))
        n = np.asarray(A).shape[0]
        Z = np.zeros((n, n))
        self.system = np.block([[Z, np.asarray(A, float)], [np.asarray(B, float), Z]])

    def to_state(self, y0):
        return tuple(y0)

    def vector_field(self, t, state):
        y, z = state
        return (z @ self.A.T.to(z.dtype), y @ self.B.T.to(y.dtype))

    def part_f(self, t, z):
        return z @ self.A.T.to(z.dtype)

    def part_g(self, t, y):
        return y @ self.B.T.to(y.dtype)


class LinearSecondOrder(_LinearProblem):
    kind = "second_order"
    part_costs = (0.0, 1.0)
    solution_components = (0,)

    def __init__(self, M):
        super().__init__()
        self.register_buffer("M", _mat(M))
        n = np.asarray(M).shape[0]
        self.system = np.block([[np.zeros((n, n)), np.eye(n)], [np.asarray(M, float), np.zeros((n, n))]])

    def to_state(self, y0):
        if isinstance(y0, (tuple, list)):
            return tuple(y0)
        return (y0, torch.zeros_like(y0))

    def vector_field(self, t, state):
        y, v = state
        return (v, y @ self.M.T.to(y.dtype))

    def part_f(self, t, v):
        return v

    def part_g(self, t, y):
        return y @ self.M.T.to(y.dtype)

    def acceleration(self, t, y):
        return y @ self.M.T.to(y.dtype)


def harmonic_oscillator(omega: float = 1.0, n: int = 1) -> LinearHamiltonian:
    """Y' = ωZ, Z' = −ωY (n uncoupled copies); energy ‖Y‖² + ‖Z‖² is conserved."""
    return LinearHamiltonian(omega * np.eye(n), -omega * np.eye(n))


def random_stable_matrix(n: int, seed: int = 0, spread: float = 1.0) -> np.ndarray:
    """A random n×n matrix with eigenvalues of real part in [−spread, −spread/10] (non-normal)."""
    rng = np.random.default_rng(seed)
    Q = np.linalg.qr(rng.standard_normal((n, n)))[0]
    lam = -np.linspace(spread / 10, spread, n)
    R = np.triu(rng.standard_normal((n, n)) * 0.3, 1) + np.diag(lam)
    return Q @ R @ Q.T


def random_spd(n: int, seed: int = 0, low: float = 0.2, high: float = 1.0) -> np.ndarray:
    """A random symmetric positive definite n×n matrix with spectrum in [low, high]."""
    rng = np.random.default_rng(seed)
    Q = np.linalg.qr(rng.standard_normal((n, n)))[0]
    return Q @ np.diag(np.linspace(low, high, n)) @ Q.T
