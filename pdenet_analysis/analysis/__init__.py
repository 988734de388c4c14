"""Analysis of any operator + scheme: stability (step maps and layer spectra), conditioning,
spectral densities, reversibility, convergence and energy, each returning a :class:`Report`
(JSON, Markdown, PNG)."""

from .conditioning import conditioning
from .convergence import ConvergenceResult, convergence_study, fit_order, state_error
from .density import conv_norm, slq, spectral_density
from .eigen import EigResult, arnoldi, eigs
from .flow import energy, reversibility
from .krylov import InverseChain, RitzValues, SingularValues, batched_arnoldi, golub_kahan, gmres, lanczos_tridiagonal
from .network import feature_jacobians, features_conditioning
from .linear import JacobianOperator, ProductOperator, operator_jacobian
from .report import Report
from .stability import largest_stable_step, spectrum_along_trajectory, symmetry_defect, to_stability_variable
from .stepmap import COUNT_BUDGET, count_outside, step_map_spectra
from .steps import Discretisation, discretise, distribution

__all__ = ["conditioning", "ConvergenceResult", "convergence_study", "fit_order", "state_error", "conv_norm", "slq",
           "spectral_density", "feature_jacobians", "features_conditioning", "EigResult", "arnoldi", "eigs", "energy", "reversibility", "InverseChain", "RitzValues", "SingularValues", "batched_arnoldi",
           "golub_kahan", "gmres", "lanczos_tridiagonal", "JacobianOperator", "ProductOperator",
           "operator_jacobian", "Report", "largest_stable_step", "spectrum_along_trajectory", "symmetry_defect",
           "to_stability_variable", "COUNT_BUDGET", "count_outside", "step_map_spectra", "Discretisation", "discretise", "distribution"]
