"""Restarted GMRES on batched right-hand sides (Saad & Schultz 1986), and the inverse of a product
of one-step maps built from it (:class:`InverseChain`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..linear import ChainOperator
from ..threads import with_serial_blas
from .basis import Basis, row_norms


@dataclass
class SolveInfo:
    """What :func:`gmres` did: the final relative residual per example and the iterations."""

    residuals: np.ndarray
    iterations: int


@with_serial_blas
def gmres(matvec, b: torch.Tensor, tol: float = 1e-10, max_iter: int = 500, restart: int = 60) -> tuple[torch.Tensor, SolveInfo]:
    """Solve A x = b for each row of the (batch, n) right-hand side by restarted GMRES
    (minimal residual over the Krylov space; Arnoldi fully reorthogonalised). Stops when every
    relative residual ‖b − Ax‖/‖b‖ is below ``tol`` or after ``max_iter`` products."""
    batch = b.shape[0]
    bnorm = row_norms(b).clamp_min(1e-300)
    x = torch.zeros_like(b)
    r = b
    its = 0
    rel = np.ones(batch)
    while its < max_iter:
        beta = row_norms(r)
        rel = (beta / bnorm).cpu().double().numpy()
        if np.all(rel < tol):
            break
        Q = Basis(r, capacity=restart + 1)
        Q.append(r / beta.clamp_min(1e-300).unsqueeze(-1))
        H = np.zeros((batch, restart + 1, restart))
        beta_np = beta.cpu().double().numpy()
        y = None
        for j in range(restart):
            w = matvec(Q.vectors[j])
            its += 1
            Qv = Q.vectors
            h = torch.zeros(j + 1, batch, dtype=torch.float64)
            for _ in range(2):
                c = torch.einsum("jbn,bn->jb", Qv, w)
                w = w - torch.einsum("jb,jbn->bn", c, Qv)
                h += c.cpu().double()
            H[:, : j + 1, j] = h.T.numpy()
            hn = row_norms(w)
            H[:, j + 1, j] = hn.cpu().double().numpy()
            Q.append(w / hn.clamp_min(1e-300).unsqueeze(-1))
            e1 = np.zeros(j + 2)
            y, res = [], np.zeros(batch)
            for bb in range(batch):
                rhs = e1.copy()
                rhs[0] = beta_np[bb]
                yy = np.linalg.lstsq(H[bb, : j + 2, : j + 1], rhs, rcond=None)[0]
                res[bb] = np.linalg.norm(H[bb, : j + 2, : j + 1] @ yy - rhs)
                y.append(yy)
            rel = res / bnorm.cpu().double().numpy()
            if np.all(rel < tol) or its >= max_iter or bool((hn <= 1e-300).all()):
                break
        coeff = torch.as_tensor(np.stack(y), dtype=b.dtype, device=b.device)  # (batch, j+1)
        x = x + torch.einsum("bj,jbn->bn", coeff, Q.vectors[: coeff.shape[1]])
        r = b - matvec(x)
        its += 1
    rel = (row_norms(r) / bnorm).cpu().double().numpy()
    return x, SolveInfo(rel, its)


class InnerSolveFailed(RuntimeError):
    """A GMRES solve of :class:`InverseChain` missed its tolerance by more than 100×."""


class GmresInverse:
    """S⁻¹ of one factor S by GMRES to relative residual ``tol`` (the transpose solves with Sᵀ);
    what the solves achieved goes into the ``stats`` dict it shares with its chain. A solve that
    misses ``tol`` by more than 100× within ``max_iter`` products raises :class:`InnerSolveFailed`."""

    def __init__(self, S, tol: float, max_iter: int, stats: dict):
        self.S, self.tol, self.max_iter, self.stats = S, tol, max_iter, stats
        self.shape = (S.shape[1], S.shape[0])
        self.dtype, self.device, self.batch, self.batched = S.dtype, S.device, S.batch, S.batched

    def _solve(self, apply, v):
        x, info = gmres(apply, v, tol=self.tol, max_iter=self.max_iter)
        self.stats["max_residual"] = max(self.stats["max_residual"], float(info.residuals.max()))
        self.stats["inner_iterations"] += info.iterations
        if self.stats["max_residual"] > 100 * self.tol:
            raise InnerSolveFailed(f"GMRES reached relative residual {self.stats['max_residual']:.2e} > 100 × "
                                   f"{self.tol:.1e} in {self.max_iter} products")
        return x

    def matvec(self, v):
        return self._solve(self.S.matvec, v)

    def rmatvec(self, w):
        return self._solve(self.S.rmatvec, w)

    def restrict(self, rows) -> "GmresInverse":
        return GmresInverse(self.S.restrict(rows), self.tol, self.max_iter, self.stats)


class InverseChain(ChainOperator):
    """(S_{N−1} ··· S_1 S_0)⁻¹ = S_0⁻¹ S_1⁻¹ ··· S_{N−1}⁻¹, matrix-free: each factor (a one-step map,
    close to the identity when h is small) is inverted by GMRES (:class:`GmresInverse`) to relative
    residual ``tol``. ``max_residual`` and ``inner_iterations`` record what the solves achieved. A
    solve that misses ``tol`` by more than 100× raises :class:`InnerSolveFailed` at once (a nearly
    singular factor, as forward Euler at h = 1 on a mode with hλ ≈ −1 makes): the caller then
    reports a bound instead of spending the budget."""

    def __init__(self, factors: list, tol: float = 1e-12, max_iter: int = 150, _stats: dict | None = None):
        self.step_maps, self.tol, self.max_iter = list(factors), tol, max_iter
        self._stats = {"max_residual": 0.0, "inner_iterations": 0} if _stats is None else _stats
        super().__init__([GmresInverse(S, tol, max_iter, self._stats) for S in reversed(self.step_maps)])

    @property
    def max_residual(self) -> float:
        return self._stats["max_residual"]

    @property
    def inner_iterations(self) -> int:
        return self._stats["inner_iterations"]

    def restrict(self, rows) -> "InverseChain":
        """The chain of the examples ``rows`` only; its solves count in this chain's statistics."""
        return InverseChain([S.restrict(rows) for S in self.step_maps], self.tol, self.max_iter, _stats=self._stats)
