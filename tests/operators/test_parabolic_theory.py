"""Paper Theorem 1 and §3.1: the parabolic operator without normalisation is monotone, and
forward Euler with h·‖K‖² ≤ 2 (so h·ρ(KᵀDK) ≤ 2 for σ' ∈ [0, 1]) never increases distances."""

import torch
from hypothesis import given
from hypothesis import strategies as st

import pdenet_analysis as pa
from pdenet_analysis.operators import functional as F


def conv_norm_sq(W: torch.Tensor, shape, iters: int = 200) -> float:
    """‖K‖₂² by power iteration on KᵀK (tight enough for the test: we then use it with margin)."""
    W = W.detach()
    x = torch.randn(1, *shape)
    for _ in range(iters):
        x = F.conv_adjoint(F.conv(x, W), W)
        x = x / x.norm()
    return float((F.conv(x, W).square().sum()) / x.square().sum())


@given(st.integers(0, 10**6), st.sampled_from(["relu", "tanh"]), st.floats(0.2, 3.0))
def test_parabolic_operator_is_monotone(seed, act, scale):
    torch.manual_seed(seed)
    op = pa.parabolic(3, T=1.0, n_pieces=1, normalise=False, activation=act)
    with torch.no_grad():
        op.layer.weight.mul_(scale * 5)
    y1, y2 = torch.randn(2, 3, 5, 5), torch.randn(2, 3, 5, 5)
    f1, f2 = op.vector_field(0.0, (y1,))[0], op.vector_field(0.0, (y2,))[0]
    assert float(((f1 - f2) * (y1 - y2)).sum().detach()) <= 1e-12


@given(st.integers(0, 10**6), st.sampled_from(["relu", "tanh"]), st.integers(1, 8))
def test_forward_euler_nonexpansive_at_stable_step(seed, act, n_steps):
    torch.manual_seed(seed)
    op = pa.parabolic(3, T=1e3, n_pieces=1, normalise=False, activation=act)
    with torch.no_grad():
        op.layer.weight.mul_(20)  # large weights: the step bound is active
    rho = conv_norm_sq(op.layer.weight[0], (3, 6, 6))
    h = 2.0 / (rho * 1.0001)
    y1, y2 = torch.randn(1, 3, 6, 6), torch.randn(1, 3, 6, 6)
    s1 = pa.integrate(op, y1, "euler", T=h * n_steps, n_steps=n_steps, trajectory=True)
    s2 = pa.integrate(op, y2, "euler", T=h * n_steps, n_steps=n_steps, trajectory=True)
    d = [float((a[0] - b[0]).detach().norm()) for a, b in zip(s1.trajectory, s2.trajectory)]
    assert all(d[j + 1] <= d[j] * (1 + 1e-10) for j in range(n_steps)), d


def test_forward_euler_expands_beyond_the_bound():
    """The bound is sharp: for a linear layer (σ = id) h slightly above 2/‖K‖² amplifies the top mode."""
    torch.manual_seed(0)
    op = pa.parabolic(2, T=1e3, n_pieces=1, normalise=False, activation="identity")
    W = op.layer.weight[0].detach()
    x = torch.randn(1, 2, 6, 6)
    for _ in range(500):
        x = F.conv_adjoint(F.conv(x, W), W)
        x = x / x.norm()
    rho = float(F.conv(x, W).square().sum())
    h = 2.2 / rho
    sol = pa.integrate(op, x, "euler", T=10 * h, n_steps=10)
    assert float(sol.y.detach().norm()) > 1.5
