"""The certified analyses against dense linear algebra (float64): singular values and κ of flow
maps by every route, step-map spectral radii for every registered scheme, SLQ densities, the
stage times of every tableau, and adaptive schemes along their accepted steps."""

import math

import numpy as np
import pytest
import scipy.stats
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import pdenet_analysis as pa
from pdenet_analysis import analysis as A
from pdenet_analysis.analysis import Budget, Certification
from pdenet_analysis.analysis.stepmap import step_map_spectra
from pdenet_analysis.schemes import get_scheme
from pdenet_analysis.schemes.runge_kutta import ExplicitRungeKutta
from pdenet_analysis.testing import LinearFirstOrder, LinearSecondOrder, random_spd, random_stable_matrix
from pdenet_analysis.analysis.eigen import eigs
from pdenet_analysis.analysis.krylov import batched_arnoldi, gmres, golub_kahan
from pdenet_analysis.analysis.linear import JacobianOperator, operator_jacobian
from pdenet_analysis.analysis.stepmap import count_outside

from .helpers import ADAPTIVE_SCHEMES, ARCH_OF_KIND, FIXED_SCHEMES, one_fast_per, paper_operator


pytestmark = pytest.mark.float64  # the mathematics is tested in float64

class MatrixOperator:
    """A batch of dense matrices as a batched operator (for the solvers alone)."""

    def __init__(self, M):
        self.M = M
        self.batch, self.shape = M.shape[0], tuple(M.shape[1:])
        self.dtype, self.device, self.batched = M.dtype, M.device, True

    def matvec(self, v):
        return torch.einsum("bij,bj->bi", self.M, v)

    def rmatvec(self, w):
        return torch.einsum("bij,bi->bj", self.M, w)


class RestrictableMatrixOperator(MatrixOperator):
    """… which the solvers may narrow to the examples still iterating; records the batch sizes."""

    def __init__(self, M, log=None):
        super().__init__(M)
        self.log = [] if log is None else log

    def matvec(self, v):
        self.log.append(v.shape[0])
        return super().matvec(v)

    def restrict(self, rows):
        return RestrictableMatrixOperator(self.M[rows], self.log)


def _matrices(n, kappa, batch=2, seed=0):
    g = np.random.default_rng(seed)
    out = []
    for _ in range(batch):
        U, _ = np.linalg.qr(g.standard_normal((n, n)))
        V, _ = np.linalg.qr(g.standard_normal((n, n)))
        s = np.geomspace(1.0, 1.0 / kappa, n)
        out.append(U @ np.diag(s) @ V.T)
    return torch.tensor(np.stack(out))


def _separated_smallest(n, gaps, seed=0):
    """Matrices with singular values spread over [1, 2] and two below them, 2g and g."""
    g = np.random.default_rng(seed)
    out = []
    for gap in gaps:
        U, _ = np.linalg.qr(g.standard_normal((n, n)))
        V, _ = np.linalg.qr(g.standard_normal((n, n)))
        s = np.linspace(2.0, 1.0, n)
        s[-2:] = [2 * gap, gap]
        out.append(U @ np.diag(s) @ V.T)
    return torch.tensor(np.stack(out))


def test_golub_kahan_top_values_equal_dense_svd():
    M = _matrices(80, 1e6)
    r = golub_kahan(MatrixOperator(M), k=3, which="largest", tol=1e-10, max_iter=80)
    dense = np.linalg.svd(M.numpy(), compute_uv=False)
    assert r.converged
    np.testing.assert_allclose(r.values, dense[:, :3], rtol=1e-8)


@settings(max_examples=15)
@given(n=st.integers(6, 40), log_kappa=st.floats(0.5, 8), iters=st.integers(2, 12), seed=st.integers(0, 1000))
def test_golub_kahan_ritz_values_interlace(n, log_kappa, iters, seed):
    """Whatever the number of steps, the largest Ritz value never exceeds σ_max and the smallest
    never falls below σ_min (the reported values are certified bounds); converged ones are within
    the residual of a singular value."""
    M = _matrices(n, 10**log_kappa, batch=1, seed=seed)
    s = np.linalg.svd(M[0].numpy(), compute_uv=False)
    top = golub_kahan(MatrixOperator(M), k=1, which="largest", max_iter=iters, check_every=1)
    low = golub_kahan(MatrixOperator(M), k=1, which="smallest", max_iter=iters, check_every=1)
    assert top.values[0, 0] <= s[0] * (1 + 1e-10)
    assert low.values[0, 0] >= s[-1] * (1 - 1e-8)
    for r in (top, low):
        if r.converged:
            assert np.min(np.abs(s - r.values[0, 0])) <= 2 * r.residuals[0, 0] * r.values[0, 0] + 1e-12


@pytest.mark.parametrize("which,vectors", [("largest", False), ("smallest", True)])
def test_golub_kahan_sets_converged_examples_aside_with_the_same_values(which, vectors):
    """Examples of very different difficulty (κ from 10 to 10⁶): converged examples leave the batch
    (later products act on fewer rows), and every example's values, residual status and singular
    vectors equal those of an iteration that keeps the whole batch, to the tolerance."""
    if which == "largest":
        M = torch.cat([_matrices(60, kappa, batch=2, seed=i) for i, kappa in enumerate([1e1, 1e2, 1e4, 1e6])])
    else:  # two small singular values g and 2g below [1, 2]: convergence from step 32 to 60
        M = _separated_smallest(80, [1e-3, 1e-2, 0.1, 0.2, 0.3, 0.4, 0.45, 0.49])
    log = []
    deflated = golub_kahan(RestrictableMatrixOperator(M, log), k=2, which=which, tol=1e-10, max_iter=80,
                             vectors=vectors)
    whole = golub_kahan(MatrixOperator(M), k=2, which=which, tol=1e-10, max_iter=80, vectors=vectors, deflate=False)
    assert log[0] == 8 and min(log) < 8  # the batch narrowed
    assert len(set(deflated.example_iterations)) > 1 and max(deflated.example_iterations) == whole.iterations
    assert deflated.status == whole.status
    dense = np.linalg.svd(M.numpy(), compute_uv=False)
    ref = dense[:, :2] if which == "largest" else dense[:, ::-1][:, :2]
    for r in (deflated, whole):
        ok = np.array([s_ == "converged" for s_ in r.status])
        assert ok.sum() >= 4
        np.testing.assert_allclose(r.values[ok], ref[ok], rtol=1e-8)
    if vectors:  # A v = σ u for the returned pairs, every example in its own row
        for b in np.flatnonzero([s_ == "converged" for s_ in deflated.status]):
            Av = torch.einsum("ij,kj->ki", M[b], deflated.right[b])
            res = (Av - torch.as_tensor(deflated.values[b])[:, None] * deflated.left[b]).norm(dim=1)
            assert float(res.max()) <= 1e-6 * float(deflated.values[b].max())


class DiagonalOperator:
    """diag(d) for a batch of independent examples (the same d): for the solvers alone."""

    def __init__(self, d, batch):
        self.d, self.batch, self.shape = d, batch, (len(d), len(d))
        self.dtype, self.device, self.batched = d.dtype, d.device, True

    def matvec(self, v):
        return v * self.d

    rmatvec = matvec


