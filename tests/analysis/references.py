"""Dense references the analysis tests compare with: step-map Jacobians and flow maps formed
column by column, and the (scheme, architecture) pairs of the registry."""

import numpy as np
import torch
import pdenet_analysis as pa
from ..helpers import ARCH_OF_KIND, FIXED_SCHEMES


def _dense_state_flow(op, y0, scheme, n_steps):
    """J_Φ of the first-order state map by autograd on integrate() (independent of the analysis)."""
    state0 = op.to_state(y0)
    sizes = [s[:1].numel() for s in state0]

    def flow(v):
        parts = [p.reshape(s[:1].shape) for p, s in zip(v.split(sizes), state0)]
        out = pa.integrate(op, tuple(parts) if len(parts) > 1 else parts[0], scheme, n_steps=n_steps, check_finite=False).state
        return torch.cat([o.reshape(-1) for o in out])

    x = torch.cat([s[:1].reshape(-1) for s in state0])
    return np.linalg.svd(torch.autograd.functional.jacobian(flow, x).numpy(), compute_uv=False)


def _dense_step_matrix(scheme, op, internal, t, h) -> np.ndarray:
    """S_j of the first example by autograd on the scheme's step (independent of the analysis)."""
    f = lambda *s: torch.cat([o[:1].reshape(-1) for o in scheme.step(op, s, t, h)])  # noqa: E731
    one = tuple(c[:1] for c in internal)
    blocks = torch.autograd.functional.jacobian(f, one)
    return torch.cat([b.reshape(b.shape[0], -1) for b in blocks], 1).numpy()


def _dense_step_radius(scheme, op, internal, t, h):
    return np.abs(np.linalg.eigvals(_dense_step_matrix(scheme, op, internal, t, h))).max()


PAIRS = [(s, a) for s in FIXED_SCHEMES for kind in sorted(pa.get_scheme(s).kinds) for a in ARCH_OF_KIND[kind]]
