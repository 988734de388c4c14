"""Continuous-time operators: what is integrated, independent of how.

Three kinds, after Ruthotto & Haber §3:

``first_order``   Y' = F(θ(t), Y). Parabolic when F = F_sym (eq. 8); a ResNet for F of eq. 1.
``second_order``  Y'' = F(θ(t), Y), Y(0) = Y₀, Y'(0) = 0 unless given (eq. 11).
``hamiltonian``   a channel split X = (Y, Z) with
                      Y' =  F_sym(θ¹(t), Z),
                      Z' = −F_sym(θ²(t), Y).
                  These are the signs of the paper's *discrete* eq. 10 and of the authors' code; the
                  continuous system printed in §3.2 has the opposite signs (a sign slip in the paper;
                  both are Hamiltonian flows, mirror images under t ↦ −t of each other's Y and Z roles).
                  With N = id and σ = ReLU the flow is Hamiltonian for
                  H(Y, Z) = ½‖σ(K₁Z)‖² + ½‖σ(K₂Y)‖² (q = Z, p = Y).

Every operator offers three views used by schemes:

* ``vector_field(t, state)`` – the first-order system; ``state`` is a tuple of tensors: (Y,) for
  first order, (Y, V) for second order (V = Y'), (Y, Z) for Hamiltonian. This is the conversion
  that lets every first-order scheme (Runge–Kutta, adaptive) integrate every kind.
* ``part_f(t, B)``, ``part_g(t, A)`` – for partitioned kinds the system is A' = f(t, B),
  B' = g(t, A) with state (A, B); symplectic Euler and Störmer–Verlet use these.
* ``acceleration(t, Y)`` – for second order, F(θ(t), Y); leapfrog uses it.

And, for the analyses, ``part_factors(part, t)``: a part that is a layer, as readout ∘ hidden
units (the step-map counts reduce through the units a ReLU keeps on).

Operators know nothing of step sizes. ``part_costs`` says what one evaluation of f and of g costs
in units of one full right-hand side, so that evaluation counts agree across schemes.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..errors import ShapeError, TensorTypeError
from .layers import ResNetLayer, SymmetricLayer, TimeDependentLayer
from .timegrid import TimeGrid

State = tuple[torch.Tensor, ...]

KINDS = ("first_order", "second_order", "hamiltonian")


class Operator(nn.Module):
    """Base class of continuous-time operators (see module docstring)."""

    kind: str = ""
    #: cost of (part_f, part_g) in full right-hand-side evaluations
    part_costs: tuple[float, float] = (0.5, 0.5)
    #: components of the first-order state that are the solution (errors and orders are measured
    #: on these); for second order only Y — V is auxiliary and leapfrog recovers it to O(h) only
    solution_components: tuple[int, ...] | None = None

    # ---- time grid ---------------------------------------------------------------------------
    @property
    def grid(self) -> TimeGrid | None:
        """The time grid of θ(t), or None for a time-independent operator."""
        layers = self.layers()
        return layers[0].grid if layers else None

    @property
    def T(self) -> float | None:
        g = self.grid
        return None if g is None else g.T

    def layers(self) -> list[TimeDependentLayer]:
        return [m for m in self.children() if isinstance(m, TimeDependentLayer)]

    def refined(self, factor: int = 2) -> "Operator":
        """The same operator with θ(t) stored on a grid ``factor``× finer (same function)."""
        new = copy.copy(self)
        new._modules = dict(self._modules)
        for name, m in self._modules.items():
            if isinstance(m, TimeDependentLayer):
                new._modules[name] = m.refined(factor)
        return new

    # ---- state conversion --------------------------------------------------------------------
    def to_state(self, y0) -> State:
        """The first-order-system state for the initial value ``y0`` (validates its shape)."""
        raise NotImplementedError

    def from_state(self, state: State, like) -> object:
        """The state in the layout the user passed as ``like`` (tensor or tuple)."""
        raise NotImplementedError

    def _check_tensor(self, y, what: str = "state") -> torch.Tensor:
        if not isinstance(y, torch.Tensor):
            raise TensorTypeError(f"{what} must be a torch.Tensor, got {type(y).__name__}")
        p = next(self.parameters(), None)
        if p is None:
            return y
        # under autocast the convolutions cast their inputs themselves
        dtype_ok = p.dtype == y.dtype or torch.is_autocast_enabled(y.device.type)
        if p.device != y.device or not dtype_ok:
            raise TensorTypeError(
                f"{what} has dtype {y.dtype} on {y.device} but the operator's parameters are "
                f"{p.dtype} on {p.device}; convert one with .to(dtype=..., device=...)"
            )
        return y

    # ---- views used by schemes ---------------------------------------------------------------
    def vector_field(self, t, state: State) -> State:
        raise NotImplementedError

    def part_f(self, t, b: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def part_g(self, t, a: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def acceleration(self, t, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def part_factors(self, part: str, t):
        """``(hidden, readout)`` with ``part_f`` (``part`` = "f"), ``part_g`` ("g") or a first-order
        vector field ("field") at time t equal to readout(hidden(·)), ``readout`` linear
        (:meth:`TimeDependentLayer.factors`), or None where that part is not a layer with hidden
        units."""
        return None


def _signed_factors(layer, sign: float, t):
    """``layer.factors(t)`` with ``sign`` folded into the readout; None for a layer without them."""
    factors = layer.factors(t) if isinstance(layer, TimeDependentLayer) else None
    if factors is None or sign == 1.0:
        return factors
    hidden, readout = factors
    return hidden, (lambda a: sign * readout(a))


class FirstOrderOperator(Operator):
    """Y' = F(θ(t), Y) for a time-dependent layer F (eq. 5)."""

    kind = "first_order"

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def to_state(self, y0) -> State:
        y0 = self._check_tensor(y0, "initial state y0")
        if isinstance(self.layer, TimeDependentLayer):
            self.layer.check_input(y0)
        return (y0,)

    def from_state(self, state: State, like=None):
        return state[0]

    def vector_field(self, t, state: State) -> State:
        return (self.layer(t, state[0]),)

    def part_factors(self, part: str, t):
        return _signed_factors(self.layer, 1.0, t) if part == "field" else None


