"""Matrix-free analysis against dense computations and analytic spectra."""

import json
import math

import numpy as np
import pytest
import torch

import pdenet_analysis as pa
from pdenet_analysis import analysis as A
from pdenet_analysis.analysis import Budget, Certification
from pdenet_analysis.testing import LinearHamiltonian, random_spd
from pdenet_analysis.analysis.eigen import arnoldi, eigs
from pdenet_analysis.analysis.linear import JacobianOperator, operator_jacobian
from pdenet_analysis.analysis.stability import symmetry_defect, to_stability_variable

from .helpers import paper_operator


def _top(vals, k):
    vals = np.asarray(vals)
    return vals[np.argsort(-np.abs(vals), kind="stable")][:k]


@pytest.mark.float64
@pytest.mark.parametrize("backend", ["scipy", "torch"])
@pytest.mark.parametrize("arch", ["parabolic", "resnet", "second_order", "hamiltonian"])
def test_matrix_free_eigenvalues_equal_dense(arch, backend):
    op, y0 = paper_operator(arch, channels=4, size=4, activation="relu", normalise=True)
    J, how = operator_jacobian(op, op.to_state(y0), 0.3)
    dense = np.linalg.eigvals(J.dense().numpy())
    res = eigs(J, k=4, which="LM", backend=backend, m=J.shape[0])
    assert res.status == "converged"
    np.testing.assert_allclose(np.sort(np.abs(res.values)), np.sort(np.abs(_top(dense, 4))), rtol=1e-6)


def test_largest_real_part_equals_dense():
    op, y0 = paper_operator("resnet", channels=3, size=4)
    J, _ = operator_jacobian(op, op.to_state(y0))
    dense = np.linalg.eigvals(J.dense().numpy())
    res = eigs(J, k=2, which="LR", backend="scipy")
    assert res.values.real.max() == pytest.approx(dense.real.max(), rel=1e-6)


@pytest.mark.float64
def test_parabolic_jacobian_symmetric_nsd_without_normalisation_but_not_with():
    op, y0 = paper_operator("parabolic", activation="relu", normalise=False)
    J, _ = operator_jacobian(op, op.to_state(y0))
    D = J.dense().numpy()
    assert np.abs(D - D.T).max() < 1e-12 and np.linalg.eigvalsh(0.5 * (D + D.T)).max() < 1e-12
    assert symmetry_defect(J) < 1e-12
    op2, y2 = paper_operator("parabolic", activation="relu", normalise=True)
    J2, _ = operator_jacobian(op2, op2.to_state(y2))
    assert symmetry_defect(J2) > 1e-3  # N_tv breaks the symmetry: reported, not assumed


@pytest.mark.float64
def test_laplacian_stencil_has_analytic_spectrum():
    """K = 5-point Laplacian with zero padding: λ_ij = −4 + 2cos(iπ/(n+1)) + 2cos(jπ/(n+1)).
    F = −KᵀK Y (σ = id, N = id), so the eigenvalues of ∂F/∂Y are −λ_ij²."""
    n = 12
    op = pa.parabolic(1, T=1.0, n_pieces=1, normalise=False, activation="identity")
    with torch.no_grad():
        op.layer.weight.zero_()
        op.layer.weight[0, 0, 0] = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]])
    J, _ = operator_jacobian(op, (torch.randn(1, 1, n, n),))
    c = 2 * np.cos(np.arange(1, n + 1) * np.pi / (n + 1))
    lam = -(( -4 + c[:, None] + c[None, :]) ** 2).ravel()
    res = eigs(J, k=3, which="LM", backend="scipy", symmetric=True)
    np.testing.assert_allclose(np.sort(res.values), np.sort(lam)[:3], rtol=1e-8)
    res_t = eigs(J, k=1, which="LM", backend="torch", symmetric=True, m=n * n)
    assert res_t.values[0] == pytest.approx(lam.min(), rel=1e-8)


