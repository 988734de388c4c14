"""Stateless building blocks of the paper's layers (Ruthotto & Haber, arXiv 1804.04272 §2–§3).

All functions act on image batches ``(batch, channels, height, width)``.

* ``conv(y, w)`` is the operator K of eq. 2: a 3×3 (or k×k) convolution, stride 1, zero
  padding ``(k-1)//2``, no bias.
* ``conv_adjoint(z, w)`` is Kᵀ, the transposed convolution with the same weights and padding.
  It is the exact adjoint: ⟨K x, z⟩ = ⟨x, Kᵀ z⟩ for all x, z.
* ``tv_norm`` is the total-variation normalisation of eq. 9: each pixel's feature vector is
  divided by its Euclidean norm across channels, ``x / sqrt(Σ_c x² + ε)``, then scaled and
  shifted per channel. No mean is subtracted and examples are not coupled.
* ``symmetric_layer`` is F_sym(θ, Y) = −Kᵀ σ(N(K Y)) (eq. 7).
* ``resnet_layer`` is F(θ, Y) = K₂ σ(N(K₁ Y)) (eq. 1).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as nnf

from ..errors import UnknownNameError

Activation = Callable[[torch.Tensor], torch.Tensor]

ACTIVATIONS: dict[str, Activation] = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "identity": lambda x: x,
}


def activation(name: str) -> Activation:
    """The pointwise nonlinearity σ called ``name`` (relu, tanh or identity)."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise UnknownNameError("activation", name, ACTIVATIONS) from None


def conv(y: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """K y: convolution with ``weight`` of shape (c_out, c_in, k, k), 'same' zero padding."""
    return nnf.conv2d(y, weight, padding=weight.shape[-1] // 2)


def conv_adjoint(z: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Kᵀ z: the exact adjoint of :func:`conv` with the same ``weight``.

    For an odd square kernel this is the convolution with the kernel flipped in space and its
    channels transposed, which on the CPU in float64 (the analyses' precision) is faster than
    PyTorch's transposed convolution, and makes every Jacobian product through a layer faster
    with it (the measurement is in docs/benchmarks.md). Float32 and GPU tensors keep
    ``conv_transpose2d``."""
    k = weight.shape[-1]
    if z.dtype == torch.float64 and z.device.type == "cpu" and k % 2 and weight.shape[-2] == k:
        return nnf.conv2d(z, weight.transpose(0, 1).flip(-2, -1), padding=k // 2)
    return nnf.conv_transpose2d(z, weight, padding=k // 2)


def tv_norm(
    x: torch.Tensor, scale: torch.Tensor | None, shift: torch.Tensor | None, eps: float
) -> torch.Tensor:
    """N_tv(x) = s ⊙ x / sqrt(Σ_c x² + ε) + b  (paper eq. 9, per-channel scale s and shift b)."""
    z = x * torch.rsqrt(x.square().sum(dim=1, keepdim=True) + eps)
    if scale is not None:
        z = z * scale.view(1, -1, 1, 1)
    if shift is not None:
        z = z + shift.view(1, -1, 1, 1)
    return z


def hidden_units(y, weight, scale, shift, sigma: Activation, eps: float, normalise: bool) -> torch.Tensor:
    """σ(N(K y)), the hidden units of both layers; N = N_tv with affine parameters, or the
    identity when ``normalise`` is False."""
    z = conv(y, weight)
    return sigma(tv_norm(z, scale, shift, eps) if normalise else z)


def symmetric_layer(
    y: torch.Tensor,
    weight: torch.Tensor,
    scale: torch.Tensor | None,
    shift: torch.Tensor | None,
    sigma: Activation,
    eps: float,
    normalise: bool,
    negate: bool = False,
) -> torch.Tensor:
    """F_sym(θ, Y) = −Kᵀ σ(N(K Y))  (eq. 7); N is the identity when ``normalise`` is False.
    ``negate`` gives −F_sym = Kᵀ σ(N(K Y)) (the Hamiltonian's Z' = −F_sym(θ², Y), eq. 10).

    The sign is applied to the kernel of the readout, (−K)ᵀ, not to the output: a negation of a
    c × c × k × k kernel instead of a pass over the batch, with bit-identical results (negating
    every product negates their sum exactly)."""
    hidden = hidden_units(y, weight, scale, shift, sigma, eps, normalise)
    return conv_adjoint(hidden, weight if negate else -weight)


def resnet_layer(
    y: torch.Tensor,
    weight1: torch.Tensor,
    weight2: torch.Tensor,
    scale: torch.Tensor | None,
    shift: torch.Tensor | None,
    sigma: Activation,
    eps: float,
    normalise: bool,
) -> torch.Tensor:
    """F(θ, Y) = K₂ σ(N(K₁ Y))  (eq. 1), K₁ and K₂ independent convolutions."""
    return conv(hidden_units(y, weight1, scale, shift, sigma, eps, normalise), weight2)
