"""One call that certifies a scheme: what it declares against what its coefficients and its steps
show.

    from pdenet_analysis.testing import certify_scheme
    cert = certify_scheme("my_scheme")      # raises AssertionError listing every failure
    print(cert.to_markdown())

The certificate compares, for any registered scheme or scheme object:

* the declared order with the order Butcher's rooted-tree conditions certify for its tableau
  (:meth:`~pdenet_analysis.schemes.ButcherTableau.order`; schemes without a tableau skip it) and
  with the observed order, the fitted slope on linear test problems with exact solutions
  (:func:`~pdenet_analysis.testing.checks.observed_orders`). In float64 the errors of a method of
  order ≥ 5 reach round-off within a few dozen steps, so its slope is fitted at 8–128 steps over
  the errors above 10⁻¹¹, where the next error term still shows: it must reach the declared
  order less 0.35 (less 0.15 below order 5, at 32–512 steps); a slope above the declared order
  is no failure (linear problems only test the stability function's accuracy, which can exceed
  the order), and where every error is at round-off (order 8) no slope is fitted;
* the stability function the scheme *steps* with the one it declares: one step of size 1 on
  y' = λy, written as a real 2×2 block per complex λ (the block [[a, −b], [b, a]] multiplies
  u + iv by z = a + ib), gives R(z) itself, which is held to the tableau's R(z) (or, without a
  tableau, |R(z)| to the scheme's ``amplification``) at points inside and outside the stability
  region;
* for a scheme with an explicit tableau, its step against the tableau's own step
  (:class:`~pdenet_analysis.schemes.ExplicitRungeKutta`) on a nonlinear operator (the paper's
  parabolic operator with tanh and θ varying in t, float64): a handwritten step that agrees with
  its tableau on linear problems but not on nonlinear ones differs here;
* symplecticity of the tableau (Cooper's condition), reported, not required;
* for a reversible scheme, the inversion error of forward then inverse steps
  (:func:`~pdenet_analysis.testing.checks.check_inversion`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import IncompatibleSchemeError
from ..integrate import integrate
from ..schemes import ButcherTableau, get_scheme
from ..schemes.metadata import StabilityVariable
from .checks import check_inversion, linear_problem, observed_orders
from .problems import LinearFirstOrder

#: where the stepped R(z) is compared with the declared one: on the real and imaginary axes, in
#: the left half-plane and outside the usual stability regions
STABILITY_POINTS = (-0.5, -1.0, -2.0, -2.7, 0.4, -1 + 1j, -0.5 + 2j, 1.5j, -3 + 0.5j, 2 - 2j)


@dataclass(frozen=True)
class SchemeCertificate:
    """What :func:`certify_scheme` found; ``failures`` lists each disagreement in a sentence."""

    name: str
    declared_order: int
    tree_order: int | None                 # Butcher's conditions on the tableau; None without one
    embedded_order: int | None             # of the tableau's b_hat, where it has one
    observed_orders: dict = field(default_factory=dict)  # {test problem: fitted slope}
    stability_error: float | None = None   # max |R_stepped(z) − R_declared(z)| over STABILITY_POINTS
    step_error: float | None = None        # its step against its tableau's, nonlinear operator, relative
    symplectic: bool | None = None         # Cooper's condition on the tableau
    inversion_error: float | None = None   # reversible schemes only
    failures: tuple = ()

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_markdown(self) -> str:
        def fmt(x, spec=".3g"):
            return "—" if x is None else format(x, spec) if isinstance(x, float) else str(x)

        rows = [("declared order", self.declared_order), ("rooted-tree order", fmt(self.tree_order)),
                ("embedded order", fmt(self.embedded_order)),
                *((f"observed order ({k})", f"{v:.3f}") for k, v in self.observed_orders.items()),
                ("stability function, stepped vs declared", fmt(self.stability_error, ".1e")),
                ("step vs its tableau's, nonlinear operator", fmt(self.step_error, ".1e")),
                ("symplectic tableau", fmt(self.symplectic)), ("inversion error", fmt(self.inversion_error, ".1e"))]
        lines = [f"### certificate of `{self.name}`", "", "| property | value |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in rows]
        lines += ["", "All checks pass." if self.ok else "Failures:", *(f"- {f}" for f in self.failures)]
        return "\n".join(lines)


def stepped_stability_function(scheme, z) -> np.ndarray:
    """R(z) as the scheme's own step computes it: one step of size 1 on the real form of y' = λy,
    one 2×2 block per point z (float64)."""
    z = np.atleast_1d(np.asarray(z, dtype=complex))
    M = np.zeros((2 * z.size, 2 * z.size))
    for k, zk in enumerate(z):
        M[2 * k: 2 * k + 2, 2 * k: 2 * k + 2] = [[zk.real, -zk.imag], [zk.imag, zk.real]]
    y0 = torch.zeros(1, 2 * z.size, dtype=torch.float64)
    y0[0, 0::2] = 1.0
    with torch.no_grad():
        y1 = integrate(LinearFirstOrder(M), y0, scheme, T=1.0, n_steps=1).state[0][0].numpy()
    return y1[0::2] + 1j * y1[1::2]


LOW_ORDER_STEPS, HIGH_ORDER_STEPS = (32, 64, 128, 256, 512), (8, 12, 16, 24, 32, 48, 64, 96, 128)


def certify_scheme(scheme, check: bool = True, n_steps=None, tolerance: float | None = None,
                   stability_tol: float = 1e-12) -> SchemeCertificate:
    """The certificate of ``scheme`` (a registered name or a scheme object); with ``check``,
    AssertionError listing every failure (for a test). An observed order below the declared one
    less ``tolerance`` fails (defaults by order: see the module docstring); the stepped stability
    function is held to ``stability_tol`` (relative to max(1, |R|))."""
    scheme = get_scheme(scheme)
    high = scheme.order >= 5
    n_steps = n_steps or (HIGH_ORDER_STEPS if high else LOW_ORDER_STEPS)
    tolerance = tolerance if tolerance is not None else (0.35 if high else 0.15)
    failures = []
    tableau = getattr(scheme, "tableau", None)
    tableau = tableau if isinstance(tableau, ButcherTableau) else None
    tree = embedded = symplectic = None
    if tableau is not None:
        tree = tableau.order(max_order=max(scheme.order + 1, 1))
        embedded, symplectic = tableau.embedded_order(), tableau.is_symplectic()
        failed = tableau.missing_condition(scheme.order) if scheme.order > 0 else None
        if failed is not None:
            failures.append(f"declared order {scheme.order} but the tableau's order conditions certify {tree}: tree "
                            f"{failed.notation} has Φ = {failed.phi:.6g}, 1/γ = {failed.expected:.6g}")
    observed = {}
    if not scheme.adaptive:
        for kind, (slope, errors) in observed_orders(scheme, n_steps=n_steps, floor=1e-11 if high else 1e-13).items():
            observed[kind] = slope
            if slope < scheme.order - tolerance:  # NaN (every error at round-off) compares False
                failures.append(f"observed order {slope:.3f} on {kind}, declared {scheme.order}; errors "
                                f"{', '.join(f'{e:.2e}' for e in errors)}")
    stability = _stability_error(scheme, tableau, failures, stability_tol)
    step = _step_error(scheme, tableau, failures, stability_tol)
    inversion = None
    if scheme.reversible:
        kind = "hamiltonian" if scheme.accepts("hamiltonian") else sorted(scheme.kinds)[0]
        op, y0 = linear_problem(kind)
        try:
            inversion = check_inversion(scheme, op, y0, n_steps=8, T=2.0)
        except AssertionError as exc:
            failures.append(str(exc))
    cert = SchemeCertificate(scheme.name, scheme.order, tree, embedded, observed, stability, step, symplectic,
                             inversion, tuple(failures))
    if check and failures:
        raise AssertionError(f"scheme {scheme.name!r} fails its certificate: " + "; ".join(failures))
    return cert


def _stability_error(scheme, tableau, failures, tol) -> float | None:
    """max |R_stepped − R_declared| / max(1, |R_declared|) over STABILITY_POINTS, for one-step
    schemes whose stability variable is hλ, which integrate first-order operators and whose state
    is the operator's (None otherwise: a partitioned scheme's R acts on h²λ, the reversible
    Runge–Kutta wrappers carry a second state z, an adaptive solver chooses its own steps)."""
    if (scheme.stability_variable != StabilityVariable.H_LAMBDA or not scheme.accepts("first_order")
            or scheme.adaptive or not scheme.internal_from_state):
        return None
    z = np.array(STABILITY_POINTS, dtype=complex)
    stepped = stepped_stability_function(scheme, z)
    if tableau is not None:
        declared = tableau.stability_function()(z)
        err = np.abs(stepped - declared) / np.maximum(1.0, np.abs(declared))
        what = "the tableau's R(z)"
    else:
        try:
            declared = np.asarray(scheme.amplification(z), dtype=float)
        except IncompatibleSchemeError:  # the scheme declares no stability function: nothing to hold it to
            return None
        err = np.abs(np.abs(stepped) - declared) / np.maximum(1.0, declared)
        what = "its amplification |R(z)|"
    worst = float(err.max())
    if worst > tol:
        k = int(err.argmax())
        failures.append(f"one step on y' = λy gives R({z[k]:.3g}) = {stepped[k]:.6g}, but {what} is "
                        f"{declared[k]:.6g}")
    return worst


def _step_error(scheme, tableau, failures, tol) -> float | None:
    """‖step − the tableau's step‖ / ‖state‖ on the paper's parabolic operator (4 channels, 5 × 5,
    tanh, two weight sets, t and h where θ varies within the step), for schemes with an explicit
    tableau that integrate first-order operators (None otherwise)."""
    if tableau is None or not tableau.is_explicit or not scheme.accepts("first_order") or scheme.adaptive:
        return None
    certified = tableau.order(max_order=max(scheme.order, 1))
    if certified < 1:  # not even consistent: already a failure, and nothing to step
        return None
    from ..operators import parabolic
    from ..schemes import ExplicitRungeKutta

    gen = torch.Generator().manual_seed(0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        op = parabolic(4, T=1.0, n_pieces=2, interpolation="linear", activation="tanh", normalise=False).double()
    state = op.to_state(torch.randn(2, 4, 5, 5, generator=gen, dtype=torch.float64))
    reference = ExplicitRungeKutta(tableau, order=certified, name="reference")
    with torch.no_grad():
        mine, theirs = scheme.step(op, state, 0.3, 0.25), reference.step(op, state, 0.3, 0.25)
    err = max(float((a - b).abs().max()) for a, b in zip(mine, theirs)) / max(float(state[0].abs().max()), 1e-300)
    if err > tol:
        failures.append(f"one step on a nonlinear operator differs from its tableau's step by {err:.2e} (relative)")
    return err