SPECTRA = {  # σ_1 = 1 above n − 1 values: spread up to 0.999 (Lanczos resolves σ_1 slowly), up to 0.5 (a gap),
    # and five copies of 1 (a multiple top value)
    "slow": lambda n: torch.cat([torch.ones(1), torch.linspace(0.0, 0.999, n - 1)]),
    "gap": lambda n: torch.cat([torch.ones(1), torch.linspace(0.0, 0.5, n - 1)]),
    "multiple": lambda n: torch.cat([torch.ones(5), torch.linspace(0.0, 0.9, n - 5)]),
}


@pytest.mark.parametrize("spectrum", [s if s == "gap" else pytest.param(s, marks=pytest.mark.slow) for s in sorted(SPECTRA)])
def test_the_lanczos_polynomial_bound_on_sigma_max_holds_for_random_starts(spectrum):
    """The probable upper bound on σ_max (van Dorsselaer, Hochstenbach & van der Vorst 2000) holds
    for each of 128 independent random starts, at 5, 10, 30 and 120 steps, also where the Ritz
    value is still far below σ_1 (the "slow" spectrum at 5 and 10 steps); where the Ritz value has
    long converged it is tight (within 1e-9 of σ_1). At δ = 0.3 the bound
    fails for at most ~0.3 of the starts (the theorem; it is conservative, so here for none)."""
    n = 2000
    d = SPECTRA[spectrum](n).double()
    for j in (5, 10, 30, 120):
        r = golub_kahan(DiagonalOperator(d, 128), k=1, which="largest", tol=1e-300, max_iter=j, deflate=False)
        upper = r.probable_upper_bound(n, 1e-3, 2.0**-53)
        assert np.all(r.values[:, 0] <= 1.0 + 1e-12) and np.all(upper >= 1.0), (j, upper.min())
        if j == 120 and spectrum != "slow":  # converged long since: tight
            assert np.all(upper <= 1 + 1e-9)
        if spectrum == "slow" and j <= 10:
            assert r.values[:, 0].max() < 0.999  # far from converged: the bound, not a residual, carries it
            assert np.all(upper < 1.7)
        loose = r.probable_upper_bound(n, 0.3, 2.0**-53)
        assert np.mean(loose < 1.0) <= 0.3


@pytest.mark.parametrize("spectrum", sorted(SPECTRA))
def test_the_lanczos_bound_in_float32_holds_with_its_rounding_factor(spectrum):
    """In float32 the exact-arithmetic bound is not enough: on the "gap" spectrum the top Ritz value
    converges to 1 + 1.2e-7 and the bound without rounding factor to 1 − 1.6e-7, below σ_1 = 1
    (measured, 64 starts, 30 steps). With the factor 1 + 10·j·u (u = 2⁻²⁴) it holds for every
    start and step count, on every spectrum, and the factor adds at most 10·j·u of the bound."""
    n, u = 2000, 2.0**-24
    d = SPECTRA[spectrum](n).float()
    for j in (5, 10, 30, 120):
        r = golub_kahan(DiagonalOperator(d, 64), k=1, which="largest", tol=1e-300, max_iter=j, deflate=False)
        bare, upper = r.probable_upper_bound(n, 1e-3, 0.0), r.probable_upper_bound(n, 1e-3, u)
        assert np.all(upper >= 1.0), (j, upper.min() - 1)
        assert np.all(upper <= bare * (1 + 10 * np.asarray(r.example_iterations) * u) * (1 + 1e-12))


@settings(max_examples=200, deadline=None)
@given(j=st.integers(2, 120), seed=st.integers(0, 2**31 - 1), log_gamma=st.floats(-400.0, 5.0),
       extra=st.integers(1, 50000), log_delta=st.floats(-12.0, -0.5), side=st.sampled_from([-1e-9, 1e-9, -0.1, 0.1]))
def test_the_one_evaluation_decision_agrees_with_the_bisection(j, seed, log_gamma, extra, log_delta, side):
    """``probable_bound_at_most(c)`` (one evaluation of the Lanczos polynomial, what the stopping
    test of ``certify_below`` uses) answers "bound ≤ c?" as the bisected bound does, for c a
    relative 1e-9 or 10 % either side of it."""
    from pdenet_analysis.analysis.krylov import lanczos_polynomial_bound, probable_bound_at_most

    theta = np.sort(np.random.default_rng(seed).random(j))[::-1]
    n, delta = j + extra, 10.0**log_delta
    bound = lanczos_polynomial_bound(theta, log_gamma, n, delta, j, 2.0**-53)
    c = bound * (1 + side)
    assert probable_bound_at_most(c, theta, log_gamma, n, delta, j, 2.0**-53) == (bound <= c)


