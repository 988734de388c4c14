"""Analysis of any network, block or operator with any scheme: stability (step maps and layer
spectra), conditioning of the flow map, spectral densities, reversibility, observed order and
energy.

The entry point is :func:`analyze` (also ``pdenet_analysis.analyze``): it runs every analysis
that applies and returns typed results, which render as reports (JSON, Markdown, PNG) in a
separate step. Each analysis is also a function of its own; all take the same two option
objects, :class:`Certification` (how sure) and :class:`Budget` (how much work).
"""

import importlib
import warnings

from .api import Analysis, UnitAnalysis, analyze
from .conditioning import ConditioningResult, conditioning
from .convergence import ConvergenceResult, convergence_study, fit_order
from .density import DensityResult, spectral_density
from .flow import EnergyResult, ReversibilityResult, energy, reversibility
from .network import FeaturesResult, features_conditioning
from .options import Budget, Certification
from .report import Report
from .results import Failed, Result
from .stability import StabilityResult, largest_stable_step, spectrum_along_trajectory, stability
from .steps import Discretisation, discretise

__all__ = ["analyze", "Analysis", "UnitAnalysis", "Certification", "Budget", "stability", "conditioning",
           "spectral_density", "reversibility", "energy", "convergence_study", "features_conditioning", "discretise",
           "Discretisation", "largest_stable_step", "fit_order", "Result", "Failed", "Report", "StabilityResult",
           "ConditioningResult", "DensityResult", "ReversibilityResult", "EnergyResult", "ConvergenceResult",
           "FeaturesResult"]

#: names this package exported before its entry point was :func:`analyze`, and the modules that
#: hold them now: still importable from here, with a DeprecationWarning naming the module
_MOVED = {
    "state_error": "convergence", "conv_norm": "density", "slq": "density", "EigResult": "eigen", "arnoldi": "eigen",
    "eigs": "eigen", "InverseChain": "krylov", "RitzValues": "krylov", "SingularValues": "krylov",
    "batched_arnoldi": "krylov", "golub_kahan": "krylov", "gmres": "krylov", "lanczos_tridiagonal": "krylov",
    "feature_jacobians": "network", "JacobianOperator": "linear", "ProductOperator": "linear",
    "operator_jacobian": "linear", "symmetry_defect": "stability", "to_stability_variable": "stability",
    "COUNT_BUDGET": "options", "count_outside": "stepmap", "step_map_spectra": "stepmap", "distribution": "steps",
}


def __getattr__(name: str):
    if name in _MOVED:
        module = f"{__name__}.{_MOVED[name]}"
        warnings.warn(f"pdenet_analysis.analysis.{name} is an internal name now: import it from {module}",
                      DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
