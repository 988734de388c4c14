"""The adaptive schemes analysed along their accepted steps, their stage nodes and tolerances."""

import numpy as np
import pytest
import torch
import pdenet_analysis as pa
from pdenet_analysis import analysis as A
from pdenet_analysis.schemes import get_scheme
from pdenet_analysis.schemes.runge_kutta import ExplicitRungeKutta
from ..helpers import ADAPTIVE_SCHEMES, paper_operator
from .references import _dense_step_radius

pytestmark = pytest.mark.float64  # the mathematics is tested in float64


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
