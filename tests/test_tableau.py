import math

import numpy as np
import pytest

import pdenet_analysis as pa
from pdenet_analysis.schemes import ButcherTableau, ExplicitRungeKutta


def test_tableau_rejects_inconsistent_rows():
    with pytest.raises(ValueError, match="row sums"):
        ButcherTableau(((0.0, 0.0), (0.5, 0.0)), (0.5, 0.5), (0.0, 1.0))


def test_tableau_rejects_weights_not_summing_to_one():
    with pytest.raises(ValueError, match="sum to 1"):
        ButcherTableau.explicit([[1.0]], [0.5, 0.4])


def test_tableau_rejects_implicit():
    with pytest.raises(ValueError, match="strictly lower"):
        ButcherTableau(((0.5, 0.0), (0.5, 0.5)), (0.5, 0.5), (0.5, 1.0))


def test_declared_order_checked_against_order_conditions():
    with pytest.raises(ValueError, match="order conditions"):
        ExplicitRungeKutta(ButcherTableau.explicit([[1.0]], [0.5, 0.5]), order=3)


@pytest.mark.parametrize("name", ["euler", "heun", "midpoint", "rk4"])
def test_stability_polynomial_is_truncated_exponential(name):
    s = pa.get_scheme(name)
    coeffs = s.tableau.stability_polynomial()
    expected = [1 / math.factorial(k) for k in range(s.order + 1)]
    np.testing.assert_allclose(coeffs[: s.order + 1], expected, rtol=1e-14)
    assert np.allclose(coeffs[s.order + 1:], 0)


def test_euler_stability_region_is_unit_disc_around_minus_one():
    s = pa.get_scheme("euler")
    assert s.amplification(-2.0) == pytest.approx(1.0)
    assert s.amplification(-2.01) > 1 and s.amplification(-1.99) < 1


@pytest.mark.parametrize("name", ["symplectic_euler", "verlet", "leapfrog", "leapfrog_symmetric"])
def test_partitioned_stability_interval(name):
    s = pa.get_scheme(name)
    assert s.stability_variable == "h^2*lambda"
    z = np.linspace(-4, 0, 41)
    assert np.all(s.amplification(z) <= 1 + 1e-12)
    assert s.amplification(-4.1) > 1 and s.amplification(0.1) > 1
