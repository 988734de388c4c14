"""The exact inverse of forward Euler's step maps through the active hidden units (Woodbury),
and the conditioning route built on it: products against dense inverses, σ_min against a dense
SVD where GMRES on the step maps fails."""

import copy

import numpy as np
import pytest
import torch

import pdenet_analysis as pa
import pdenet_analysis.analysis as A
from pdenet_analysis.analysis.conditioning import forward_residual
from pdenet_analysis.analysis import Budget, Certification
from pdenet_analysis.analysis.reduced_inverse import reduced_step_inverse
from pdenet_analysis.analysis.steps import discretise
from pdenet_analysis.errors import IncompatibleSchemeError

from ..helpers import paper_operator


def _patch_residual(monkeypatch, fn):
    """Replace the forward-residual check everywhere the conditioning analysis calls it."""
    from pdenet_analysis.analysis.conditioning import certificates, routes

    for module in (certificates, routes):
        monkeypatch.setattr(module, "forward_residual", fn)


pytestmark = pytest.mark.float64  # the mathematics is tested in float64

def _relu_operator(arch, scale, seed=0, normalise=True, size=4, device="cpu"):
    op, y0 = paper_operator(arch, channels=3, size=size, seed=seed, activation="relu", normalise=normalise,
                            interpolation="constant", n_pieces=3, T=3.0)
    with torch.no_grad():
        for layer in op.layers():
            for w in layer.kernels():
                w.mul_(scale)
    return op.to(device), torch.cat([y0, -y0]).to(device)  # 4 examples


@pytest.mark.parametrize("arch,normalise", [("parabolic", True), ("parabolic", False), ("resnet", True)])
@pytest.mark.parametrize("scale", [1.0, 4.0])
def test_step_inverse_equals_the_dense_inverse_and_its_transpose(arch, normalise, scale):
    op, y0 = _relu_operator(arch, scale, normalise=normalise)
    disc = discretise(op, y0, "euler", n_steps=3)
    for j in range(3):
        S = disc.step_jacobian(j).dense()  # (batch, n, n)
        inv = reduced_step_inverse(disc, j)
        assert inv is not None and 0 < max(inv.rows) < S.shape[1]  # some units off: a real reduction
        v = torch.randn(S.shape[0], S.shape[1])
        x = inv.matvec(v)
        assert torch.allclose(torch.einsum("bij,bj->bi", S, x), v, rtol=0, atol=1e-10 * float(v.abs().max()))
        w = inv.rmatvec(v)
        assert torch.allclose(torch.einsum("bji,bj->bi", S, w), v, rtol=0, atol=1e-10 * float(v.abs().max()))
        sub = inv.restrict([2, 0])
        assert torch.allclose(sub.matvec(v[[2, 0]]), x[[2, 0]], rtol=0, atol=1e-12)


def test_conditioning_converges_where_gmres_on_the_step_maps_cannot(device):
    """Large weights at h = 1: hλ spreads past −1, the step maps are nearly singular, inverse
    iteration can only bound σ_min; the reduced-inverse route (chosen by "auto") gives the dense
    SVD's σ_min and κ for every example, on every device."""
    op, y0 = _relu_operator("parabolic", 4.0, size=8, device=device)  # 192 unknowns: GMRES's 150 products do not suffice
    ref = A.conditioning(op, y0, "euler", n_steps=3, method="dense", k=1).data["examples"]
    auto = A.conditioning(op, y0, 'euler', n_steps=3, k=1, certification=Certification(tol=1e-10), budget=Budget(dense_max=0))
    assert auto.data["method_min"].startswith("reduced-inverse") and auto.data["all_converged"]
    for e, r in zip(auto.data["examples"], ref):
        assert e["sigma_min"][0] == pytest.approx(r["sigma_min"][0], rel=1e-7)
        assert e["condition"] == pytest.approx(r["condition"], rel=1e-7)
    assert max(r["condition"] for r in ref) > 1e4
    gmres = A.conditioning(op, y0, 'euler', n_steps=3, k=1, method='inverse-iteration', budget=Budget(dense_max=0))
    assert not gmres.data["all_converged"]  # why the route exists


