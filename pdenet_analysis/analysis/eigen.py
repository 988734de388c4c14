"""Extreme eigenvalues and singular values of matrix-free operators, on CPU (scipy ARPACK) or
in torch on any device (Arnoldi / Lanczos with full reorthogonalisation).

Every solver returns an :class:`EigResult` with the values, the residual norms
‖A v − λ v‖ / (‖v‖·max|λ|) (relative to the largest computed eigenvalue, so that eigenvalues near
zero, common for ReLU Jacobians, are judged on the operator's scale), and a status ("converged" when all residuals are below ``tol``, else
"not_converged"): a solver that does not converge says so and never passes off a wrong value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import InvalidArgumentError
from .threads import with_serial_blas

WHICH = ("LM", "LR", "SR", "SM")


@dataclass
class EigResult:
    values: np.ndarray
    residuals: np.ndarray
    status: str
    method: str
    n_matvecs: int = 0
    vectors: object = field(default=None, repr=False)

    def as_dict(self) -> dict:
        return dict(values=[complex(v) if np.iscomplexobj(v) else float(v) for v in np.atleast_1d(self.values)],
                    residuals=[float(r) for r in self.residuals], status=self.status, method=self.method,
                    n_matvecs=self.n_matvecs)


def _order(vals: np.ndarray, which: str) -> np.ndarray:
    key = {"LM": -np.abs(vals), "SM": np.abs(vals), "LR": -vals.real, "SR": vals.real}[which]
    return np.argsort(key, kind="stable")


def all_eigenvalues(op, symmetric: bool = False) -> np.ndarray:
    """Every eigenvalue of ``op`` from its dense matrix (small operators only)."""
    D = op.dense().detach().cpu().double().numpy()
    return np.linalg.eigvalsh(0.5 * (D + D.T)) if symmetric else np.linalg.eigvals(D)


def dense_eigvals(D: torch.Tensor) -> np.ndarray:
    """Every eigenvalue of the square matrix ``D``, computed in float64 on ``D``'s own device:
    LAPACK's geev through torch on the CPU, torch's GPU solver on CUDA. The cost is O(n³), and at
    the sizes of the exact step-map counts (thousands of rows) a GPU takes a fraction of the
    host's time (``python benchmarks/bench_analysis.py --device cuda``, its
    ``dense_eigvals_by_device`` part; docs/benchmarks.md)."""
    if D.numel() == 0:
        return np.zeros(0)
    return torch.linalg.eigvals(D.detach().double()).cpu().numpy()


def select(vals: np.ndarray, k: int, which: str) -> EigResult:
    """The k values of a complete spectrum that ``which`` asks for, as an exact (dense) result."""
    vals = vals[_order(vals, which)[:k]]
    return EigResult(vals.real if np.all(np.imag(vals) == 0) else vals, np.zeros(len(vals)), "converged", "dense",
                     len(vals))


@with_serial_blas
def arnoldi(op, k: int = 6, which: str = "LM", m: int | None = None, tol: float = 1e-8,
            symmetric: bool = False, seed: int = 0, scale: float = 0.0) -> EigResult:
    """k eigenvalues of ``op`` (with ``matvec``) by an m-step Krylov projection in torch.

    Full reorthogonalisation; for ``symmetric`` the projected matrix is symmetrised (Lanczos).
    Runs on the operator's device without leaving it; only the small m×m problem goes to numpy.
    """
    n = op.shape[1]
    m = min(n, m or max(4 * k, 60))
    g = torch.Generator(device="cpu").manual_seed(seed)
    v = torch.randn(n, generator=g, dtype=torch.float64).to(device=op.device, dtype=op.dtype)
    V = torch.zeros(m + 1, n, dtype=op.dtype, device=op.device)
    H = torch.zeros(m + 1, m, dtype=torch.float64)
    V[0] = v / v.norm()
    steps = m
    for j in range(m):
        w = op.matvec(V[j]).detach()
        for _ in range(2):  # classical Gram–Schmidt twice
            c = V[: j + 1] @ w
            w = w - V[: j + 1].T @ c
            H[: j + 1, j] += c.double().cpu()
        H[j + 1, j] = float(w.norm())
        if float(H[j + 1, j]) <= 1e-12 * float(H[: j + 1, j].abs().max().clamp_min(1e-300)):
            steps = j + 1
            break
        V[j + 1] = w / H[j + 1, j]
    Hm = H[:steps, :steps].numpy()
    if symmetric:
        Hm = 0.5 * (Hm + Hm.T)
        vals, S = np.linalg.eigh(Hm)
    else:
        vals, S = np.linalg.eig(Hm)
    idx = _order(vals, which)[:k]
    vals, S = vals[idx], S[:, idx]
    # after a breakdown (steps < m) the Krylov space is invariant and the Ritz values are exact
    beta = float(H[steps, steps - 1]) if steps == m else 0.0
    scale = max(float(np.max(np.abs(vals))), scale, 1e-300)
    res = np.abs(beta * S[-1, :]) / scale
    # an invariant Krylov space smaller than k gives exact values, but fewer than were asked for
    status = "converged" if np.all(res < tol) and len(vals) == k else "not_converged"
    return EigResult(vals, res, status, "lanczos" if symmetric else "arnoldi", steps)


@with_serial_blas
def eigs(op, k: int = 6, which: str = "LM", backend: str = "auto", tol: float = 1e-8,
         symmetric: bool = False, m: int | None = None, scale: float = 0.0, maxiter: int | None = None,
         ncv: int | None = None, dense_max: int = 0) -> EigResult:
    """k extreme eigenvalues of a matrix-free operator.

    ``backend``: "scipy" (implicitly restarted ARPACK), "torch" (one unrestarted Arnoldi/Lanczos
    run on the operator's device, a bounded-cost estimate) or "auto" = "scipy" on every device:
    the products still run where the operator lives (a GPU), and only ARPACK's restarts work on
    host copies of the vectors, O(n) bytes per product. (Without restarts, the torch run can
    leave step maps "not_converged" where ARPACK converges, as it did for the CIFAR-10
    parabolic step maps on a GPU: docs/benchmarks.md.) ``which``: LM (largest magnitude), LR (largest
    real part), SR, SM. Residuals are relative to max(max|λ|, ``scale``): pass the spectral radius as
    ``scale`` when asking for eigenvalues near zero. ARPACK's are recomputed with the operator;
    the torch path reports the Krylov estimate |β_m s_m| (exact after a breakdown). ``maxiter``
    bounds ARPACK's restarts (the result then says "not_converged"); ``ncv`` is ARPACK's Krylov
    space size (default max(2k + 1, 24)): clustered spectra need a wide one (see
    :func:`~.stepmap.count_outside`). Up to ``dense_max`` unknowns the operator is formed densely
    and all its eigenvalues computed (LAPACK), which is exact and at such sizes faster than a
    Krylov method on a clustered spectrum.
    """
    if which not in WHICH:
        raise InvalidArgumentError(f"which must be one of {WHICH}, got {which!r}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= op.shape[1]:
        raise InvalidArgumentError(f"k must be an integer between 1 and the operator's dimension {op.shape[1]}, got {k!r}")
    # no solver can resolve below the precision its matrix-vector products are computed in
    tol = max(tol, 100 * torch.finfo(getattr(op, "dtype", torch.float64)).eps)
    if backend == "auto":
        backend = "scipy"
    n = op.shape[1]
    if (n <= k + 2 or n <= dense_max) and hasattr(op, "dense"):  # the dense eigenvalues, exact
        res = select(all_eigenvalues(op, symmetric), k, which)
        res.n_matvecs = n
        return res
    if backend == "torch" or n <= k + 2:
        return arnoldi(op, k, which, m=m if n > k + 2 else n, tol=tol, symmetric=symmetric, scale=scale)
    if backend != "scipy":
        raise InvalidArgumentError(f"backend must be 'auto', 'scipy' or 'torch', got {backend!r}")
    from scipy.sparse.linalg import ArpackError, ArpackNoConvergence, eigs as sp_eigs, eigsh

    L = op.as_scipy()
    counter = {"n": 0}
    mv = L.matvec

    def counted(v):
        counter["n"] += 1
        return mv(v)

    from scipy.sparse.linalg import LinearOperator

    L2 = LinearOperator(L.shape, matvec=counted, dtype=np.float64)
    # a seeded start vector makes results reproducible; a wide Krylov space (ncv) resolves
    # multiple eigenvalues, which symmetric stencils produce
    v0 = np.random.default_rng(0).standard_normal(n)
    ncv = min(n, max(ncv or 0, 2 * k + 1, 24))
    maxiter = maxiter or max(300, 20 * k)
    try:
        if symmetric:
            sw = {"LM": "LM", "SM": "SM", "LR": "LA", "SR": "SA"}[which]
            vals, vecs = eigsh(L2, k=k, which=sw, tol=tol * 1e-2, v0=v0, ncv=ncv, maxiter=maxiter)
        else:
            vals, vecs = sp_eigs(L2, k=k, which=which, tol=tol * 1e-2, v0=v0, ncv=ncv, maxiter=maxiter)
        status = "converged"
    except ArpackNoConvergence as e:
        vals, vecs, status = e.eigenvalues, e.eigenvectors, "not_converged"
        if len(vals) == 0:  # nothing usable: the bounded-cost Krylov estimate, with its status
            return arnoldi(op, k, which, m=m, tol=tol, symmetric=symmetric, scale=scale)
    except ArpackError:  # e.g. an operator that maps the start vector to 0 (all ReLUs inactive):
        # the torch Arnoldi detects the invariant subspace and returns exact values
        return arnoldi(op, k, which, m=m, tol=tol, symmetric=symmetric, scale=scale)
    idx = _order(vals, which)
    vals, vecs = vals[idx], vecs[:, idx]
    scale = max(float(np.max(np.abs(vals))), scale, 1e-300)
    res = np.array([np.linalg.norm(L.matvec(vecs[:, i].real) + 1j * L.matvec(vecs[:, i].imag) - vals[i] * vecs[:, i])
                    / (scale * np.linalg.norm(vecs[:, i])) for i in range(len(vals))])
    if status == "converged" and not np.all(res < max(tol, 1e-6)):
        status = "not_converged"
    if np.iscomplexobj(vals) and np.all(vals.imag == 0):
        vals = vals.real
    return EigResult(vals, res, status, "arpack-eigsh" if symmetric else "arpack-eigs", counter["n"])