def test_golub_kahan_goes_on_until_the_certificate_question_is_decided():
    """A contractive step map has ‖S‖₂ = 1 exactly (the identity on switched-off units). At n =
    30,000 a residual converged to 1e-13 leaves the probable bound at 1 + 4.7e-6, above the
    1 + 1e-6 that certifies stability; with ``certify_below`` the run goes on (4 steps) until the
    bound is below it. Where σ_1 is above c, the Ritz value decides and nothing is added; where
    rounding alone keeps the bound above c (float32), nothing is added either. Either way the
    bound holds and the status stays that of the residual."""
    n, c, u = 30000, 1 + 1e-6, 2.0**-53
    d = torch.cat([torch.ones(n // 2), torch.linspace(0.0, 0.9, n - n // 2)]).double()
    plain = golub_kahan(DiagonalOperator(d, 8), k=1, tol=1e-13, unit_roundoff=u)
    goal = golub_kahan(DiagonalOperator(d, 8), k=1, tol=1e-13, certify_below=c, unit_roundoff=u)
    assert plain.converged and goal.converged
    assert np.all(plain.probable_upper_bound(n, 1e-6, u) > c)  # the gap this closes
    bound = goal.probable_upper_bound(n, 1e-6, u)
    assert np.all((1.0 <= bound) & (bound <= c)) and np.all(goal.example_iterations > plain.example_iterations)
    d[0] = 1 + 1e-3
    above = golub_kahan(DiagonalOperator(d, 8), k=1, tol=1e-13, certify_below=c, unit_roundoff=u)
    assert np.all(above.values[:, 0] > c) and np.all(
        above.example_iterations == golub_kahan(DiagonalOperator(d, 8), k=1, tol=1e-13).example_iterations)
    # float32: the rounding factor 1 + 10·j·u passes c at the second step, so the bound can never
    # certify ‖S‖₂ = 1 and the question is settled as soon as the residual converges, not at max_iter
    d32, u32 = d.float(), 2.0**-24
    d32[0] = 1.0
    plain32 = golub_kahan(DiagonalOperator(d32, 8), k=1, tol=1e-6, unit_roundoff=u32)
    open32 = golub_kahan(DiagonalOperator(d32, 8), k=1, tol=1e-6, certify_below=c, unit_roundoff=u32)
    assert plain32.converged and np.all(open32.example_iterations == plain32.example_iterations)
    assert np.all(open32.example_iterations < 40) and np.all(open32.probable_upper_bound(n, 1e-6, u32) > c)
    with pytest.raises(pa.InvalidArgumentError, match="which='largest'"):
        golub_kahan(DiagonalOperator(d, 1), k=1, which="smallest", certify_below=c)
    for bad in (0.0, -1.0, math.inf, float("nan"), "1"):
        with pytest.raises(pa.InvalidArgumentError, match="certify_below is the c"):
            golub_kahan(DiagonalOperator(d, 1), k=1, certify_below=bad)
    with pytest.raises(pa.InvalidArgumentError, match="failure_probability"):
        golub_kahan(DiagonalOperator(d, 1), k=1, certify_below=c, failure_probability=0.0)


def test_the_lanczos_polynomial_bound_is_exact_on_a_full_or_invariant_krylov_space():
    """Where the Krylov space fills the whole space, or the start lies in an invariant subspace
    (a breakdown: some γ_i = 0), the largest Ritz value is σ_1 and the bound adds only rounding."""
    from pdenet_analysis.analysis.krylov import lanczos_polynomial_bound

    assert lanczos_polynomial_bound([4.0, 1.0], -np.inf, 10, 1e-6, 2) == pytest.approx(2.0)
    assert lanczos_polynomial_bound([4.0, 1.0], 0.0, 2, 1e-6, 2, 2.0**-53) == pytest.approx(2.0, rel=1e-14)
    d = torch.tensor([3.0, 2.0, 1.0, 0.5]).double()
    r = golub_kahan(DiagonalOperator(d, 2), k=1, which="largest", tol=1e-300, max_iter=10, deflate=False)
    assert np.allclose(r.probable_upper_bound(4, 1e-6), 3.0, rtol=1e-12)


def test_gmres_solves_to_tolerance():
    M = _matrices(50, 1e3) + 2 * torch.eye(50)
    b = torch.randn(2, 50)
    x, info = gmres(MatrixOperator(M).matvec, b, tol=1e-12)
    assert np.all(info.residuals < 1e-12)
    np.testing.assert_allclose(torch.einsum("bij,bj->bi", M, x).numpy(), b.numpy(), atol=1e-10)


def _dense_state_flow(op, y0, scheme, n_steps):
    """J_Φ of the first-order state map by autograd on integrate() (independent of the analysis)."""
    state0 = op.to_state(y0)
    sizes = [s[:1].numel() for s in state0]

    def flow(v):
        parts = [p.reshape(s[:1].shape) for p, s in zip(v.split(sizes), state0)]
        out = pa.integrate(op, tuple(parts) if len(parts) > 1 else parts[0], scheme, n_steps=n_steps, check_finite=False).state
        return torch.cat([o.reshape(-1) for o in out])

    x = torch.cat([s[:1].reshape(-1) for s in state0])
    return np.linalg.svd(torch.autograd.functional.jacobian(flow, x).numpy(), compute_uv=False)


CONDITIONING_CASES = [
    ("hamiltonian", "verlet", "inverse-map", 3, 1.0, True),
    ("hamiltonian", "symplectic_euler", "inverse-map", 3, 2.0, False),  # κ ≈ 5.6e5: large weights, no N_tv
    ("second_order", "leapfrog", "inverse-map", 3, 1.0, True),
    ("second_order", "leapfrog_symmetric", "inverse-map", 6, 1.0, True),
    ("parabolic", "rk4", "inverse-iteration", 6, 1.0, True),
    ("hamiltonian", "verlet", "inverse-iteration", 6, 1.0, True),
    ("resnet", "heun", "inverse-iteration", 6, 1.0, True),
    ("parabolic", "euler", "reduced-inverse", 3, 4.0, True),  # h = 1 on large weights: nearly singular steps
    ("resnet", "euler", "reduced-inverse", 3, 1.5, True),
]


@pytest.mark.parametrize("arch,scheme,method,n_steps,scale,normalise", one_fast_per(CONDITIONING_CASES, key=lambda c: c[2]))
def test_sigma_min_and_condition_equal_dense(arch, scheme, method, n_steps, scale, normalise):
    op, y0 = paper_operator(arch, channels=4, size=4, activation="relu", normalise=normalise, interpolation="constant",
                            n_pieces=3, T=3.0)
    with torch.no_grad():
        for layer in op.layers():
            for w in layer.kernels():
                w.mul_(scale)
    s = _dense_state_flow(op, y0, scheme, n_steps)
    rep = A.conditioning(op, y0[:1], scheme, n_steps=n_steps, method=method, k=2, certification=Certification(tol=1e-10))
    e = rep.data["examples"][0]
    assert rep.data["method_min"].startswith(method) and e["condition_status"] == "converged"
    assert e["sigma_max"][0] == pytest.approx(s[0], rel=1e-6)
    assert e["sigma_min"][0] == pytest.approx(s[-1], rel=1e-6)
    assert e["sigma_min"][1] == pytest.approx(s[-2], rel=1e-6)
    assert e["condition"] == pytest.approx(s[0] / s[-1], rel=1e-6)
    if scale == 2.0:
        assert s[0] / s[-1] > 1e5  # the ill-conditioned case is really ill-conditioned
    # the probable bracket (the Lanczos polynomial bound) holds; σ_min has one only on the exact inverse routes
    # (and, the values having converged, it is tight)
    assert s[0] * (1 - 1e-9) <= e["sigma_max_upper_probable"] <= s[0] * (1 + 1e-6)
    lo = e["sigma_min_lower_probable"]
    if method == "inverse-iteration":
        assert lo is None and e["condition_upper_probable"] is None
    else:
        assert s[-1] * (1 - 1e-6) <= lo <= s[-1] * (1 + 1e-9)
        assert e["condition"] <= s[0] / s[-1] * (1 + 1e-9) <= e["condition_upper_probable"] * (1 + 2e-9)
        assert e["condition_upper_probable"] <= s[0] / s[-1] * (1 + 2e-6)


def test_probable_bracket_spends_half_its_failure_probability_at_each_end_and_redraws_with_the_seed():
    """κ ∈ [κ found, condition_upper_probable] fails only if σ_max's bound or σ_min's fails: each
    is taken at δ/2 so that the bracket fails with probability at most δ (the union). The start
    vectors come from ``seed``: the same seed repeats the report bit for bit, another draws other
    starts, whose bracket holds as well (against the dense singular values)."""
    from pdenet_analysis.analysis.precision import UNIT_ROUNDOFF
    from pdenet_analysis.analysis.steps import discretise

    op, y0 = paper_operator("hamiltonian", channels=4, size=4, activation="relu", normalise=True)
    s = _dense_state_flow(op, y0, "verlet", 3)
    delta, tol = 1e-4, 1e-10
    reports = {seed: A.conditioning(op, y0[:1], 'verlet', n_steps=3, method='inverse-map', k=1, certification=Certification(tol=tol, failure_probability=delta, seed=seed)) for seed in (0, 7)}
    J = discretise(op, y0[:1], "verlet", n_steps=3).flow_jacobian("state")
    n = J.shape[1]
    for seed, rep in reports.items():
        e = rep.data["examples"][0]
        assert rep.data["seed"] == seed and rep.data["failure_probability"] == delta
        top = golub_kahan(J, k=1, which="largest", tol=tol, seed=seed)
        assert e["sigma_max_upper_probable"] == top.probable_upper_bound(n, delta / 2, UNIT_ROUNDOFF["float64"])[0]
        assert e["sigma_max_upper_probable"] > top.probable_upper_bound(n, delta, UNIT_ROUNDOFF["float64"])[0]  # wider
        assert s[0] * (1 - 1e-9) <= e["sigma_max_upper_probable"] and e["sigma_min_lower_probable"] <= s[-1] * (1 + 1e-9)
    same = [A.conditioning(op, y0[:1], 'verlet', n_steps=3, method='inverse-map', k=1, certification=Certification(tol=tol, failure_probability=delta, seed=0)).data["examples"][0] for _ in range(2)]
    assert same[0] == same[1]
    other = reports[7].data["examples"][0]
    assert other["sigma_max_upper_probable"] != same[0]["sigma_max_upper_probable"]


@pytest.mark.slow
def test_inverse_map_route_equals_inverse_iteration_route():
    op, y0 = paper_operator("hamiltonian", channels=4, size=4, activation="relu", normalise=True)
    a = A.conditioning(op, y0, 'verlet', n_steps=4, method='inverse-map', certification=Certification(tol=1e-10)).data["examples"]
    b = A.conditioning(op, y0, 'verlet', n_steps=4, method='inverse-iteration', certification=Certification(tol=1e-10)).data["examples"]
    for ea, eb in zip(a, b):
        np.testing.assert_allclose(ea["sigma_min"], eb["sigma_min"], rtol=1e-7)


def test_unresolvable_sigma_min_is_reported_as_a_bound():
    """Forward Euler at h = 1 on a mode with hλ ≈ −1: the per-step factors are nearly singular,
    GMRES cannot invert them, and the report must say 'bound' with a value that is one. (An
    identity activation has no switched-off units, so the exact reduced-inverse route does not
    apply and inverse iteration is the route taken.)"""
    op = pa.parabolic(2, T=1.0, n_pieces=1, normalise=False, activation="identity")
    with torch.no_grad():
        op.layer.weight.mul_(30)
    x = torch.randn(1, 2, 6, 6)
    s = np.linalg.svd(JacobianOperator(lambda y: pa.integrate(op, y, "euler", n_steps=8, check_finite=False).y, x)
                      .dense().numpy(), compute_uv=False)
    rep = A.conditioning(op, x, 'euler', n_steps=8, budget=Budget(dense_max=0, max_iter=6))
    e = rep.data["examples"][0]
    assert e["sigma_min_status"] == "bound" and not rep.data["all_converged"]
    assert e["sigma_min"][0] >= s.min() * (1 - 1e-9) and e["condition"] <= s.max() / s.min() * (1 + 1e-9)
    assert any("upper bound" in n for n in rep.notes)


def test_dense_route_is_exact_and_used_for_small_states():
    op, y0 = paper_operator("parabolic", channels=3, size=4, activation="relu", normalise=True, interpolation="constant",
                            n_pieces=3, T=3.0)
    rep = A.conditioning(op, y0, "euler")
    s = _dense_state_flow(op, y0, "euler", 3)
    assert rep.data["method_min"] == "dense"
    assert rep.data["examples"][0]["condition"] == pytest.approx(s[0] / s[-1], rel=1e-9)
    assert rep.data["examples"][0]["condition_upper_probable"] == pytest.approx(s[0] / s[-1], rel=1e-9)  # all known
    for e in rep.data["examples"]:  # the bracket contains κ as reported: the SVD's rounding is added, not left out
        assert e["condition"] < e["condition_upper_probable"] <= e["condition"] * (1 + 1e-9)
    assert rep.data["condition"]["n"] == 2  # a distribution over both examples


@pytest.mark.slow
def test_dense_route_bracket_holds_in_float32_with_the_svds_rounding():
    """In float32 the dense route's κ is off by rounding, and in either direction: the SVD's pad
    10·n·u·σ_max (``_probable_bracket``) is what keeps ``condition_upper_probable`` above κ.
    For every registered fixed scheme with each architecture it runs, at two weight scales (κ from
    2.5 to 7.8·10⁹), the float32 report is checked against κ of the same weights and input in
    float64 (autograd, independent of the analysis): the upper end holds in all 47 cases it bounds;
    the 5 where κ·u is too large for float32 to bound σ_min away from 0 (κ ≥ 1.1·10⁵ here) are
    left open (None). The reported κ, the upper end without the pad, falls below the float64 κ in
    18 of the 47, so the pad is needed."""
    u32 = 2.0**-24
    below, checked = 0, 0
    for scheme, arch in PAIRS:
        for scale in (2.0, 6.0):
            op, y0 = paper_operator(arch, channels=2, size=4, seed=0, scale=scale * (0.5 if arch == "hamiltonian" else 1))
            kappa = _dense_state_flow(op, y0, scheme, 8)
            kappa = kappa[0] / kappa[-1]
            rep = A.conditioning(op.float(), y0.float()[:1], scheme, n_steps=8)
            assert rep.data["method_min"] == "dense", (scheme, arch)
            e = rep.data["examples"][0]
            upper = e["condition_upper_probable"]
            if upper is None:  # float32 cannot bound σ_min away from 0 here
                assert kappa * u32 > 1e-4, (scheme, arch, scale, kappa)
                continue
            checked += 1
            assert kappa <= upper, (scheme, arch, scale, kappa, upper)
            below += e["condition"] < kappa
    assert checked >= 40 and below >= 10, (checked, below)


def _dense_step_matrix(scheme, op, internal, t, h) -> np.ndarray:
    """S_j of the first example by autograd on the scheme's step (independent of the analysis)."""
    f = lambda *s: torch.cat([o[:1].reshape(-1) for o in scheme.step(op, s, t, h)])  # noqa: E731
    one = tuple(c[:1] for c in internal)
    blocks = torch.autograd.functional.jacobian(f, one)
    return torch.cat([b.reshape(b.shape[0], -1) for b in blocks], 1).numpy()


def _dense_step_radius(scheme, op, internal, t, h):
    return np.abs(np.linalg.eigvals(_dense_step_matrix(scheme, op, internal, t, h))).max()


PAIRS = [(s, a) for s in FIXED_SCHEMES for kind in sorted(pa.get_scheme(s).kinds) for a in ARCH_OF_KIND[kind]]


@pytest.mark.parametrize("scheme,arch,normalise",
                         one_fast_per([(s, a, n) for s, a in PAIRS for n in (True, False)], key=lambda c: c[0]))
def test_step_map_radius_equals_dense_for_every_scheme(scheme, arch, normalise):
    """No unstable mode, real or complex, is missed: the reported amplification per step is the
    dense spectral radius of the step map, by ARPACK (dense_max=0), for every registered scheme."""
    op, y0 = paper_operator(arch, channels=2, size=3, activation="relu", normalise=normalise, interpolation="constant",
                            n_pieces=2, T=2.0, scale=4.0)
    rep = A.stability(op, y0[:1], scheme, n_steps=2, k=2, budget=Budget(dense_max=0))
    sch = pa.get_scheme(scheme)
    disc = A.discretise(op, y0[:1], scheme, n_steps=2)
    for j, (t, h, internal) in enumerate(disc.steps):
        want = _dense_step_radius(sch, op, internal, t, h)
        got = rep.data["steps"][j]
        assert got["max_amplification"] == pytest.approx(want, rel=1e-6), (scheme, arch, j)
        assert got["status"] == "converged"
        for e in got["examples"]:  # ‖S_j‖₂ brackets the radius from above
            assert e["step_map_radius"] <= e["step_map_radius_upper"] * (1 + 1e-9)


def test_stability_norm_bracket_follows_failure_probability_and_seed():
    """‖S_j‖₂'s upper bound is taken at the failure probability asked for (a smaller one, a wider
    bound, both above the dense norm) from start vectors drawn from ``seed`` (recorded). Once the
    top Ritz value has converged the bound is that value times the rounding factor, the same to
    the last digit from any start; so the seed's effect is checked on runs cut short (4 steps),
    where the bound still depends on the start vector and holds from each."""
    from pdenet_analysis.analysis.krylov import golub_kahan

    op, y0 = paper_operator("hamiltonian", channels=2, size=3, activation="relu", normalise=True, n_pieces=2, T=2.0)
    sch = pa.get_scheme("symplectic_euler")
    disc = A.discretise(op, y0[:1], sch, n_steps=2)
    uppers = {}
    for fp, seed in ((1e-12, 0), (0.5, 0), (0.5, 3)):
        rep = A.stability(op, y0[:1], sch, n_steps=2, k=2, certification=Certification(failure_probability=fp, seed=seed))
        assert rep.data["failure_probability"] == fp and rep.data["seed"] == seed
        uppers[fp, seed] = [st["examples"][0]["step_map_radius_upper"] for st in rep.data["steps"]]
    for j, (t, h, internal) in enumerate(disc.steps):
        norm = np.linalg.norm(_dense_step_matrix(sch, op, internal, t, h), 2)
        assert norm * (1 - 1e-9) <= uppers[0.5, 0][j] < uppers[1e-12, 0][j]
        assert norm * (1 - 1e-9) <= uppers[0.5, 3][j]
        S = disc.step_jacobian(j)
        short = [golub_kahan(S, k=1, tol=1e-15, max_iter=4, check_every=4, seed=seed).probable_upper_bound(S.shape[1], 1e-6)[0]
                 for seed in (0, 3)]
        assert short[0] != short[1] and min(short) >= norm * (1 - 1e-9), (short, norm)


@pytest.mark.parametrize("scheme", FIXED_SCHEMES)
def test_step_map_spectrum_is_the_stability_function_on_linear_problems(scheme):
    """y' = Ay: eig(S) = R(hλ(A)); y'' = My: the roots of ξ² − (2 + h²μ)ξ + 1. The dense count
    of modes outside equals the number of λ with amplification > 1."""
    sch = pa.get_scheme(scheme)
    h = 0.9
    if sch.accepts("first_order"):
        A_ = random_stable_matrix(6, 1, spread=3.0)
        op, y0, lam = LinearFirstOrder(A_), torch.randn(1, 6), np.linalg.eigvals(A_)
        z = h * lam
    else:
        M = -random_spd(6, 2, low=0.5, high=6.0)
        op, y0, lam = LinearSecondOrder(M), (torch.randn(1, 6), torch.randn(1, 6)), np.linalg.eigvals(M)
        z = h * h * lam
    disc = A.discretise(op, y0, scheme, T=h, n_steps=1)
    got = step_map_spectra(disc, 0)[0]
    amp = sch.amplification(z)
    assert got.radius == pytest.approx(amp.max(), rel=1e-9)
    if sch.accepts("first_order"):
        assert got.count == int((amp > 1 + 1e-6).sum())


def test_arpack_count_of_modes_outside_is_complete():
    """An operator with many eigenvalues just outside the unit disc (complex pairs) and the rest
    on it: the doubling search finds every one of them, as the dense count does."""
    g = np.random.default_rng(3)
    n, n_out = 120, 37
    mods = np.r_[1 + 0.05 * g.random(n_out), np.ones(n - n_out) * 0.97]
    angles = g.uniform(0, np.pi, n)
    blocks = [np.array([[m * np.cos(a), -m * np.sin(a)], [m * np.sin(a), m * np.cos(a)]]) for m, a in zip(mods[::2], angles[::2])]
    D = np.zeros((n, n))
    for i, b in enumerate(blocks):
        D[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = b
    Q, _ = np.linalg.qr(g.standard_normal((n, n)))
    M = torch.tensor(Q @ D @ Q.T)
    J = JacobianOperator(lambda v: v @ M.T, torch.zeros(n))
    r = count_outside(J, 1 + 1e-6)
    dense = np.abs(np.linalg.eigvals(M.numpy()))
    assert r.exact and r.count == int((dense > 1 + 1e-6).sum())
    assert r.radius == pytest.approx(dense.max(), rel=1e-8)


def test_count_budget_bounds_the_arpack_count_and_reaches_the_report(monkeypatch):
    """``count_budget`` is the products one ARPACK count may take: cut short, the count of the 37
    modes outside is a lower bound, not exact; with the default it is complete. The stability
    report passes it to every count, records it, and refuses a budget that is not a positive
    integer."""
    from pdenet_analysis.analysis import stepmap

    g = np.random.default_rng(3)
    n = 120
    mods = np.r_[1 + 0.05 * g.random(37), np.ones(n - 37) * 0.97]
    Q, _ = np.linalg.qr(g.standard_normal((n, n)))
    M = torch.tensor(Q @ np.diag(mods) @ Q.T)
    J = JacobianOperator(lambda v: v @ M.T, torch.zeros(n))
    short = count_outside(J, 1 + 1e-6, budget=60, dense_fallback=0)
    full = count_outside(J, 1 + 1e-6, dense_fallback=0)
    assert not short.exact and short.count <= 37 and short.n_matvecs <= 60 + 128
    assert full.exact and full.count == 37

    seen = []
    real = stepmap.count_outside
    monkeypatch.setattr(stepmap, "count_outside", lambda *a, **kw: seen.append(kw["budget"]) or real(*a, **kw))
    op, y0 = paper_operator("hamiltonian", channels=2, size=3, activation="relu", n_pieces=1, T=1.0, scale=4.0)
    rep = A.stability(op, y0[:1], 'rk4', n_steps=1, k=2, budget=Budget(dense_max=0, count_budget=123))
    assert rep.data["count_budget"] == 123 and seen and set(seen) == {123}
    for bad in (0, -5, 2.5, True, "many"):
        with pytest.raises(pa.InvalidArgumentError, match="count_budget"):
            A.stability(op, y0[:1], 'rk4', n_steps=1, budget=Budget(count_budget=bad))


def test_contractive_steps_are_certified_by_the_norm_bound():
    """Parabolic, N = id, small h: S = I − hKᵀDK has ‖S‖₂ ≤ 1, which certifies that no mode is
    outside without an eigenvalue solve; the radius reported is that bound, above the dense ρ."""
    op, y0 = paper_operator("parabolic", channels=3, size=4, activation="relu", normalise=False, interpolation="constant",
                            n_pieces=1, T=0.1, scale=1.0)
    rep = A.stability(op, y0, 'euler', n_steps=1, k=2, budget=Budget(dense_max=0))
    disc = A.discretise(op, y0, "euler", n_steps=1)
    t, h, internal = disc.steps[0]
    dense = _dense_step_radius(pa.get_scheme("euler"), op, internal, t, h)
    step = rep.data["steps"][0]
    assert all(e["step_map_method"] == "norm bound" and e["count_exact"] and e["n_outside"] == 0 for e in step["examples"])
    assert dense * (1 - 1e-9) <= step["max_amplification"] <= 1 + 1e-6
    assert str(rep.rows[0][3]).startswith("≤")


@pytest.mark.slow
def test_contractive_steps_are_certified_at_a_size_where_a_converged_residual_is_not_enough():
    """The same theorem at 32,768 unknowns (8 channels, 64 × 64), h = 1/‖K‖₂²: ‖S‖₂ = 1 exactly.
    Golub–Kahan to a residual of 1e-13 leaves the probable bound near 1 + 5e-6, above 1 + δ;
    the analysis goes on until the bound decides, and certifies the step."""
    from pdenet_analysis.analysis.density import parabolic_bound

    def build(T):
        torch.manual_seed(0)
        return pa.parabolic(8, T=T, n_pieces=1, normalise=False).double()

    h = 1.0 / parabolic_bound(build(1.0), (64, 64))[0]["norm_K"] ** 2
    op, x = build(h), torch.randn(1, 8, 64, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    S = A.discretise(op, x, "euler", n_steps=1).step_jacobian(0)
    assert golub_kahan(S, k=1, tol=1e-13).probable_upper_bound(S.shape[1], 1e-6, 2.0**-53)[0] > 1 + 1e-6
    e = A.stability(op, x, 'euler', n_steps=1, k=2, budget=Budget(dense_max=0)).data["steps"][0]["examples"][0]
    assert e["step_map_method"] == "norm bound" and e["n_outside"] == 0
    assert 1.0 <= e["step_map_radius_upper"] <= 1 + 1e-6


def test_krylov_solvers_run_numpy_blas_on_one_thread():
    """The solvers interleave torch products with numpy/scipy work: numpy's BLAS pool is held at
    one thread inside them (two spinning pools on two cores made each product 5× slower)."""
    from threadpoolctl import threadpool_info

    seen = []

    class Probe(MatrixOperator):
        def matvec(self, v):
            seen.append(max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"))
            return super().matvec(v)

    op = Probe(_matrices(30, 10.0, batch=1))
    golub_kahan(op, k=1)
    gmres(op.matvec, torch.ones(1, 30), tol=1e-8)
    J = JacobianOperator(lambda v: v @ op.M[0].T, torch.zeros(30))
    J.matvec = lambda v, f=J.matvec: (seen.append(max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")), f(v))[1]
    eigs(J, k=2)
    assert seen and set(seen) == {1}


def test_unconverged_radius_is_bracketed_by_a_certified_value_and_the_norm():
    """ARPACK stopped by its budget: the reported lower end is an eigenvalue (small residual) and
    never exceeds the dense radius by more than its residual allows."""
    g = np.random.default_rng(5)
    n = 400
    M = torch.tensor(np.diag(np.r_[1.05, 1.0 + 0.01 * g.random(n - 1)]) + 0.02 * g.standard_normal((n, n)))
    J = JacobianOperator(lambda v: v @ M.T, torch.zeros(n))
    r = count_outside(J, 1 + 1e-6, budget=60, dense_fallback=0)
    dense = np.abs(np.linalg.eigvals(M.numpy())).max()
    assert not r.exact
    assert np.isnan(r.radius_lower) or r.radius_lower <= dense * (1 + 1e-5)
    assert dense <= np.linalg.norm(M.numpy(), 2) + 1e-12
    full = count_outside(J, 1 + 1e-6, dense_fallback=0)
    assert full.status == "converged" and full.radius_lower == pytest.approx(dense, rel=1e-8)


def test_second_order_block_unstable_complex_modes_are_found():
    """The case that the layer-eigenvalue analysis misses: a TV-normalised second-order block
    with leapfrog has step-map modes outside the unit circle although the few extreme layer
    eigenvalues all map into [−4, 0]."""
    torch.manual_seed(0)
    op = pa.second_order(4, T=3.0, n_pieces=3)
    y0 = torch.randn(1, 4, 5, 5)
    rep = A.stability(op, y0, 'leapfrog')
    worst = max(s["max_amplification"] for s in rep.data["steps"])
    disc = A.discretise(op, y0, "leapfrog")
    dense = max(_dense_step_radius(pa.get_scheme("leapfrog"), op, st_, t, h) for t, h, st_ in disc.steps)
    assert worst == pytest.approx(dense, rel=1e-9) and worst > 1 + 1e-6
    assert any(s["n_outside_max"] > 0 for s in rep.data["steps"])


def test_slq_density_matches_dense_histogram():
    op, y0 = paper_operator("parabolic", channels=4, size=6, activation="relu", normalise=True, interpolation="constant",
                            n_pieces=2)
    rep = A.spectral_density(op, y0, "euler", n_steps=2, n_vectors=16, m=40)
    J, _ = operator_jacobian(op, op.to_state(y0), pa.schemes.base.stage_time(0.0, 0.0, 0.5), 0)
    D = J.dense().numpy()
    ev = np.linalg.eigvalsh(0.5 * (D + D.T))
    d = rep.data
    w = scipy.stats.wasserstein_distance(d["slq"]["nodes"].ravel(), ev, u_weights=d["slq"]["weights"].ravel())
    assert w < 0.03 * (ev.max() - ev.min())
    assert d["bendixson"]["re_min"] == pytest.approx(ev.min(), rel=1e-8)
    assert d["bendixson"]["re_max"] == pytest.approx(ev.max(), abs=1e-8)
    assert np.all(np.linalg.eigvals(D).real <= d["bendixson"]["re_max"] + 1e-8)


def test_parabolic_norm_bound_is_certified_and_sharp():
    """Without normalisation ρ(∂F/∂Y) ≤ ‖K‖₂² (ReLU), and ‖K‖₂ equals the dense norm of the conv."""
    op, y0 = paper_operator("parabolic", channels=3, size=5, activation="relu", normalise=False, interpolation="constant",
                            n_pieces=1, T=1.0)
    rep = A.spectral_density(op, y0, "euler", n_steps=1)
    w = op.layer.weight[0]
    K = JacobianOperator(lambda y: pa.operators.functional.conv(y, w.detach()), torch.zeros(1, 3, 5, 5)).dense().numpy()
    b = rep.data["parabolic_bound"][0]
    assert b["norm_K"] == pytest.approx(np.linalg.norm(K, 2), rel=1e-8)
    J, _ = operator_jacobian(op, op.to_state(y0), 0.0, 0)
    assert np.abs(np.linalg.eigvals(J.dense().numpy())).max() <= b["rho_bound"] * (1 + 1e-10)


TABLEAU_SCHEMES = [n for n in pa.available_schemes()
                   if isinstance(pa.get_scheme(n), ExplicitRungeKutta) or pa.get_scheme(n).adaptive]


@pytest.mark.parametrize("name", TABLEAU_SCHEMES)
def test_stage_nodes_of_every_tableau(name):
    """y' = 1 from y = 0 at t = 0.5 with h = 0.25: stage i must see t + c_i h and y + h Σ_j a_ij = h c_i."""
    sch = pa.get_scheme(name)
    sch = getattr(sch, "step_scheme", sch)
    seen = []

    class Recorder(pa.operators.Operator):
        kind = "first_order"

        def vector_field(self, t, state):
            seen.append((float(t), float(state[0])))
            return (torch.ones_like(state[0]),)

    t0, h = 0.5, 0.25
    sch.step(Recorder(), (torch.zeros(()),), t0, h)
    c = np.array(sch.tableau.c)
    used = [i for i in range(len(c)) if i < len(seen)]
    np.testing.assert_allclose([s[0] for s in seen], t0 + c[used] * h, rtol=0, atol=1e-15)
    np.testing.assert_allclose([s[1] for s in seen], c[used] * h, rtol=0, atol=1e-15)


@pytest.mark.parametrize("name", [n if n == "dopri5" else pytest.param(n, marks=pytest.mark.slow) for n in ADAPTIVE_SCHEMES])
def test_adaptive_schemes_are_analysed_along_accepted_steps(name):
    op, y0 = paper_operator("parabolic", channels=2, size=3, activation="relu", normalise=True)
    rep = A.stability(op, y0[:1], get_scheme(name, rtol=0.001, atol=1e-05))
    disc = A.discretise(op, y0[:1], get_scheme(name, rtol=0.001, atol=1e-05))
    assert len(rep.data["steps"]) == disc.n_steps >= 1
    assert sum(h for _, h, _ in disc.steps) == pytest.approx(op.T, rel=1e-12)  # steps end exactly at T
    sch = disc.step_scheme
    for j, (t, h, internal) in enumerate(disc.steps[:3]):
        assert rep.data["steps"][j]["max_amplification"] == pytest.approx(_dense_step_radius(sch, op, internal, t, h), rel=1e-9)
    if name in ("dopri5", "bosh3"):  # the low-order pairs take hundreds of steps: linearising them all is slow
        cond = A.conditioning(op, y0[:1], get_scheme(name, rtol=1e-05, atol=1e-07))
        assert cond.data["all_converged"]


def test_adaptive_solution_meets_tolerance_against_scipy():
    """Steps end at T (torchdiffeq's step_t) instead of being interpolated back: every adaptive
    scheme meets rtol = atol = 1e-8 within a modest factor, against scipy's DOP853 at 1e-13."""
    import scipy.integrate as si

    op, y0 = paper_operator("parabolic", channels=3, size=4)
    f = lambda t, y: op.vector_field(float(t), (torch.from_numpy(y).view_as(y0),))[0].detach().numpy().ravel()  # noqa: E731
    ref = si.solve_ivp(f, (0, op.T), y0.numpy().ravel(), method="DOP853", rtol=1e-13, atol=1e-13).y[:, -1]
    for name in ("dopri5", "dopri8", "bosh3"):
        sol = pa.integrate(op, y0, name, rtol=1e-8, atol=1e-8)
        err = np.abs(sol.y.detach().numpy().ravel() - ref).max() / np.abs(ref).max()
        assert err < 20 * 1e-8, name


def test_convergence_study_refuses_adaptive_schemes():
    op, y0 = paper_operator("parabolic")
    with pytest.raises(pa.IncompatibleSchemeError, match="error control"):
        A.convergence_study(op, y0, "dopri5", [4, 8, 16])


def test_batched_jacobian_blocks_equal_single_example_jacobians():
    op, y0 = paper_operator("hamiltonian", channels=4, size=3, activation="relu", normalise=True)
    disc = A.discretise(op, y0, "verlet", n_steps=2)
    Jb = disc.flow_jacobian().dense()
    for b in range(y0.shape[0]):
        one = A.discretise(op, y0[b : b + 1], "verlet", n_steps=2).flow_jacobian().dense()
        np.testing.assert_allclose(Jb[b].numpy(), one[0].numpy(), atol=1e-12)


@pytest.mark.parametrize("arch", ["parabolic", "hamiltonian", "second_order", "resnet"])
def test_feature_map_singular_values_equal_the_dense_svd(arch):
    from pdenet_analysis.analysis import features_conditioning

    torch.manual_seed(1)
    net = pa.build_preset(f"digits-{arch}").double().eval()
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    rep = features_conditioning(net, x)
    for b in range(2):
        # the paper's feature map, at the image the network sees (its preprocessing applied)
        J = torch.autograd.functional.jacobian(lambda z: net.features(z.unsqueeze(0), preprocessed=True)[0],
                                               net.preprocess(x)[b]).reshape(32, -1)
        sv = torch.linalg.svdvals(J)
        got = torch.tensor(rep.data["examples"][b]["singular_values"], dtype=torch.float64)
        assert torch.allclose(got, sv, rtol=1e-10, atol=1e-12 * float(sv[0]))


@pytest.mark.parametrize("arch", ["hamiltonian", "second_order"])
def test_feature_map_of_a_network_trained_with_the_reversible_gradient(arch):
    """A network whose blocks take the reversible gradient (which has reverse mode only, no
    torch.func rules) is analysed as the same map: the same singular values as with backprop."""
    from pdenet_analysis.analysis import features_conditioning

    torch.manual_seed(1)
    net = pa.build_preset(f"digits-{arch}").double().eval()
    rev = net.with_scheme(gradient="reversible")
    assert all(str(b.gradient) == "reversible" for b in rev.blocks)
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    ref, got = features_conditioning(net, x), features_conditioning(rev, x)
    for a, b in zip(ref.data["examples"], got.data["examples"]):
        np.testing.assert_allclose(b["singular_values"], a["singular_values"], rtol=1e-12)
    assert all(str(b.gradient) == "reversible" for b in rev.blocks)  # the model itself is left as it was


def test_a_dead_feature_is_a_rank_deficit_not_a_huge_condition_number():
    from pdenet_analysis.analysis import features_conditioning

    torch.manual_seed(0)
    net = pa.build_preset("digits-parabolic").double().eval()
    last = net.units[-1].connector
    with torch.no_grad():  # the last connector's channel 5 outputs relu(−1) = 0 for every input
        last[0].weight[5].zero_()
        last[1].weight[5] = 0.0
        last[1].bias[5] = -1.0
    rep = features_conditioning(net, torch.randn(3, 1, 8, 8, dtype=torch.float64))
    for e in rep.data["examples"]:
        assert e["rank"] <= 31 and e["condition"] == float("inf")
        assert math.isfinite(e["condition_effective"]) and e["condition_effective"] >= 1.0


def test_feature_conditioning_refuses_adaptive_blocks():
    from pdenet_analysis.analysis import features_conditioning

    net = pa.build_preset("digits-parabolic").with_scheme("dopri5")
    with pytest.raises(pa.InvalidArgumentError, match="fixed-step"):
        features_conditioning(net, torch.randn(1, 1, 8, 8))


def test_batched_arnoldi_on_the_whole_space_gives_every_eigenvalue():
    """With m = n the Krylov space of each example is the whole space: its Ritz values are the
    dense eigenvalues (complex pairs included), per example, with residuals at round-off."""
    g = np.random.default_rng(7)
    M = torch.tensor(g.standard_normal((3, 20, 20)))
    r = batched_arnoldi(MatrixOperator(M), m=20)
    for b in range(3):
        ev = np.linalg.eigvals(M[b].numpy())
        ev = ev[np.argsort(-np.abs(ev), kind="stable")]
        np.testing.assert_allclose(np.sort_complex(r.values[b]), np.sort_complex(ev), rtol=1e-9, atol=1e-10)
        assert np.all(r.residuals[b] < 1e-10)
        assert np.all(np.diff(np.abs(r.values[b])) <= 1e-12)  # ordered by decreasing modulus


def test_batched_arnoldi_finds_a_separated_dominant_eigenvalue_of_each_example():
    """A short run: each example's isolated largest eigenvalue (different per example) converges,
    and its residual says so."""
    g = np.random.default_rng(8)
    n, mats, tops = 200, [], [1.5, -1.3, 1.2]
    for top in tops:
        Q, _ = np.linalg.qr(g.standard_normal((n, n)))
        mats.append(Q @ np.diag(np.r_[top, 0.9 * g.random(n - 1)]) @ Q.T)
    r = batched_arnoldi(MatrixOperator(torch.tensor(np.stack(mats))), m=30)
    np.testing.assert_allclose(r.values[:, 0].real, tops, rtol=1e-8)
    assert np.all(r.residuals[:, 0] < 1e-8)


@pytest.mark.parametrize("seed", [0, 1])  # seed 0: an estimate exceeds the counted radius; seed 1: none does
def test_counting_the_worst_examples_only_keeps_estimates_for_the_rest(seed):
    """count_examples = 1 on three examples of an unstable leapfrog block (above dense_max): one
    example is counted, its radius and count equal the dense ones; the others say "estimate" and
    stay below their certified bound ‖S_j‖₂; the step's max amplification is the counted
    example's and the table says how many were counted; an estimate above it is flagged."""
    torch.manual_seed(seed)
    op = pa.second_order(4, T=1.0, n_pieces=1)
    y0 = torch.randn(3, 4, 5, 5, dtype=torch.float64)
    op = op.double()
    rep = A.stability(op, y0, 'leapfrog', n_steps=1, budget=Budget(dense_max=0, count_examples=1))
    step = rep.data["steps"][0]
    disc = A.discretise(op, y0, "leapfrog", n_steps=1)
    t, h, internal = disc.steps[0]
    sch = pa.get_scheme("leapfrog")
    counted = [e for e in step["examples"] if e["step_map_status"] != "estimate"]
    estimated = [e for e in step["examples"] if e["step_map_status"] == "estimate"]
    assert len(counted) == 1 and len(estimated) == 2 and step["counted_examples"] == [counted[0]["example"]]
    c = counted[0]
    one = tuple(s[c["example"] : c["example"] + 1] for s in internal)
    dense = _dense_step_radius(sch, op, one, t, h)
    assert c["step_map_radius"] == pytest.approx(dense, rel=1e-8) and c["count_exact"]
    assert step["max_amplification"] == pytest.approx(dense, rel=1e-8)
    assert rep.rows[0][-1] == "1 of 3 counted"
    assert all(e["count_exact"] is False and e["step_map_method"].startswith("arnoldi estimate") for e in estimated)
    for e in estimated:
        one = tuple(s[e["example"] : e["example"] + 1] for s in internal)
        assert _dense_step_radius(sch, op, one, t, h) <= e["step_map_radius_upper"] * (1 + 1e-9)
    assert rep.data["steps"][0]["counted_examples"] == [c["example"]] and rep.count_examples == 1
    # an estimate above the counted radius is flagged, and only then
    flagged = any("exceeds the counted radius" in n_ for n_ in rep.notes)
    assert flagged == any(e["step_map_radius"] > c["step_map_radius"] * (1 + 1e-9) for e in estimated)


def test_feature_jacobians_in_chunks_equal_one_batch():
    from pdenet_analysis.analysis.network import feature_jacobians

    torch.manual_seed(2)
    net = pa.build_preset("digits-hamiltonian")
    x = torch.randn(3, 1, 8, 8)
    np.testing.assert_allclose(feature_jacobians(net, x, rows=5).numpy(), feature_jacobians(net, x, rows=1000).numpy(),
                               rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("bad", [0, -2, 1.5, True])
def test_count_examples_must_be_a_positive_integer(bad):
    from pdenet_analysis.errors import InvalidArgumentError

    op = pa.second_order(4, T=1.0, n_pieces=1)
    with pytest.raises(InvalidArgumentError, match="Budget.count_examples is the examples per step counted"):
        A.stability(op, torch.randn(2, 4, 5, 5), 'leapfrog', n_steps=1, budget=Budget(dense_max=0, count_examples=bad))


def test_a_converged_radius_survives_a_larger_k_that_runs_out_of_budget():
    """Four separated eigenvalues above a crowded bulk outside the circle: k = 4 converges, the
    doubled k does not within the budget. The radius of the converged run is reported as
    converged (it is the dense one), and the count as a lower bound."""
    g = np.random.default_rng(7)
    n = 600
    top = [1.5, 1.45, 1.4, 1.35]
    bulk = 1.001 + 0.009 * g.random(148)
    mods = np.r_[top, np.repeat(bulk, 2), np.full(n - 4 - 296, 0.5)]
    D = np.diag(mods[:4].astype(float))
    D = np.zeros((n, n))
    D[range(4), range(4)] = top
    for i, (m, a) in enumerate(zip(bulk, g.uniform(0.1, np.pi - 0.1, 148))):
        j = 4 + 2 * i
        D[j : j + 2, j : j + 2] = [[m * np.cos(a), -m * np.sin(a)], [m * np.sin(a), m * np.cos(a)]]
    D[300:, 300:] = np.diag(np.full(n - 300, 0.5))
    Q, _ = np.linalg.qr(g.standard_normal((n, n)))
    M = torch.tensor(Q @ D @ Q.T)
    J = JacobianOperator(lambda v: v @ M.T, torch.zeros(n))
    r = count_outside(J, 1 + 1e-6, budget=600, dense_fallback=0, count_max=64)
    dense = np.abs(np.linalg.eigvals(M.numpy()))
    assert r.status == "converged" and not r.exact
    assert r.radius == pytest.approx(1.5, rel=1e-8) and r.radius == pytest.approx(dense.max(), rel=1e-8)
    assert 4 <= r.count < int((dense > 1 + 1e-6).sum())


def test_examples_are_counted_by_certified_lower_bound_then_in_order():
    """The examples counted first are those whose Arnoldi run certifies the largest lower bound on
    ρ (a Ritz value with a small residual); the Ritz radius alone does not rank them."""
    from types import SimpleNamespace as Count

    from pdenet_analysis.analysis.stepmap import _rank_key

    nan = float("nan")
    est = {0: Count(radius=1.9, radius_lower=nan), 1: Count(radius=1.01, radius_lower=1.005),
           2: Count(radius=1.2, radius_lower=1.1), 3: Count(radius=1.5, radius_lower=nan)}
    assert sorted(est, key=lambda b: _rank_key(est[b])) == [2, 1, 0, 3]
