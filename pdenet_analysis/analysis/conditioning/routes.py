"""The routes to σ_min of a flow map's Jacobian J_Φ, each an object that says whether it applies.

Tried in this order by ``method="auto"`` (the first that applies answers):

1. :class:`Dense` — at most ``Budget.dense_max`` unknowns per example: J_Φ formed column by
   column, its SVD taken. Exact.
2. :class:`GolubKahan` — where no inverse of J_Φ is available (a second-order block's map
   "block", Y₀ ↦ Y_N, is a corner of the state map, not a product of steps; a scheme neither
   reversible nor of plain state): Golub–Kahan's smallest Ritz values, upper bounds on σ_min.
3. :class:`ReducedInverse` — forward Euler on a first-order block whose layer has hidden units:
   each S_j⁻¹ exact by the Woodbury identity through the active units (a dense LU up to
   ``Budget.reduced_dense_max`` rows, SuperLU up to ``Budget.reduced_sparse_max``;
   :mod:`~pdenet_analysis.analysis.reduced_inverse`). Exact, and independent of how well
   conditioned S_j is, which at h = 1 on a trained network it is not.
4. :class:`InverseMap` — reversible schemes whose internal state the first-order state
   determines (map "state"): J_Φ⁻¹ through the exact inverse steps.
5. :class:`InverseIteration` — otherwise: each one-step Jacobian inverted by GMRES
   (:class:`~pdenet_analysis.analysis.krylov.InverseChain`), which stalls where a step map is
   nearly singular (the result is then a bound).

On the inverse routes σ_min(J_Φ) = 1/σ_max(J_Φ⁻¹), and a value is "converged" only if its
singular triplet passes the residual check with the *forward* operator (accepted at
max(10·tol, 10⁻⁶) relative: below about ε·κ no product can go). Where it does not, what is
certain is kept (:func:`_keep_what_is_certain`): the smaller of Golub–Kahan's smallest Ritz
value of J_Φ and ‖J_Φ u‖/‖u‖ at the inverse's vector bounds σ_min from above, each with its
rounding, and on the reduced-inverse route the steps one by one bound it from below.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...errors import IncompatibleSchemeError
from ..krylov import InnerSolveFailed, InverseChain, SingularValues, golub_kahan, ritz_rounding
from ..precision import UNIT_ROUNDOFF, dtype_named
from .certificates import forward_residual, product_rounding, reduced_inverse_flow, residual_lower_bound, stepwise_bounds

METHODS = ("auto", "dense", "inverse-map", "reduced-inverse", "inverse-iteration", "golub-kahan")


@dataclass
class SigmaMin:
    """σ_min and the next k − 1 singular values of J_Φ per example, with how they were found.

    ``values`` (batch, k) ascending, ``residuals`` their forward residuals, ``status`` per
    example ("converged", or "bound": an upper bound on σ_min), ``route`` the description of the
    route taken. Route-specific evidence, None where the route has none:

    * ``dense_sigma_max``: the dense SVD's σ_max (the whole spectrum is known);
    * ``inverse_run``, ``candidate_error``: an exact inverse's Golub–Kahan run and how far its
      candidate is from J_Φ's singular vector (for the probable bracket);
    * ``inverse_iterations``; ``inner`` (GMRES: ``inner_max_residual``, ``inner_iterations``,
      ``inner_tol``); ``inner_failure`` (a GMRES solve missed its tolerance);
    * ``reduced_rows_max``, ``reduced_products``: the reduced-inverse route's factorisations;
    * ``residual_lower``: σ(1 − e − 10·d) at the candidate (a lower bound on σ_min);
      ``rayleigh_upper_bound``: ‖J_Φ u‖/‖u‖ at it (an upper bound);
    * ``stepwise``, ``stepwise_skipped``: the steps' bounds per example, and the examples whose
      σ_min the candidate already pins to 1 %.
    """

    values: np.ndarray
    residuals: np.ndarray
    status: list
    route: str
    dense_sigma_max: np.ndarray | None = None
    inverse_run: SingularValues | None = field(default=None, repr=False)
    candidate_error: np.ndarray | None = None
    inverse_iterations: int | None = None
    inner: dict | None = None
    inner_failure: str | None = None
    reduced_rows_max: int | None = None
    reduced_products: int | None = None
    residual_lower: list | None = None
    rayleigh_upper_bound: list | None = None
    stepwise: list | None = None
    stepwise_skipped: list | None = None

    def evidence(self) -> dict:
        """The route's evidence that goes into the JSON report (the runs and arrays that only feed
        the probable bracket stay out)."""
        out = {}
        if self.inverse_iterations is not None:
            out["inverse_iterations"] = self.inverse_iterations
        if self.inner_failure is not None:
            out["inner_failure"] = self.inner_failure
        if self.inner is not None:
            out.update(self.inner)
        for key in ("reduced_rows_max", "reduced_products", "residual_lower", "rayleigh_upper_bound", "stepwise",
                    "stepwise_skipped"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out


@dataclass
class Context:
    """What every route needs: the flow's Jacobian and discretisation, the map, k, the options,
    and what the σ_max run found (``top_norm``: per example an estimate of ‖J‖, which scales the
    rounding added to an upper bound on σ_min; ``top_certified``: whether σ_max converged)."""

    J: object
    disc: object
    map: str
    k: int
    tol: float
    inner_tol: float
    budget: object
    seed: int
    top_norm: np.ndarray | None = None
    top_certified: list | None = None
    progress: object = None

    @property
    def scheme(self):
        return self.disc.step_scheme

    @property
    def plain(self) -> bool:
        """The scheme's internal state is the first-order state (no ``init``/``to_state`` of its own)."""
        return self.scheme.plain_state

    @property
    def block_map(self) -> bool:
        """Y₀ ↦ Y_N of a second-order block: a corner of the state map, not a product of steps."""
        return self.map == "block" and self.disc.operator.kind == "second_order"

    @property
    def invertible(self) -> bool:
        """Φ⁻¹ on the first-order state by the scheme's inverse steps."""
        return bool(self.scheme.reversible and self.scheme.internal_from_state)

    @property
    def unit_roundoff(self) -> float:
        return UNIT_ROUNDOFF[dtype_named(self.J.dtype)[0]]