class SecondOrderOperator(Operator):
    """Y'' = F(θ(t), Y), first-order form (Y, V)' = (V, F(θ(t), Y))  (eq. 11)."""

    kind = "second_order"
    part_costs = (0.0, 1.0)  # f(V) = V is free; g(Y) = F(Y) is one evaluation
    solution_components = (0,)

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def to_state(self, y0) -> State:
        if isinstance(y0, (tuple, list)):
            if len(y0) != 2:
                raise ShapeError(f"a second-order initial value is Y0 or (Y0, V0), got {len(y0)} tensors")
            y, v = (self._check_tensor(x, n) for x, n in zip(y0, ("Y0", "V0")))
            if y.shape != v.shape:
                raise ShapeError(f"Y0 and V0 must have the same shape, got {tuple(y.shape)} and {tuple(v.shape)}")
        else:
            y = self._check_tensor(y0, "initial state y0")
            v = torch.zeros_like(y)
        if isinstance(self.layer, TimeDependentLayer):
            self.layer.check_input(y)
        return (y, v)

    def from_state(self, state: State, like=None):
        return tuple(state) if isinstance(like, (tuple, list)) else state[0]

    def vector_field(self, t, state: State) -> State:
        y, v = state
        return (v, self.layer(t, y))

    def part_f(self, t, v: torch.Tensor) -> torch.Tensor:
        return v

    def part_g(self, t, y: torch.Tensor) -> torch.Tensor:
        return self.layer(t, y)

    def acceleration(self, t, y: torch.Tensor) -> torch.Tensor:
        return self.layer(t, y)

    def part_factors(self, part: str, t):
        return _signed_factors(self.layer, 1.0, t) if part == "g" else None  # f(V) = V has no hidden units


