"""Continuous-time operators F(t, Y; θ(t)) and their building blocks."""

from . import functional
from .layers import ResNetLayer, SymmetricLayer, TimeDependentLayer, truncated_normal_kernel
from .operators import (
    KINDS,
    OPERATOR_FACTORIES,
    FirstOrderOperator,
    HamiltonianOperator,
    Operator,
    SecondOrderOperator,
    hamiltonian,
    parabolic,
    resnet,
    second_order,
)
from .timegrid import StepTime, TimeGrid

__all__ = [
    "functional", "ResNetLayer", "SymmetricLayer", "TimeDependentLayer", "truncated_normal_kernel",
    "KINDS", "OPERATOR_FACTORIES", "FirstOrderOperator", "HamiltonianOperator", "Operator",
    "SecondOrderOperator", "hamiltonian", "parabolic", "resnet", "second_order", "StepTime", "TimeGrid",
]