class Route:
    """A way to σ_min. ``applies`` decides for ``method="auto"``; ``refusal`` says why a route
    asked for by name cannot be used here (None: it can); ``smallest`` computes."""

    name = "route"

    def applies(self, ctx: Context) -> bool:
        return self.refusal(ctx) is None

    def refusal(self, ctx: Context) -> str | None:
        return None

    def smallest(self, ctx: Context) -> SigmaMin | None:
        raise NotImplementedError


class Dense(Route):
    name = "dense"

    def applies(self, ctx):
        return ctx.J.shape[1] <= ctx.budget.dense_max

    def smallest(self, ctx):
        import torch

        s = torch.linalg.svdvals(ctx.J.dense()).cpu().double().numpy()  # descending
        batch = ctx.J.batch
        return SigmaMin(s[:, ::-1][:, : ctx.k].copy(), np.zeros((batch, ctx.k)), ["converged"] * batch, "dense",
                        dense_sigma_max=s[:, 0])


class GolubKahan(Route):
    name = "golub-kahan"

    def applies(self, ctx):
        return ctx.block_map or not (ctx.invertible or ctx.plain)

    def smallest(self, ctx):
        lo = golub_kahan(ctx.J, k=ctx.k, which="smallest", tol=ctx.tol, max_iter=ctx.budget.max_iter, seed=ctx.seed)
        status = ["converged" if s_ == "converged" else "bound" for s_ in lo.status]
        values = lo.values
        if ctx.top_norm is not None:  # a bound is a bound only with its rounding (see _keep_what_is_certain)
            pad = ritz_rounding(lo.example_iterations, ctx.unit_roundoff) * ctx.top_norm
            values = np.where(np.array(status)[:, None] == "bound", values + pad[:, None], values)
        return SigmaMin(values, lo.residuals, status, f"golub-kahan ({lo.iterations} iterations)")


class _Inverse(Route):
    """A route through an inverse of J_Φ: σ_min = 1/σ_max(J_Φ⁻¹), certified on J_Φ."""

    def inverse(self, ctx: Context):
        """(the inverse operator, its description, route evidence), or None where it does not apply."""
        raise NotImplementedError

    def refusal(self, ctx):
        if ctx.block_map or not ctx.plain:
            return (f"the {self.name} route inverts a product of one-step maps, which needs a scheme whose internal "
                    "state is the first-order state and map='state'")
        return None

    def smallest(self, ctx):
        found = self.inverse(ctx)
        if found is None:
            return None
        inv, route, evidence = found
        return _through_inverse(ctx, inv, route, evidence)


