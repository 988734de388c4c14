"""bf16 autocast with the reversible gradient: the backward pass recomputes in the forward's
precision, and a reversible block keeps its state in float32 while its layers run in bf16."""

import pytest
import torch

import pdenet_analysis as pa
from pdenet_analysis.gradients import strategies as gradients
from pdenet_analysis.networks import PDEBlock


def _block(scheme="verlet", kind="hamiltonian"):
    torch.manual_seed(0)
    op = (pa.hamiltonian if kind == "hamiltonian" else pa.second_order)(8, T=3.0, n_pieces=3).float()
    return PDEBlock(op, scheme, n_steps=6, gradient="reversible")


def _grads(block, x, amp: bool):
    block.operator.zero_grad()
    x = x.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        y = block(x)
        loss = (y.float() * torch.linspace(-1, 1, y.numel()).view_as(y)).sum()
    loss.backward()
    return torch.cat([p.grad.flatten() for p in block.operator.parameters()] + [x.grad.flatten()])


def _rel(a, b):
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("scheme,kind", [("verlet", "hamiltonian"), ("symplectic_euler", "hamiltonian"),
                                         ("leapfrog", "second_order")])
def test_reversible_gradient_equals_backprop_under_bf16_autocast(scheme, kind):
    block = _block(scheme, kind)
    x = torch.randn(3, 8, 8, 8).bfloat16()  # as the opening layer's output would be under autocast
    g_rev = _grads(block, x, amp=True)
    g_bp = _grads(block.with_scheme(gradient="backprop"), x, amp=True)
    assert _rel(g_rev, g_bp) < 1e-5  # both differentiate the same bf16 network: far below bf16's 4e-3
    g_fp32 = _grads(block.with_scheme(gradient="backprop"), x.float(), amp=False)
    assert 1e-4 < _rel(g_bp, g_fp32) < 0.1  # the bf16 network is another network, at bf16 accuracy


def test_without_replaying_autocast_the_gradient_would_be_wrong(monkeypatch):
    """The check above can fail: recomputing the steps in float32 in backward gives bf16-size errors."""
    block = _block()
    x = torch.randn(3, 8, 8, 8).bfloat16()
    g_bp = _grads(block.with_scheme(gradient="backprop"), x, amp=True)
    monkeypatch.setattr(gradients, "autocast_state", lambda dev: (dev, False, torch.bfloat16))
    assert _rel(_grads(block, x, amp=True), g_bp) > 1e-3


def test_block_state_stays_float32_under_autocast():
    block = _block()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        y = block(torch.randn(2, 8, 8, 8).bfloat16())
    assert y.dtype == torch.float32


def test_bf16_layers_with_a_float32_state_reverse_to_float32_roundoff():
    block = _block()
    op = block.operator
    x = torch.randn(2, 8, 8, 8, dtype=torch.float32)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        sol = pa.integrate(op, x, "verlet", n_steps=6)
        back = op.from_state(pa.reverse(op, sol), x)
    err32 = _rel(back.float(), x)
    assert err32 < 1e-5  # float32 level (2^-24 ≈ 6e-8 per operation)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):  # a bf16 state, for contrast
        sol16 = pa.integrate(op, x.bfloat16(), "verlet", n_steps=6)
        back16 = op.from_state(pa.reverse(op, sol16), x.bfloat16())
    assert _rel(back16.float(), x) > 30 * err32
