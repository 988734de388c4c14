"""Conditioning of a block's flow map Φ: Y₀ ↦ Y(T): σ_max, σ_min, κ = σ_max/σ_min and the
finite-time Lyapunov exponents (1/T)·log σ_i, per example, each with a residual and a status.

How each end of the spectrum is computed (never by squaring κ):

* σ_max and the top k: Golub–Kahan–Lanczos bidiagonalisation of J_Φ (:func:`~.krylov.golub_kahan`).
* σ_min and the bottom k, by the first route that applies:

  1. ``"dense"`` — when the state has at most ``dense_max`` unknowns per example: J_Φ is formed
     column by column (n batched Jacobian-vector products) and its SVD taken. Exact.
  2. ``"inverse-map"`` — reversible schemes whose internal state the first-order state determines
     (``Scheme.internal_from_state``; map "state"): σ_min(J_Φ) = 1/σ_max(J_Φ⁻¹), with J_Φ⁻¹ the
     Jacobian of the exact inverse map, products through the inverse steps. Exact and as cheap
     as σ_max.
  3. ``"reduced-inverse"`` — forward Euler on a first-order block whose layer has hidden units
     (the parabolic network and the ResNet), with at most ``reduced_sparse_max`` active units per
     example and step (a dense LU up to ``reduced_dense_max``, SuperLU above):
     σ_min(J_Φ) = 1/σ_max(J_Φ⁻¹) with each S_j⁻¹ exact by the Woodbury identity through the
     active units (:mod:`.reduced_inverse`). Exact, and it does not depend on S_j being well
     conditioned, which at h = 1 on a trained network it is not.
  4. ``"inverse-iteration"`` — otherwise: GKL on J_Φ⁻¹ = Φ_0'⁻¹ ··· Φ_{N−1}'⁻¹, each one-step
     Jacobian inverted by GMRES with relative residual ``inner_tol`` (which stalls where a step
     map is nearly singular: the result is then a bound, see below).

  Whatever the route, a value is reported "converged" only if the singular triplet passes a
  residual check with the *forward* operator: ‖J u − σ v‖ and ‖Jᵀ v − σ u‖ below ``tol``·σ, which
  certifies that a singular value of J_Φ lies within that distance, independently of the inner
  solves (accepted at max(10·tol, 1e-6) relative: below about ε·κ no product can go).
  Otherwise the smallest of the certified upper bounds is reported with status "bound":
  σ_min ≤ value, κ ≥ value. Those bounds are a Ritz value of J_Φ from GKL (Ritz values
  interlace) and, where an inverse route produced a candidate vector u, ‖J_Φ u‖/‖u‖: where κ
  exceeds about 10¹⁰ no residual can certify a value, but this product still pins σ_min from
  above. κ is then bounded from above as well, by the larger of two lower bounds on σ_min over
  a certified upper bound on σ_max (``sigma_min_lower``, ``sigma_max_upper``,
  ``condition_upper`` per example): the candidate's own residual, σ(1 − e − 10·d) with d the
  rounding of a product (:func:`residual_lower_bound`: a residual too large to call the value
  converged can still pin it to a few digits), and, on the reduced-inverse route, the steps one
  by one (:func:`stepwise_bounds`): σ_min(J_Φ) ≥ Π_j σ_min(S_j) and σ_max(J_Φ) ≤ Π_j ‖S_j‖ (not
  computed for an example whose σ_max is converged and whose σ_min the candidate's residual
  already pins to 1 %: listed in ``stepwise_skipped``). Each upper bound on σ_min carries its
  rounding (:func:`~.krylov.ritz_rounding`, :func:`product_rounding`).

Every one of those statements also rests on the Krylov iteration's claim that no larger σ_max
(smaller σ_min) was missed. The probable bracket does without it (``sigma_max_upper_probable``,
``sigma_min_lower_probable``, ``condition_upper_probable``, :func:`_probable_bracket`): from
each Golub–Kahan run's Lanczos polynomial, bounds that fail with probability at most δ/2 each
over the random start vector (δ = ``failure_probability``, so that per example the bracket on κ
fails with probability at most δ), whatever the spectrum, converged or not
(:func:`~.krylov.lanczos_polynomial_bound`; STL-10's first unit at initialisation:
2.93314·10¹⁰ ≤ κ ≤ 2.93588·10¹⁰ at δ = 10⁻⁶).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import (IncompatibleSchemeError, InvalidArgumentError, require_probability, require_seed,
                      require_tolerance)
from ..schemes.base import Scheme
from .krylov import InnerSolveFailed, InverseChain, golub_kahan, ritz_rounding
from .linear import ChainOperator
from .modes import analyses_an_operator
from .precision import UNIT_ROUNDOFF, dtype_named
from .reduced_inverse import REDUCED_SPARSE_MAX, active_forms, reduced_step_inverse
from .report import Report, sweepable
from .stepmap import REDUCED_DENSE_MAX
from .steps import discretise, distribution, select_examples


def _forward_residual(J, sigma: np.ndarray, right: torch.Tensor, left: torch.Tensor) -> np.ndarray:
    """max(‖J r − σ l‖, ‖Jᵀ l − σ r‖)/σ for unit r (right) and l (left) singular vectors, per example."""
    s = torch.as_tensor(sigma, dtype=right.dtype, device=right.device).unsqueeze(-1)
    r = right / right.norm(dim=-1, keepdim=True)
    l_ = left / left.norm(dim=-1, keepdim=True)
    a = (J.matvec(r) - s * l_).norm(dim=-1)
    b = (J.rmatvec(l_) - s * r).norm(dim=-1)
    return (torch.maximum(a, b) / s.squeeze(-1).clamp_min(1e-300)).cpu().double().numpy()


METHODS = ("auto", "dense", "inverse-map", "reduced-inverse", "inverse-iteration", "golub-kahan")


def _reduced_inverse_flow(disc, max_rows: int, sparse_max_rows: int, progress=None) -> ChainOperator | None:
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
    (``reduced``: :func:`_reduced_inverse_flow`'s chain), checked by its forward residual e_j on
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
        out["residual_min"][:, j] = _forward_residual(S, out["sigma_min"][:, j], r.left[:, 0], r.right[:, 0])
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
    candidate (σ, right, left) whose forward residual e (:func:`_forward_residual`) is too large
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


def _smallest(J, disc, map, k, tol, inner_tol, dense_max, max_iter, method="auto", reduced_dense_max=REDUCED_DENSE_MAX,
              reduced_sparse_max=REDUCED_SPARSE_MAX, progress=None, top_certified=None, top_norm=None, seed=0):
    """(values (batch, k) ascending, residuals, status per example, method, extra info).

    ``top_norm``: per example an estimate of ‖J‖ (σ_max's Ritz value), which scales the rounding
    added to an upper bound on σ_min. ``top_certified``: per example, whether σ_max is converged;
    where it is and the candidate's residual already pins an uncertified σ_min to 1 %, the steps'
    bounds (:func:`stepwise_bounds`) could tighten nothing that matters and are not computed
    (``stepwise_skipped``)."""
    batch, n = J.batch, J.shape[1]
    if method == "dense" or method == "auto" and n <= dense_max:
        D = J.dense()
        s = torch.linalg.svdvals(D).cpu().double().numpy()  # descending
        return s[:, ::-1][:, :k].copy(), np.zeros((batch, k)), ["converged"] * batch, "dense", {"dense_sigma_max": s[:, 0]}
    sch = disc.step_scheme
    plain = type(sch).init is Scheme.init and type(sch).to_state is Scheme.to_state
    block_map = map == "block" and disc.operator.kind == "second_order"
    invertible = sch.reversible and sch.internal_from_state  # Φ⁻¹ on the first-order state by inverse steps
    if method == "inverse-map" and not (invertible and map == "state"):
        raise IncompatibleSchemeError(f"the inverse-map route needs a reversible scheme whose internal state the "
                                      f"first-order state determines, and map='state'; {sch.name!r} with map {map!r} "
                                      "does not qualify: use method='inverse-iteration' or 'golub-kahan'")
    if method in ("inverse-iteration", "reduced-inverse") and (block_map or not plain):
        raise IncompatibleSchemeError(f"the {method} route inverts a product of one-step maps, which needs a scheme "
                                      "whose internal state is the first-order state and map='state'")
    if method == "golub-kahan" or block_map or not (invertible or plain):
        # Y₀ ↦ Y_N of a second-order block is a corner of the state map, not a product of steps
        lo = golub_kahan(J, k=k, which="smallest", tol=tol, max_iter=max_iter, seed=seed)
        status = ["converged" if s_ == "converged" else "bound" for s_ in lo.status]
        if top_norm is not None:  # a bound is a bound only with its rounding (see below)
            pad = ritz_rounding(lo.example_iterations, UNIT_ROUNDOFF[dtype_named(J.dtype)[0]]) * top_norm
            lo.values = np.where(np.array(status)[:, None] == "bound", lo.values + pad[:, None], lo.values)
        return lo.values, lo.residuals, status, f"golub-kahan ({lo.iterations} iterations)", {}
    info = {}
    reduced = None
    if method == "reduced-inverse" or method == "auto" and not invertible:
        reduced = _reduced_inverse_flow(disc, reduced_dense_max, reduced_sparse_max, progress)
        if reduced is None and method == "reduced-inverse":
            raise IncompatibleSchemeError(f"the reduced-inverse route needs forward Euler on a first-order block whose "
                                          f"layer has hidden units, with at most "
                                          f"{max(reduced_dense_max, reduced_sparse_max)} active units per example and "
                                          f"step; {sch.name!r} here does not qualify: use method='inverse-iteration' "
                                          "or raise reduced_sparse_max")
    if reduced is not None:
        rows = [r for S in reduced.factors for r in S.rows]
        lu = "dense LU" if max(rows) <= reduced_dense_max else \
            ("sparse LU" if min(rows) > reduced_dense_max else "dense and sparse LU")
        inv, method = reduced, (f"reduced-inverse (S_j⁻¹ exact by Woodbury through {min(rows)}–{max(rows)} active "
                                f"units, {lu})")
        info.update(reduced_rows_max=max(rows), reduced_products=sum(S.products for S in reduced.factors))
    elif invertible and map == "state" and method != "inverse-iteration":
        inv, method = disc.inverse_flow_jacobian(), "inverse-map"
    else:
        factors = [disc.step_jacobian(j) for j in range(disc.n_steps)]
        inv, method = InverseChain(factors, tol=inner_tol), "inverse-iteration (GMRES per step)"
    try:
        # a relative residual e of J⁻¹'s triplet is at most e·κ_i of J's (σ_max(J)/σ_i): converge J⁻¹'s
        # 100× tighter than asked, a few more iterations, so that the forward check below passes
        r = golub_kahan(inv, k=k, which="largest", tol=max(tol * 1e-2, 1e-14), max_iter=max_iter, vectors=True,
                        seed=seed)
        sigma = 1.0 / np.maximum(r.values, 1e-300)
        # J⁻¹v = s u, J⁻ᵀu = s v  ⇔  J u = (1/s) v, Jᵀ v = (1/s) u: u is J's right vector, v its left
        res = np.stack([_forward_residual(J, sigma[:, i], r.left[:, i], r.right[:, i]) for i in range(k)], 1)
        # the forward residual certifies a singular value within res·σ of σ; it cannot go below about
        # ε·κ (a backward-stable product), so accept 10·tol or 1e-6 relative, whichever is larger
        status = ["converged" if np.all(res[b] < max(10 * tol, 1e-6)) else "bound" for b in range(batch)]
        info["inverse_iterations"] = r.iterations
        candidate = r.left[:, 0]  # J's right vector for σ_min, certified or not
        partner = r.right[:, 0]  # and its left vector
        exact = not isinstance(inv, InverseChain)
        # a product's rounding at the candidate (absolute, per example), for the bounds below; 4 products, so
        # only where one of them is wanted
        rounding = product_rounding(J, candidate, partner) if exact or "bound" in status else None
        if exact:  # an exact inverse (up to rounding): a linear operator for the bound,
            # which holds for the inverse as computed: widened by how far the candidate is from J's (its forward
            # residual and a product's rounding, as residual_lower_bound)
            info["inverse_run"] = r
            info["candidate_error"] = res[:, 0] + 10.0 * rounding / np.maximum(sigma[:, 0], 1e-300)
    except InnerSolveFailed as exc:
        sigma, res, status = np.full((batch, k), np.inf), np.full((batch, k), np.inf), ["bound"] * batch
        info["inner_failure"] = str(exc)
        candidate = partner = None
    if isinstance(inv, InverseChain):
        info.update(inner_max_residual=inv.max_residual, inner_iterations=inv.inner_iterations, inner_tol=inner_tol)
    if any(s_ != "converged" for s_ in status):
        # keep only what is certain: GKL's smallest Ritz values of J are upper bounds on σ_min, and so is
        # ‖J u‖/‖u‖ for any u, each up to rounding (the Ritz values' ritz_rounding, about 10·j·u·‖J‖, one
        # product's for ‖J u‖), which is added: a float32 Ritz value fell to 2e-15 where σ_min was 6.7e-6. At the
        # inverse's vector, where κ is too large for any forward residual to certify (ε·κ above the acceptance),
        # ‖J u‖ is far tighter (STL-10's first unit at initialisation: 3.7e-11 against GKL's 4.4e-3)
        lo = golub_kahan(J, k=k, which="smallest", tol=tol, max_iter=max_iter, seed=seed)
        u_round = UNIT_ROUNDOFF[dtype_named(J.dtype)[0]]
        norm = top_norm if top_norm is not None else np.full(batch, np.inf)
        lo.values = lo.values + (ritz_rounding(lo.example_iterations, u_round) * norm)[:, None]
        rayleigh = np.full(batch, np.inf)
        if candidate is not None:
            u = candidate / candidate.norm(dim=-1, keepdim=True)
            rayleigh = J.matvec(u).norm(dim=-1).cpu().double().numpy() + 10.0 * np.maximum(rounding, u_round * norm)
            info["residual_lower"] = residual_lower_bound(J, sigma[:, 0], candidate, partner, res[:, 0],
                                                          rounding=rounding).tolist()
        for b in range(batch):
            if status[b] != "converged":
                inverse_res = res[b, 0]
                sigma[b], res[b] = lo.values[b], lo.residuals[b]
                if rayleigh[b] < sigma[b, 0]:
                    sigma[b, 0], res[b, 0] = rayleigh[b], inverse_res
        if candidate is None:
            method += "; uncertified examples: golub-kahan upper bound"
        else:
            method += "; uncertified examples: the smaller upper bound of golub-kahan's Ritz value and ‖J u‖/‖u‖ at " \
                      "the inverse's vector"
            info["rayleigh_upper_bound"] = rayleigh.tolist()
        if reduced is not None:  # a lower bound too, from the steps one by one (and Π_j ‖S_j‖ ≥ σ_max)
            low = info.get("residual_lower")
            pinned = [top_certified is not None and top_certified[b] and low is not None and low[b] >= 0.99 * sigma[b, 0]
                      for b in range(batch)]
            open_ = [b for b in range(batch) if status[b] != "converged" and not pinned[b]]
            info["stepwise"] = [None] * batch
            info["stepwise_skipped"] = [b for b in range(batch) if status[b] != "converged" and pinned[b]]
            if open_:
                steps = stepwise_bounds(reduced, disc, open_, tol, max_iter, seed)
                for i, b in enumerate(open_):
                    info["stepwise"][b] = {key: v[i].tolist() for key, v in steps.items()}
    return sigma, res, status, method, info


def _probable_bracket(J, top, smin, info: dict, failure_probability: float):
    """(upper bounds on σ_max, lower bounds on σ_min) per example, each failing with probability at
    most δ/2 (δ = ``failure_probability``) over the Krylov start vectors, whatever the spectrum
    (:func:`~.krylov.lanczos_polynomial_bound`), so that the bracket on κ they give fails with
    probability at most δ (the union of the two events; the runs may share their start vector):
    σ_max from its Golub–Kahan run, σ_min from that of the
    exact inverse (routes "inverse-map" and "reduced-inverse": σ_min(J) = 1/σ_max(J⁻¹); that
    bound is on the inverse as computed, so it is widened by the factor 1 − e − 10·d of
    :func:`residual_lower_bound`, the candidate's forward residual e and a product's rounding d:
    in float32, without it, the bound exceeded σ_min, tests/test_reduced_inverse.py); on the dense route
    both are the SVD's, widened by its rounding, 10·n·u·σ_max (:func:`~.krylov.ritz_rounding` with
    j = n; the SVD is backward stable), and σ_max's bound is at least the Golub–Kahan value reported,
    so that the bracket contains κ as reported (without the margins the quickstart showed
    "145.608 ≤ κ ≤ 145.608 (−7.8·10⁻¹⁶ relative)"). 0 where no lower bound is available (GMRES
    inverses are not linear operators to the bound's precision; Golub–Kahan's smallest Ritz
    values bound σ_min from above only)."""
    u = UNIT_ROUNDOFF[dtype_named(J.dtype)[0]]
    n = J.shape[1]
    if "dense_sigma_max" in info:  # the whole spectrum is known, up to the SVD's rounding
        s_max = np.maximum(info.pop("dense_sigma_max"), top.values[:, 0])
        pad = float(ritz_rounding(n, u)) * s_max
        return s_max + pad, np.maximum(smin[:, 0] - pad, 0.0)
    delta = failure_probability / 2.0  # per end: the bracket on κ fails with probability ≤ δ
    smax_hi = top.probable_upper_bound(n, delta, u)
    if "inverse_run" in info:
        inv_hi = info.pop("inverse_run").probable_upper_bound(n, delta, u)
        widen = np.clip(1.0 - info.pop("candidate_error"), 0.0, 1.0)
        smin_lo = np.where(np.isfinite(inv_hi), widen / np.maximum(inv_hi, 1e-300), 0.0)
    else:
        smin_lo = np.zeros(J.batch)
    return smax_hi, smin_lo


@sweepable("conditioning")
@analyses_an_operator
def conditioning(operator, y0, scheme="euler", *, T=None, n_steps=None, k: int = 3, tol: float = 1e-8,
                 map: str = "state", dense_max: int = 2048, inner_tol: float | None = None, max_iter: int = 300,
                 rtol: float = 1e-6, atol: float = 1e-8, examples=None, method: str = "auto",
                 failure_probability: float = 1e-6, seed: int = 0,
                 reduced_dense_max: int = REDUCED_DENSE_MAX, reduced_sparse_max: int = REDUCED_SPARSE_MAX,
                 progress=None) -> Report:
    """σ_max, σ_min, κ and FTLEs of the flow map's Jacobian for every example of ``y0``
    (all at once: the Krylov solvers are batched over examples).

    ``map``: "state" (the first-order state (Y, V) or (Y, Z)) or "block" (what the network maps:
    Y₀ ↦ Y_N; differs from "state" only for second-order blocks). ``examples``: indices to use
    (default all). Adaptive schemes are linearised along their accepted steps. ``method`` forces a
    route for σ_min (``METHODS``; "auto" picks as the module docstring says);
    ``reduced_dense_max``: up to this many active units per example and step the "reduced-inverse"
    route factorises I + R dense (an LU of that size per example and step), and up to
    ``reduced_sparse_max`` sparse (SuperLU on the host, the matrix from grouped columns).
    ``progress(where)``, if given, is called after each of those factorisations (at STL-10's
    first unit about a minute each on 2 CPU cores).

    ``failure_probability`` δ: per example, the chance that κ lies outside [κ found,
    ``condition_upper_probable``] (and σ_max above ``sigma_max_upper_probable`` or σ_min below
    ``sigma_min_lower_probable``, δ/2 each), over the random start vectors of the Golub–Kahan runs,
    drawn from ``seed``: another seed draws other start vectors, and the same seed repeats the
    analysis bit for bit.
    """
    if method not in METHODS:
        raise InvalidArgumentError(f"method must be one of {METHODS}, got {method!r}")
    failure_probability = require_probability("failure_probability", failure_probability)
    tol, seed = require_tolerance("tol", tol), require_seed(seed)
    y0 = select_examples(y0, examples)
    disc = discretise(operator, y0, scheme, T=T, n_steps=n_steps, rtol=rtol, atol=atol)
    J = disc.flow_jacobian(map)
    k = min(k, J.shape[1])
    inner_tol = inner_tol if inner_tol is not None else max(tol * 1e-2 / max(disc.n_steps, 1), 1e-14)
    top = golub_kahan(J, k=k, which="largest", tol=tol, max_iter=max_iter, seed=seed)
    smin, res_min, status_min, method_min, info = _smallest(J, disc, map, k, tol, inner_tol, dense_max, max_iter, method,
                                                            reduced_dense_max, reduced_sparse_max, progress,
                                                            [s_ == "converged" for s_ in top.status], top.values[:, 0],
                                                            seed)
    smax = top.values
    kappa = smax[:, 0] / np.maximum(smin[:, 0], 1e-300)
    smax_hi, smin_lo = _probable_bracket(J, top, smin, info, failure_probability)
    Tf = disc.T
    per_example = []
    stepwise, residual_lower = info.get("stepwise"), info.get("residual_lower")
    for b in range(J.batch):
        per_example.append(dict(
            sigma_max=smax[b].tolist(), sigma_max_residual=top.residuals[b].tolist(), sigma_max_status=top.status[b],
            sigma_min=smin[b].tolist(), sigma_min_residual=res_min[b].tolist(), sigma_min_status=status_min[b],
            condition=float(kappa[b]), condition_status="converged" if top.status[b] == status_min[b] == "converged" else "bound",
            ftle_top=[math.log(s) / Tf for s in smax[b]], ftle_bottom=[math.log(max(s, 1e-300)) / Tf for s in smin[b]],
            sigma_max_upper_probable=float(smax_hi[b]) if math.isfinite(smax_hi[b]) else None,
            sigma_min_lower_probable=float(smin_lo[b]) if smin_lo[b] > 0 else None,
            condition_upper_probable=float(smax_hi[b] / smin_lo[b]) if math.isfinite(smax_hi[b]) and smin_lo[b] > 0
            else None))
        lows = ([stepwise[b]["lower"]] if stepwise and stepwise[b] is not None else []) + \
            ([residual_lower[b]] if residual_lower is not None else [])
        if status_min[b] != "converged" and lows:
            # σ_min ≥ the larger lower bound (Π_j σ_min(S_j), or the candidate's residual); σ_max ≤ the smaller
            # certified upper bound (its converged value, Π_j ‖S_j‖)
            low = max(lows)
            high = min(stepwise[b]["upper"] if stepwise and stepwise[b] is not None else math.inf,
                       smax[b, 0] * (1 + top.residuals[b, 0]) if top.status[b] == "converged" else math.inf)
            per_example[-1].update(sigma_min_lower=low, sigma_max_upper=high if math.isfinite(high) else None,
                                   condition_upper=high / low if low > 0 and math.isfinite(high) else None)
    scheme_name = disc.scheme.name
    data = dict(scheme=scheme_name, map=map, n_steps=disc.n_steps, T=Tf, unknowns=J.shape[1], k=k, tol=tol,
                failure_probability=failure_probability, seed=seed,
                method_max=f"golub-kahan ({top.iterations} iterations)", method_min=method_min, **info,
                examples=per_example,
                condition=distribution(kappa), sigma_max=distribution(smax[:, 0]), sigma_min=distribution(smin[:, 0]),
                all_converged=all(e["condition_status"] == "converged" for e in per_example))
    rows = [[b, e["sigma_max"][0], e["sigma_min"][0], e["condition"], e["ftle_top"][0], e["ftle_bottom"][0],
             e["condition_status"], max(e["sigma_max_residual"] + e["sigma_min_residual"])] for b, e in enumerate(per_example)]

    def plot(fig):
        ax = fig.add_subplot(121)
        for b, e in enumerate(per_example):
            ax.plot(range(1, k + 1), e["ftle_top"], "o-", color="C0", alpha=0.5, label="top" if b == 0 else None)
            ax.plot(range(1, k + 1), e["ftle_bottom"], "s-", color="C3", alpha=0.5, label="bottom" if b == 0 else None)
        ax.set_xlabel("index i")
        ax.set_ylabel("FTLE (1/T) log σ_i")
        ax.legend(fontsize=7)
        ax.set_title("finite-time Lyapunov exponents", fontsize=9)
        ax2 = fig.add_subplot(122)
        ax2.hist(np.log10(np.maximum(kappa, 1e-300)), bins=max(5, min(30, J.batch)), color="C1")
        ax2.set_xlabel("log10 κ(J_Φ)")
        ax2.set_ylabel("examples")
        ax2.set_title(f"κ over {J.batch} example(s)", fontsize=9)

    d = data["condition"]
    notes = [f"κ over {d['n']} example(s): median {d['median']:.4g}, 5–95% [{d['p5']:.4g}, {d['p95']:.4g}], worst {d['max']:.4g} "
             f"(example {d['argmax']})",
             f"σ_max: Golub–Kahan–Lanczos; σ_min: {method_min}; tolerance {tol:g} (relative residual of each singular triplet)"]
    if not data["all_converged"]:
        notes.append("status 'bound': σ_min did not pass the forward residual check; the value shown is an upper bound on "
                     "σ_min (Ritz values interlace) and κ a lower bound")
    probable = [(b, e) for b, e in enumerate(per_example) if e["condition_upper_probable"] is not None]
    if probable:
        b, e = max(probable, key=lambda be: be[1]["condition_upper_probable"] / be[1]["condition"])
        notes.append(f"probable bracket for {len(probable)} of {len(per_example)} example(s): κ ≤ condition_upper_probable "
                     f"= (an upper bound on σ_max)/(a lower bound on σ_min), each from the Lanczos polynomial of a Golub–Kahan "
                     f"run from a random start (seed {seed}; van Dorsselaer, Hochstenbach & van der Vorst 2000) and "
                     f"failing with probability at most δ/2, whatever the spectrum: per example the bracket fails with "
                     f"probability at most δ = {failure_probability:g}; the widest: example {b}, "
                     f"{e['condition']:.6g} ≤ κ ≤ {e['condition_upper_probable']:.6g} "
                     f"({e['condition_upper_probable'] / e['condition'] - 1:.1e} relative)")
    bracketed = [(b, e) for b, e in enumerate(per_example) if e.get("condition_upper")]
    if bracketed:
        b, e = max(bracketed, key=lambda be: be[1]["condition_upper"])
        notes.append(f"κ from above for {len(bracketed)} 'bound' example(s): σ_min ≥ the larger of σ(1 − e − 10·d) at the "
                     f"candidate (e its forward residual, d the rounding of a product) and Π_j σ_min(S_j) (each step "
                     f"certified on its own; not computed where the first pins σ_min to 1 % and σ_max is converged), "
                     f"σ_max ≤ min(its converged value, Π_j ‖S_j‖); the widest: example {b}, "
                     f"{e['condition']:.4g} ≤ κ ≤ {e['condition_upper']:.4g} (per example: sigma_min_lower, "
                     f"sigma_max_upper; each step's values: stepwise)")
    elif any("sigma_min_lower" in e for e in per_example):
        notes.append("from above: no bound on κ; neither the candidate's residual nor every step's σ_min(S_j) and ‖S_j‖ "
                     "passed their checks")
    return Report("conditioning", f"Conditioning of the flow map ({scheme_name}, map {map})",
                  ["example", "σ_max", "σ_min", "κ", "FTLE max", "FTLE min", "status", "max residual"], rows, data, plot, notes)
