"""σ_min, σ_max and κ of flow maps by every route against the dense SVD, the probable bracket, and
values reported as the bounds they are."""

import numpy as np
import pytest
import torch
import pdenet_analysis as pa
from pdenet_analysis import analysis as A
from pdenet_analysis.analysis import Budget, Certification
from pdenet_analysis.analysis.krylov import golub_kahan
from pdenet_analysis.analysis.linear import JacobianOperator
from ..helpers import one_fast_per, paper_operator
from .references import _dense_state_flow, PAIRS

pytestmark = pytest.mark.float64  # the mathematics is tested in float64


CONDITIONING_CASES = [
    ("hamiltonian", "verlet", "inverse-map", 3, 1.0, True),
    ("hamiltonian", "symplectic_euler", "inverse-map", 3, 2.0, False),  # κ ≈ 5.6e5: large weights, no N_tv
    ("second_order", "leapfrog", "inverse-map", 3, 1.0, True),
    ("second_order", "leapfrog_symmetric", "inverse-map", 6, 1.0, True),
    ("resnet", "heun", "inverse-iteration", 3, 1.0, True),  # the fast tier's case of this route
    ("resnet", "heun", "inverse-iteration", 6, 1.0, True),
    ("parabolic", "rk4", "inverse-iteration", 6, 1.0, True),
    ("hamiltonian", "verlet", "inverse-iteration", 6, 1.0, True),
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
