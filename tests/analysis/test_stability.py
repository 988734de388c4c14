"""The stability analysis: the largest stable step from the whole spectrum or the layer estimate,
the symmetry defect it measures, and the schemes it refuses."""

import json
import math
import numpy as np
import pytest
import torch
import pdenet_analysis as pa
from pdenet_analysis import analysis as A
from pdenet_analysis.analysis import Budget
from pdenet_analysis.analysis.linear import JacobianOperator
from pdenet_analysis.analysis.stability import to_stability_variable
from ..helpers import paper_operator



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


def test_analysis_of_unsupported_scheme_is_refused():
    op, y0 = paper_operator("parabolic")
    with pytest.raises(pa.IncompatibleSchemeError, match="leapfrog.*does not accept first_order"):
        A.stability(op, y0, 'leapfrog')
    with pytest.raises(pa.IncompatibleSchemeError, match="no exact inverse"):
        A.reversibility(op, y0, "dopri5")
