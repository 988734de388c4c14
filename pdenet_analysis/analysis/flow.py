"""Reversibility error and energy along a trajectory (conditioning: :mod:`.conditioning`).

* Reversibility: integrate forward, then backward with the exact inverse step; relative error
  against the number of steps, the step size and the dtype (paper §3.2, claim 4 of spec §8).
* Energy: ‖Y_j‖ per step; for a second-order operator with N = id the energy of eq. 12,
  E = ½(‖Y'‖² + ⟨KY, σ(KY)⟩); for a Hamiltonian operator with σ = ReLU and N = id,
  H = ½‖σ(K₁Z)‖² + ½‖σ(K₂Y)‖², which the flow conserves.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch

from ..integrate import integrate, reverse
from ..operators import functional as F
from ..operators.layers import SymmetricLayer
from ..schemes import get_scheme
from .modes import analyses_an_operator
from .precision import dtype_named, float32_products
from .results import sweepable
from .results import Result


@dataclass
class ReversibilityResult(Result):
    """Per dtype and step count, the relative reconstruction error ‖Y₀ − R(Φ(Y₀))‖/‖Y₀‖ (``results``:
    dicts with ``dtype``, ``n_steps``, ``h``, ``relative_error``)."""

    name = "reversibility"
    scheme: str
    results: list
    dtypes: list = field(default_factory=list)
    failure: dict | None = None

    def to_dict(self) -> dict:
        return dict(scheme=self.scheme, results=self.results)

    def worst(self, dtype: str = "float64") -> float | None:
        """The largest error in ``dtype`` over the step counts (None if not measured)."""
        errs = [r["relative_error"] for r in self.results if r["dtype"] == dtype]
        return max(errs) if errs else None


@dataclass
class EnergyResult(Result):
    """‖Y(t)‖ at every step (``norms``) and, where defined, the energy of eq. 12 or the Hamiltonian
    (``energies``, None elsewhere), at ``times``."""

    name = "energy"
    scheme: str
    kind: str
    times: list
    norms: list
    energies: list
    failure: dict | None = None

    def to_dict(self) -> dict:
        return dict(scheme=self.scheme, norms=self.norms, energies=self.energies)


@sweepable("reversibility")
@analyses_an_operator
def reversibility(operator, y0, scheme, *, T=None, n_steps_list=(1, 2, 4, 8, 16, 32, 64),
                  dtypes=None, step_sizes=None) -> ReversibilityResult:
    """Relative reconstruction error ‖Y₀ − R(Φ(Y₀))‖/‖Y₀‖ after n forward and n inverse steps.

    With ``step_sizes`` (a list of h), T = n·h for each n (depth grows at fixed h); otherwise T is
    fixed and h = T/n. Raises :class:`IncompatibleSchemeError` for a scheme without an inverse.
    ``dtypes`` (names of :data:`.precision.DTYPES`): by default float64, float32 and bfloat16, and
    on CUDA also "tensorfloat32", the precision of float32 convolutions there unless switched off;
    "float32" is IEEE float32 on every device (:mod:`.precision`).
    """
    scheme = get_scheme(scheme)
    scheme.require_inverse()
    T = operator.T if T is None else T
    if dtypes is None:
        on_cuda = (y0[0] if isinstance(y0, (tuple, list)) else y0).device.type == "cuda"
        dtypes = ("float64", "float32", *(("tensorfloat32",) if on_cuda else ()), "bfloat16")
    named = [dtype_named(d) for d in dtypes]
    data = []
    for dname, dt in named:
        op = _cast(operator, dt)
        x0 = tuple(t.to(dt) for t in y0) if isinstance(y0, (tuple, list)) else y0.to(dt)
        for h in (step_sizes or [None]):
            for n in n_steps_list:
                TT = T if h is None else min(n * h, op.T or n * h)
                with torch.no_grad(), float32_products(tf32=dname == "tensorfloat32"):
                    sol = integrate(op, x0, scheme, T=TT, n_steps=n, check_finite=False)
                    back = reverse(op, sol, check_finite=False)
                ref = op.to_state(x0)
                comps = op.solution_components or range(len(ref))
                num = sum(float((back[i].double() - ref[i].double()).square().sum()) for i in comps) ** 0.5
                den = sum(float(ref[i].double().square().sum()) for i in comps) ** 0.5
                err = num / max(den, 1e-300)
                data.append(dict(dtype=dname, n_steps=n, h=TT / n, relative_error=err))

    return ReversibilityResult(scheme.name, data, list(dict.fromkeys(n for n, _ in named)))


def _cast(operator, dtype):
    return copy.deepcopy(operator).to(dtype)


@sweepable("energy")
@analyses_an_operator
def energy(operator, y0, scheme, *, T=None, n_steps=None, example: int | None = None) -> EnergyResult:
    """Norms along the trajectory and, where defined, the energy of eq. 12 or the Hamiltonian."""
    scheme = get_scheme(scheme)
    with torch.no_grad():
        sol = integrate(operator, y0, scheme, T=T, n_steps=n_steps, trajectory=True)
    sl = slice(None) if example is None else slice(example, example + 1)
    norms, energies = [], []
    for j, s in enumerate(sol.trajectory):
        t = float(sol.times[j])
        state = tuple(x[sl] for x in s)
        norms.append(float(torch.cat([x.flatten(1) for x in (state if operator.kind == "hamiltonian" else state[:1])], 1).norm()))
        with torch.no_grad():
            energies.append(_energy(operator, state, min(t, (operator.T or t) * (1 - 1e-12))))
    return EnergyResult(scheme.name, operator.kind, sol.times.cpu().tolist(), norms, energies)


def _energy(operator, state, t):
    def part(layer, y):
        if not isinstance(layer, SymmetricLayer) or layer.normalise:
            return None
        p = layer.params_at(t)
        ky = F.conv(y, p["weight"])
        return ky, layer.sigma(ky)

    if operator.kind == "second_order" and len(state) == 2:
        r = part(operator.layer, state[0])
        if r is None:
            return None
        return float(0.5 * (state[1].square().sum() + (r[0] * r[1]).sum()))
    if operator.kind == "hamiltonian" and operator.layer_y.activation == "relu":
        a, b = part(operator.layer_y, state[1]), part(operator.layer_z, state[0])
        if a is None or b is None:
            return None
        return float(0.5 * (a[1].square().sum() + b[1].square().sum()))
    return None
