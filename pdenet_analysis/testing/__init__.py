"""Test problems, Hypothesis strategies and property checks for schemes (yours and ours)."""

from .problems import (
    LinearFirstOrder,
    LinearHamiltonian,
    LinearSecondOrder,
    harmonic_oscillator,
    random_spd,
    random_stable_matrix,
)

__all__ = ["LinearFirstOrder", "LinearHamiltonian", "LinearSecondOrder", "harmonic_oscillator",
           "random_spd", "random_stable_matrix"]
