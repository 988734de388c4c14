"""Reversibility, energy and observed order along trajectories."""

import json
import numpy as np
import pytest
import pdenet_analysis as pa
from pdenet_analysis import analysis as A
from ..helpers import paper_operator



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
