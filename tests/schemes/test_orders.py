"""Every fixed-step scheme in the registry converges at its declared order (fitted slope ±0.15)."""

import pytest

import pdenet_analysis as pa
from pdenet_analysis.analysis.convergence import convergence_study
from pdenet_analysis.operators import KINDS

from ..helpers import ARCH_OF_KIND, FIXED_SCHEMES, linear_problem, paper_operator

pytestmark = pytest.mark.float64  # the mathematics is tested in float64

CASES = [(s, k) for s in FIXED_SCHEMES for k in KINDS if pa.get_scheme(s).accepts(k)]


def _steps(order: int) -> list[int]:
    return [8, 16, 32, 64, 128]


#: the linear problems' step counts: h·ρ(A) ≤ 1/8 for the first-order one (ρ = 2, T = 2), inside
#: every scheme's asymptotic regime; the reversible Runge–Kutta wrappers are still pre-asymptotic
#: at h·ρ = 1/2 (reversible_rk4: slopes 3.71 from 8 steps, 3.95 from 32)
LINEAR_STEPS = [32, 64, 128, 256, 512]


@pytest.mark.parametrize("name,kind", CASES)
def test_order_linear_exact(name, kind):
    scheme = pa.get_scheme(name)
    op, y0 = linear_problem(kind)
    r = convergence_study(op, y0, scheme, LINEAR_STEPS, T=2.0)
    assert r.reference == "exact"
    assert abs(r.observed_order - scheme.order) <= 0.15, r


@pytest.mark.parametrize("name,kind", CASES)
def test_order_nonlinear_paper_operator(name, kind):
    scheme = pa.get_scheme(name)
    for arch in ARCH_OF_KIND[kind]:
        op, y0 = paper_operator(arch)
        r = convergence_study(op, y0, scheme, _steps(scheme.order), reference_factor=16)
        assert abs(r.observed_order - scheme.order) <= 0.15, (arch, r)


@pytest.mark.parametrize("name", [s for s in FIXED_SCHEMES if pa.get_scheme(s).accepts("first_order")])
def test_order_piecewise_constant_weights_aligned_steps(name):
    """With θ piecewise constant, steps that never straddle a jump keep the full order."""
    scheme = pa.get_scheme(name)
    op, y0 = paper_operator("parabolic", interpolation="constant", n_pieces=4)
    r = convergence_study(op, y0, scheme, [s * 4 for s in _steps(scheme.order)][:4], reference_factor=16)
    assert abs(r.observed_order - scheme.order) <= 0.15, r


def test_harmonic_oscillator_energy_verlet_bounded_rk4_drifts():
    """Symplectic schemes keep the oscillator's energy bounded over long times; explicit RK drifts."""
    import torch

    from pdenet_analysis.testing import harmonic_oscillator

    op = harmonic_oscillator(1.0)
    y0 = (torch.ones(1, 1), torch.zeros(1, 1))
    energies = {}
    for name in ("verlet", "symplectic_euler", "heun"):
        sol = pa.integrate(op, y0, name, T=200.0, n_steps=2000, trajectory=True)
        e = torch.stack([s[0].square().sum() + s[1].square().sum() for s in sol.trajectory])
        energies[name] = (e.max() - e.min()).item()
    assert energies["verlet"] < 0.02 and energies["symplectic_euler"] < 0.25
    assert energies["heun"] > 10 * energies["verlet"]


@pytest.mark.parametrize("name,kind", CASES)
def test_successive_difference_order_equals_the_declared_order(name, kind):
    """Richardson's reference-free estimate ‖y_n − y_2n‖ has the same slope as the true error, for
    every registered scheme (linear problems, float64)."""
    scheme = pa.get_scheme(name)
    op, y0 = linear_problem(kind)
    r = convergence_study(op, y0, scheme, LINEAR_STEPS[:4], T=2.0, estimate="successive")
    assert r.reference.startswith("successive")
    assert abs(r.observed_order - scheme.order) <= 0.15, r


def test_unknown_order_estimate_is_refused():
    from pdenet_analysis.errors import InvalidArgumentError

    op, y0 = linear_problem("first_order")
    with pytest.raises(InvalidArgumentError, match="estimate must be"):
        convergence_study(op, y0, "euler", [8, 16], estimate="richardson")
