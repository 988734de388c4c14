"""Test problems, Hypothesis strategies and property checks for schemes (yours and ours)."""

from .problems import (
    LinearFirstOrder,
    LinearHamiltonian,
    LinearSecondOrder,
    TimeDependentLinear,
    harmonic_oscillator,
    random_spd,
    random_stable_matrix,
)

from . import strategies
from .checks import check_adjoint, check_inversion, check_nonexpansive, check_order, linear_problem

__all__ = ["strategies", "check_adjoint", "check_inversion", "check_nonexpansive", "check_order", "linear_problem",
           "LinearFirstOrder", "LinearHamiltonian", "LinearSecondOrder", "TimeDependentLinear", "harmonic_oscillator",
           "random_spd", "random_stable_matrix"]