class HamiltonianOperator(Operator):
    """Y' = F_sym(θ¹(t), Z), Z' = −F_sym(θ²(t), Y) on the channel split X = (Y, Z)  (eq. 10).

    ``layer_y`` holds θ¹ (drives Y), ``layer_z`` holds θ²; each acts on half of the channels.
    A tensor input of C channels is split into its first and last C/2 channels, as in the
    authors' code; the output is concatenated back.
    """

    kind = "hamiltonian"

    def __init__(self, layer_y: nn.Module, layer_z: nn.Module):
        super().__init__()
        self.layer_y = layer_y
        self.layer_z = layer_z

    def to_state(self, y0) -> State:
        if isinstance(y0, (tuple, list)):
            if len(y0) != 2:
                raise ShapeError(f"a Hamiltonian initial value is X or (Y0, Z0), got {len(y0)} tensors")
            y, z = (self._check_tensor(x, n) for x, n in zip(y0, ("Y0", "Z0")))
            if y.shape != z.shape:
                raise ShapeError(f"Y0 and Z0 of a Hamiltonian state must have the same shape, got {tuple(y.shape)} "
                                 f"and {tuple(z.shape)} (the two channel groups are equally wide)")
        else:
            x = self._check_tensor(y0, "initial state y0")
            if x.dim() < 2:
                raise ShapeError(f"a Hamiltonian state needs a channel dimension, got shape {tuple(x.shape)}")
            c = x.shape[1]
            if c % 2:
                raise ShapeError(
                    f"the Hamiltonian split needs an even number of channels, got {c}; "
                    f"use {c + 1} or {c - 1} channels (e.g. widen the layer before the block)"
                )
            y, z = x[:, : c // 2], x[:, c // 2 :]
        for layer, part in ((self.layer_y, z), (self.layer_z, y)):
            if isinstance(layer, TimeDependentLayer):
                layer.check_input(part)
        return (y, z)

    def from_state(self, state: State, like=None):
        return tuple(state) if isinstance(like, (tuple, list)) else torch.cat(state, dim=1)

    def vector_field(self, t, state: State) -> State:
        y, z = state
        return (self.layer_y(t, z), self.part_g(t, y))

    def part_f(self, t, z: torch.Tensor) -> torch.Tensor:
        return self.layer_y(t, z)

    def part_g(self, t, y: torch.Tensor) -> torch.Tensor:
        if type(self.layer_z).forward is SymmetricLayer.forward:  # the sign goes on the kernel, for free
            return self.layer_z(t, y, negate=True)
        return -self.layer_z(t, y)

    def part_factors(self, part: str, t):
        if part not in ("f", "g"):
            return None
        return _signed_factors(self.layer_y, 1.0, t) if part == "f" else _signed_factors(self.layer_z, -1.0, t)


# ---- constructors for the paper's operators ------------------------------------------------------

def _grid(T: float, n_pieces: int, interpolation: str) -> TimeGrid:
    return TimeGrid(float(T), int(n_pieces), interpolation)


def parabolic(channels: int, T: float = 3.0, n_pieces: int = 3, interpolation: str = "constant", **layer_kw) -> FirstOrderOperator:
    """The parabolic operator Y' = −Kᵀσ(N(KY)) (eq. 8) on ``channels`` channels."""
    return FirstOrderOperator(SymmetricLayer(channels, _grid(T, n_pieces, interpolation), **layer_kw))


def resnet(channels: int, T: float = 3.0, n_pieces: int = 3, interpolation: str = "constant", **layer_kw) -> FirstOrderOperator:
    """The residual operator Y' = K₂σ(N(K₁Y)) (eq. 1 and 5); forward Euler gives a ResNet."""
    return FirstOrderOperator(ResNetLayer(channels, _grid(T, n_pieces, interpolation), **layer_kw))


def second_order(channels: int, T: float = 3.0, n_pieces: int = 3, interpolation: str = "constant", **layer_kw) -> SecondOrderOperator:
    """The second-order operator Y'' = −Kᵀσ(N(KY)) (eq. 11)."""
    return SecondOrderOperator(SymmetricLayer(channels, _grid(T, n_pieces, interpolation), **layer_kw))


def hamiltonian(channels: int, T: float = 3.0, n_pieces: int = 3, interpolation: str = "constant", **layer_kw) -> HamiltonianOperator:
    """The Hamiltonian operator of eq. 10 on ``channels`` channels (split in two halves)."""
    if int(channels) != channels or channels < 2 or channels % 2:
        raise ShapeError(
            f"a Hamiltonian operator needs an even number of channels ≥ 2, got {channels!r}; "
            "each half gets its own symmetric layer"
        )
    g = _grid(T, n_pieces, interpolation)
    half = int(channels) // 2
    return HamiltonianOperator(SymmetricLayer(half, g, **layer_kw), SymmetricLayer(half, g, **layer_kw))


OPERATOR_FACTORIES = {
    "parabolic": parabolic,
    "hamiltonian": hamiltonian,
    "second_order": second_order,
    "resnet": resnet,
}
