"""Gradient strategies: how ∂loss/∂(θ, Y₀) is obtained through an integration
(:mod:`.strategies`: backprop, exact reversible recomputation, the adjoint), and the autograd
helpers they and the schemes' backward steps share (:mod:`.autograd`)."""

from .autograd import ParamGrads, differentiated_part, outside_leaves, require_no_outside_leaves, reverse_update
from .strategies import (Adjoint, Backprop, GradientStrategy, OnceDifferentiable, Reversible, ReversibleFunction,
                         autocast_state, get_gradient, grouped)

__all__ = ["Adjoint", "Backprop", "GradientStrategy", "OnceDifferentiable", "Reversible", "ReversibleFunction",
           "autocast_state", "get_gradient", "grouped", "ParamGrads", "differentiated_part", "outside_leaves",
           "require_no_outside_leaves", "reverse_update"]
