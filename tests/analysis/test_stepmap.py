"""The step map's spectral radius and complete count of unstable modes against dense spectra, for
every registered scheme, and the budgets and rankings of the counts."""

import numpy as np
import pytest
import torch
import pdenet_analysis as pa
from pdenet_analysis import analysis as A
from pdenet_analysis.analysis import Budget, Certification
from pdenet_analysis.analysis.stepmap import step_map_spectra
from pdenet_analysis.testing import LinearFirstOrder, LinearSecondOrder, random_spd, random_stable_matrix
from pdenet_analysis.analysis.krylov import golub_kahan
from pdenet_analysis.analysis.linear import JacobianOperator
from pdenet_analysis.analysis.stepmap import count_outside
from ..helpers import FIXED_SCHEMES, one_fast_per, paper_operator
from .references import _dense_step_matrix, _dense_step_radius, PAIRS

pytestmark = pytest.mark.float64  # the mathematics is tested in float64


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