class ReducedInverse(_Inverse):
    name = "reduced-inverse"

    def applies(self, ctx):
        return not ctx.invertible and not ctx.block_map and ctx.plain

    def inverse(self, ctx):
        b = ctx.budget
        reduced = reduced_inverse_flow(ctx.disc, b.reduced_dense_max, b.reduced_sparse_max, ctx.progress)
        if reduced is None:
            return None
        rows = [r for S in reduced.factors for r in S.rows]
        lu = "dense LU" if max(rows) <= b.reduced_dense_max else \
            ("sparse LU" if min(rows) > b.reduced_dense_max else "dense and sparse LU")
        route = f"reduced-inverse (S_j⁻¹ exact by Woodbury through {min(rows)}–{max(rows)} active units, {lu})"
        return reduced, route, dict(reduced_rows_max=max(rows), reduced_products=sum(S.products for S in reduced.factors))

    def unavailable(self, ctx) -> str:
        b = ctx.budget
        return (f"the reduced-inverse route needs forward Euler on a first-order block whose layer has hidden units, "
                f"with at most {max(b.reduced_dense_max, b.reduced_sparse_max)} active units per example and step; "
                f"{ctx.scheme.name!r} here does not qualify: use method='inverse-iteration' or raise "
                "Budget.reduced_sparse_max")


class InverseMap(_Inverse):
    name = "inverse-map"

    def refusal(self, ctx):
        if not (ctx.invertible and ctx.map == "state"):
            return (f"the inverse-map route needs a reversible scheme whose internal state the first-order state "
                    f"determines, and map='state'; {ctx.scheme.name!r} with map {ctx.map!r} does not qualify: use "
                    "method='inverse-iteration' or 'golub-kahan'")
        return None

    def inverse(self, ctx):
        return ctx.disc.inverse_flow_jacobian(), "inverse-map", {}


class InverseIteration(_Inverse):
    name = "inverse-iteration"

    def inverse(self, ctx):
        factors = [ctx.disc.step_jacobian(j) for j in range(ctx.disc.n_steps)]
        return InverseChain(factors, tol=ctx.inner_tol), "inverse-iteration (GMRES per step)", {}


ROUTES = {r.name: r for r in (Dense(), GolubKahan(), ReducedInverse(), InverseMap(), InverseIteration())}
AUTO_ORDER = ("dense", "golub-kahan", "reduced-inverse", "inverse-map", "inverse-iteration")


def smallest_singular_values(ctx: Context, method: str = "auto") -> SigmaMin:
    """σ_min by ``method`` (a name of :data:`ROUTES`), or by the first route of
    :data:`AUTO_ORDER` that applies and answers."""
    if method != "auto":
        route = ROUTES[method]
        why = route.refusal(ctx)
        if why is not None:
            raise IncompatibleSchemeError(why)
        result = route.smallest(ctx)
        if result is None:
            raise IncompatibleSchemeError(route.unavailable(ctx))
        return result
    for name in AUTO_ORDER:
        route = ROUTES[name]
        if route.applies(ctx):
            result = route.smallest(ctx)
            if result is not None:
                return result
    raise AssertionError("inverse iteration always answers")  # pragma: no cover


def _through_inverse(ctx: Context, inv, route: str, evidence: dict) -> SigmaMin:
    J, k, tol, batch = ctx.J, ctx.k, ctx.tol, ctx.J.batch
    out = SigmaMin(np.zeros((batch, k)), np.zeros((batch, k)), [], route, **evidence)
    candidate = partner = rounding = None
    try:
        # a relative residual e of J⁻¹'s triplet is at most e·κ_i of J's (σ_max(J)/σ_i): converge J⁻¹'s
        # 100× tighter than asked, a few more iterations, so that the forward check passes
        r = golub_kahan(inv, k=k, which="largest", tol=max(tol * 1e-2, 1e-14), max_iter=ctx.budget.max_iter,
                        vectors=True, seed=ctx.seed)
        sigma = 1.0 / np.maximum(r.values, 1e-300)
        # J⁻¹v = s u, J⁻ᵀu = s v  ⇔  J u = (1/s) v, Jᵀ v = (1/s) u: u is J's right vector, v its left
        res = np.stack([forward_residual(J, sigma[:, i], r.left[:, i], r.right[:, i]) for i in range(k)], 1)
        # the forward residual certifies a singular value within res·σ of σ; it cannot go below about
        # ε·κ (a backward-stable product), so accept 10·tol or 1e-6 relative, whichever is larger
        status = ["converged" if np.all(res[b] < max(10 * tol, 1e-6)) else "bound" for b in range(batch)]
        out.inverse_iterations = r.iterations
        candidate, partner = r.left[:, 0], r.right[:, 0]  # J's right and left vectors for σ_min, certified or not
        exact = not isinstance(inv, InverseChain)
        # a product's rounding at the candidate (absolute, per example), for the bounds; 4 products, so only
        # where one of them is wanted
        rounding = product_rounding(J, candidate, partner) if exact or "bound" in status else None
        if exact:  # an exact inverse (up to rounding): a linear operator for the probable bound, which holds for
            # the inverse as computed: widened by how far the candidate is from J's (its forward residual and a
            # product's rounding, as residual_lower_bound)
            out.inverse_run = r
            out.candidate_error = res[:, 0] + 10.0 * rounding / np.maximum(sigma[:, 0], 1e-300)
    except InnerSolveFailed as exc:
        sigma, res, status = np.full((batch, k), np.inf), np.full((batch, k), np.inf), ["bound"] * batch
        out.inner_failure = str(exc)
    if isinstance(inv, InverseChain):
        out.inner = dict(inner_max_residual=inv.max_residual, inner_iterations=inv.inner_iterations,
                         inner_tol=ctx.inner_tol)
    out.values, out.residuals, out.status = sigma, res, status
    if any(s_ != "converged" for s_ in status):
        _keep_what_is_certain(ctx, out, candidate, partner, rounding, inv if out.reduced_rows_max is not None else None)
    return out


