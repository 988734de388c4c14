"""Hypothesis strategies for states, step sizes, operators and schemes.

    from hypothesis import given
    from pdenet_analysis.testing import strategies as pst

    @given(pst.paper_operators(kinds=("hamiltonian",)), pst.step_counts(), pst.final_times())
    def test_my_scheme_inverts(op_and_state, n, T): ...
"""

from __future__ import annotations

import torch
from hypothesis import strategies as st

from ..operators import OPERATOR_FACTORIES
from ..schemes import available_schemes, get_scheme


def step_counts(min_value: int = 1, max_value: int = 16):
    return st.integers(min_value, max_value)


def final_times(min_value: float = 0.05, max_value: float = 3.0):
    return st.floats(min_value, max_value, allow_nan=False, allow_infinity=False)


def schemes(kind: str | None = None, fixed_only: bool = True, reversible: bool | None = None):
    """Registered schemes (names), filtered by an accepted operator kind and properties."""
    names = []
    for n in available_schemes():
        s = get_scheme(n)
        if (kind is None or s.accepts(kind)) and (not fixed_only or not s.adaptive) and (
                reversible is None or s.reversible == reversible):
            names.append(n)
    return st.sampled_from(names)


@st.composite
def states(draw, channels: int | None = None, max_channels: int = 6, max_size: int = 6, batch: int | None = None,
           dtype=torch.float64, scale=(0.1, 3.0)):
    """Image-batch states (batch, channels, h, w) with entries N(0, s²)."""
    c = channels if channels is not None else draw(st.integers(1, max_channels))
    b = batch if batch is not None else draw(st.integers(1, 3))
    h, w = draw(st.integers(2, max_size)), draw(st.integers(2, max_size))
    seed = draw(st.integers(0, 2**31 - 1))
    s = draw(st.floats(*scale))
    g = torch.Generator().manual_seed(seed)
    return s * torch.randn(b, c, h, w, generator=g, dtype=dtype)


@st.composite
def paper_operators(draw, kinds=tuple(OPERATOR_FACTORIES), channels=(2, 4), normalise=None, activation=None,
                    dtype=torch.float64):
    """(operator, initial state) of the paper's kinds with random weights and settings."""
    arch = draw(st.sampled_from(list(kinds)))
    c = draw(st.sampled_from(list(channels)))
    kw = dict(
        T=draw(st.sampled_from([1.0, 3.0])),
        n_pieces=draw(st.integers(1, 4)),
        interpolation=draw(st.sampled_from(["constant", "linear"])),
        activation=activation or draw(st.sampled_from(["relu", "tanh"])),
        normalise=draw(st.booleans()) if normalise is None else normalise,
    )
    torch.manual_seed(draw(st.integers(0, 2**31 - 1)))
    op = OPERATOR_FACTORIES[arch](c, **kw).to(dtype)
    y0 = draw(states(channels=c, dtype=dtype))
    return op, y0


def tableaux(explicit: bool | None = None, min_order: int = 1):
    """Published Butcher tableaux (:mod:`~pdenet_analysis.schemes.catalogue`), filtered by
    explicitness and certified order: for a property of your own that must hold for every
    Runge–Kutta method of some kind (e.g. that your stability analysis of a tableau agrees with
    its :meth:`~pdenet_analysis.schemes.ButcherTableau.stability_function`)."""
    from ..schemes import TABLEAUX, get_tableau

    names = [n for n in TABLEAUX if (explicit is None or get_tableau(n).is_explicit == explicit)
             and get_tableau(n).order() >= min_order]
    return st.sampled_from(names).map(get_tableau)


@st.composite
def second_order_tableaux(draw, min_c2: float = 0.05):
    """The two-stage explicit methods of order 2: c₂ = α ∈ [min_c2, 1], b = (1 − 1/(2α), 1/(2α))
    (Hairer, Nørsett & Wanner I, §II.1): Heun at α = 1, the midpoint rule at 1/2, Ralston at 2/3."""
    from ..schemes import ButcherTableau

    alpha = draw(st.floats(min_c2, 1.0))
    return ButcherTableau.explicit([[alpha]], [1 - 1 / (2 * alpha), 1 / (2 * alpha)], name=f"rk2(c2={alpha:.4g})")
