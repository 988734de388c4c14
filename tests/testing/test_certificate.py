"""The one-call scheme certificate and the registry's checks at registration: every registered
scheme passes its certificate, and each kind of defect fails it with a sentence naming it."""

import subprocess
import sys

import numpy as np
import pytest
import torch

import pdenet_analysis as pa
from pdenet_analysis.schemes import (ButcherTableau, ExplicitRungeKutta, Scheme, StormerVerlet, get_tableau,
                                     register_scheme, stage_time, unregister_scheme)
from pdenet_analysis.testing import certify_scheme, check_local_error_ratio, stepped_stability_function
from pdenet_analysis.testing import local_error_property, inversion_property

FIXED = [n for n in pa.available_schemes() if not pa.get_scheme(n).adaptive]


@pytest.mark.float64
@pytest.mark.parametrize("name", FIXED)
def test_every_registered_fixed_step_scheme_passes_its_certificate(name):
    cert = certify_scheme(name)
    assert cert.ok and cert.observed_orders and cert.declared_order == pa.get_scheme(name).order
    scheme = pa.get_scheme(name)
    if isinstance(getattr(scheme, "tableau", None), ButcherTableau):
        assert cert.tree_order >= scheme.order and cert.stability_error < 1e-13 and cert.step_error == 0.0
    if scheme.reversible:
        assert cert.inversion_error < 1e-12
    assert f"certificate of `{name}`" in cert.to_markdown() and "All checks pass." in cert.to_markdown()


@pytest.mark.float64
@pytest.mark.parametrize("name", ["dopri5", "tsit5", "fehlberg45", "cash_karp", "gill4", "butcher6"])
def test_a_catalogue_tableau_steps_with_its_own_stability_function(name):
    """One step on y' = λy returns R(hλ) of the tableau, to round-off, at points inside and
    outside the stability region."""
    scheme = ExplicitRungeKutta(get_tableau(name), name=name)
    z = np.array([-0.3, -2.5, 1.0, -1 + 2j, 3j, -4 - 1j])
    R = get_tableau(name).stability_function()
    np.testing.assert_allclose(stepped_stability_function(scheme, z), R(z), rtol=1e-13, atol=1e-14)
    assert certify_scheme(scheme).ok


class _HeunSaysFour(ExplicitRungeKutta):
    """Heun's tableau with a declared order it does not have."""

    def __init__(self):
        super().__init__(ButcherTableau.explicit([[1.0]], [0.5, 0.5]), 2, "heun_says_four")
        self.order = 4


class _StepsAnotherTableau(ExplicitRungeKutta):
    """Declares RK4's tableau but steps with the midpoint rule."""

    def __init__(self):
        super().__init__(get_tableau("rk4"), 4, "wrong_step")

    def step(self, op, state, t, h):
        k1 = op.vector_field(stage_time(t, 0.0, h), state)
        mid = tuple(y + (h / 2) * k for y, k in zip(state, k1))
        k2 = op.vector_field(stage_time(t, 0.5, h), mid)
        return tuple(y + h * k for y, k in zip(state, k2))


class _Rk38ClaimsRk4(ExplicitRungeKutta):
    """Steps with the 3/8 rule but declares RK4's tableau: the same R(z) and order, so only the
    nonlinear step tells them apart."""

    def __init__(self):
        super().__init__(get_tableau("rk38"), 4, "rk38_says_rk4")
        self.tableau = get_tableau("rk4")


class _BadInverse(StormerVerlet):
    def inverse_step(self, op, state, t, h):
        a, b = state
        return (a - h * op.part_f(t, b), b)


@pytest.mark.float64
@pytest.mark.parametrize("scheme, says", [
    (_HeunSaysFour(), "declared order 4 but the tableau's order conditions certify 2"),
    (_StepsAnotherTableau(), "one step on y' = λy gives R"),
    (_Rk38ClaimsRk4(), "one step on a nonlinear operator differs from its tableau's step"),
    (_BadInverse(), "reconstruction error"),
])
def test_each_defect_fails_the_certificate_naming_it(scheme, says):
    cert = certify_scheme(scheme, check=False)
    assert not cert.ok and any(says in f for f in cert.failures), cert.failures
    if isinstance(scheme, _Rk38ClaimsRk4):  # the linear checks cannot see it
        assert cert.stability_error < 1e-13 and len(cert.failures) == 1
    with pytest.raises(AssertionError, match="fails its certificate"):
        certify_scheme(scheme)