@pytest.mark.float64
def test_linear_hamiltonian_product_spectrum():
    Am, Bm = random_spd(4, 1), -random_spd(4, 2)
    op = LinearHamiltonian(Am, Bm)
    J, how = operator_jacobian(op, (torch.randn(1, 4), torch.randn(1, 4)))
    assert how == "BA"
    expected = np.linalg.eigvals(Bm @ Am)
    res = eigs(J, k=4, which="LM", backend="torch")
    np.testing.assert_allclose(np.sort(res.values.real), np.sort(expected.real), rtol=1e-10)
    assert np.all(expected.real < 0)  # so z = h²λ lies on the negative axis: stable iff h²ρ ≤ 4


def test_largest_stable_step_euler_and_leapfrog():
    mu = np.array([-4.0, -1.0, -0.25])
    assert A.largest_stable_step(mu, "J", pa.get_scheme("euler")) == pytest.approx(0.5, rel=1e-9)  # 2/ρ
    assert A.largest_stable_step(mu, "J_acc", pa.get_scheme("leapfrog")) == pytest.approx(1.0, rel=1e-9)  # h²ρ ≤ 4
    assert A.largest_stable_step(mu, "J", pa.get_scheme("rk4")) == pytest.approx(2.785293563405282 / 4, rel=1e-6)


@pytest.mark.parametrize("scheme, how, mu", [
    ("euler", "J", [-4.0, 0.01]),  # Re λ > 0: forward Euler grows at every h
    ("rk4", "J", [-4.0, 1e-3 + 1.0j]),
    ("leapfrog", "J_acc", [-4.0, -1.0 + 0.01j]),  # z = h²μ off the negative axis
    ("symplectic_euler", "BA", [-4.0, -1.0 + 1e-4j]),
])
def test_largest_stable_step_is_zero_where_every_step_is_unstable(scheme, how, mu):
    """Not the h ≈ 1e-10 at which the growth falls below the amplification's round-off tolerance."""
    s = pa.get_scheme(scheme)
    mu = np.array(mu, dtype=complex)
    assert A.largest_stable_step(mu, how, s) == 0.0
    assert np.max(s.amplification(to_stability_variable(mu, how, s, 1e-3))) > 1  # unstable at a small h too


@pytest.mark.float64
def test_stability_report_places_points_and_serialises(tmp_path):
    op, y0 = paper_operator("parabolic", activation="relu", normalise=False, interpolation="constant", n_pieces=3, T=3.0, scale=8)
    rep = A.stability(op, y0, 'euler', k=3)
    steps = rep.data["steps"]
    assert len(steps) == 3 and all(s["status"] == "converged" for s in steps)
    for s in steps:  # outside the region iff h > 2/ρ (real negative spectrum)
        assert (s["fraction_outside"] > 0) == (rep.data["h"] > 2 / s["spectral_radius"] * (1 + 1e-9))
        assert s["largest_stable_h"] == pytest.approx(2 / s["spectral_radius"], rel=1e-6)
    paths = rep.save(str(tmp_path))
    assert json.loads(open(paths["json"]).read())["name"] == "stability"
    assert "| step |" in open(paths["md"]).read()
    assert open(paths["png"], "rb").read(4) == b"\x89PNG"


# the dense count, and the count through the active units (at scale 1 with dense_max 0, ‖S_j‖₂
# certifies every step stable with no spectrum: see the next test); forward Euler (h ≤ 2/ρ) and
# leapfrog (h²ρ ≤ 4, M = h²∂F/∂Y at Y_j)
@pytest.mark.parametrize("arch,scheme,limit", [("parabolic", "euler", lambda rho: 2 / rho),
                                               ("second_order", "leapfrog", lambda rho: 2 / rho ** 0.5)])
