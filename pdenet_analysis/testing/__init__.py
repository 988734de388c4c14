"""Test problems, property checks, Hypothesis properties and strategies and a one-call certificate
for schemes (yours and ours), and the meter of what autograd saves for backward
(:class:`SavedBytes`) and the counter of host reads of tensor values (:class:`HostReads`, the
synchronisations that stall a GPU) and of kernel launches (:class:`Launches`, what a GPU loop
over small tensors is bound by).

Everything but ``strategies`` works without Hypothesis; ``strategies`` and the ``*_property``
functions need it (``pip install hypothesis``, or the project's ``[test]`` extra) and say so
when it is missing."""

from .problems import (
    LinearFirstOrder,
    LinearHamiltonian,
    LinearSecondOrder,
    TimeDependentLinear,
    harmonic_oscillator,
    random_spd,
    random_stable_matrix,
)

from .certificate import SchemeCertificate, certify_scheme, stepped_stability_function
from .checks import check_adjoint, check_inversion, check_nonexpansive, check_order, linear_problem, observed_orders
from .host_reads import HostReads
from .launches import Launches
from .memory import SavedBytes
from .properties import check_local_error_ratio, inversion_property, local_error, local_error_property


def __getattr__(name):
    """``strategies`` on first use, so that the rest imports without Hypothesis."""
    if name == "strategies":
        try:
            import hypothesis  # noqa: F401
        except ImportError as exc:
            from ..errors import MissingDependencyError

            raise MissingDependencyError("pdenet_analysis.testing.strategies needs Hypothesis: pip install hypothesis "
                                         "(or pip install 'pdenet-analysis[test]')") from exc
        import importlib

        return importlib.import_module(f"{__name__}.strategies")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["strategies", "certify_scheme", "SchemeCertificate", "stepped_stability_function", "check_adjoint",
           "check_inversion", "check_nonexpansive", "check_order", "observed_orders", "linear_problem",
           "check_local_error_ratio", "local_error", "local_error_property", "inversion_property",
           "LinearFirstOrder", "LinearHamiltonian", "LinearSecondOrder", "TimeDependentLinear", "harmonic_oscillator",
           "random_spd", "random_stable_matrix", "SavedBytes", "HostReads", "Launches"]
