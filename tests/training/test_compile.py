"""The fixed-step loop is compile-clean: every registered fixed-step scheme, on every operator
kind it accepts, traces to one TorchDynamo graph (``fullgraph=True`` succeeds), and the compiled
block computes what the eager block computes — piecewise-constant weights included (the stage
times that pick a step's weight set are traced, not broken out)."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import pdenet_analysis as pa
from pdenet_analysis.networks import PDEBlock
from pdenet_analysis.schemes.base import stage_time

from ..helpers import ARCH_OF_KIND, FIXED_SCHEMES

PAIRS = [(s, kind) for s in FIXED_SCHEMES for kind in sorted(pa.get_scheme(s).kinds)]


def _block(kind, scheme):
    torch.manual_seed(0)
    net = pa.build_preset(f"digits-{ARCH_OF_KIND[kind][0]}")
    block = net.blocks[0]
    return PDEBlock(block.operator, scheme, n_steps=2 * block.operator.grid.n_pieces), net.opening(torch.randn(3, 1, 8, 8))


#: the fast tier traces one scheme of each kind of step (a tableau, a partitioned step, a
#: two-step method, a reversible wrapper); the slow tier traces every scheme on every kind
FAST_TRACES = {("euler", "first_order"), ("symplectic_euler", "hamiltonian"), ("leapfrog", "second_order"),
               ("reversible_heun", "first_order")}


@pytest.mark.parametrize("scheme,kind", [c if c in FAST_TRACES else pytest.param(*c, marks=pytest.mark.slow)
                                         for c in PAIRS])
def test_fixed_step_block_traces_to_one_graph(scheme, kind):
    block, x = _block(kind, scheme)
    x = x.detach()
    explained = torch._dynamo.explain(block)(x)
    assert explained.graph_break_count == 0, [str(b.reason)[:200] for b in explained.break_reasons]
    torch._dynamo.reset()
    compiled = torch.compile(block, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(x), block(x), rtol=1e-6, atol=1e-6)


@pytest.mark.slow
def test_compiled_network_trains_to_the_eager_gradients():
    """Inductor on CPU: the whole network's loss and weight gradients equal eager ones."""
    torch.manual_seed(0)
    net = pa.build_preset("digits-hamiltonian")
    x, y = torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,))
    torch._dynamo.reset()
    compiled = torch.compile(net, fullgraph=True)
    losses, grads = [], []
    for model in (net, compiled):
        net.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        losses.append(loss.detach())
        grads.append([p.grad.clone() for p in net.parameters()])
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-5, atol=1e-6)
    for g_c, g_e in zip(grads[1], grads[0]):
        torch.testing.assert_close(g_c, g_e, rtol=1e-4, atol=1e-6)


@settings(max_examples=60, deadline=None)
@given(st.floats(-1e3, 1e3), st.floats(0, 1), st.floats(1e-3, 10), st.floats(-1e3, 1e3).filter(lambda v: abs(v) > 1e-6))
def test_a_stage_time_acts_as_its_float_value(t0, c, h, other):
    """Everything an operator may do with t gives what the plain float t + c·h gives."""
    s = stage_time(t0, c, h)
    v = t0 + c * h
    assert float(s) == v and s == v and hash(s) == hash(v)
    assert s.midpoint == t0 + 0.5 * h
    for got, want in [(s + other, v + other), (other + s, other + v), (s - other, v - other), (other - s, other - v),
                      (s * other, v * other), (other * s, other * v), (s / other, v / other), (-s, -v), (abs(s), abs(v))]:
        assert type(got) is float and got == want
    assert (s < other) == (v < other) and (s >= other) == (v >= other)
    assert math.cos(s) == math.cos(v) and float(np.sin(s)) == float(np.sin(v)) and f"{s:.4g}" == f"{v:.4g}"
    x = torch.ones(2, dtype=torch.float64)
    torch.testing.assert_close(x * s, x * v)
    torch.testing.assert_close(s * x, v * x)
