"""Batched Krylov solvers in torch, on any device: Golub–Kahan–Lanczos bidiagonalisation for
singular values (:mod:`.bidiagonal`) with its probable bounds (:mod:`.bounds`), short Arnoldi
runs for eigenvalue estimates (:mod:`.arnoldi`), Lanczos tridiagonalisation for quadrature
(:mod:`.lanczos`), and GMRES for linear solves and inverse chains (:mod:`.gmres`).

"Batched" means ``op.batch`` independent problems at once (one per example: see
:class:`~pdenet_analysis.analysis.linear.JacobianOperator` with ``batched=True``): vectors are
(batch, n), every inner product is taken per row, and each example has its own small projected
matrix. One operator product thus advances every example's iteration. All bases are fully
reorthogonalised (classical Gram–Schmidt, a second pass where the first cancelled, see
:meth:`.basis.Basis.orthogonalise`), so the projected matrices are accurate to round-off.

References: Golub & Kahan (1965); Golub & Van Loan, *Matrix Computations*, 4th ed., §10.4 (GKL)
and §10.1 (Lanczos); Saad & Schultz (1986) for GMRES; Larsen (1998, PROPACK) for residual
estimates of bidiagonalisation.
"""

from .arnoldi import RitzValues, batched_arnoldi
from .bidiagonal import SingularValues, golub_kahan
from .bounds import lanczos_polynomial_bound, probable_bound_at_most, ritz_rounding
from .gmres import GmresInverse, InnerSolveFailed, InverseChain, SolveInfo, gmres
from .lanczos import lanczos_tridiagonal

__all__ = ["RitzValues", "batched_arnoldi", "SingularValues", "golub_kahan", "lanczos_polynomial_bound",
           "probable_bound_at_most", "ritz_rounding", "GmresInverse", "InnerSolveFailed", "InverseChain", "SolveInfo",
           "gmres", "lanczos_tridiagonal"]