@pytest.mark.float64
@pytest.mark.parametrize("scale,dense_max", [(1.0, 2048), (8.0, 2048), (8.0, 0)])
def test_largest_stable_step_comes_from_the_whole_spectrum_of_every_example(arch, scheme, limit, scale, dense_max):
    """J = −KᵀDK (no normalisation: real, ≤ 0): the largest stable h is that of the example with
    the largest ρ(J), which the few layer eigenvalues of the worst step-map example need not see
    (where every step is stable, that example is example 0)."""
    from pdenet_analysis.schemes.base import stage_time

    op, y0 = paper_operator(arch, activation="relu", normalise=False, interpolation="constant", n_pieces=3, T=3.0,
                            scale=scale)
    y0 = torch.cat([y0, -y0])  # four examples with different active sets (3·y0 would repeat them: ReLU is homogeneous)
    rep = A.stability(op, y0, scheme, k=3, budget=Budget(dense_max=dense_max))
    disc = A.discretise(op, y0, scheme, n_steps=3)
    for j, (t, h, point) in enumerate(disc.steps):
        field = (lambda y: op.vector_field(stage_time(t, 0.0, h), (y,))[0]) if arch == "parabolic" else \
            (lambda y: op.acceleration(stage_time(t, 0.0, h), y))
        rho = [float(torch.linalg.eigvalsh(JacobianOperator(field, point[0][b : b + 1]).dense()).abs().max())
               for b in range(4)]
        step = rep.data["steps"][j]
        assert step["largest_stable_h_complete"] == pytest.approx(limit(max(rho)), rel=1e-6)
        assert rep.rows[j][8] == step["largest_stable_h_reported"] == step["largest_stable_h_complete"]  # the table
    assert not any("estimated from the few layer eigenvalues" in n for n in rep.notes)


def test_largest_stable_step_is_zero_for_a_two_level_scheme_on_complex_modes():
    """Symplectic Euler on the TV-normalised Hamiltonian block: the modes outside at h = 1 are
    complex μ = h²λ (the region is the real interval [−4, 0]), so no step is stable; the whole
    spectrum says 0 wherever a mode is outside."""
    op, y0 = paper_operator("hamiltonian", activation="relu", normalise=True, interpolation="constant", n_pieces=3,
                            T=3.0, scale=2.0)
    rep = A.stability(op, y0, 'symplectic_euler', k=3)
    steps = rep.data["steps"]
    assert any(s["n_outside_max"] > 0 for s in steps)
    for s in steps:
        assert s["largest_stable_h_complete"] is not None
        if s["n_outside_max"] > 0 and any(abs(e.imag) > 1e-6 for x in s["examples"] for e in x["eigenvalues_outside"]):
            assert s["largest_stable_h_complete"] == 0.0


@pytest.mark.float64
@pytest.mark.parametrize("scheme,dense_max", [("rk4", 2048), ("euler", 0)])
def test_largest_stable_step_from_the_layer_estimate_where_no_complete_spectrum_exists(scheme, dense_max):
    """RK4's step map is not I + hJ; forward Euler's steps certified stable by ‖S_j‖₂ have no
    computed spectrum. The table then shows the layer estimate and says so."""
    op, y0 = paper_operator("parabolic", activation="relu", normalise=False, interpolation="constant", n_pieces=3, T=3.0,
                            scale=1.0)
    rep = A.stability(op, y0, scheme, k=3, budget=Budget(dense_max=dense_max))
    assert all(s["largest_stable_h_complete"] is None for s in rep.data["steps"])
    assert [r[8] for r in rep.rows] == [s["largest_stable_h"] for s in rep.data["steps"]] == \
        [s["largest_stable_h_reported"] for s in rep.data["steps"]]
    assert any("estimated from the few layer eigenvalues" in n for n in rep.notes)


def test_non_converged_solver_reports_status():
    op, y0 = paper_operator("resnet", channels=4, size=6)
    J, _ = operator_jacobian(op, op.to_state(y0))
    res = arnoldi(J, k=6, which="LM", m=8)
    assert res.status == "not_converged" and res.residuals.max() > 1e-8


@pytest.mark.parametrize("name", ["symplectic_euler", "verlet", "leapfrog", "leapfrog_symmetric"])
def test_reversibility_report_float64_round_off(name):
    arch = "hamiltonian" if "leapfrog" not in name else "second_order"
    op, y0 = paper_operator(arch, activation="relu", normalise=True, interpolation="constant", n_pieces=3, T=3.0)
    rep = A.reversibility(op, y0, name, n_steps_list=(3, 12, 48), dtypes=("float64", "float32"))
    errs = {(d["dtype"], d["n_steps"]): d["relative_error"] for d in rep.data["results"]}
    assert max(v for (d, _), v in errs.items() if d == "float64") < 1e-13
    assert max(v for (d, _), v in errs.items() if d == "float32") < 1e-5