@pytest.mark.parametrize("arch", ["parabolic", "resnet"])
def test_sparse_factorisation_gives_the_dense_one(arch, device):
    """Above ``max_rows`` the r × r matrix is assembled sparse from grouped columns and factorised
    by SuperLU (on the host for every device): the same products with S⁻¹ and S⁻ᵀ to round-off,
    and the same σ_min."""
    op, y0 = _relu_operator(arch, 4.0, size=8, device=device)
    disc = discretise(op, y0, "euler", n_steps=3)
    v = torch.randn(4, 3 * 8 * 8, device=device)
    for j in range(3):
        dense, sparse = reduced_step_inverse(disc, j), reduced_step_inverse(disc, j, max_rows=1)
        for a, b in ((dense.matvec(v), sparse.matvec(v)), (dense.rmatvec(v), sparse.rmatvec(v))):
            assert float((a - b).norm() / a.norm()) < 1e-10
    d = A.conditioning(op, y0, 'euler', n_steps=3, k=1, certification=Certification(tol=1e-10), budget=Budget(dense_max=0))
    s = A.conditioning(op, y0, 'euler', n_steps=3, k=1, certification=Certification(tol=1e-10), budget=Budget(dense_max=0, reduced_dense_max=1))
    assert "sparse LU" in s.data["method_min"] and "dense LU" in d.data["method_min"] and s.data["all_converged"]
    for a, b in zip(d.data["examples"], s.data["examples"]):
        assert a["sigma_min"][0] == pytest.approx(b["sigma_min"][0], rel=1e-8)


def test_all_units_off_gives_the_identity_step():
    """Every ReLU off (the normalisation's shift far below zero): M = 0, S = I, S⁻¹ = I, with no
    factorisation."""
    op, y0 = _relu_operator("parabolic", 1.0)
    with torch.no_grad():
        for layer in op.layers():
            layer.shift.fill_(-1e6)
    disc = discretise(op, y0, "euler", n_steps=3)
    inv = reduced_step_inverse(disc, 0)
    assert inv.rows == [0] * 4
    v = torch.randn(4, inv.shape[1])
    assert torch.equal(inv.matvec(v), v) and torch.equal(inv.rmatvec(v), v)


@pytest.mark.parametrize("scheme", ["rk4", "heun"])
def test_reduced_inverse_is_refused_where_the_step_map_is_not_identity_plus_a_reducible_part(scheme):
    op, y0 = _relu_operator("parabolic", 1.0)
    assert reduced_step_inverse(discretise(op, y0, scheme, n_steps=3), 0) is None
    with pytest.raises(IncompatibleSchemeError, match="reduced-inverse"):
        A.conditioning(op, y0, scheme, n_steps=3, method='reduced-inverse', budget=Budget(dense_max=0))


def test_reduced_inverse_is_refused_above_its_row_limit_and_auto_falls_back():
    op, y0 = _relu_operator("parabolic", 1.0)
    assert reduced_step_inverse(discretise(op, y0, "euler", n_steps=3), 0, max_rows=1, sparse_max_rows=1) is None
    rep = A.conditioning(op, y0[:1], 'euler', n_steps=3, k=1, budget=Budget(dense_max=0, reduced_dense_max=1, reduced_sparse_max=1))
    assert rep.data["method_min"].startswith("inverse-iteration")
    np.testing.assert_allclose(rep.data["examples"][0]["sigma_min"][0],
                               A.conditioning(op, y0[:1], "euler", n_steps=3, method="dense", k=1)
                               .data["examples"][0]["sigma_min"][0], rtol=1e-6)


def test_identity_activation_does_not_reduce():
    op = pa.parabolic(2, T=1.0, n_pieces=1, normalise=False, activation="identity")
    x = torch.randn(1, 2, 6, 6)
    assert reduced_step_inverse(discretise(op, x, "euler", n_steps=2), 0) is None


def test_conditioning_reports_progress_after_each_factorisation():
    op, y0 = _relu_operator("parabolic", 1.0)
    seen = []
    A.conditioning(op, y0, 'euler', n_steps=3, k=1, progress=seen.append, budget=Budget(dense_max=0))
    assert len(seen) == 3 * 4 and seen[0].startswith("step 1/3, example 1/4 (") and "active units factorised" in seen[-1]


def test_an_uncertifiable_sigma_min_keeps_the_tightest_upper_bound(monkeypatch):
    """Where no forward residual can certify σ_min (κ beyond ~10¹⁰, simulated here by a check
    that always fails), the inverse route's vector u still gives σ_min ≤ ‖J u‖/‖u‖, which is
    reported when it is below Golub–Kahan's Ritz value: a bound that holds and is tight."""
    op, y0 = _relu_operator("parabolic", 4.0, size=8)
    ref = A.conditioning(op, y0, "euler", n_steps=3, method="dense", k=1).data["examples"]
    _patch_residual(monkeypatch, lambda J, sigma, right, left: np.full(len(sigma), 1.0))
    rep = A.conditioning(op, y0, 'euler', n_steps=3, k=1, certification=Certification(tol=1e-10), budget=Budget(dense_max=0, max_iter=20))
    assert not rep.data["all_converged"] and "‖J u‖/‖u‖" in rep.data["method_min"]
    for e, r, ray in zip(rep.data["examples"], ref, rep.data["rayleigh_upper_bound"]):
        assert e["sigma_min_status"] == "bound"
        assert e["sigma_min"][0] >= r["sigma_min"][0] * (1 - 1e-9)  # an upper bound on σ_min ...
        assert e["sigma_min"][0] == pytest.approx(r["sigma_min"][0], rel=1e-6)  # ... and a tight one
        assert e["sigma_min"][0] == ray


