"""Time-stepping schemes, independent of the operators they integrate, and the Butcher tableaux
they are built from: :class:`ButcherTableau` certifies any tableau (order by rooted trees, stage
order, symplecticity, symmetry, stability function and intervals), :func:`get_tableau` returns
the published ones (:mod:`.catalogue`)."""

from .adaptive import ADAPTIVE_METHODS, TorchDiffEq
from .base import Scheme, stage_time
from .registry import available_schemes, get_scheme, names_accepting, register_scheme, unregister_scheme
from .reversible_rk import ReversibleRungeKutta
from .runge_kutta import RK4, ExplicitRungeKutta, ForwardEuler, Heun, Midpoint
from .symplectic import Leapfrog, StormerVerlet, SymplecticEuler, two_step_amplification
from .catalogue import TABLEAUX, get_tableau
from .tableau import ButcherTableau, OrderCondition, StabilityFunction

__all__ = [
    "ADAPTIVE_METHODS", "TorchDiffEq", "Scheme", "stage_time", "available_schemes", "get_scheme",
    "names_accepting", "register_scheme", "unregister_scheme", "RK4", "ExplicitRungeKutta", "ForwardEuler", "Heun",
    "Midpoint", "ReversibleRungeKutta", "Leapfrog", "StormerVerlet", "SymplecticEuler", "two_step_amplification", "ButcherTableau",
    "OrderCondition", "StabilityFunction", "TABLEAUX", "get_tableau",
]
