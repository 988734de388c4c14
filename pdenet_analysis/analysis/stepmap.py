"""Stability of the scheme itself: the one-step maps' Jacobians S_j = ∂Φ_j/∂Y_j along a solve.

For every step j and example, matrix-free through the scheme's own ``step`` (so RK4, Verlet,
leapfrog's two-level state and the accepted steps of an adaptive solver are all covered, with no
stability function):

* the spectral radius ρ(S_j): the growth per step of the linearised scheme over many steps with
  the same S (a mode with |ξ| > 1 grows like |ξ|^j);
* the number of eigenvalues with |ξ| > 1 + δ, counted *completely*: the eigenvalues of largest
  modulus are computed in growing batches until one of modulus ≤ 1 + δ is reached (or
  ``count_max`` is hit, when the count is reported as a lower bound);
* the 2-norm ‖S_j‖₂ (Golub–Kahan–Lanczos), the largest growth of any perturbation in that step,
  and the product Π_j ‖S_j‖₂, an a-priori bound on the growth over the block (≥ σ_max(J_Φ)).

Small problems (``dense_max``) take the dense eigenvalues of S_j, exact. The two-level schemes
(symplectic Euler, Störmer–Verlet, leapfrog) have a half-size form: the eigenvalues of S_j are
exactly the roots of ξ² − (2 + μ)ξ + 1 = 0 over the eigenvalues μ of an n/2 × n/2 matrix M
(:meth:`~pdenet_analysis.schemes.base.Scheme.reduced_step_form`), and forward Euler on a
first-order operator has S_j = I + M with M = h ∂F/∂Y. M's nonzero eigenvalues are
in turn those of an r × r matrix through the r hidden units that a ReLU keeps on
(:func:`active_unit_form`). So up to ``reduced_dense_max`` rows of that matrix the count is exact
from its dense eigenvalues. This matters because these spectra are a bulk, not a few outliers:
on CIFAR-10's Hamiltonian first unit at initialisation (32,768 unknowns) thousands of
eigenvalues of S_0 lie outside the unit disc, most of them within 1 % of the circle, which no
Krylov method counts one by one. Through the active units (R from grouped columns,
:mod:`.colouring`) the exact count is one dense eigenvalue problem of a few thousand rows
(``python benchmarks/bench_stepmap_exact.py``; counts and times in docs/benchmarks.md).
Larger problems use ARPACK (its products on the operator's device) with residuals; a radius
that did not converge says so.

For a linear problem y' = λy (or y'' = λy) and a scheme with stability function R, the
eigenvalues of S are R(hλ) (or the roots ξ of ξ² − (2 + h²λ)ξ + 1): ρ(S) = max |R(hλ)| over the
spectrum, which the tests check against the dense spectra.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from .colouring import local_jacobian
from .eigen import dense_eigvals, eigs
from .krylov import batched_arnoldi
from .linear import JacobianOperator
from .options import COUNT_BUDGET
from .precision import UNIT_ROUNDOFF, dtype_named
from ..status import Status


@dataclass
class ModeCount:
    """The eigenvalues of one example's step map S_j outside the disc of radius 1 + δ.

    ``radius`` ρ(S_j) (its eigen-residual ``radius_residual``; ``radius_lower`` the largest |ξ|
    with a residual ≤ 10⁻⁶, a certain lower bound, NaN if none; ``radius_upper`` the probable upper
    bound on ‖S_j‖₂ ≥ ρ, NaN if not computed); ``count`` of the eigenvalues ``outside``, complete
    where ``exact``; ``computed`` every eigenvalue found; ``status`` converged, not converged (the
    count is a lower bound) or estimate (a short Arnoldi run's, not counted); ``method`` how;
    ``n_matvecs`` the products spent; ``unknowns`` the size of S_j; ``rows`` the reduced matrix's
    size where the count went through the active units."""

    radius: float
    radius_residual: float
    radius_lower: float
    status: Status
    count: int
    exact: bool
    outside: np.ndarray
    computed: np.ndarray
    n_matvecs: int
    method: str
    unknowns: int | None = None
    radius_upper: float = float("nan")
    rows: int | None = None


def _example_step_operator(disc, j: int, b) -> JacobianOperator:
    """S_j of example ``b`` (unbatched), or of the examples in the list ``b`` (batched)."""
    fn, y = disc.step_map(j)
    if isinstance(b, list):
        return JacobianOperator(fn, tuple(c[b] for c in y), batched=True)
    return JacobianOperator(fn, tuple(c[b : b + 1] for c in y))


def _exact_count(ev: np.ndarray, radius: float, n_matvecs: int, method: str) -> ModeCount:
    """The result for a complete spectrum ``ev``: its values outside the disc of ``radius``, exact."""
    mod = np.abs(ev)
    return ModeCount(radius=float(mod.max()), radius_residual=0.0, radius_lower=float(mod.max()), status=Status.CONVERGED,
                     count=int((mod > radius).sum()), exact=True, outside=ev[mod > radius], computed=ev,
                     n_matvecs=n_matvecs, method=method)


def _dense_count(J_dense: np.ndarray, radius: float) -> ModeCount:
    """The eigenvalues of a dense matrix outside the disc of ``radius``: exact."""
    return _exact_count(np.linalg.eigvals(J_dense), radius, J_dense.shape[1], "dense")


class ActiveUnits(NamedTuple):
    """What :func:`active_unit_form` returns: R = ∂phi/∂w at ``w0``, an r × r matrix (r = ``rows``),
    and where the units lie: ``positions`` (r, 3) = (channel, row, column) on a grid of ``grid`` =
    (channels, rows, columns) for image-shaped hidden units (else None). phi = select ∘ lift, and
    M = P Q with P = ∂lift/∂w at ``w0`` (m × r) and Q = ∂select/∂v at v = 0 (r × m), so R = Q P."""

    phi: Callable
    w0: torch.Tensor
    rows: int
    positions: torch.Tensor | None = None
    grid: tuple | None = None
    lift: Callable | None = None
    select: Callable | None = None


def active_unit_form(op, form) -> ActiveUnits | None:
    """M through the active hidden units of the part it evaluates: :class:`ActiveUnits` with R =
    ∂phi/∂w at w0 an r × r matrix whose eigenvalues are exactly M's nonzero eigenvalues (M has the
    other m − r equal to 0), or None where this does not reduce M.

    The part is a layer P(s, u) = readout(hidden(u)) (:meth:`~.operators.Operator.part_factors`),
    so M = post'·readout·H with H = ∂hidden/∂u at u. H's rows are exactly zero at the hidden
    units where σ' vanishes (a ReLU switched off): with E the n × r selection of the others,
    H = E Eᵀ H and M = (post'·readout·E)(EᵀH), whose nonzero eigenvalues are those of
    R = EᵀH·post'·readout·E (Sylvester's determinant identity, det(λI − PQ) = λ^{m−r} det(λI − QP)).
    R is the Jacobian at w = 0 of w ↦ Eᵀ hidden(u + post(q + readout(Ew)) − post(q)), q = P(s, u).
    The active units are those where a product of H with a random vector is nonzero (twice, so a
    chance zero cannot drop one)."""
    factors = op.part_factors(form.part, form.s)
    if factors is None:
        return None
    hidden, readout = factors
    u = form.u.detach()
    with torch.no_grad():
        z = hidden(u)
        g = torch.Generator(device=u.device).manual_seed(0)
        probe = [torch.func.jvp(hidden, (u,), (torch.randn(u.shape, generator=g, dtype=u.dtype, device=u.device),))[1]
                 for _ in range(2)]
        active = torch.nonzero(((probe[0] != 0) | (probe[1] != 0)).reshape(-1)).reshape(-1)
        q = readout(z)
        base = form.post(q)
    if active.numel() >= u.numel():
        return None
    zero = torch.zeros(z.numel(), dtype=z.dtype, device=z.device)

    def lift(w):  # the increment of the part's output when the active units move by w (P = its Jacobian)
        return form.post(q + readout(zero.index_copy(0, active, w).reshape(z.shape))) - base

    def select(v):  # the active units at u + v (Q = its Jacobian at 0)
        return hidden(u + v).reshape(-1)[active]

    def phi(w):
        return select(lift(w))

    positions = grid = None
    if z.dim() == 4 and z.shape[0] == 1:  # (1, channels, rows, columns)
        _, C, H, W = z.shape
        positions, grid = torch.stack([active // (H * W), (active // W) % H, active % W], 1), (C, H, W)
    return ActiveUnits(phi, torch.zeros(active.numel(), dtype=u.dtype, device=u.device), int(active.numel()),
                       positions, grid, lift, select)


def reduced_matrix(active: ActiveUnits) -> tuple[torch.Tensor, int]:
    """R of :func:`active_unit_form` as a dense matrix, and the products it took: by grouped
    columns where the hidden units lie on an image grid (:func:`~.colouring.local_jacobian`:
    fewer products by about the ratio of active units to colours), else column by column."""
    J = JacobianOperator(active.phi, active.w0)
    if active.positions is not None:
        local = local_jacobian(J, active.positions, active.grid)
        if local is not None:
            return local
    return J.dense(), active.rows


def reduced_count(scheme, op, point: tuple, t: float, h: float, radius: float,
                  max_rows: int | None = None) -> ModeCount | None:
    """Exact count from the scheme's :class:`~pdenet_analysis.schemes.base.StepForm` (one
    example): the eigenvalues μ of M — from the r × r matrix of :func:`active_unit_form` and
    m − r zeros where M's part has switched-off hidden units, else from M itself — and the step
    map's eigenvalues ``form.roots(μ)`` (for the two-level schemes both roots of
    ξ² − (2 + μ)ξ + 1 = 0, one of them inside the disc; for forward Euler ξ = 1 + μ). A zero μ
    gives ξ = 1, never outside. None if the dense matrix would have more than ``max_rows`` rows."""
    form = scheme.reduced_step_form(op, point, t, h)
    m = form.u.numel()
    active = active_unit_form(op, form)
    rows = m if active is None else active.rows
    if max_rows is not None and rows > max_rows:
        return None
    # the dense eigenvalues run on the operator's device (torch's geev on the CPU, MKL, is faster
    # than numpy's OpenBLAS one: docs/benchmarks.md)
    if active is None:
        M = JacobianOperator(form.map(op), form.u)
        mu, products, method = dense_eigvals(M.dense()), m, f"dense, {form.label}"
    elif rows == 0:  # every unit off: M = 0
        mu, products, method = np.zeros(m), 0, f"dense, {form.label}, 0 of {m} units active"
    else:
        R, products = reduced_matrix(active)
        mu = np.concatenate([dense_eigvals(R), np.zeros(m - rows)])
        method = f"dense, {form.label}, {rows} of {m} units active"
    return dataclasses.replace(_exact_count(np.asarray(form.roots(mu)), radius, products, method), rows=rows)




def count_outside(J, radius: float, k0: int = 4, count_max: int = 256, tol: float = 1e-8,
                  backend: str = "auto", budget: int = COUNT_BUDGET, dense_fallback: int = 4096, ncv: int = 128) -> ModeCount:
    """Eigenvalues of the (unbatched) operator ``J`` with |ξ| > ``radius``, found by asking for the
    k largest in modulus with k doubling until the smallest of them has |ξ| ≤ ``radius``.

    Returns the eigenvalues outside, their count, whether the count is complete (``exact``),
    the spectral radius and its residual and status. The Krylov space is wide (``ncv``): the
    spectra of step maps crowd around the unit circle, and a narrow space lets ARPACK report
    converged eigenvalues that are not the largest (measured on CIFAR-10's Hamiltonian first unit:
    k = 2 with 32 vectors "converged" to |ξ| = 1.0172 while the radius is 1.0235; 128 vectors
    find it in 2,300 products). ``budget`` bounds the products over all k: the doubling stops
    (the count is then a lower bound, ``exact`` False) when the next k cannot finish within it,
    and an ARPACK run that exhausts it reports "not_converged" — unless a smaller k converged
    before: its ρ is then reported as converged, and the count as a lower bound. Where ARPACK
    does not converge and the operator has at most ``dense_fallback`` unknowns, the dense
    eigenvalues are taken."""
    n = J.shape[1]
    k, retry_dense, used, converged = min(k0, n - 2), False, 0, None
    while True:
        if 2 * k >= n or retry_dense:  # a Krylov space as large as the space costs more than dense
            return _dense_count(J.dense().cpu().double().numpy(), radius)
        width = min(n - 1, max(ncv, 2 * k + 1))
        res = eigs(J, k=k, which="LM", backend=backend, tol=tol, ncv=width,
                   maxiter=max(1, (budget - used) // max(1, width - k)))
        used += res.n_matvecs
        mod = np.abs(np.atleast_1d(res.values))
        outside = mod > radius
        complete = bool(mod.size and mod.min() <= radius)
        if res.status != "converged" and n <= dense_fallback:
            retry_dense = True
            continue
        if res.status == "converged":
            converged = res
        # a doubled k costs at least what this k did: stop when that would overrun the budget
        if complete or k >= count_max or res.status != "converged" or used + res.n_matvecs > budget:
            break
        k = min(2 * k, count_max)
    if res.status != "converged" and converged is not None:
        # a larger k did not converge, but a smaller one did: its largest values, ρ among them, stand
        # (ARPACK converges the k wanted values together), and its values outside are a lower bound
        # on the count
        res = converged
        mod = np.abs(np.atleast_1d(res.values))
        outside, complete = mod > radius, False
    vals = np.atleast_1d(res.values)
    # a value whose eigen-residual is small is (near) an eigenvalue, converged or not: a lower bound on ρ
    sure = np.atleast_1d(res.residuals) <= max(tol, 1e-6)
    return ModeCount(radius=float(mod.max()), radius_residual=float(res.residuals[np.argmax(mod)]),
                     radius_lower=float(mod[sure].max()) if sure.any() else float("nan"), status=Status(res.status),
                     count=int(outside.sum()), exact=complete and res.status == "converged", outside=vals[outside],
                     computed=vals, n_matvecs=used, method=res.method)


def _certified_inside(norm_upper: float, radius: float) -> ModeCount:
    """ρ(S) ≤ ‖S‖₂ ≤ ``norm_upper`` ≤ ``radius``: no eigenvalue outside, with no eigenvalue solve."""
    return ModeCount(radius=norm_upper, radius_residual=0.0, radius_lower=float("nan"), status=Status.CONVERGED, count=0,
                     exact=True, outside=np.zeros(0, complex), computed=np.zeros(0, complex), n_matvecs=0,
                     method="norm bound")


def _estimated(ritz, b: int, radius: float) -> ModeCount:
    """What a short Arnoldi run says of S_j for an example that is not counted: an estimate of
    ρ, a lower bound on the count (Ritz values outside with residual ≤ 1e-6), status "estimate"."""
    vals, res = ritz.values[b], ritz.residuals[b]
    sure = res <= 1e-6
    mod = np.abs(vals)
    return ModeCount(radius=float(mod[0]), radius_residual=float(res[0]),
                     radius_lower=float(mod[sure].max()) if sure.any() else float("nan"), status=Status.ESTIMATE,
                     count=int(((mod > radius) & sure).sum()), exact=False, outside=vals[(mod > radius) & sure],
                     computed=vals, n_matvecs=ritz.n_matvecs,
                     method=f"arnoldi estimate ({ritz.steps} steps, not counted)")


def _rank_key(estimate: ModeCount) -> float:
    """Which examples to count first: the largest certified lower bound on ρ (a Ritz value with a
    small residual), examples without one last (in their order). Not the Ritz radius itself: where
    the modes outside crowd at the circle, the 40-step estimate carries no ranking information
    (Spearman's rank correlation with the exact ρ of −0.31 to 0.23 over 32 examples, CIFAR-10
    Hamiltonian unit 3, ``benchmarks/bench_stepmap_exact.py``)."""
    lower = estimate.radius_lower
    return -lower if np.isfinite(lower) else np.inf


def step_map_spectra(disc, j: int, *, delta: float = 1e-6, budget=None, certification=None, norms=None, S=None,
                     progress=None, estimate_steps: int = 40) -> list[ModeCount]:
    """ρ(S_j) and the eigenvalues of S_j outside the disc of radius 1 + δ, for every example.

    Up to ``dense_max`` unknowns S_j is formed for all examples at once (n batched products) and
    its eigenvalues computed densely: exact. Beyond, per example: if the upper bound on ‖S_j‖₂
    from ``norms`` (a :class:`~.krylov.SingularValues` of S_j from a random start: its
    :meth:`~.krylov.SingularValues.probable_upper_bound`, which fails with probability at most
    ``failure_probability`` whatever the spectrum, converged or not) is at most 1 + δ, no
    eigenvalue can be outside and the count 0 is exact but for that chance ("norm bound"; the
    radius reported is then that upper bound); otherwise :func:`count_outside`. Until the bound
    was probable, a converged Ritz value σ(1 + residual) was taken for ‖S_j‖₂, which assumed
    that no larger singular value had been missed. With ``count_examples``
    = c, only c of the examples that need a count get one: all of them run ``estimate_steps``
    steps of one batched Arnoldi (:func:`~.krylov.batched_arnoldi`, one product per step for the
    whole batch), and the c with the largest certified lower bound on ρ are counted completely
    (:func:`_rank_key`; in example order where none has one); the others keep the estimate
    (status "estimate", count a lower bound). Every result carries
    ``radius_upper`` = that upper bound on ‖S_j‖₂ when ``norms`` is given (ρ ≤ ‖S‖ always), so a
    radius that did not converge still comes with a bracket. ``progress()`` is called per example.
    ``budget`` (:class:`~.options.Budget`): ``dense_max``, ``count_examples``, ``reduced_dense_max``,
    and ``count_max``/``count_budget`` of each ARPACK count (:func:`count_outside`);
    ``certification`` (:class:`~.options.Certification`): the eigen-residual tolerance and the
    failure probability of the norm bound.
    """
    from .options import require_options

    certification, budget = require_options(certification, budget)
    dense_max, count_examples = budget.dense_max, budget.count_examples
    tol, failure_probability = certification.tol, certification.failure_probability
    S = disc.step_jacobian(j) if S is None else S  # the caller's S_j, linearised once
    n = S.shape[1]
    tick = progress or (lambda: None)
    upper = [float("nan")] * S.batch
    if norms is not None:  # ‖S_j‖₂ from above, failing with probability ≤ failure_probability, converged or not
        upper = [float(x) for x in norms.probable_upper_bound(n, failure_probability, UNIT_ROUNDOFF[dtype_named(S.dtype)[0]])]
    out = []
    if n <= dense_max or n <= 16:
        D = S.dense().cpu().double().numpy()
        for b in range(S.batch):
            out.append(dataclasses.replace(_dense_count(D[b], 1 + delta), unknowns=n, radius_upper=upper[b]))
            tick()
        return out
    t, h, point = disc.steps[j]
    scheme = disc.step_scheme
    reducible = scheme.reduced_step_form(disc.operator, tuple(c[:1] for c in point), t, h) is not None

    def count(b):
        exact = reducible and reduced_count(scheme, disc.operator, tuple(c[b : b + 1] for c in point), t, h, 1 + delta,
                                            max_rows=budget.reduced_dense_max)
        return exact or count_outside(_example_step_operator(disc, j, b), 1 + delta, count_max=budget.count_max, tol=tol,
                                      backend=budget.backend, budget=budget.count_budget)

    need = [b for b in range(S.batch) if not upper[b] <= 1 + delta]
    counted, estimates = set(need), {}
    if count_examples is not None and len(need) > count_examples:
        ritz = batched_arnoldi(_example_step_operator(disc, j, need), m=estimate_steps)
        estimates = {b: _estimated(ritz, i, 1 + delta) for i, b in enumerate(need)}
        counted = set(sorted(need, key=lambda b: _rank_key(estimates[b]))[:count_examples])
    for b in range(S.batch):
        if upper[b] <= 1 + delta:
            r = _certified_inside(upper[b], 1 + delta)
        elif b in counted:
            r = count(b)
        else:
            r = estimates[b]
        out.append(dataclasses.replace(r, unknowns=n, radius_upper=upper[b]))
        tick()
    return out
