"""Observed order of convergence.

On the same weights, integrate with h, h/2, h/4, ... and compare each result with a reference
(an exact solution, or a high-accuracy solve). The observed order is the least-squares slope of
log(error) against log(h) (the regression of diffrax's ``test_ode_order``), fitted over the points
above the round-off floor. Work in float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import InvalidArgumentError
from ..integrate import integrate
from .modes import analyses_an_operator
from .results import Result


def state_error(a: tuple, b: tuple, components: tuple[int, ...] | None = None) -> float:
    """Relative Frobenius error ‖a − b‖ / max(‖b‖, tiny) of two first-order states, over
    ``components`` (all when None)."""
    if components is not None:
        a, b = tuple(a[i] for i in components), tuple(b[i] for i in components)
    num = math.sqrt(sum(float((x - y).double().square().sum()) for x, y in zip(a, b)))
    den = math.sqrt(sum(float(y.double().square().sum()) for y in b))
    return num / max(den, 1e-300)


def fit_order(hs, errors, floor: float = 1e-13) -> tuple[float, np.ndarray]:
    """Least-squares slope of log(error) vs log(h) over the errors above ``floor``.

    Returns (slope, mask of the points used). NaN when fewer than 3 points qualify.
    """
    hs, errors = np.asarray(hs, float), np.asarray(errors, float)
    use = np.isfinite(errors) & (errors > floor)
    if use.sum() < 3:
        return float("nan"), use
    slope = np.polyfit(np.log(hs[use]), np.log(errors[use]), 1)[0]
    return float(slope), use


@dataclass
class ConvergenceResult(Result):
    """Errors and the observed order of ``scheme`` (declared ``declared_order``) over the step
    counts ``n_steps`` (step sizes ``h``); ``used`` marks the points above the round-off floor the
    slope is fitted on; ``reference`` says what the errors are measured against."""

    name = "convergence"
    scheme: str
    declared_order: int
    n_steps: list[int]
    h: list[float]
    errors: list[float]
    observed_order: float
    used: list[bool] = field(default_factory=list)
    reference: str = ""
    failure: dict | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in super().to_dict().items() if k != "failure"}

    as_dict = to_dict


@analyses_an_operator
def convergence_study(
    operator,
    y0,
    scheme,
    n_steps: list[int],
    *,
    T: float | None = None,
    reference: tuple | None = None,
    reference_scheme: str = "rk4",
    reference_factor: int = 8,
    floor: float = 1e-13,
    estimate: str = "reference",
) -> ConvergenceResult:
    """Errors and observed order of ``scheme`` for each entry of ``n_steps``.

    ``estimate="reference"``: the error of each solve against a reference. ``reference`` is the
    first-order state at T; if omitted, the operator's ``exact`` is used when it has one, else
    ``reference_scheme`` with ``reference_factor``× the finest step count.

    ``estimate="successive"``: no reference; the "error" of n steps is the difference
    ‖y_n − y_2n‖/‖y_2n‖ between the scheme's own solves with n and 2n steps (Richardson's
    estimate: Hairer, Nørsett & Wanner, *Solving ODEs I*, §II.4). For an order-p scheme
    y_n − y_2n = C·h^p·(1 − 2^−p) + O(h^{p+1}), so the fitted slope is the same p. With doubling
    ``n_steps`` this costs one solve more than the list, where a reference costs
    ``reference_factor``× the finest solve (times the reference scheme's stages).
    Errors are measured on ``operator.solution_components`` (Y only for second-order operators).
    For piecewise-constant θ, choose ``n_steps`` as multiples of the grid's pieces: the scheme
    then never steps across a jump of θ.
    """
    from ..errors import IncompatibleSchemeError
    from ..schemes import get_scheme

    scheme = get_scheme(scheme)
    if scheme.adaptive:
        raise IncompatibleSchemeError(
            f"an observed order needs fixed steps, but {scheme.name!r} chooses its steps by error control (its error "
            "follows rtol, not h). Study the adaptive solver by its tolerance (error and evaluations against rtol), or "
            f"pass its fixed-step tableau: get_scheme({scheme.name!r}).step_scheme")
    n_steps = list(n_steps)
    if estimate not in ("reference", "successive"):
        raise InvalidArgumentError(f"estimate must be 'reference' or 'successive', got {estimate!r}")
    if len(n_steps) < 2:
        raise InvalidArgumentError(f"an observed order is a slope: give at least two step counts, got n_steps={n_steps!r}")
    with torch.no_grad():
        state0 = operator.to_state(y0)
        T = operator.T if T is None else T
        how = "given"
        if estimate == "successive":
            solves = {}

            def solve(n):
                if n not in solves:
                    solves[n] = integrate(operator, y0, scheme, T=T, n_steps=n).state
                return solves[n]

            errs = [state_error(solve(n), solve(2 * n), operator.solution_components) for n in n_steps]
            slope, used = fit_order([T / n for n in n_steps], errs, floor)
            return ConvergenceResult(scheme.name, scheme.order, n_steps, [T / n for n in n_steps], errs, slope,
                                     used.tolist(), "successive differences ‖y_n − y_2n‖ (no reference)")
        if reference is None:
            if hasattr(operator, "exact"):
                reference, how = operator.exact(T, state0), "exact"
            else:
                n_ref = max(n_steps) * reference_factor
                reference = integrate(operator, y0, reference_scheme, T=T, n_steps=n_ref).state
                how = f"{reference_scheme} with {n_ref} steps"
        errs, hs = [], []
        for n in n_steps:
            sol = integrate(operator, y0, scheme, T=T, n_steps=n)
            errs.append(state_error(sol.state, reference, operator.solution_components))
            hs.append(T / n)
    slope, used = fit_order(hs, errs, floor)
    return ConvergenceResult(scheme.name, scheme.order, list(n_steps), hs, errs, slope, used.tolist(), how)
