"""Time-stepping schemes, independent of the operators they integrate."""

from .adaptive import ADAPTIVE_METHODS, TorchDiffEq
from .base import Scheme, stage_time
from .registry import available_schemes, get_scheme, names_accepting, register_scheme, unregister_scheme
from .reversible_rk import ReversibleRungeKutta
from .runge_kutta import RK4, ExplicitRungeKutta, ForwardEuler, Heun, Midpoint
from .symplectic import Leapfrog, StormerVerlet, SymplecticEuler, two_step_amplification
from .tableau import ButcherTableau

__all__ = [
    "ADAPTIVE_METHODS", "TorchDiffEq", "Scheme", "stage_time", "available_schemes", "get_scheme",
    "names_accepting", "register_scheme", "unregister_scheme", "RK4", "ExplicitRungeKutta", "ForwardEuler", "Heun",
    "Midpoint", "ReversibleRungeKutta", "Leapfrog", "StormerVerlet", "SymplecticEuler", "two_step_amplification", "ButcherTableau",
]
