"""The whole spectrum of the layer Jacobian, not a handful of values.

* **Stochastic Lanczos quadrature** (SLQ) of the symmetric part H = (J + Jᵀ)/2: m Lanczos steps
  from each of ``n_vectors`` Rademacher vectors give Gauss nodes θ_k and weights τ_k; the
  spectral density of H is approximated by the average of Σ_k τ_k δ(x − θ_k) (Ubaru, Chen & Saad,
  SIAM J. Matrix Anal. Appl. 38, 2017). Spectral counts, such as the number of eigenvalues of H
  beyond a threshold, are estimated with their standard error over the probe vectors.
  By Bendixson's theorem every eigenvalue λ of J has λ_min(H) ≤ Re λ ≤ λ_max(H): the extreme
  eigenvalues of H (converged by Lanczos) bound the real parts of the whole complex spectrum.
* **Wide Arnoldi**: a Krylov space of ``n_arnoldi`` dimensions gives Ritz values over the whole
  complex spectrum, each with its residual (the converged ones are eigenvalues; the others show
  where the spectrum lies).
* For the parabolic operator without normalisation, a **certified bound**: ρ(∂F/∂Y) ≤ ‖K‖₂²·max σ′
  since ∂F/∂Y = −Kᵀ diag(σ′) K, so forward Euler is stable for h ≤ 2/(‖K‖₂² max σ′). ‖K‖₂ comes
  from Golub–Kahan on the convolution (and its exact transpose) at the input's image size.

The exact count of unstable modes of a scheme is the step map's (:mod:`.stepmap`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import InvalidArgumentError
from ..integrate import integrate
from ..operators import functional as F
from ..operators.layers import SymmetricLayer
from ..schemes import get_scheme
from ..schemes.base import stage_time
from .eigen import arnoldi
from .krylov import golub_kahan, lanczos_tridiagonal
from .linear import JacobianOperator, operator_jacobian
from .modes import analyses_an_operator
from ..schemes.metadata import StabilityVariable
from .results import sweepable
from .results import Result


@dataclass
class DensityResult(Result):
    """The layer Jacobian's spectrum at one step and example: SLQ nodes and weights of its
    symmetric part H, the Bendixson range of Re λ, the SLQ estimate of the eigenvalues of H below
    the scheme's real stability edge (with its standard error), the wide-Arnoldi Ritz values with
    residuals, and for the parabolic operator without normalisation the certified ‖K‖₂ bound.
    ``step_scheme`` (not saved) draws the stability region."""

    name = "density"
    scheme: str
    jacobian: str
    step: int
    example: int
    unknowns: int
    h: float
    slq: dict
    bendixson: dict
    symmetric_part_below_edge: dict
    arnoldi: dict
    parabolic_bound: list | None
    step_scheme: object = field(default=None, repr=False)
    failure: dict | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in super().to_dict().items() if k not in ("step_scheme", "failure")}


def slq(matvec, n: int, n_vectors: int = 8, m: int = 60, seed: int = 0, dtype=torch.float64, device="cpu"):
    """Gauss nodes (n_vectors, m') and weights of the spectral measure of a symmetric operator
    from Rademacher probes; weights of each probe sum to 1."""
    g = torch.Generator().manual_seed(seed)
    v0 = (torch.randint(0, 2, (n_vectors, n), generator=g) * 2 - 1).to(dtype=dtype, device=device)
    alphas, betas = lanczos_tridiagonal(matvec, v0, m)
    nodes, weights = [], []
    for a, b in zip(alphas, betas):
        T = np.diag(a) + np.diag(b, 1) + np.diag(b, -1)
        theta, S = np.linalg.eigh(T)
        nodes.append(theta)
        weights.append(S[0] ** 2)
    return np.array(nodes), np.array(weights)


def slq_count(nodes: np.ndarray, weights: np.ndarray, n: int, mask) -> tuple[float, float]:
    """Estimated number of eigenvalues in {x : mask(x)} and its standard error over the probes."""
    per_probe = n * np.array([w[mask(t)].sum() for t, w in zip(nodes, weights)])
    se = per_probe.std(ddof=1) / np.sqrt(len(per_probe)) if len(per_probe) > 1 else float("inf")
    return float(per_probe.mean()), float(se)


def conv_norm(weight: torch.Tensor, image_size: tuple[int, int], tol: float = 1e-10) -> tuple[float, float]:
    """‖K‖₂ of the 'same'-padded convolution with ``weight`` on images of ``image_size``, by
    Golub–Kahan on K and Kᵀ (exact transpose). Returns (norm, relative residual)."""
    c = weight.shape[1]
    x = torch.zeros(1, c, *image_size, dtype=weight.dtype, device=weight.device)
    K = JacobianOperator(lambda y: F.conv(y, weight.detach()), x, batched=True)
    r = golub_kahan(K, k=1, which="largest", tol=tol, max_iter=200)
    return float(r.values[0, 0]), float(r.residuals[0, 0])


def parabolic_bound(operator, image_size) -> list[dict] | None:
    """‖K(t)‖₂ per weight set of a first-order operator with a symmetric layer, and the bound
    ρ(∂F/∂Y) ≤ ‖K‖₂²·max σ′ (valid without normalisation); None for other operators."""
    layer = getattr(operator, "layer", None)
    if operator.kind != "first_order" or not isinstance(layer, SymmetricLayer):
        return None
    out = []
    for i in range(layer.grid.n_nodes):
        nrm, res = conv_norm(layer.weight[i], image_size)
        applies = not layer.normalise
        out.append(dict(node=i, norm_K=nrm, residual=res, rho_bound=nrm**2 if applies else None,
                        euler_h_bound=2.0 / nrm**2 if applies else None,
                        note="max σ′ = 1 for relu, tanh, identity" if applies else "N_tv: the bound does not apply"))
    return out


@sweepable("density")
@analyses_an_operator
def spectral_density(operator, y0, scheme="euler", *, T=None, n_steps=None, step: int = 0, example: int = 0,
                     n_vectors: int = 8, m: int = 80, n_arnoldi: int = 150, seed: int = 0) -> DensityResult:
    """Spectral density of the symmetric part of the layer Jacobian (SLQ), wide-Arnoldi Ritz
    values of the complex spectrum, Bendixson bounds and, for the parabolic operator, the ‖K‖₂
    bound — at the state of step ``step`` of the solve, for one example."""
    scheme = get_scheme(scheme)
    with torch.no_grad():
        sol = integrate(operator, y0, scheme, T=T, n_steps=n_steps, trajectory=True, check_finite=False)
    if sol.h is None:
        raise InvalidArgumentError("spectral_density needs a fixed-step solve (its states at the steps); pass a fixed-step scheme")
    h = sol.h
    state = sol.trajectory[step]
    t = stage_time(step * h, 0.0, h)
    J, how = operator_jacobian(operator, state, t, example)
    n = J.shape[1]

    def sym(V):
        return torch.stack([0.5 * (J.matvec(v) + J.rmatvec(v)) for v in V])

    nodes, weights = slq(sym, n, n_vectors=n_vectors, m=m, seed=seed, dtype=J.dtype, device=J.device)
    lam_min, lam_max = float(nodes.min()), float(nodes.max())
    ritz = arnoldi(J, k=min(n_arnoldi, n), which="LM", m=min(n_arnoldi, n), tol=1e-8)
    converged = ritz.residuals < 1e-6
    # z = hλ (first-order) or h²μ (partitioned schemes on BA / J_acc): the real interval the scheme
    # is stable on for real spectra: forward Euler [−2/h, 0], two-step schemes [−4/h², 0]
    two_step = StabilityVariable(scheme.stability_variable) is StabilityVariable.H2_LAMBDA
    edge = -4.0 / h**2 if two_step else -2.0 / h
    count, count_se = slq_count(nodes, weights, n, lambda x: x < edge)
    image_size = tuple(state[0].shape[-2:])
    bound = parabolic_bound(operator, image_size)
    return DensityResult(scheme=scheme.name, jacobian=how, step=step, example=example, unknowns=n, h=h,
                         slq=dict(nodes=nodes, weights=weights, n_vectors=n_vectors, lanczos_steps=nodes.shape[1]),
                         bendixson=dict(re_min=lam_min, re_max=lam_max),
                         symmetric_part_below_edge=dict(edge=edge, estimate=count, standard_error=count_se),
                         arnoldi=dict(values=ritz.values, residuals=ritz.residuals, n_converged=int(converged.sum()),
                                      krylov_dimension=ritz.n_matvecs),
                         parabolic_bound=bound, step_scheme=scheme)
