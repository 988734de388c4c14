"""The batched Krylov solvers against dense computations: Golub–Kahan's values, interlacing and
deflation, the Lanczos polynomial bound's failure probability, GMRES, Arnoldi."""

import math
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
import pdenet_analysis as pa
from pdenet_analysis.analysis.eigen import eigs
from pdenet_analysis.analysis.krylov import batched_arnoldi, gmres, golub_kahan
from pdenet_analysis.analysis.linear import JacobianOperator

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
