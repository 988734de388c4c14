"""The certificates of the conditioning analysis: forward residuals of singular triplets, the
rounding of one product, lower bounds on σ_min from a candidate's residual and from the steps one
by one, and the exact inverse of a forward-Euler flow through the active units."""

from __future__ import annotations

import numpy as np
import torch

from ..krylov import golub_kahan
from ..linear import ChainOperator
from ..reduced_inverse import active_forms, reduced_step_inverse


def forward_residual(J, sigma: np.ndarray, right: torch.Tensor, left: torch.Tensor) -> np.ndarray:
    """max(‖J r − σ l‖, ‖Jᵀ l − σ r‖)/σ for unit r (right) and l (left) singular vectors, per example."""
    s = torch.as_tensor(sigma, dtype=right.dtype, device=right.device).unsqueeze(-1)
    r = right / right.norm(dim=-1, keepdim=True)
    l_ = left / left.norm(dim=-1, keepdim=True)
    a = (J.matvec(r) - s * l_).norm(dim=-1)
    b = (J.rmatvec(l_) - s * r).norm(dim=-1)
    return (torch.maximum(a, b) / s.squeeze(-1).clamp_min(1e-300)).cpu().double().numpy()


def reduced_inverse_flow(disc, max_rows: int, sparse_max_rows: int, progress=None) -> ChainOperator | None:
    """J_Φ⁻¹ = S_0⁻¹ ··· S_{N−1}⁻¹ with every S_j⁻¹ exact (:mod:`.reduced_inverse`), or None
    where a step does not reduce. ``progress(where)`` after each example's factorisation."""
    forms = []
    for j in range(disc.n_steps):  # every step qualifies before any is factorised
        f = active_forms(disc, j, max(max_rows, sparse_max_rows))
        if f is None:
            return None
        forms.append(f)
    steps = []
    for j in range(disc.n_steps):
        tick = (lambda b, rows, j=j: progress(f"step {j + 1}/{disc.n_steps}, example {b + 1}/{disc.batch} "
                                              f"({rows:,} active units factorised)")) if progress else None
        inv = reduced_step_inverse(disc, j, max_rows, sparse_max_rows, progress=tick, forms=forms[j])
        if inv is None:
            return None
        steps.append(inv)
    return ChainOperator(steps[::-1])  # S_{N−1}⁻¹ acts first


