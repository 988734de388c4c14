"""What a scheme declares about its linear stability analysis, as enums the analyses read.

* :class:`StabilityVariable` — the variable z of the scheme's stability function: z = hλ for
  one-step methods on y' = λy, z = h²λ for the two-level (partitioned) schemes on y'' = λy,
  whose stable set is the real segment [−4, 0].
* :class:`LayerJacobian` — which Jacobian of the operator's layer the analysis takes the
  eigenvalues λ of (:func:`~pdenet_analysis.analysis.linear.operator_jacobian`): ∂F/∂Y of a
  first-order field, ∂F/∂Y of Y'' = F, or the Hamiltonian's product ∂g/∂Z·∂f/∂Y.
"""

from __future__ import annotations

import numpy as np

from ..status import Word


class StabilityVariable(Word):
    H_LAMBDA = "h*lambda"
    H2_LAMBDA = "h^2*lambda"

    @property
    def power(self) -> int:
        """p in z = h^p·λ."""
        return 2 if self is StabilityVariable.H2_LAMBDA else 1

    @property
    def text(self) -> str:
        """The variable as plain text: "hλ" or "h²λ"."""
        return "h²λ" if self is StabilityVariable.H2_LAMBDA else "hλ"

    @property
    def tex(self) -> str:
        """The variable typeset for matplotlib's mathtext."""
        return r"$h^2\lambda$" if self is StabilityVariable.H2_LAMBDA else r"$h\lambda$"


class LayerJacobian(Word):
    FIELD = "J"  #: ∂F/∂Y of a first-order operator
    ACCELERATION = "J_acc"  #: ∂F/∂Y of a second-order operator Y'' = F
    PRODUCT = "BA"  #: ∂g/∂Z·∂f/∂Y of a Hamiltonian operator (Y' = f(Z), Z' = g(Y))


def stability_points(variable: StabilityVariable, mu, jacobian: LayerJacobian, h: float) -> np.ndarray:
    """The points z at which a scheme with stability variable ``variable`` is judged, for the
    eigenvalues ``mu`` of the layer Jacobian of kind ``jacobian`` at step h: z = h²μ for the
    two-level schemes; z = hμ for a one-step method on a first-order field; z = ±h√μ for a
    one-step method on the first-order form of a second-order or Hamiltonian operator (whose
    eigenvalues are the square roots of μ)."""
    mu = np.asarray(mu, dtype=complex)
    if StabilityVariable(variable) is StabilityVariable.H2_LAMBDA:
        return h * h * mu
    if LayerJacobian(jacobian) is LayerJacobian.FIELD:
        return h * mu
    root = np.sqrt(mu)
    return h * np.concatenate([root, -root])
