"""The orthonormal bases every Krylov method here builds, and the handling of breakdowns."""

from __future__ import annotations

import numpy as np
import torch


def row_norms(x: torch.Tensor) -> torch.Tensor:
    """The Euclidean norm of each row of a (batch, n) tensor."""
    return x.norm(dim=-1)


class Basis:
    """An orthonormal basis of (batch, n) vectors, stored in one growing tensor."""

    def __init__(self, like: torch.Tensor, capacity: int = 16):
        self.Q = torch.empty((capacity, *like.shape), dtype=like.dtype, device=like.device)
        self.size = 0

    def append(self, v: torch.Tensor) -> None:
        if self.size == self.Q.shape[0]:
            self.Q = torch.cat([self.Q, torch.empty_like(self.Q)])
        self.Q[self.size] = v
        self.size += 1

    @property
    def vectors(self) -> torch.Tensor:
        return self.Q[: self.size]

    def orthogonalise(self, w: torch.Tensor) -> torch.Tensor:
        """w minus its projection on the basis, per example: classical Gram–Schmidt, repeated
        once where the projection removed more than 1 − 1/√2 of some example's norm (the
        criterion of Daniel, Gragg, Kaufman & Stewart, Math. Comp. 30, 1976; two passes always
        suffice: Giraud, Langou & Rozložník, Comput. Math. Appl. 50, 2005). The recurrences of
        Golub–Kahan leave w nearly orthogonal already, so one pass — half the work over a basis
        that is hundreds of MB at the paper's sizes — is the rule there."""
        if self.size == 0:
            return w
        Q = self.vectors
        before = row_norms(w)
        w = w - torch.einsum("jb,jbn->bn", torch.einsum("jbn,bn->jb", Q, w), Q)
        if bool((row_norms(w) < before * 0.7071067811865476).any()):
            w = w - torch.einsum("jb,jbn->bn", torch.einsum("jbn,bn->jb", Q, w), Q)
        return w

    def combine(self, coeffs: np.ndarray, rows=None) -> torch.Tensor:
        """Σ_j coeffs[b, j, i] q_j[b] for each example b (of ``rows``, default all) and column i:
        (batch, k, n)."""
        c = torch.as_tensor(coeffs, dtype=self.Q.dtype, device=self.Q.device)
        Q = self.vectors[: c.shape[1]]
        return torch.einsum("bji,jbn->bin", c, Q if rows is None else Q[:, rows])

    def keep(self, rows: torch.Tensor) -> None:
        """Keep only the examples ``rows`` (the others' iterations have stopped)."""
        self.Q = self.Q[:, rows]


def random_unit(shape, dtype, device, generator) -> torch.Tensor:
    """Rows drawn uniformly on the unit sphere (in float64 on the CPU, so every device and dtype
    starts from the same vectors)."""
    v = torch.randn(shape, generator=generator, dtype=torch.float64).to(device=device, dtype=dtype)
    return v / row_norms(v).unsqueeze(-1)


def replace_breakdowns(w, norms, scale, basis, generator):
    """Rows whose new direction vanished (an invariant subspace was found) continue with a
    random direction orthogonal to the basis; their coupling coefficient is set to 0, which
    keeps the Krylov relation exact."""
    small = norms <= 1e3 * torch.finfo(w.dtype).eps * scale.clamp_min(1e-300)
    if bool(small.any()):
        fresh = basis.orthogonalise(random_unit(w.shape, w.dtype, w.device, generator))
        w = torch.where(small.unsqueeze(-1), fresh, w)
        norms = torch.where(small, torch.zeros_like(norms), norms)
        return w / row_norms(w).unsqueeze(-1), norms
    return w / norms.unsqueeze(-1), norms
