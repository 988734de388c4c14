"""Property checks for schemes — yours or ours. Each raises ``AssertionError`` with a message
that says what failed (they are meant to be called from a test), and returns what it measured.

    from pdenet_analysis.testing import check_order, check_inversion
    check_order(MyScheme())             # fitted order within ±0.15 of MyScheme.order
"""

from __future__ import annotations

import torch

from ..errors import InvalidArgumentError
from ..analysis.convergence import convergence_study
from ..integrate import integrate, reverse
from ..schemes import get_scheme
from .problems import (LinearFirstOrder, LinearHamiltonian, LinearSecondOrder, TimeDependentLinear, random_spd,
                       random_stable_matrix)


def linear_problem(kind: str, seed: int = 0):
    """A linear test problem of ``kind`` with an exact solution, and an initial value."""
    g = torch.Generator().manual_seed(seed)
    dt = torch.float64
    if kind == "first_order":
        return LinearFirstOrder(random_stable_matrix(4, seed, spread=2.0)), torch.randn(2, 4, generator=g, dtype=dt)
    if kind == "first_order_time":
        return TimeDependentLinear(random_stable_matrix(4, seed, spread=2.0)), torch.randn(2, 4, generator=g, dtype=dt)
    if kind == "hamiltonian":
        return (LinearHamiltonian(random_spd(3, seed), -random_spd(3, seed + 1)),
                (torch.randn(2, 3, generator=g, dtype=dt), torch.randn(2, 3, generator=g, dtype=dt)))
    if kind == "second_order":
        return (LinearSecondOrder(-random_spd(3, seed + 2)),
                (torch.randn(2, 3, generator=g, dtype=dt), torch.randn(2, 3, generator=g, dtype=dt)))
    raise InvalidArgumentError(f"unknown kind {kind!r}")


def observed_orders(scheme, kinds=None, n_steps=(32, 64, 128, 256, 512), T: float = 2.0, floor: float = 1e-13) -> dict:
    """The fitted slope of log error against log h (float64, exact solutions, over the errors
    above ``floor``) on a linear problem of every kind the scheme accepts, and for first-order
    schemes also on a time-dependent one (``first_order_time``), which catches wrong stage times:
    {kind: (slope, errors)}."""
    scheme = get_scheme(scheme)
    kinds = kinds or sorted(scheme.kinds) + (["first_order_time"] if scheme.accepts("first_order") else [])
    out = {}
    for kind in kinds:
        op, y0 = linear_problem(kind)
        r = convergence_study(op, y0, scheme, list(n_steps), T=T, floor=floor)
        out[kind] = (r.observed_order, r.errors)
    return out


def check_order(scheme, kinds=None, n_steps=(32, 64, 128, 256, 512), T: float = 2.0, tolerance: float = 0.15) -> dict:
    """Observed order (:func:`observed_orders`) within ``tolerance`` of ``scheme.order`` on every
    problem; returns {kind: slope}.

    The default steps keep h·ρ ≤ 1/8 on the first-order problems (ρ = 2, T = 2), inside the
    asymptotic regime of every registered scheme: the reversible Runge–Kutta wrappers, whose
    parasitic mode and narrow stability interval delay it, fit 3.71 from 8 steps and 3.95 from 32
    (reversible_rk4, order 4)."""
    scheme = get_scheme(scheme)
    out = {}
    for kind, (slope, errors) in observed_orders(scheme, kinds, n_steps, T).items():
        out[kind] = slope
        assert abs(slope - scheme.order) <= tolerance, (
            f"{scheme.name} on {kind}: observed order {slope:.3f}, declared {scheme.order}; errors {errors}")
    return out


def check_inversion(scheme, operator, y0, n_steps: int, T: float | None = None, rtol: float = 1e-12) -> float:
    """Forward then inverse steps recover y0 to ``rtol`` (relative, max-norm, scaled by depth), in
    every component of the first-order state (Y and V, or Y and Z)."""
    scheme = get_scheme(scheme)
    with torch.no_grad():  # the operator's weights may require gradients; nothing here needs them
        sol = integrate(operator, y0, scheme, T=T, n_steps=n_steps)
        back = reverse(operator, sol)
    ref = operator.to_state(y0)
    err = max(float((b - r).abs().max()) for b, r in zip(back, ref))
    scale = max(1.0, max(float(x.abs().max()) for x in sol.state))
    assert err <= rtol * scale * n_steps, f"{scheme.name}: reconstruction error {err:.3e} after {n_steps} steps"
    return err


def check_nonexpansive(scheme, operator, y1, y2, n_steps: int, T: float | None = None) -> list[float]:
    """‖Y_j − Ỹ_j‖ never increases along the two trajectories."""
    s1 = integrate(operator, y1, scheme, T=T, n_steps=n_steps, trajectory=True)
    s2 = integrate(operator, y2, scheme, T=T, n_steps=n_steps, trajectory=True)
    d = [float(sum((a - b).square().sum() for a, b in zip(p, q)) ** 0.5) for p, q in zip(s1.trajectory, s2.trajectory)]
    assert all(b <= a * (1 + 1e-10) for a, b in zip(d, d[1:])), f"distances increased: {d}"
    return d


def check_adjoint(forward, adjoint, x: torch.Tensor, y: torch.Tensor, rtol: float = 1e-10) -> float:
    """⟨forward(x), y⟩ = ⟨x, adjoint(y)⟩ (e.g. a convolution and its transpose)."""
    lhs, rhs = float((forward(x) * y).sum()), float((x * adjoint(y)).sum())
    err = abs(lhs - rhs) / max(abs(lhs), abs(rhs), 1e-300)
    assert err <= rtol, f"⟨Kx, y⟩ = {lhs!r} but ⟨x, Kᵀy⟩ = {rhs!r}"
    return err
