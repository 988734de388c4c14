"""McCallum & Foster's algebraically reversible wrapper of an explicit Runge–Kutta scheme.

McCallum & Foster, "Efficient, Accurate and Stable Gradients for Neural ODEs" (arXiv 2410.11648,
2024) make any explicit one-step scheme Φ_h exactly invertible by carrying a second state z beside
y (z₀ = y₀) and coupling the two with a parameter λ ∈ (0, 1]:

    y_{n+1} = λ y_n + H(z_n),        H(z) = Φ_h(t_n, z) − λ z,
    z_{n+1} = z_n + G(y_{n+1}),      G(y) = y − Φ_{−h}(t_{n+1}, y),

where Φ_{−h}(t_{n+1}, ·) is the base scheme stepped back from t_{n+1} to t_n. Each update leaves the
other variable unchanged, so the step inverts exactly (to round-off):

    z_n = z_{n+1} − G(y_{n+1}),       y_n = (y_{n+1} − H(z_n)) / λ.

The wrapped scheme has the base scheme's order (McCallum & Foster prove it; ``tests/test_orders.py``
fits it), costs two base steps per step, and with ``gradient="reversible"`` back-propagates with O(1)
memory in the number of steps: its :meth:`step_back` evaluates G and H once each, differentiated on
the spot, as the symplectic schemes do. It makes first-order operators — the paper's parabolic
network and the ResNet — trainable with exact reversible gradients.

Linear stability. On y' = μy with z = hμ and R the base scheme's stability function, one step is
the 2 × 2 map [[λ, R(z) − λ], [(1 − R(−z))λ, 1 + (1 − R(−z))(R(z) − λ)]], of determinant λ and
trace 1 + λ + (1 − R(−z))(R(z) − λ) (:meth:`amplification`). One eigenvalue follows e^z; the other,
parasitic, starts at λ. On a dissipative mode (z < 0) the backward step R(−z) > 1 amplifies, and
the interval of the negative real axis on which the step is stable shrinks as λ → 1:

* λ = 0.999 (McCallum & Foster's default): |z| < 0.001 for the wrappers of forward Euler, Heun
  and RK4 alike; at z = −1 they amplify by 2.62, 2.32 and 2.69 per step. The parasitic mode also
  decays by only 1 − λ per step, which delays the asymptotic order: on the linear test problem
  ``check_order(ReversibleRungeKutta("rk4", 0.999), n_steps=(64, 128, 256, 512, 1024))`` fails
  with a fitted slope of 4.93 against 4 (Heun's wrapper: 2.84 against 2).
* λ = 0.5 (the default here): |z| < 0.50, 2.16 and 0.70. Heun's wrapper has amplification 1 at z = −1, where
  the paper's blocks (h = 1, ρ(∂F/∂Y) ≈ 1) put their modes.

So the wrapper does not inherit the parabolic network's stability by construction; the stability
report counts the modes it amplifies (docs/choosing-a-scheme.md). ``largest_stable_step`` reports
the end of the stable interval that starts at h = 0.

Round-off. The inverse divides by λ, so n inverse steps multiply the final state's rounding by
λ⁻ⁿ (``inverse_growth`` = 1/λ): at λ = 0.5 the reconstruction error of a parabolic block in
float64 grows as 2ⁿ (``tests/test_reversible_rk.py``). The reversible gradient refuses rebuilds
whose error would exceed 10⁻³ (``integrate``). A larger λ cures this and narrows the stable
interval: the choice of λ trades forward stability against the depth a reversible gradient can
rebuild.

The first-order state y does not determine z, so :meth:`from_state` cannot rebuild the internal
state from it (``Scheme.internal_from_state`` is False): the flow map on y is inverted through the
internal state (``pdenet_analysis.reverse`` does), not from y alone.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import IncompatibleSchemeError, InvalidArgumentError
from ..gradients.autograd import differentiated_part
from .base import Scheme
from .runge_kutta import RK4, ExplicitRungeKutta, ForwardEuler, Heun, Midpoint

#: the explicit schemes the wrapper takes by name
BASES = {"euler": ForwardEuler, "heun": Heun, "midpoint": Midpoint, "rk4": RK4}


class ReversibleRungeKutta(Scheme):
    """The reversible wrapper of the explicit RK scheme ``base`` (a registry name or an
    :class:`~.runge_kutta.ExplicitRungeKutta`) with coupling λ = ``coupling`` (0 < λ ≤ 1). See the
    module docstring, and there why the default is 0.5, not McCallum & Foster's 0.999."""

    kinds = frozenset({"first_order"})
    reversible = True
    internal_from_state = False
    plain_state = False  # the internal state (y, z) carries the wrapper's second state

    def __init__(self, base="rk4", coupling: float = 0.5):
        if isinstance(base, str):
            if base not in BASES:
                raise IncompatibleSchemeError(f"the reversible wrapper takes an explicit Runge–Kutta scheme, one of "
                                              f"{', '.join(BASES)} or an ExplicitRungeKutta, not {base!r}")
            base = BASES[base]()
        if not isinstance(base, ExplicitRungeKutta):
            raise IncompatibleSchemeError(f"the reversible wrapper takes an explicit Runge–Kutta scheme (euler, heun, "
                                          f"midpoint, rk4 or an ExplicitRungeKutta), not {base!r}")
        if isinstance(coupling, bool) or not isinstance(coupling, (int, float)) or not 0.0 < coupling <= 1.0:
            raise InvalidArgumentError(f"coupling λ of the reversible wrapper must be a number in (0, 1], got {coupling!r}; "
                                       "McCallum & Foster use 0.999")
        self.base, self.coupling = base, float(coupling)
        self.name = f"reversible_{base.name}"
        self.order = base.order

    @property
    def inverse_growth(self) -> float:
        """1/λ: the inverse step divides by λ (y_n = (y_{n+1} − H(z_n))/λ)."""
        return 1.0 / self.coupling

    def options(self) -> dict:
        return {"coupling": self.coupling}

    # ---- the two updates -------------------------------------------------------------------
    def _advance(self, op, x, t, h):
        """Φ_h(t, x): one step of the base scheme on the first-order state (x,)."""
        return self.base.step(op, (x,), t, h)[0]

    def _h(self, op, z, t, h):
        """H(z) = Φ_h(t, z) − λz, the increment of y."""
        return torch.add(self._advance(op, z, t, h), z, alpha=-self.coupling)

    def _g(self, op, y, t, h):
        """G(y) = y − Φ_{−h}(t + h, y), the increment of z (y at t + h)."""
        return y - self._advance(op, y, t + h, -h)

    # ---- fixed-step interface --------------------------------------------------------------
    def init(self, op, state, t0, h):
        (y,) = state
        return (y, y)

    def step(self, op, state, t, h):
        y, z = state
        y = torch.add(self._h(op, z, t, h), y, alpha=self.coupling)
        return (y, z + self._g(op, y, t, h))

    def inverse_step(self, op, state, t, h):
        y, z = state
        z = z - self._g(op, y, t, h)
        return (torch.sub(y, self._h(op, z, t, h)).div_(self.coupling), z)

    def step_back(self, op, state, grads, acc, t, h):
        """The reversible gradient's step with one evaluation of G and one of H. With gradients
        (g_y, g_z) at (y_{n+1}, z_{n+1}): ḡ = g_y + (∂G/∂y)ᵀ g_z reaches y_{n+1}; then y_n gets λḡ
        and z_n gets g_z + (∂H/∂z)ᵀ ḡ; the parameters (∂G/∂θ)ᵀ g_z + (∂H/∂θ)ᵀ ḡ."""
        (y, z), (g_y, g_z) = state, grads
        inc, g_from_g = differentiated_part(lambda s, x: self._g(op, x, t, h), None, y, g_z, acc)
        z = z - inc
        g_y = g_y if g_from_g is None else g_y + g_from_g
        inc, g_from_h = differentiated_part(lambda s, x: self._h(op, x, t, h), None, z, g_y, acc)
        y_prev = torch.sub(y, inc).div_(self.coupling)
        return (y_prev, z), (g_y * self.coupling, g_z if g_from_h is None else g_z + g_from_h)

    def to_state(self, op, state, h):
        return (state[0],)

    def from_state(self, op, state, h):
        raise IncompatibleSchemeError(
            f"{self.name}: the first-order state y does not determine the wrapper's second state z, so the internal "
            "state cannot be rebuilt from it; invert a solution through its internal state (pdenet_analysis.reverse)")

    def uninit(self, op, state, t0, h):
        return (state[0],)  # z₀ = y₀

    # ---- linear stability ------------------------------------------------------------------
    def amplification(self, z) -> np.ndarray:
        """The larger modulus of the two eigenvalues of the 2 × 2 step map on y' = μy, z = hμ
        (module docstring): the roots of ξ² − τξ + λ = 0 with τ = 1 + λ + (1 − R(−z))(R(z) − λ)."""
        z = np.asarray(z, dtype=complex)
        lam = self.coupling
        tau = 1.0 + lam + (1.0 - self.base.stability_function(-z)) * (self.base.stability_function(z) - lam)
        disc = np.sqrt(tau * tau - 4.0 * lam)
        return np.maximum(np.abs(tau + disc), np.abs(tau - disc)) / 2.0

    def __repr__(self) -> str:
        return f"ReversibleRungeKutta({self.base.name!r}, coupling={self.coupling!r})"