def test_reversibility_of_non_reversible_scheme_is_refused():
    op, y0 = paper_operator("parabolic")
    with pytest.raises(pa.IncompatibleSchemeError, match="rk4.*not reversible"):
        A.reversibility(op, y0, "rk4")


def test_energy_conserved_for_hamiltonian_flow():
    """σ = ReLU, N = id, θ constant: H = ½‖σ(K₁Z)‖² + ½‖σ(K₂Y)‖² is conserved by the flow;
    Verlet keeps it to O(h²) without drift."""
    op, y0 = paper_operator("hamiltonian", activation="relu", normalise=False, interpolation="constant", n_pieces=1, T=1.0, scale=2)
    e = {}
    for n in (20, 40):
        rep = A.energy(op, y0, "verlet", n_steps=n)
        E = np.array(rep.data["energies"])
        e[n] = np.abs(E - E[0]).max() / E[0]
    assert e[20] < 1e-2 and e[40] < e[20] / 2  # O(h²) bounded error (ReLU kinks lower the observed ratio below 4)


def test_parabolic_norm_decays():
    op, y0 = paper_operator("parabolic", activation="relu", normalise=False)
    rep = A.energy(op, y0, "euler", n_steps=10)
    n = rep.data["norms"]
    assert all(b <= a * (1 + 1e-12) for a, b in zip(n, n[1:]))


def test_stability_result_states_the_symmetry_defect_it_measured():
    """The parabolic Jacobian −KᵀDK (N = id) is symmetric: the measured defects are at round-off.
    TV normalisation breaks the symmetry (docs/paper-notes.md): the defects are O(1). The
    Hamiltonian operator has no single ∂F/∂Y, so no defect is measured (NaN)."""
    def defects(**kw):
        op, y0 = paper_operator("parabolic", **kw)
        rep = A.stability(op.double(), y0.double(), 'euler', n_steps=3)
        return [s_.layer.symmetry_defect for s_ in rep.steps]

    assert max(defects(activation="relu")) < 1e-12
    assert min(defects(activation="relu", normalise=True)) > 1e-3
    op, y0 = paper_operator("hamiltonian")
    assert all(math.isnan(s_.layer.symmetry_defect) for s_ in A.stability(op, y0, 'symplectic_euler', n_steps=2).steps)


def test_undefined_energy_is_a_dash_in_the_markdown_and_null_in_the_json():
    """With TV normalisation the energy is not defined: the table says "—", not Python's "None"."""
    op, y0 = paper_operator("parabolic")
    rep = A.energy(op, y0, "euler", n_steps=3)
    rows = [line for line in rep.to_markdown().splitlines() if line.startswith("| 0 |")]
    assert rows and rows[0].rstrip().endswith("| — |") and "None" not in rep.to_markdown()
    assert json.loads(rep.to_json())["data"]["energies"][0] is None


@pytest.mark.float64
def test_convergence_matches_declared_orders_on_paper_network_block():
    op, y0 = paper_operator("second_order")
    for name in ("leapfrog", "leapfrog_symmetric", "rk4"):
        r = A.convergence_study(op, y0, name, [8, 16, 32, 64, 128], reference_factor=16)
        assert abs(r.observed_order - pa.get_scheme(name).order) <= 0.15


def test_analysis_of_unsupported_scheme_is_refused():
    op, y0 = paper_operator("parabolic")
    with pytest.raises(pa.IncompatibleSchemeError, match="leapfrog.*does not accept first_order"):
        A.stability(op, y0, 'leapfrog')
    with pytest.raises(pa.IncompatibleSchemeError, match="no exact inverse"):
        A.reversibility(op, y0, "dopri5")


