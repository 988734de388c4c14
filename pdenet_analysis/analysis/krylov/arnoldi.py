"""Short batched Arnoldi runs: Ritz values of every example's Hessenberg matrix with their residual
estimates, an estimate of the largest eigenvalues (not a converged eigensolver: that is
:func:`~pdenet_analysis.analysis.eigen.eigs`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..threads import with_serial_blas
from .basis import Basis, random_unit, replace_breakdowns, row_norms


@dataclass
class RitzValues:
    """Result of :func:`batched_arnoldi`, per example (rows).

    ``values``     (batch, m) Ritz values, ordered by decreasing modulus (complex).
    ``residuals``  (batch, m) |h_{m+1,m} s_{m,i}| / max|θ|: the Arnoldi residual ‖A x − θ x‖ of each
                   Ritz pair relative to the largest Ritz value (0 after an invariant subspace).
    ``steps``      Krylov dimension reached; ``n_matvecs`` products (one per step, all examples).
    """

    values: np.ndarray
    residuals: np.ndarray
    steps: int
    n_matvecs: int


@with_serial_blas
def batched_arnoldi(op, m: int = 40, seed: int = 0) -> RitzValues:
    """m steps of Arnoldi on every example of a batched operator at once (one product per step
    advances all examples), fully reorthogonalised; the Ritz values of each example's m×m
    Hessenberg matrix with their residual estimates. A short run locates the largest eigenvalues
    cheaply (an estimate, with the residual saying how far to trust it); it is not a converged
    eigensolver — :func:`~.eigen.eigs` is."""
    batch, n = op.batch, op.shape[1]
    m = max(1, min(m, n))
    g = torch.Generator().manual_seed(seed)
    Q = Basis(torch.empty(batch, n, dtype=op.dtype, device=op.device), capacity=m + 1)
    Q.append(random_unit((batch, n), op.dtype, op.device, g))
    H = np.zeros((batch, m + 1, m))
    scale = torch.zeros((), dtype=op.dtype, device=op.device)
    for j in range(m):
        w = op.matvec(Q.vectors[j])
        coeff = torch.zeros(j + 1, batch, dtype=op.dtype, device=op.device)
        for _ in range(2):  # classical Gram–Schmidt twice, per example
            c = torch.einsum("jbn,bn->jb", Q.vectors[: j + 1], w)
            w = w - torch.einsum("jb,jbn->bn", c, Q.vectors[: j + 1])
            coeff += c
        beta = row_norms(w)
        scale = torch.maximum(scale, coeff.abs().max())
        H[:, : j + 1, j] = coeff.T.cpu().double().numpy()
        if j + 1 < m:
            w, beta = replace_breakdowns(w, beta, scale, Q, g)
            Q.append(w)
        H[:, j + 1, j] = beta.cpu().double().numpy()  # 0 where a row's Krylov space became invariant
    vals, res = np.zeros((batch, m), complex), np.zeros((batch, m))
    for b in range(batch):
        theta, S = np.linalg.eig(H[b, :m, :m])
        order = np.argsort(-np.abs(theta), kind="stable")
        theta, S = theta[order], S[:, order]
        vals[b] = theta
        res[b] = np.abs(H[b, m, m - 1] * S[-1, :]) / max(float(np.abs(theta).max()), 1e-300)
    return RitzValues(vals, res, m, m)