def test_each_steps_sigma_min_is_the_dense_one_and_their_product_bounds_the_flows_from_below():
    """σ_min(S_j) by Golub–Kahan on the exact S_j⁻¹ equals the dense SVD's, certified by its
    forward residual, and Π_j σ_min(S_j) ≤ σ_min(S_2 S_1 S_0) and ‖S_2 S_1 S_0‖ ≤ Π_j ‖S_j‖ (the theorems
    σ_min(AB) ≥ σ_min(A) σ_min(B) and ‖AB‖ ≤ ‖A‖‖B‖, checked on the dense flow map)."""
    from pdenet_analysis.analysis.conditioning import reduced_inverse_flow, stepwise_bounds

    op, y0 = _relu_operator("parabolic", 4.0, size=8)
    disc = discretise(op, y0, "euler", n_steps=3)
    chain = reduced_inverse_flow(disc, 8192, 0)
    got = stepwise_bounds(chain, disc, [0, 2, 3], tol=1e-10)
    dense_steps = [torch.linalg.svdvals(disc.step_jacobian(j).dense()) for j in range(3)]
    flow = torch.linalg.svdvals(disc.flow_jacobian().dense())
    for i, b in enumerate([0, 2, 3]):
        for j in range(3):
            assert got["sigma_min"][i, j] == pytest.approx(float(dense_steps[j][b, -1]), rel=1e-8)
            assert got["sigma_max"][i, j] == pytest.approx(float(dense_steps[j][b, 0]), rel=1e-8)
            assert got["residual_min"][i, j] < 1e-8
        assert got["lower"][i] == pytest.approx(float(np.prod(got["sigma_min"][i] * (1 - got["residual_min"][i]))),
                                                rel=1e-12)
        assert 0 < got["lower"][i] <= float(flow[b, -1]) and float(flow[b, 0]) <= got["upper"][i] < np.inf


def test_an_uncertifiable_flow_gets_kappa_from_above_where_every_step_is_certified(monkeypatch):
    """Where the flow's σ_min fails its check (simulated) but every step's passes, the report
    brackets κ: the value shown (a lower bound) ≤ the dense κ ≤ σ_max/Π_j σ_min(S_j); where the
    steps fail too, it claims no upper bound and says so."""
    check = forward_residual
    op, y0 = _relu_operator("parabolic", 4.0, size=8)
    ref = A.conditioning(op, y0, "euler", n_steps=3, method="dense", k=1).data["examples"]

    def flow_fails(J, sigma, right, left):
        return np.full(len(sigma), 1.0) if getattr(J.fn, "__name__", "") == "flow" else check(J, sigma, right, left)

    _patch_residual(monkeypatch, flow_fails)
    rep = A.conditioning(op, y0, 'euler', n_steps=3, k=1, certification=Certification(tol=1e-10), budget=Budget(dense_max=0))
    assert not rep.data["all_converged"] and all(e.upper_bracket is not None for e in rep.examples)
    for e, r in zip(rep.data["examples"], ref):
        assert e["condition"] <= r["condition"] * (1 + 1e-9) <= e["condition_upper"] * (1 + 2e-9)
        assert 0 < e["sigma_min_lower"] <= r["sigma_min"][0] * (1 + 1e-9)
    assert all(s is not None and len(s["sigma_min"]) == 3 for s in rep.data["stepwise"])
    _patch_residual(monkeypatch, lambda J, sigma, right, left: np.full(len(sigma), 1.0))
    rep = A.conditioning(op, y0, 'euler', n_steps=3, k=1, certification=Certification(tol=1e-10), budget=Budget(dense_max=0, max_iter=20))
    assert all(e["sigma_min_lower"] == 0 and e["condition_upper"] is None for e in rep.data["examples"])