def test_analyze_draws_the_same_standard_normal_images_on_every_device(device, tmp_path, monkeypatch):
    """`analyze PRESET` without data analyses seeded standard-normal images drawn on the CPU and
    moved to the device, so that a GPU run and a CPU run of the same command report on the same
    inputs (CUDA's own generator would draw other images from the same seed)."""
    import pdenet_analysis.analysis as analysis_mod
    from pdenet_analysis.cli import main

    seen = {}

    def record(model, x, *args, **kwargs):  # the analyses themselves are tested elsewhere
        seen["x"] = x
        return analysis_mod.Analysis("a network", "some images")

    monkeypatch.setattr(analysis_mod, "analyze", record)
    device = torch.device(device)
    assert main(["analyze", "cifar10-hamiltonian", "--examples", "3", "--device", str(device), "--quiet",
                 "--seed", "5", "--out", str(tmp_path)]) == 0
    x = seen["x"]
    assert x.device.type == device.type
    assert torch.equal(x.cpu(), torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(5)))


def test_block_inputs_leave_a_training_model_as_they_found_it():
    """The analyses run the opening layers in eval mode (running statistics, no dropout), and put
    every module's mode back: an analysis in the middle of training used to leave the network in
    eval mode, so that the training went on without batch statistics."""
    from pdenet_analysis.analysis.model import block_inputs

    torch.manual_seed(0)
    net = pa.build_preset("digits-parabolic").double()
    net.train()
    net.blocks[0].eval()  # a mixed state is restored module by module
    modes = [m.training for m in net.modules()]
    stats = [b.clone() for b in net.buffers()]
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    inputs = block_inputs(net, x)
    assert [m.training for m in net.modules()] == modes
    assert all(torch.equal(a, b) for a, b in zip(stats, net.buffers()))
    assert not any(h.requires_grad for h in inputs)
    net.eval()
    with torch.no_grad():  # the first block's input: the opening layer on the network's own preprocessing
        torch.testing.assert_close(inputs[0], net.opening(net.preprocess(x)), rtol=0, atol=0)


def test_analyze_analyses_a_network_in_eval_mode_and_leaves_the_modes_as_found(monkeypatch, tmp_path):
    """The network is analysed as it predicts (batch norm's running statistics, no dropout), also
    when called in the middle of training, and is handed back in the modes it came in."""
    from pdenet_analysis.analysis import api

    seen = []
    monkeypatch.setattr(api, "analyze_block", lambda block, x, **kw: seen.append(
        (block.training, [m.training for m in block.modules()])) or {})
    torch.manual_seed(0)
    net = pa.build_preset("digits-parabolic").double().train()
    modes = [m.training for m in net.modules()]
    pa.analyze(net, torch.randn(2, 1, 8, 8, dtype=torch.float64), analyses=["stability"], progress=False)
    assert len(seen) == len(net.blocks) and not any(t or any(ms) for t, ms in seen)
    assert [m.training for m in net.modules()] == modes


class _Noise(torch.nn.Module):
    """A custom random layer, no PyTorch dropout class: adds noise in training mode."""

    def forward(self, y):
        return y + 0.1 * torch.randn_like(y) if self.training else y


class _PowerIteration(torch.nn.Module):
    """A layer that writes a buffer as it runs in training mode (as spectral normalisation does)."""

    def __init__(self, c):
        super().__init__()
        self.register_buffer("u", torch.ones(c, dtype=torch.float64))

    def forward(self, y):
        if self.training:
            self.u.mul_(0.5)
        return y * self.u.view(1, -1, 1, 1)


def _operator_with(extra):
    """A first-order operator −tanh(extra(conv(y))) with the layer ``extra(channels)`` inside, and a
    state for it."""
    from pdenet_analysis.operators.operators import FirstOrderOperator

    class Layer(torch.nn.Module):
        def __init__(self, c):
            super().__init__()
            self.conv, self.extra = torch.nn.Conv2d(c, c, 3, padding=1, bias=False), extra(c)

        def forward(self, t, y):
            return -torch.tanh(self.extra(self.conv(y)))

    torch.manual_seed(0)
    return FirstOrderOperator(Layer(2)).double(), torch.randn(2, 2, 3, 3, dtype=torch.float64)


