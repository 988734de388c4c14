"""Test problems, Hypothesis strategies and property checks for schemes (yours and ours), and the
meter of what autograd saves for backward (:class:`SavedBytes`) and the counter of host reads of
tensor values (:class:`HostReads`, the synchronisations that stall a GPU) and of kernel launches
(:class:`Launches`, what a GPU loop over small tensors is bound by)."""

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
from .host_reads import HostReads
from .launches import Launches
from .memory import SavedBytes

__all__ = ["strategies", "check_adjoint", "check_inversion", "check_nonexpansive", "check_order", "linear_problem",
           "LinearFirstOrder", "LinearHamiltonian", "LinearSecondOrder", "TimeDependentLinear", "harmonic_oscillator",
           "random_spd", "random_stable_matrix", "SavedBytes", "HostReads", "Launches"]