@pytest.mark.float64
def test_the_local_error_ratio_property_passes_rk4_and_fails_a_wrong_weight():
    local_error_property("rk4", max_examples=3)()

    class WrongWeight(ExplicitRungeKutta):  # RK4's order claimed by an order-2 step
        def __init__(self):
            super().__init__(get_tableau("heun2"), 2, "ww")
            self.order = 4

    op, y0 = pa.operators.OPERATOR_FACTORIES["parabolic"](2, T=1.0, n_pieces=1).double(), None
    y0 = torch.randn(1, 2, 4, 4, dtype=torch.float64)
    with pytest.raises(AssertionError, match="local error ratio"):
        check_local_error_ratio(WrongWeight(), op, y0, 0.1)
    inversion_property("verlet", max_examples=2)()


# --------------------------------------------------------------------------------------------
# register_scheme


def _raises():
    raise RuntimeError("my bug")


def test_register_scheme_refuses_a_factory_that_raises_and_the_registry_stays_usable():
    with pytest.raises(pa.InvalidArgumentError, match="raised RuntimeError: my bug"):
        register_scheme("broken_factory", _raises)
    assert "broken_factory" not in pa.available_schemes()
    # formatting the reversible schemes' list (what check_inversion's messages do) builds nothing
    with pytest.raises(pa.IncompatibleSchemeError, match="Reversible schemes: .*verlet"):
        pa.get_scheme("rk4").inverse_step(None, None, 0.0, 0.1)


def test_register_scheme_refuses_what_is_not_a_scheme_and_a_tableau_below_its_declared_order():
    with pytest.raises(pa.InvalidArgumentError, match="not a pdenet_analysis.schemes.Scheme"):
        register_scheme("not_a_scheme", lambda: object())
    with pytest.raises(pa.InvalidArgumentError, match="needs a factory"):
        register_scheme("no_factory", 3)
    with pytest.raises(pa.InvalidArgumentError, match="declares order 4 but its tableau's order conditions"):
        register_scheme("heun_says_four", _HeunSaysFour)
    with pytest.raises(pa.InvalidArgumentError, match="built-in"):
        register_scheme("rk4", lambda: ExplicitRungeKutta(get_tableau("rk38"), 4, "rk4"), overwrite=True)


def test_a_registered_tableau_scheme_is_certified_and_listed_by_kind_without_rebuilding_every_scheme():
    built = []

    class Counted(ExplicitRungeKutta):
        def __init__(self):
            built.append(1)
            super().__init__(get_tableau("ralston3"), 3, "ralston3_user")

    register_scheme("ralston3_user", Counted)
    try:
        assert len(built) == 1  # built once, at registration
        assert "ralston3_user" in pa.schemes.names_accepting("hamiltonian")
        from pdenet_analysis.schemes.registry import reversible_names

        assert "ralston3_user" not in reversible_names()
        assert len(built) == 1  # the listings read what registration kept
        assert certify_scheme("ralston3_user").tree_order == 3
    finally:
        unregister_scheme("ralston3_user")
    assert "ralston3_user" not in pa.schemes.names_accepting("first_order")


def test_testing_imports_without_hypothesis_and_strategies_says_what_to_install():
    code = ("import sys; sys.modules['hypothesis'] = None\n"
            "import pdenet_analysis.testing as t\n"
            "t.certify_scheme\n"
            "try:\n    t.strategies\nexcept ImportError as e:\n    print(type(e).__name__, e)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "MissingDependencyError" in r.stdout and "pip install hypothesis" in r.stdout


def test_a_scheme_object_without_a_tableau_is_held_to_its_amplification():
    class WrongAmplification(Scheme):
        name, order = "wrong_amp", 1
        kinds = frozenset({"first_order"})

        def step(self, op, state, t, h):
            return tuple(y + h * k for y, k in zip(state, op.vector_field(stage_time(t, 0.0, h), state)))

        def amplification(self, z):
            return np.abs(1 + np.asarray(z) + np.asarray(z) ** 2 / 2)  # Heun's, not Euler's

    with torch.autograd.set_grad_enabled(False):
        cert = certify_scheme(WrongAmplification(), check=False)
    assert cert.tree_order is None and any("amplification" in f for f in cert.failures)


@pytest.mark.slow
@pytest.mark.float64
@pytest.mark.parametrize("name", [n for n in pa.schemes.TABLEAUX if get_tableau(n).is_explicit])
def test_every_explicit_catalogue_tableau_passes_its_certificate_as_a_scheme(name):
    cert = certify_scheme(ExplicitRungeKutta(get_tableau(name), name=name))
    assert cert.tree_order == get_tableau(name).order() and cert.stability_error < 1e-12 and cert.step_error == 0.0