def _analyses_of(op, y0):
    from pdenet_analysis import analysis as A

    return {
        "discretise": lambda: A.discretise(op, y0, "euler", T=1.0, n_steps=2),
        "conditioning": lambda: A.conditioning(op, y0, "euler", T=1.0, n_steps=2, k=1),
        "spectrum_along_trajectory": lambda: A.stability(op, y0, 'euler', T=1.0, n_steps=2, k=2),
        "spectral_density": lambda: A.spectral_density(op, y0, "euler", T=1.0, n_steps=2, m=10, n_arnoldi=10),
        "reversibility": lambda: A.reversibility(op, y0, "reversible_heun", T=1.0, n_steps_list=(1, 2)),
        "energy": lambda: A.energy(op, y0, "euler", T=1.0, n_steps=2),
        "convergence_study": lambda: A.convergence_study(op, y0, "euler", [2, 4, 8], T=1.0),
        "operator_jacobian": lambda: operator_jacobian(op, (y0,)),
    }


@pytest.mark.parametrize("extra,match", [(lambda c: _Noise(), r"drew random numbers.*another map"),
                                         (_PowerIteration, r"changed its buffer\(s\) layer\.extra\.u.*operator\.eval\(\)")])
def test_the_analyses_refuse_an_operator_that_is_another_map_at_every_evaluation(extra, match):
    """A layer the mode check does not know (a custom random layer, a buffer written as it runs)
    is found by one evaluation before the analysis: each analysis refuses it, the caller's random
    numbers are left as they were, and in eval mode they run."""
    op, y0 = _operator_with(extra)
    for name, call in _analyses_of(op, y0).items():
        state = torch.random.get_rng_state()
        with pytest.raises(pa.IncompatibleOperatorError, match=match):
            call()
        assert torch.equal(torch.random.get_rng_state(), state), name
    op.eval()
    for name, call in _analyses_of(op, y0).items():
        call()


def test_the_analyses_refuse_an_operator_that_draws_only_later_in_the_solve():
    """A layer that draws only at t > 0.25 passes the probe at t = 0; the record kept over the whole
    analysis refuses it when the analysis ends (the result is not returned), with the caller's
    random numbers as they were; in eval mode every analysis runs. (``operator_jacobian``
    evaluates at t = 0 only, where this operator is one map.)"""
    from pdenet_analysis.operators.operators import FirstOrderOperator

    class Late(torch.nn.Module):
        def __init__(self, c):
            super().__init__()
            self.conv = torch.nn.Conv2d(c, c, 3, padding=1, bias=False)

        def forward(self, t, y):
            z = self.conv(y)
            if self.training and float(t) > 0.25:
                z = z + 0.1 * torch.randn_like(z)
            return -torch.tanh(z)

    torch.manual_seed(0)
    op, y0 = FirstOrderOperator(Late(2)).double(), torch.randn(2, 2, 3, 3, dtype=torch.float64)
    calls = _analyses_of(op, y0)
    del calls["operator_jacobian"]
    for name, call in calls.items():
        state = torch.random.get_rng_state()
        with pytest.raises(pa.IncompatibleOperatorError, match=r"drew random numbers during the analysis"):
            call()
        assert torch.equal(torch.random.get_rng_state(), state), name
    op.eval()
    for call in calls.values():
        call()


@pytest.mark.parametrize("extra", [lambda c: torch.nn.Dropout(0.2), lambda c: torch.nn.BatchNorm2d(c)])
def test_the_analyses_of_an_operator_refuse_a_layer_in_training_mode(extra):
    """Dropout draws a new map at every evaluation and batch norm couples the examples in
    training mode: each analysis of an operator refuses it, naming the layer; in eval mode they run."""
    op, y0 = _operator_with(extra)
    calls = _analyses_of(op, y0)
    for name, call in calls.items():
        with pytest.raises(pa.IncompatibleOperatorError, match=r"layer\.extra is in training mode.*operator\.eval\(\)"):
            call()
    op.eval()
    for name, call in calls.items():
        call()