def test_the_steps_are_skipped_where_the_candidates_residual_already_pins_sigma_min(monkeypatch):
    """A flow residual of 10⁻⁴ (simulated) is too large to call σ_min converged but pins it to
    about 10⁻⁴ with σ_max converged: the report brackets κ without the steps' bounds (the dense κ
    inside a bracket under 1 % wide) and lists the examples whose steps it skipped."""
    from pdenet_analysis.analysis.conditioning import routes

    check = forward_residual
    op, y0 = _relu_operator("parabolic", 4.0, size=8)
    ref = A.conditioning(op, y0, "euler", n_steps=3, method="dense", k=1).data["examples"]
    called = []
    monkeypatch.setattr(routes, "stepwise_bounds", lambda *a, **kw: called.append(a) or pytest.fail("steps computed"))
    _patch_residual(monkeypatch, lambda J, sigma, right, left: np.maximum(
        check(J, sigma, right, left), 1e-4 if getattr(J.fn, "__name__", "") == "flow" else 0.0))
    rep = A.conditioning(op, y0, 'euler', n_steps=3, k=1, certification=Certification(tol=1e-10), budget=Budget(dense_max=0))
    assert not called and rep.data["stepwise_skipped"] == list(range(len(ref)))
    assert rep.data["stepwise"] == [None] * len(ref)
    for e, r in zip(rep.data["examples"], ref):
        assert e["sigma_min_status"] == "bound"
        assert e["sigma_min_lower"] <= r["sigma_min"][0] * (1 + 1e-9) <= e["sigma_min"][0] * (1 + 2e-9)
        assert e["condition"] <= r["condition"] * (1 + 1e-9) <= e["condition_upper"] * (1 + 2e-9)
        assert e["condition_upper"] < 1.001 * e["condition"]


def test_a_candidates_residual_bounds_sigma_min_from_below():
    """σ(1 − e − 10·d) ≤ σ_min ≤ σ for the inverse route's candidate (σ, u, v) with forward
    residual e, against the dense SVD; tight when e is small, 0 when e is not below 1."""
    from pdenet_analysis.analysis.conditioning import reduced_inverse_flow, residual_lower_bound
    from pdenet_analysis.analysis.krylov import golub_kahan

    op, y0 = _relu_operator("parabolic", 4.0, size=8)
    disc = discretise(op, y0, "euler", n_steps=3)
    J = disc.flow_jacobian()
    r = golub_kahan(reduced_inverse_flow(disc, 8192, 0), k=1, which="largest", tol=1e-12, vectors=True)
    sigma = 1.0 / r.values[:, 0]
    e = forward_residual(J, sigma, r.left[:, 0], r.right[:, 0])
    dense = torch.linalg.svdvals(J.dense())[:, -1].numpy()
    low = residual_lower_bound(J, sigma, r.left[:, 0], r.right[:, 0], e)
    assert np.all(low <= dense * (1 + 1e-12)) and np.all(low >= dense * (1 - 1e-6))
    loose = residual_lower_bound(J, sigma, r.left[:, 0], r.right[:, 0], np.full(4, 0.3))
    assert np.all(loose <= 0.7 * sigma) and np.all(loose >= 0.69 * sigma)
    assert np.all(residual_lower_bound(J, sigma, r.left[:, 0], r.right[:, 0], np.full(4, 1.0)) == 0)


def test_float32_bounds_hold_where_no_float32_value_can_be_certified():
    """In float32 (u = 6·10⁻⁸) a flow with κ ≈ 5·10⁵ is beyond any certificate (u·κ ≈ 0.03), so
    every σ_min is reported as a bound; each must still be one, against the float64 SVD of the
    same weights and inputs: the σ_min shown ≥ the true one (before the Ritz values' rounding was
    added to them, a float32 Ritz value of 2·10⁻¹⁵ was reported here where σ_min is 6.7·10⁻⁶, so
    κ ≥ 1.5·10¹⁶ where κ is 4.4·10⁶), and sigma_min_lower ≤ σ_min, κ inside its bracket (open above where nothing bounds σ_min
    from below in float32)."""
    op, y0 = _relu_operator("parabolic", 4.0, size=8)
    op32, y32 = op.float(), y0.float()
    ref = A.conditioning(copy.deepcopy(op32).double(), y32.double(), "euler", n_steps=3, method="dense", k=1)
    rep = A.conditioning(op32, y32, 'euler', n_steps=3, k=1, certification=Certification(tol=1e-10), budget=Budget(dense_max=0))
    assert rep.data["method_min"].startswith("reduced-inverse")
    for e, r in zip(rep.data["examples"], ref.data["examples"]):
        assert e["sigma_min_status"] == "bound"
        # an upper bound, within a few times float32's resolution u·‖J‖ (about 3·10⁻⁶ here) of σ_min
        assert r["sigma_min"][0] <= e["sigma_min"][0] <= r["sigma_min"][0] + 20 * 2.0**-24 * r["sigma_max"][0]
        assert e["sigma_min_lower"] <= r["sigma_min"][0]  # 0 where float32 cannot bound it from below
        assert e["condition"] <= r["condition"] <= (e["condition_upper"] or np.inf)
        # the probable bracket too: its lower bound on σ_min is widened by the candidate's error, which float32 makes
        # large (without the widening it exceeded σ_min by 6e-6 relative); none where that error reaches 1
        assert (e["sigma_min_lower_probable"] or 0.0) <= r["sigma_min"][0]
        assert r["condition"] <= (e["condition_upper_probable"] or np.inf)
    assert sum(e["condition_upper_probable"] is not None for e in rep.data["examples"]) >= 3
