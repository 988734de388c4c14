"""Lanczos tridiagonalisation of a symmetric batched operator, fully reorthogonalised (Golub & Van
Loan, *Matrix Computations*, 4th ed., §10.1): the nodes and weights of stochastic Lanczos
quadrature (:mod:`~pdenet_analysis.analysis.density`)."""

from __future__ import annotations

import numpy as np
import torch

from ..threads import with_serial_blas
from .basis import Basis, replace_breakdowns, row_norms


@with_serial_blas
def lanczos_tridiagonal(matvec, v0: torch.Tensor, m: int) -> tuple[np.ndarray, np.ndarray]:
    """m steps of Lanczos on a symmetric operator from the (batch, n) start vectors ``v0``
    (fully reorthogonalised). Returns the diagonals (batch, m') and off-diagonals (batch, m'−1)
    of the tridiagonal T, m' ≤ m (fewer when every example's Krylov space became invariant)."""
    batch, n = v0.shape
    m = min(m, n)
    Q = Basis(v0, capacity=m + 1)
    q = v0 / row_norms(v0).unsqueeze(-1)
    Q.append(q)
    a_list, b_list = [], []
    for j in range(m):
        w = matvec(q)
        a = (w * q).sum(-1)
        w = Q.orthogonalise(w)
        a_list.append(a.cpu().double().numpy())
        if j == m - 1:
            break
        beta = row_norms(w)
        if bool((beta <= 1e3 * torch.finfo(w.dtype).eps * a.abs().max().clamp_min(1e-300)).all()):
            break
        # an example whose space is invariant gets β = 0 and a fresh orthogonal direction
        q, beta = replace_breakdowns(w, beta, a.abs().max(), Q, torch.Generator().manual_seed(j))
        b_list.append(beta.cpu().double().numpy())
        Q.append(q)
    alphas = np.stack(a_list, 1)
    betas = np.stack(b_list, 1) if b_list else np.zeros((batch, 0))
    return alphas, betas
