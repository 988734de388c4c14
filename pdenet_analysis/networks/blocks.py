"""A PDE block: operator + scheme + final time + number of steps (+ gradient strategy).

The weights are the model; the scheme is a choice. ``block.with_scheme("rk4", n_steps=12)``
returns a block that shares the operator's parameters and integrates them differently, which is
what convergence studies and discrete-vs-continuous comparisons need.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..integrate import Solution, Stats, integrate
from ..schemes import get_scheme

#: the paper's scheme for each operator kind (eq. 3, eq. 10, eq. 11)
DEFAULT_SCHEMES = {"first_order": "euler", "hamiltonian": "symplectic_euler", "second_order": "leapfrog"}


class PDEBlock(nn.Module):
    """Integrates its operator over [0, T] in ``n_steps`` steps (or adaptively) on ``forward``."""

    def __init__(self, operator, scheme=None, T: float | None = None, n_steps: int | None = None,
                 gradient="backprop", check_finite: bool = True, **scheme_kwargs):
        super().__init__()
        self.operator = operator
        self.scheme = get_scheme(DEFAULT_SCHEMES[operator.kind] if scheme is None else scheme, **scheme_kwargs)
        self.scheme.check_operator(operator)
        self.T = operator.T if T is None else float(T)
        self.n_steps = n_steps
        self.gradient = gradient
        self.check_finite = check_finite
        self.last_stats: Stats | None = None

    def solve(self, x, **kw) -> Solution:
        kw.setdefault("check_finite", self.check_finite)
        return integrate(self.operator, x, self.scheme, T=self.T, n_steps=self.n_steps, gradient=self.gradient, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype in (torch.bfloat16, torch.float16) and torch.is_autocast_enabled(x.device.type):
            # mixed precision: the layers run in the autocast dtype, the state is kept in float32
            # (a bf16 state would lose the reversibility and accumulate round-off over the steps)
            x = x.float()
        sol = self.solve(x)
        self.last_stats = sol.stats
        return sol.y

    def with_scheme(self, scheme=None, n_steps: int | None = None, gradient=None, **scheme_kwargs) -> "PDEBlock":
        """A block sharing this block's operator (and weights) with another scheme or step count."""
        new = copy.copy(self)
        new._modules = dict(self._modules)
        if scheme is not None:
            new.scheme = get_scheme(scheme, **scheme_kwargs)
            new.scheme.check_operator(self.operator)
        if n_steps is not None or (scheme is not None and new.scheme.adaptive):
            new.n_steps = n_steps
        if gradient is not None:
            new.gradient = gradient
        return new

    def extra_repr(self) -> str:
        return f"scheme={self.scheme!r}, T={self.T}, n_steps={self.n_steps}, gradient={self.gradient!r}"
