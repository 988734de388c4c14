"""McCallum & Foster's reversible Runge–Kutta wrapper: what its registry-driven tests do not say.

The registry-driven tests (orders, inversion, reversible gradient = backprop, step-map spectra,
compile) already run ``reversible_heun`` and ``reversible_rk4``. Here: its linear stability
interval and the round-off growth of its inverse, which decide where it can be used; the guard that
refuses a reversible gradient whose rebuilt states would be round-off; and conditioning, which
must not invert the flow map from y alone.
"""

import numpy as np
import pytest
import torch

import pdenet_analysis as pa
from pdenet_analysis import analysis as A
from pdenet_analysis.analysis import Budget, Certification
from pdenet_analysis.gradients import Reversible
from pdenet_analysis.schemes import ReversibleRungeKutta

from ..helpers import paper_operator


@pytest.mark.parametrize("base,coupling,end", [("euler", 0.999, 0.001), ("heun", 0.999, 0.001), ("rk4", 0.999, 0.001),
                                               ("euler", 0.5, 0.5), ("heun", 0.5, 2.157), ("rk4", 0.5, 0.696)])
def test_stable_interval_on_the_negative_real_axis(base, coupling, end):
    """The documented ends of the stable interval [−end, 0] of hμ for a real μ < 0 (module
    docstring): the larger root of ξ² − τξ + λ, τ = 1 + λ + (1 − R(−z))(R(z) − λ), stays in the
    unit disc up to there, and the stability function is the 2 × 2 step map's spectral radius."""
    s = ReversibleRungeKutta(base, coupling)
    assert pa.analysis.largest_stable_step(np.array([-1.0]), "J", s) == pytest.approx(end, abs=1e-3)
    for z in (-0.3, -1.0, 0.4j, -0.5 + 0.5j):
        R = s.base.stability_function
        step = np.array([[coupling, R(z) - coupling], [(1 - R(-z)) * coupling, 1 + (1 - R(-z)) * (R(z) - coupling)]])
        assert s.amplification(z) == pytest.approx(np.abs(np.linalg.eigvals(step)).max(), rel=1e-12)


@pytest.mark.float64
def test_inverse_multiplies_round_off_by_one_over_the_coupling_per_step():
    """The rebuilt y divides by λ: the reconstruction error of λ = 0.5 grows as 2ⁿ (float64, the
    paper's parabolic operator), that of λ = 0.999 stays at round-off; so inverse_growth = 1/λ."""
    op, y0 = paper_operator("parabolic", activation="relu", normalise=True)

    def error(coupling, n):
        s = ReversibleRungeKutta("heun", coupling)
        with torch.no_grad():
            back = pa.reverse(op, pa.integrate(op, y0, s, T=1.0, n_steps=n))
        return float((back[0] - y0).abs().max() / y0.abs().max())

    assert ReversibleRungeKutta("heun", 0.5).inverse_growth == 2.0
    growth = (error(0.5, 40) / error(0.5, 20)) ** (1 / 20)
    assert 1.6 < growth < 2.4, growth
    assert error(0.5, 40) > 1e-6 and error(0.999, 40) < 1e-13


def test_reversible_gradient_refuses_steps_whose_rebuild_is_round_off():
    """2ⁿ·ε > 10⁻³ for n ≥ 14 in float32 at λ = 0.5: refused, with the fixes named; each fix is
    accepted (fewer rebuilt steps through keep_last, a larger coupling, float64, backprop)."""
    op, y0 = paper_operator("parabolic")
    op, y0 = op.float(), y0.float().requires_grad_(True)
    assert pa.integrate(op, y0, "reversible_heun", n_steps=13, gradient="reversible").y.requires_grad
    with pytest.raises(pa.InvalidArgumentError, match=r"rebuild 14 steps.*at most 13.*coupling.*keep_last.*backprop"):
        pa.integrate(op, y0, "reversible_heun", n_steps=14, gradient="reversible")
    pa.integrate(op, y0, "reversible_heun", n_steps=14, gradient=Reversible(keep_last=1))
    pa.integrate(op, y0, pa.get_scheme("reversible_heun", coupling=0.9), n_steps=14, gradient="reversible")
    pa.integrate(op, y0, "reversible_heun", n_steps=14, gradient="backprop")
    with torch.no_grad():  # no gradient, nothing rebuilt
        pa.integrate(op, y0, "reversible_heun", n_steps=40, gradient="reversible")
    pa.integrate(op.double(), y0.double(), "reversible_heun", n_steps=14, gradient="reversible")


def test_bad_coupling_or_base_is_refused():
    for bad in (0.0, 1.5, -0.2, True, "0.5"):
        with pytest.raises(pa.InvalidArgumentError, match="coupling"):
            ReversibleRungeKutta("heun", bad)
    with pytest.raises(pa.IncompatibleSchemeError, match="explicit Runge–Kutta"):
        ReversibleRungeKutta("verlet")
    assert pa.get_scheme("reversible_rk4", coupling=0.9).coupling == 0.9


@pytest.mark.float64
def test_conditioning_does_not_invert_the_flow_from_y_alone():
    """y(T) does not determine the wrapper's z(T): σ_min comes from Golub–Kahan on J_Φ, certified
    by its residual, and equals the dense σ_min (in float64: float32's rounding alone moves a σ_min
    of 0.02 by κ ε ≈ 10⁻⁶ relative); the inverse-map route and the inverse flow refuse."""
    op, y0 = paper_operator("parabolic", channels=2, size=3, activation="relu", normalise=True)
    dense = A.conditioning(op, y0, 'reversible_heun', k=1, budget=Budget(dense_max=10000))
    krylov = A.conditioning(op, y0, 'reversible_heun', k=1, budget=Budget(dense_max=0, max_iter=200))
    assert dense.data["method_min"] == "dense" and krylov.data["method_min"].startswith("golub-kahan")
    for d, e in zip(dense.data["examples"], krylov.data["examples"]):
        assert e["sigma_min_status"] == "converged"
        assert e["sigma_min"][0] == pytest.approx(d["sigma_min"][0], rel=1e-6)
    with pytest.raises(pa.IncompatibleSchemeError, match="first-order state determines"):
        A.conditioning(op, y0, 'reversible_heun', k=1, method='inverse-map', budget=Budget(dense_max=0))
    disc = A.discretise(op, y0, "reversible_heun", n_steps=3)
    with pytest.raises(pa.IncompatibleSchemeError, match="does not determine"):
        disc.inverse_flow(disc.flow(disc.state0))


def test_a_checkpoint_reloads_the_coupling_it_was_trained_with(tmp_path):
    """A network given a wrapper object records its coupling beside the scheme's name, so that its
    configuration (and so a checkpoint) rebuilds that scheme, not the registry's default λ."""
    from pdenet_analysis.networks import build_preset, from_config

    net = build_preset("digits-parabolic").with_scheme(ReversibleRungeKutta("heun", 0.9))
    assert net.config["scheme"] == "reversible_heun" and net.config["scheme_kwargs"] == {"coupling": 0.9}
    again = from_config(net.config)
    assert all(b.scheme.coupling == 0.9 for b in again.blocks)
    by_name = build_preset("digits-parabolic").with_scheme("reversible_rk4", coupling=0.75)
    assert from_config(by_name.config).blocks[0].scheme.coupling == 0.75
    assert from_config(build_preset("digits-parabolic").with_scheme("reversible_rk4").config).blocks[0].scheme.coupling == 0.5