def _keep_what_is_certain(ctx: Context, out: SigmaMin, candidate, partner, rounding, reduced) -> None:
    """For the examples the forward check did not certify, keep only what is certain.

    GKL's smallest Ritz values of J are upper bounds on σ_min, and so is ‖J u‖/‖u‖ for any u,
    each up to rounding (the Ritz values' ritz_rounding, about 10·j·u·‖J‖, one product's for
    ‖J u‖), which is added: a float32 Ritz value fell to 2·10⁻¹⁵ where σ_min was 6.7·10⁻⁶. At the
    inverse's vector, where κ is too large for any forward residual to certify (ε·κ above the
    acceptance), ‖J u‖ is far tighter. On the reduced-inverse route the steps one by one also
    bound σ_min from below (and Π_j ‖S_j‖ bounds σ_max from above), except where the candidate's
    residual already pins σ_min to 1 % and σ_max converged (``stepwise_skipped``)."""
    J, batch = ctx.J, ctx.J.batch
    lo = golub_kahan(J, k=ctx.k, which="smallest", tol=ctx.tol, max_iter=ctx.budget.max_iter, seed=ctx.seed)
    norm = ctx.top_norm if ctx.top_norm is not None else np.full(batch, np.inf)
    lo.values = lo.values + (ritz_rounding(lo.example_iterations, ctx.unit_roundoff) * norm)[:, None]
    rayleigh = np.full(batch, np.inf)
    if candidate is not None:
        u = candidate / candidate.norm(dim=-1, keepdim=True)
        rayleigh = J.matvec(u).norm(dim=-1).cpu().double().numpy() + 10.0 * np.maximum(rounding, ctx.unit_roundoff * norm)
        out.residual_lower = residual_lower_bound(J, out.values[:, 0], candidate, partner, out.residuals[:, 0],
                                                  rounding=rounding).tolist()
    sigma, res = out.values, out.residuals
    for b in range(batch):
        if out.status[b] != "converged":
            inverse_res = res[b, 0]
            sigma[b], res[b] = lo.values[b], lo.residuals[b]
            if rayleigh[b] < sigma[b, 0]:
                sigma[b, 0], res[b, 0] = rayleigh[b], inverse_res
    if candidate is None:
        out.route += "; uncertified examples: golub-kahan upper bound"
    else:
        out.route += "; uncertified examples: the smaller upper bound of golub-kahan's Ritz value and ‖J u‖/‖u‖ at " \
                     "the inverse's vector"
        out.rayleigh_upper_bound = rayleigh.tolist()
    if reduced is not None:
        low = out.residual_lower
        pinned = [ctx.top_certified is not None and ctx.top_certified[b] and low is not None
                  and low[b] >= 0.99 * sigma[b, 0] for b in range(batch)]
        open_ = [b for b in range(batch) if out.status[b] != "converged" and not pinned[b]]
        out.stepwise = [None] * batch
        out.stepwise_skipped = [b for b in range(batch) if out.status[b] != "converged" and pinned[b]]
        if open_:
            steps = stepwise_bounds(reduced, ctx.disc, open_, ctx.tol, ctx.budget.max_iter, ctx.seed)
            for i, b in enumerate(open_):
                out.stepwise[b] = {key: v[i].tolist() for key, v in steps.items()}
