"""Reversible schemes invert to round-off in float64; the others say they cannot."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import pdenet_analysis as pa

from ..helpers import ARCH_OF_KIND, FIXED_SCHEMES, REVERSIBLE_SCHEMES, paper_operator


pytestmark = pytest.mark.float64  # the mathematics is tested in float64

@pytest.mark.parametrize("name", REVERSIBLE_SCHEMES)
@given(seed=st.integers(0, 10**6), n_steps=st.integers(1, 12), T=st.floats(0.05, 3.0), scale=st.floats(0.5, 3.0))
def test_inverse_recovers_initial_state(name, seed, n_steps, T, scale):
    scheme = pa.get_scheme(name)
    for kind in sorted(scheme.kinds):
        op, y0 = paper_operator(ARCH_OF_KIND[kind][0], seed=seed, scale=scale, activation="relu", normalise=True,
                                interpolation="constant", n_pieces=3, T=3.0)
        sol = pa.integrate(op, y0, scheme, T=T, n_steps=n_steps)
        back = pa.reverse(op, sol)
        x0 = op.to_state(y0)
        err = max(float((a - b).detach().abs().max()) for a, b in zip(back[:1], x0[:1]))
        scale_y = max(float(x.detach().abs().max()) for x in sol.state)
        # each inverse step may multiply the round-off by the scheme's declared inverse_growth (1/λ for the
        # reversible Runge–Kutta wrapper, 1 for the additive updates)
        assert err <= 1e-12 * max(1.0, scale_y) * n_steps * scheme.inverse_growth ** n_steps, (kind, err)


@pytest.mark.parametrize("name", [n for n in FIXED_SCHEMES if n not in REVERSIBLE_SCHEMES])
def test_non_reversible_scheme_has_no_inverse(name):
    op, y0 = paper_operator("parabolic")
    sol = pa.integrate(op, y0, name, n_steps=2)
    with pytest.raises(pa.IncompatibleSchemeError, match="not reversible"):
        pa.reverse(op, sol)


def test_hamiltonian_full_state_recovered():
    op, x0 = paper_operator("hamiltonian", normalise=True, activation="relu", interpolation="constant", n_pieces=3, T=3.0)
    for name in ("symplectic_euler", "verlet"):
        sol = pa.integrate(op, x0, name)
        back = op.from_state(pa.reverse(op, sol), x0)
        assert torch.allclose(back, x0, atol=1e-13, rtol=0)


@pytest.mark.parametrize("name", REVERSIBLE_SCHEMES)
@given(seed=st.integers(0, 10**6), scale=st.floats(0.5, 3.0))
def test_step_back_equals_the_inverse_step_differentiated_again(name, seed, scale):
    """Each reversible scheme's one-evaluation ``step_back`` rebuilds the same earlier state (to the
    bit: the same operations as ``inverse_step``) and gives the same state and parameter gradients
    as the generic route (rebuild, then differentiate ``step``), on every kind it accepts."""
    from pdenet_analysis.gradients.autograd import ParamGrads
    from pdenet_analysis.schemes.base import Scheme

    scheme = pa.get_scheme(name)
    assert type(scheme).step_back is not Scheme.step_back  # every reversible scheme has its own
    for kind in sorted(scheme.kinds):
        op, y0 = paper_operator(ARCH_OF_KIND[kind][0], seed=seed, scale=scale, activation="relu", normalise=True,
                                interpolation="constant", n_pieces=3, T=3.0)
        h, t = 0.4, 0.8
        state = scheme.init(op, op.to_state(y0), 0.0, h)
        gen = torch.Generator().manual_seed(seed)
        grads = tuple(torch.randn(x.shape, generator=gen, dtype=x.dtype) for x in state)
        acc_fast, acc_ref = ParamGrads(op.parameters()), ParamGrads(op.parameters())
        fast = scheme.step_back(op, state, grads, acc_fast, t, h)
        ref = Scheme.step_back(scheme, op, state, grads, acc_ref, t, h)
        for a, b in zip(fast[0], ref[0]):
            assert torch.equal(a, b), kind
        for a, b in zip(fast[1] + tuple(acc_fast.sums), ref[1] + tuple(acc_ref.sums)):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=kind)
