"""Analysis of any operator + scheme: spectra, stability, conditioning, reversibility,
convergence and energy, each returning a :class:`Report` (JSON, Markdown, PNG)."""

from .convergence import ConvergenceResult, convergence_study, fit_order, state_error
from .eigen import EigResult, arnoldi, eigs, extreme_singular_values
from .flow import conditioning, energy, reversibility
from .linear import JacobianOperator, ProductOperator, operator_jacobian
from .report import Report
from .stability import largest_stable_step, spectrum_along_trajectory, symmetry_defect, to_stability_variable

__all__ = ["ConvergenceResult", "convergence_study", "fit_order", "state_error", "EigResult", "arnoldi", "eigs",
           "extreme_singular_values", "conditioning", "energy", "reversibility", "JacobianOperator", "ProductOperator",
           "operator_jacobian", "Report", "largest_stable_step", "spectrum_along_trajectory", "symmetry_defect",
           "to_stability_variable"]
