"""Adaptive Runge–Kutta solvers, delegated to torchdiffeq (we do not write our own).

``TorchDiffEq(method, rtol, atol)`` integrates the first-order form of any operator with
torchdiffeq's embedded pairs (dopri5, bosh3, adaptive_heun, ...). The step is chosen by error
control, so ``n_steps`` is not used. Gradients come either by backpropagation through the solver's
operations (``Backprop``) or by torchdiffeq's continuous adjoint (``Adjoint``).

Statistics are counted by the integrator as for fixed-step schemes: operator evaluations by a
counting wrapper, accepted and rejected steps through torchdiffeq's step callbacks.

``backend="torchode"`` runs dopri5 on torchode instead (optional dependency; same semantics,
less time on smooth fields, see :mod:`.torchode_backend`); the adjoint always runs on
torchdiffeq.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import IncompatibleSchemeError, NonFiniteError, UnknownNameError
from ..gradients.autograd import require_no_outside_leaves
from .base import Scheme
from .catalogue import get_tableau


def all_finite(tensors) -> bool:
    """True if every entry is finite, with one host read when they are: the sum of the tensors'
    sums is finite iff all entries are, barring overflow of a sum (or the opposite infinities of
    two tensors), which the exact check, one read per tensor, then rules out. On a GPU each host
    read waits for the device to finish the queued work."""
    tensors = list(tensors)
    if not tensors or bool(torch.isfinite(sum(x.sum() for x in tensors))):
        return True
    return all(bool(torch.isfinite(x).all()) for x in tensors)

#: method name -> order of the propagated solution. Only methods that torchdiffeq (≥ 0.2.3)
#: provides are listed: a registered scheme must run (tsit5 is not among torchdiffeq's solvers).
ADAPTIVE_METHODS = {
    "dopri5": 5,
    "dopri8": 8,
    "bosh3": 3,
    "adaptive_heun": 2,
    "fehlberg2": 2,
}


#: check every evaluation of the right-hand side for NaN/Inf on the host as it happens (True), or
#: keep each evaluation's sum on the device (one reduction, no read) and check them all once when
#: the solve ends (False). None:
#: on the host for CPU states, deferred for GPU ones, where a host read per evaluation stalls the
#: device's queue. Either way the solve stops with :class:`NonFiniteError` naming the first such t.
HOST_CHECK_EVERY_EVALUATION: bool | None = None


def _float64_sum(tensors) -> torch.Tensor:
    """The float64 sum of every entry, on the device: finite iff every entry is, for a float32 (or
    narrower) state, which cannot overflow it (3.4e38 · numel < 1.8e308); a float64 state's sum
    also overflows where its entries exceed 1.8e308/numel, which counts as blowing up."""
    s = tensors[0].sum(dtype=torch.float64)
    for x in tensors[1:]:
        s = s + x.sum(dtype=torch.float64)
    return s


def _initial_nonfinite_error() -> NonFiniteError:
    return NonFiniteError("the initial state contains NaN or Inf", step=0, time=0.0)


def _nonfinite_error(t: float) -> NonFiniteError:
    return NonFiniteError(
        f"NaN or Inf in the right-hand side at t = {t:.6g} during adaptive integration; "
        "the dynamics blow up: reduce T, tighten the box constraint on the weights, or check the input",
        time=t,
    )


class _Field(nn.Module):
    """torchdiffeq's ``func(t, y)`` for an operator, counting evaluations and steps, and checking
    that every evaluation is finite (:data:`HOST_CHECK_EVERY_EVALUATION`)."""

    def __init__(self, op, counter):
        super().__init__()
        self.op = op  # a counting proxy; parameters are reached through ``module``
        self.module = op.operator
        self.counter = counter
        # deferred check: {"sums": each evaluation's float64 sum, on the device; "times": its t}. A
        # plain dict, so that the update at every evaluation does not pass through Module.__setattr__
        self.deferred = None

    def defer_checks(self) -> None:
        """From now on keep each evaluation's sum on the device instead of reading it;
        :meth:`raise_if_nonfinite` reads them all at once."""
        self.deferred = {"sums": [], "times": []}

    def check_initial(self, state0) -> None:
        """The initial state is finite: read now where every evaluation is checked on the host, else
        its sum joins the deferred ones (first, with time None), read when the solve ends."""
        if self.deferred is None:
            if not all_finite(state0):
                raise _initial_nonfinite_error()
            return
        self.deferred["sums"].append(_float64_sum(state0))
        self.deferred["times"].append(None)

    def raise_if_nonfinite(self) -> None:
        """One host read: raise for the first non-finite evaluation since :meth:`defer_checks`, and go
        back to checking each evaluation on the host."""
        deferred, self.deferred = self.deferred, None
        if deferred is None or not deferred["sums"]:
            return
        bad = ~torch.isfinite(torch.stack(deferred["sums"]))
        if bool(bad.any()):
            t = deferred["times"][int(bad.nonzero()[0, 0])]
            raise _initial_nonfinite_error() if t is None else _nonfinite_error(float(t))

    def forward(self, t, state):
        out = self.op.vector_field(t, state)
        deferred = self.deferred
        if deferred is not None:
            # one reduction per evaluation, no host read. The solvers build each t afresh, so keeping the
            # tensor itself (no copy) keeps its value
            deferred["sums"].append(_float64_sum(out))
            deferred["times"].append(t)
        elif not all_finite(out):
            raise _nonfinite_error(float(t))
        return out

    def callback_accept_step(self, t0, y0, dt):
        self.counter.accepted += 1
        log = getattr(self.counter, "step_log", None)
        if log is not None:  # (t, h, state at t) of each accepted step, for the analyses
            y0 = tuple(y.detach().clone() for y in y0) if isinstance(y0, (tuple, list)) else y0.detach().clone()
            log.append((float(torch.as_tensor(t0).detach()), float(torch.as_tensor(dt).detach()), y0))

    def callback_reject_step(self, t0, y0, dt):
        self.counter.rejected += 1


class TorchDiffEq(Scheme):
    """An adaptive solver of torchdiffeq: ``method`` ∈ ``ADAPTIVE_METHODS``, tolerances rtol/atol;
    ``backend`` "torchdiffeq" (default) or "torchode" (dopri5 only, :mod:`.torchode_backend`)."""

    kinds = frozenset({"first_order", "second_order", "hamiltonian"})
    adaptive = True

    def __init__(self, method: str = "dopri5", rtol: float = 1e-6, atol: float = 1e-8, max_steps: int | None = 10_000,
                 backend: str = "torchdiffeq"):
        if method not in ADAPTIVE_METHODS:
            raise UnknownNameError("adaptive method", method, ADAPTIVE_METHODS)
        if backend not in ("torchdiffeq", "torchode"):
            raise UnknownNameError("adaptive backend", backend, ("torchdiffeq", "torchode"))
        if backend == "torchode":
            from .torchode_backend import METHODS, require_torchode

            if method not in METHODS:
                raise IncompatibleSchemeError(f"backend='torchode' runs {', '.join(METHODS)}, not {method!r}; "
                                              "use backend='torchdiffeq' for it")
            require_torchode()
        self.backend = backend
        self.name, self.method = method, method
        self.order = ADAPTIVE_METHODS[method]
        from ..errors import require_positive

        # a zero or negative tolerance makes torchdiffeq accept every step: say so instead
        self.rtol, self.atol = require_positive("rtol", rtol), require_positive("atol", atol)
        self.max_steps = max_steps
        self._step_scheme = None

    def options(self) -> dict:
        return dict(rtol=self.rtol, atol=self.atol, max_steps=self.max_steps, backend=self.backend)

    @property
    def tableau(self):
        """The embedded pair this method runs (b the propagated solution, b_hat the error
        estimate's), as catalogued in :mod:`~pdenet_analysis.schemes.catalogue`: its orders,
        stability function and intervals are read from it."""
        return get_tableau(self.method)

    @property
    def step_scheme(self):
        """One step of the propagated Runge–Kutta solution as a fixed-step scheme: what an accepted
        step of size h does to the state. The analyses take step maps and the stability function
        from it; ``integrate`` never calls it (torchdiffeq takes the steps)."""
        if self._step_scheme is None:
            from .runge_kutta import ExplicitRungeKutta

            self._step_scheme = ExplicitRungeKutta(self.tableau, self.order, self.name)
        return self._step_scheme

    def step(self, op, state, t, h):
        raise IncompatibleSchemeError(f"adaptive scheme {self.name!r} chooses its own steps; call integrate()")

    def amplification(self, z):
        """|R(z)| of the propagated solution's tableau, for an accepted step of size h (z = hλ)."""
        return self.step_scheme.amplification(z)

    def solve(self, op, state0, times, counter, adjoint: bool = False, jumps=(), check_initial: bool = False):
        """States at ``times`` (increasing Python floats: kept on the host, so that ending steps on
        them reads nothing from the device), a tuple of tensors with a leading time dimension.
        ``check_initial``: raise :class:`NonFiniteError` if ``state0`` holds NaN or Inf, read with
        the evaluations' deferred check where there is one.

        Steps are forced to end at every output time (torchdiffeq's ``step_t``) and at the
        ``jumps`` of θ(t) (``jump_t``, where the right-hand side is discontinuous or has a kink),
        instead of stepping past them and interpolating: the dense output of dopri8, bosh3 and
        fehlberg2 is less accurate than their steps, which made them miss their tolerance."""
        field = _Field(op, counter)
        host_check = HOST_CHECK_EVERY_EVALUATION
        if host_check is None:
            host_check = state0[0].device.type == "cpu"
        if not host_check:  # the forward solve only: an adjoint's backward pass checks on the host
            field.defer_checks()
        try:
            if check_initial:
                field.check_initial(state0)
            out = self._solve(field, op, state0, times, counter, adjoint, jumps)
        except Exception:
            field.raise_if_nonfinite()  # a solver that failed on NaN/Inf: say that, with its t
            raise
        field.raise_if_nonfinite()
        return out

    def _solve(self, field, op, state0, times, counter, adjoint, jumps):
        import torchdiffeq

        options = {} if self.max_steps is None else {"max_num_steps": int(self.max_steps)}
        t0, t1 = times[0], times[-1]
        lo, hi = min(t0, t1), max(t0, t1)
        jump_t = sorted({float(j) for j in jumps if lo < float(j) < hi})
        step_t = sorted(set(times[1:]) - set(jump_t))
        if jump_t:
            options["jump_t"] = torch.tensor(jump_t, dtype=torch.float64)
        if step_t:
            options["step_t"] = torch.tensor(step_t, dtype=torch.float64)
        if self.backend == "torchode" and not adjoint:
            from . import torchode_backend

            bounds = sorted({t0, t1, *step_t, *jump_t})  # the same step ends as torchdiffeq's options
            return torchode_backend.solve(field, state0, times, bounds, self.rtol, self.atol, self.max_steps, counter,
                                          jumps=jump_t)
        kw = dict(rtol=self.rtol, atol=self.atol, method=self.method, options=options)
        times = torch.tensor(times, dtype=state0[0].dtype, device=state0[0].device)  # host to device: no wait
        if adjoint:
            params = tuple(p for p in op.operator.parameters() if p.requires_grad)
            if torch.is_grad_enabled():  # one evaluation's graph: does it reach beyond state and θ?
                with torch.enable_grad():
                    leaves = tuple(x.detach().requires_grad_(True) for x in state0)
                    probe = op.operator.vector_field(t0, leaves)
                require_no_outside_leaves(probe, (*leaves, *params), "the adjoint gradient")
            return torchdiffeq.odeint_adjoint(field, state0, times, adjoint_params=params, **kw)
        return torchdiffeq.odeint(field, state0, times, **kw)

    def __repr__(self) -> str:
        engine = "" if self.backend == "torchdiffeq" else f", backend={self.backend!r}"
        return f"TorchDiffEq(method={self.method!r}, rtol={self.rtol:g}, atol={self.atol:g}{engine})"
