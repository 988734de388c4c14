"""pdenet_analysis: deep residual networks read as discretised PDEs (Ruthotto & Haber, arXiv 1804.04272).

Three swappable objects — an operator (what is integrated), a scheme (how), a gradient strategy —
meet in :func:`integrate`; networks, analysis (:func:`analyze`), training and the CLI are built
on them.
"""

from . import analysis, errors, gradients, networks, operators, schemes
from .analysis import Budget, Certification, analyze
from .errors import (
    ConfigMismatchError,
    DataError,
    IncompatibleOperatorError,
    IncompatibleSchemeError,
    IntegrationError,
    InvalidArgumentError,
    MissingDependencyError,
    NonFiniteError,
    PDENetError,
    ShapeError,
    TensorTypeError,
    UnknownNameError,
)
from .gradients import Adjoint, Backprop, Reversible
from .integrate import Solution, Stats, integrate, reverse
from .networks import PDEBlock, PDECNN, available_presets, build_preset
from .operators import hamiltonian, parabolic, resnet, second_order
from .schemes import ButcherTableau, available_schemes, get_scheme, get_tableau, register_scheme

__version__ = "0.1.0"

__all__ = [
    "analyze", "Budget", "Certification", "analysis", "errors", "gradients", "networks", "operators", "schemes", "ConfigMismatchError", "DataError", "IncompatibleOperatorError",
    "IncompatibleSchemeError",
    "IntegrationError", "InvalidArgumentError", "MissingDependencyError", "NonFiniteError", "PDENetError", "ShapeError", "TensorTypeError", "UnknownNameError",
    "Adjoint",
    "Backprop", "Reversible", "Solution", "Stats", "integrate", "reverse", "PDEBlock", "PDECNN",
    "available_presets", "build_preset", "hamiltonian", "parabolic", "resnet", "second_order",
    "available_schemes", "get_scheme", "register_scheme", "ButcherTableau", "get_tableau", "__version__",
]