def stepwise_bounds(reduced: ChainOperator, disc, rows: list[int], tol: float = 1e-8, max_iter: int = 300,
                    seed: int = 0) -> dict:
    """Each step's extreme singular values for the examples ``rows``, and the bounds they give on
    the flow map's: σ_min(S_{N−1} ··· S_0) ≥ Π_j σ_min(S_j) and ‖S_{N−1} ··· S_0‖ ≤ Π_j ‖S_j‖.

    σ_min(S_j) is the reciprocal of σ_max(S_j⁻¹) by Golub–Kahan on the exact inverse
    (``reduced``: :func:`reduced_inverse_flow`'s chain), checked by its forward residual e_j on
    S_j, and enters the product as σ_j (1 − e_j) (a certified σ_j lies within e_j σ_j of a singular
    value); σ_max(S_j) by Golub–Kahan on S_j, entering as σ_j (1 + its residual).

    The steps are far better conditioned than their product, so they can be certified where the
    flow's σ_min cannot: at STL-10's first unit at initialisation σ_min(S_j) = 7.2·10⁻⁶,
    6.7·10⁻⁶ and 2.7·10⁻⁶ for the three steps (e_j ≤ 2.4·10⁻⁹), so σ_min of the flow lies between
    1.3·10⁻¹⁶ and the 3.7·10⁻¹¹ that bounds it from above.

    Returns a dict of arrays over ``rows``: ``sigma_min``/``residual_min`` and
    ``sigma_max``/``residual_max`` (len(rows), N), ``lower`` and ``upper`` (len(rows),): ``lower``
    is 0 and ``upper`` inf for an example with a step that did not pass its check (residual above
    max(10·tol, 10⁻⁶), or Golub–Kahan not converged)."""
    steps = reduced.factors[::-1]  # S_0⁻¹ first
    n, N = len(rows), len(steps)
    out = {key: np.zeros((n, N)) for key in ("sigma_min", "residual_min", "sigma_max", "residual_max")}
    top_ok = np.ones(n, dtype=bool)
    for j, inv in enumerate(steps):
        S = disc.step_jacobian(j).restrict(rows)
        r = golub_kahan(inv.restrict(rows), k=1, which="largest", tol=max(tol * 1e-2, 1e-14), max_iter=max_iter,
                        vectors=True, seed=seed)
        out["sigma_min"][:, j] = 1.0 / np.maximum(r.values[:, 0], 1e-300)
        out["residual_min"][:, j] = forward_residual(S, out["sigma_min"][:, j], r.left[:, 0], r.right[:, 0])
        top = golub_kahan(S, k=1, which="largest", tol=tol, max_iter=max_iter, seed=seed)
        out["sigma_max"][:, j], out["residual_max"][:, j] = top.values[:, 0], top.residuals[:, 0]
        top_ok &= np.array([st == "converged" for st in top.status])
    ok = np.all(out["residual_min"] < max(10 * tol, 1e-6), axis=1)
    out["lower"] = np.where(ok, np.prod(out["sigma_min"] * np.clip(1.0 - out["residual_min"], 0.0, 1.0), axis=1), 0.0)
    out["upper"] = np.where(top_ok, np.prod(out["sigma_max"] * (1.0 + out["residual_max"]), axis=1), np.inf)
    return out


def product_rounding(J, right: torch.Tensor, left: torch.Tensor) -> np.ndarray:
    """An estimate of the absolute rounding of one product with J at unit vectors along ``right``
    (J r) and ``left`` (Jᵀ l), per example: the larger change of J r and Jᵀ l when r and l are
    scaled by 1/3 (the same vectors in exact arithmetic, another rounding)."""
    r = right / right.norm(dim=-1, keepdim=True)
    l_ = left / left.norm(dim=-1, keepdim=True)
    a = (J.matvec(r) - 3.0 * J.matvec(r / 3.0)).norm(dim=-1)
    b = (J.rmatvec(l_) - 3.0 * J.rmatvec(l_ / 3.0)).norm(dim=-1)
    return torch.maximum(a, b).cpu().double().numpy()


def residual_lower_bound(J, sigma: np.ndarray, right: torch.Tensor, left: torch.Tensor, residual: np.ndarray,
                         safety: float = 10.0, rounding: np.ndarray | None = None) -> np.ndarray:
    """σ (1 − e − safety·d), or 0 where that is not positive: a lower bound on σ_min for a
    candidate (σ, right, left) whose forward residual e (:func:`forward_residual`) is too large
    to call the value converged but far smaller than 1. A singular value of J lies within e σ of
    σ when e is exact; the computed e is off by the rounding of one product, which d estimates:
    the relative change of J r and Jᵀ l when r and l are scaled by 1/3 (:func:`product_rounding`
    over σ). That the value found is the smallest is the Krylov iteration's claim, as for every
    σ_min here (the probable bracket, :func:`_probable_bracket`, does without it). At STL-10's first
    unit at initialisation: e = 1.4·10⁻⁴ at σ = 3.7·10⁻¹¹ (κ ≈ 2.9·10¹⁰, beyond the acceptance),
    and σ_min is pinned between 3.6741·10⁻¹¹ and 3.6750·10⁻¹¹. ``rounding``: the
    :func:`product_rounding` of these vectors, if the caller has it."""
    d = (product_rounding(J, right, left) if rounding is None else rounding) / np.maximum(sigma, 1e-300)
    return np.where(np.isfinite(sigma), np.maximum(sigma * (1.0 - residual - safety * d), 0.0), 0.0)
