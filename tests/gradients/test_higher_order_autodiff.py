"""Derivatives through an integration beyond one reverse pass, for every registered fixed-step
scheme: forward mode (``torch.func.jvp``) against finite differences, forward and reverse mode
against each other by inner products, and the Hessian-vector product of a double backward (a jvp
of the vjp) against finite differences of the gradient. The reversible gradient, which has reverse
mode only, refuses forward mode and double backward instead of answering wrongly (before, a double
backward through it silently left out every term through the rebuilt states: on a small
Hamiltonian block, a Hessian-vector product of norm 36 where backprop's is 367)."""

import pytest
import torch

import pdenet_analysis as pa

from ..helpers import ARCH_OF_KIND, paper_operator

pytestmark = pytest.mark.float64  # the mathematics is tested in float64

FIXED = [n for n in pa.available_schemes() if not pa.get_scheme(n).adaptive]
REVERSIBLE = [n for n in pa.available_schemes() if pa.get_scheme(n).reversible]


def problem(name):
    """The scheme's first operator kind's paper operator (tanh: smooth, for finite differences)."""
    kind = sorted(pa.get_scheme(name).kinds)[0]
    op, y0 = paper_operator(ARCH_OF_KIND[kind][0], channels=4, size=3)
    return op, y0


def flow(op, name, gradient="backprop"):
    return lambda y: pa.integrate(op, y, name, n_steps=3, gradient=gradient).y


def loss(op, name):
    return lambda y: flow(op, name)(y).pow(3).sum() / 3  # cubic: a Hessian with terms from the loss too


@pytest.mark.parametrize("name", FIXED)
def test_forward_mode_agrees_with_finite_differences_and_with_reverse_mode(name):
    op, y0 = problem(name)
    phi = flow(op, name)
    g = torch.Generator().manual_seed(3)
    v, w = torch.randn(y0.shape, generator=g), torch.randn(y0.shape, generator=g)
    out, Jv = torch.func.jvp(phi, (y0,), (v,))
    Jv = Jv.detach()
    eps = 1e-6
    with torch.no_grad():
        fd = (phi(y0 + eps * v) - phi(y0 - eps * v)) / (2 * eps)
    assert float((Jv - fd).norm() / Jv.norm()) < 1e-7
    y = y0.clone().requires_grad_(True)
    (JTw,) = torch.autograd.grad(phi(y), y, w)
    lhs, rhs = float((Jv * w).sum()), float((v * JTw).sum())
    assert abs(lhs - rhs) <= 1e-12 * (Jv.norm() * w.norm()).item()


@pytest.mark.parametrize("name", FIXED)
def test_double_backward_gives_the_hessian_vector_product(name):
    op, y0 = problem(name)
    f = loss(op, name)
    v = torch.randn(y0.shape, generator=torch.Generator().manual_seed(4))

    def grad(y):
        y = y.detach().requires_grad_(True)
        return torch.autograd.grad(f(y), y)[0]

    y = y0.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(f(y), y, create_graph=True)
    (Hv,) = torch.autograd.grad(g, y, v)
    eps = 1e-5
    fd = (grad(y0 + eps * v) - grad(y0 - eps * v)) / (2 * eps)
    assert float((Hv - fd).norm() / Hv.norm()) < 1e-7
    # the parameters' mixed second derivative flows too (what a gradient penalty needs)
    w = next(op.parameters())
    (gw,) = torch.autograd.grad(f(y0), w, create_graph=True)
    assert gw.requires_grad


@pytest.mark.parametrize("name", REVERSIBLE)
def test_the_reversible_gradient_refuses_double_backward_and_forward_mode(name):
    op, y0 = problem(name)
    y = y0.clone().requires_grad_(True)
    out = flow(op, name, "reversible")(y).pow(3).sum()
    with pytest.raises(pa.IncompatibleSchemeError, match="differentiable once.*gradient='backprop'"):
        torch.autograd.grad(out, y, create_graph=True)
    (g,) = torch.autograd.grad(flow(op, name, "reversible")(y).pow(3).sum(), y)  # one reverse pass works
    (ref,) = torch.autograd.grad(flow(op, name)(y).pow(3).sum(), y)
    torch.testing.assert_close(g, ref, rtol=1e-9, atol=1e-12)
    with pytest.raises(pa.IncompatibleSchemeError, match="reverse mode only"):
        torch.func.jvp(flow(op, name, "reversible"), (y0,), (torch.ones_like(y0),))
    with pytest.raises(pa.IncompatibleSchemeError, match="reverse mode only"):
        torch.func.grad(lambda z: flow(op, name, "reversible")(z).sum())(y0)


@pytest.mark.parametrize("kind", ["first_order", "hamiltonian"])
def test_the_adjoint_refuses_double_backward_and_keeps_its_first_derivative(kind):
    """torchdiffeq's adjoint returns a first derivative with no graph under create_graph=True: a
    gradient penalty built on it would silently count as a constant. Now that raises."""
    op, y0 = paper_operator(ARCH_OF_KIND[kind][0], channels=4, size=3)
    y = y0.clone().requires_grad_(True)

    def solve(gradient):
        return pa.integrate(op, y, "dopri5", gradient=gradient, rtol=1e-10, atol=1e-10).y.pow(3).sum()

    with pytest.raises(pa.IncompatibleSchemeError, match="adjoint gradient is differentiable once"):
        torch.autograd.grad(solve("adjoint"), y, create_graph=True)
    (g,) = torch.autograd.grad(solve("adjoint"), y)
    (ref,) = torch.autograd.grad(solve("backprop"), y)
    torch.testing.assert_close(g, ref, rtol=1e-7, atol=1e-9)
