"""Properties of a scheme that hold for every operator, as checks and as Hypothesis properties.

* Local error: one step of size h from y₀ against a reference solution (RK4 on 12 sub-steps)
  differs by C h^(p+1) + O(h^(p+2)) for a method of order p, so halving h divides it by
  2^(p+1) asymptotically (Hairer, Nørsett & Wanner I, §II.3). :func:`check_local_error_ratio`
  holds the ratio e(h)/e(h/2) to at least ``slack``·2^(p+1) (0.7 by default: the step sizes are
  those of the paper's networks, where the O(h^(p+2)) term is not negligible);
* inversion: for a reversible scheme, the inverse steps recover the state to round-off
  (:func:`~pdenet_analysis.testing.checks.check_inversion`).

:func:`local_error_property` and :func:`inversion_property` wrap them over the paper's operators
with random weights (:func:`~pdenet_analysis.testing.strategies.paper_operators`): each returns
a Hypothesis test to call, or to assign to a ``test_`` name in a test module.
"""

from __future__ import annotations

import torch

from ..integrate import integrate
from ..schemes import get_scheme


def local_error(scheme, operator, y0, h: float, reference: str = "rk4", substeps: int = 12) -> float:
    """‖one step of ``scheme`` − ``reference`` on ``substeps`` steps‖₂ over [0, h], every state
    component (the reference's own error, O(h⁵/substeps⁴), sits far below for p ≤ 4)."""
    with torch.no_grad():
        a = integrate(operator, y0, scheme, T=h, n_steps=1).state
        b = integrate(operator, y0, reference, T=h, n_steps=substeps).state
    return sum(float((x - y).square().sum()) for x, y in zip(a, b)) ** 0.5


def check_local_error_ratio(scheme, operator, y0, h: float, slack: float = 0.7, floor: float = 1e-13) -> float | None:
    """e(h)/e(h/2) ≥ ``slack``·2^(p+1) for the scheme's declared order p; returns the ratio, or
    None where e(h) is below ``floor`` (round-off, nothing to measure). Raises AssertionError
    naming the ratio and what was expected."""
    scheme = get_scheme(scheme)
    e1, e2 = local_error(scheme, operator, y0, h), local_error(scheme, operator, y0, h / 2)
    if e1 <= floor:
        return None
    ratio = e1 / max(e2, 1e-300)
    want = slack * 2 ** (scheme.order + 1)
    assert ratio >= want, (f"{scheme.name}: local error ratio e(h)/e(h/2) = {ratio:.2f} at h = {h}, expected ≥ "
                           f"{want:.1f} for order {scheme.order}")
    return ratio


def _settings(max_examples: int):
    from hypothesis import HealthCheck, settings

    return settings(max_examples=max_examples, derandomize=True, database=None, deadline=None,
                    suppress_health_check=list(HealthCheck))


def local_error_property(scheme, max_examples: int = 30, kinds=("parabolic", "resnet"), steps=(0.05, 0.1)):
    """A Hypothesis test: :func:`check_local_error_ratio` on random paper operators of ``kinds``
    (tanh, unnormalised) at the step sizes ``steps``. Call the result to run it."""
    from hypothesis import given
    from hypothesis import strategies as st

    from . import strategies as pst

    @_settings(max_examples)
    @given(pst.paper_operators(kinds=kinds, activation="tanh", normalise=False), st.sampled_from(list(steps)))
    def local_error_ratio(op_state, h):
        op, y0 = op_state
        check_local_error_ratio(scheme, op, y0, h)

    return local_error_ratio


def inversion_property(scheme, max_examples: int = 30, kinds=("hamiltonian",), max_steps: int = 6):
    """A Hypothesis test: forward then inverse steps recover the state to round-off, on random
    paper operators of ``kinds`` and 1 to ``max_steps`` steps. Call the result to run it."""
    from hypothesis import given

    from . import strategies as pst
    from .checks import check_inversion

    @_settings(max_examples)
    @given(pst.paper_operators(kinds=kinds, activation="tanh"), pst.step_counts(1, max_steps))
    def inverts(op_state, n):
        op, y0 = op_state
        check_inversion(scheme, op, y0, n_steps=n)

    return inverts
