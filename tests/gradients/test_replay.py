"""The reversible gradient evaluates the operator again in its backward pass: an operator that
draws random numbers or changes its buffers as it runs is refused with IncompatibleOperatorError,
and batch norm in training mode gives backprop's gradient and backprop's running statistics."""

import pytest
import torch
from torch import nn

import pdenet_analysis as pa
from pdenet_analysis.operators.operators import FirstOrderOperator, HamiltonianOperator, SecondOrderOperator


class Layer(nn.Module):
    """F(t, y) = tanh(extra(conv(y))) / 2, with ``extra`` the module under test."""

    def __init__(self, channels: int, extra: nn.Module, noise: float = 0.0):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.extra, self.noise = extra, noise

    def forward(self, t, y):
        z = self.extra(self.conv(y))
        if self.noise:
            z = z + self.noise * torch.randn_like(z)
        return 0.5 * torch.tanh(z)


def operator(kind, extra, noise=0.0, c=4):
    """An operator of ``kind`` in float64 whose layers apply ``extra(channels)`` after their
    convolution (and add ``noise``·N(0, 1))."""
    torch.manual_seed(0)
    if kind == "hamiltonian":
        return HamiltonianOperator(Layer(c // 2, extra(c // 2), noise), Layer(c // 2, extra(c // 2), noise)).double()
    cls = SecondOrderOperator if kind == "second_order" else FirstOrderOperator
    return cls(Layer(c, extra(c), noise)).double()


def loss_and_grads(op, x, scheme, gradient, n_steps=4):
    for p in op.parameters():
        p.grad = None
    xx = x.clone().requires_grad_(True)
    y = pa.integrate(op, xx, scheme, T=1.0, n_steps=n_steps, gradient=gradient).y
    (y.square().sum()).backward()
    return y.detach(), [p.grad.clone() for p in op.parameters()] + [xx.grad.clone()]


X = torch.randn(3, 4, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("extra", [nn.Dropout, nn.Dropout2d, nn.AlphaDropout])
def test_dropout_in_training_mode_is_refused_before_anything_runs(extra):
    op = operator("hamiltonian", lambda c: extra(0.3))
    with pytest.raises(pa.IncompatibleOperatorError, match=r"layer_y\.extra.*dropout mask.*eval mode"):
        pa.integrate(op, X.clone().requires_grad_(True), "symplectic_euler", T=1.0, n_steps=2, gradient="reversible")
    loss_and_grads(op, X, "symplectic_euler", "backprop")  # backprop never evaluates again: allowed


def test_dropout_in_eval_mode_gives_backprops_gradient():
    op = operator("hamiltonian", lambda c: nn.Dropout(0.3)).eval()
    _, ref = loss_and_grads(op, X, "verlet", "backprop")
    _, got = loss_and_grads(op, X, "verlet", "reversible")
    for a, b in zip(ref, got):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12)


def test_noise_drawn_inside_a_layer_is_refused():
    """Randomness no module type names (here torch.randn_like) shows as a generator draw."""
    op = operator("hamiltonian", lambda c: nn.Identity(), noise=1e-3)
    with pytest.raises(pa.IncompatibleOperatorError, match="drew random numbers"):
        pa.integrate(op, X.clone().requires_grad_(True), "symplectic_euler", T=1.0, n_steps=2, gradient="reversible")
    with torch.no_grad():  # without a gradient nothing is evaluated again: allowed
        pa.integrate(op, X, "symplectic_euler", T=1.0, n_steps=2, gradient="reversible")


def reversible_cases():
    """(scheme, operator kind) for every registered reversible scheme and every kind it takes."""
    return [(n, kind) for n in pa.available_schemes() if pa.get_scheme(n).reversible
            for kind in sorted(pa.get_scheme(n).kinds)]


@pytest.mark.parametrize("scheme, kind", reversible_cases())
@pytest.mark.parametrize("keep", [0, 1])
def test_batch_norm_in_training_mode_gives_backprops_gradient_and_running_statistics(scheme, kind, keep):
    """Batch statistics are a function of the batch, so the rebuild is exact; the running
    statistics move once per forward evaluation, as under backprop, not again in the backward."""
    runs = []
    for gradient in ("backprop", pa.Reversible(keep_last=keep)):
        op = operator(kind, lambda c: nn.BatchNorm2d(c, momentum=0.3))
        y, grads = loss_and_grads(op, X, scheme, gradient)
        runs.append((y, grads, [b.clone() for b in op.buffers()]))
    (y0, g0, b0), (y1, g1, b1) = runs
    torch.testing.assert_close(y1, y0, rtol=1e-12, atol=1e-12)
    for a, b in zip(g0, g1):
        torch.testing.assert_close(b, a, rtol=1e-8, atol=1e-10)
    for a, b in zip(b0, b1):
        torch.testing.assert_close(b, a, rtol=0, atol=0)


@pytest.mark.parametrize("scheme, kind", reversible_cases())
def test_every_reversible_scheme_refuses_dropout_in_training_mode(scheme, kind):
    op = operator(kind, lambda c: nn.Dropout(0.5))
    with pytest.raises(pa.IncompatibleOperatorError, match="dropout mask"):
        pa.integrate(op, X.clone().requires_grad_(True), scheme, T=1.0, n_steps=2, gradient="reversible")


def test_batch_norm_statistics_count_each_forward_evaluation_once():
    op = operator("hamiltonian", lambda c: nn.BatchNorm2d(c))
    loss_and_grads(op, X, "symplectic_euler", "reversible", n_steps=4)
    assert [int(m.num_batches_tracked) for m in op.modules() if isinstance(m, nn.BatchNorm2d)] == [4, 4]


def test_spectral_normalisation_in_training_mode_is_refused_and_allowed_in_eval_mode():
    """Its power iteration updates a buffer at every call in training mode: another function at
    each evaluation."""

    op = operator("hamiltonian", lambda c: nn.Identity())
    for m in (op.layer_y, op.layer_z):
        nn.utils.parametrizations.spectral_norm(m.conv)
    with pytest.raises(pa.IncompatibleOperatorError, match=r"layer_y\.conv\.parametrizations\.weight\.0\._u"):
        pa.integrate(op, X.clone().requires_grad_(True), "symplectic_euler", T=1.0, n_steps=2, gradient="reversible")
    op.eval()
    _, ref = loss_and_grads(op, X, "symplectic_euler", "backprop")
    _, got = loss_and_grads(op, X, "symplectic_euler", "reversible")
    for a, b in zip(ref, got):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12)


class Conditioned(nn.Module):
    """F(t, y) = tanh(conv(y) + c) / 2 with c a tensor set from outside the operator."""

    def __init__(self, channels: int, context: list):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.context = context

    def forward(self, t, y):
        return 0.5 * torch.tanh(self.conv(y) + self.context[0])


@pytest.mark.parametrize("scheme, kind", reversible_cases())
@pytest.mark.parametrize("keep", [0, 1, 9])
def test_a_tensor_that_requires_grad_outside_the_operators_parameters_is_refused(scheme, kind, keep):
    """A conditioning tensor computed by another network: backprop reaches that network's weights,
    the reversible gradient (which returns gradients for the state and the operator's parameters)
    would leave them silently without a gradient. Before this check they got zero."""
    context = [None]
    c = 2 if kind == "hamiltonian" else 4
    torch.manual_seed(0)
    layers = [Conditioned(c, context) for _ in range(2 if kind == "hamiltonian" else 1)]
    cls = {"hamiltonian": HamiltonianOperator, "second_order": SecondOrderOperator, "first_order": FirstOrderOperator}[kind]
    op = cls(*layers).double()
    encoder = nn.Linear(3, c).double()

    def run(gradient):
        encoder.zero_grad(set_to_none=True)
        context[0] = encoder(torch.ones(3, dtype=torch.float64)).view(1, c, 1, 1)
        y = pa.integrate(op, X, scheme, T=1.0, n_steps=3, gradient=gradient).y
        y.square().sum().backward()
        return encoder.weight.grad

    assert run("backprop").norm() > 0
    with pytest.raises(pa.IncompatibleOperatorError, match=r"2 tensor\(s\) that require grad.*\(4, 3\)|"
                                                          r"2 tensor\(s\) that require grad.*\(2, 3\)"):
        run(pa.Reversible(keep_last=keep))
    context[0] = encoder(torch.ones(3, dtype=torch.float64)).view(1, c, 1, 1).detach()  # a constant: allowed
    pa.integrate(op, X, scheme, T=1.0, n_steps=3, gradient="reversible").y.square().sum().backward()


@pytest.mark.parametrize("scheme", [n for n in pa.available_schemes() if pa.get_scheme(n).adaptive])
def test_the_adjoint_refuses_a_tensor_that_requires_grad_outside_the_operators_parameters(scheme):
    """torchdiffeq's adjoint differentiates with respect to the parameters it is given (the
    operator's): a conditioning tensor's network got no gradient, silently. One evaluation's graph
    is walked before the solve."""
    context = [None]
    torch.manual_seed(0)
    op = FirstOrderOperator(Conditioned(4, context)).double()
    encoder = nn.Linear(3, 4).double()
    context[0] = encoder(torch.ones(3, dtype=torch.float64)).view(1, 4, 1, 1)
    with pytest.raises(pa.IncompatibleOperatorError, match=r"\(4, 3\).*the adjoint gradient returns gradients"):
        pa.integrate(op, X, scheme, T=1.0, gradient="adjoint")
    sol = pa.integrate(op, X, scheme, T=1.0, gradient="backprop")
    sol.y.square().sum().backward()
    assert encoder.weight.grad.norm() > 0
    context[0] = context[0].detach()  # a constant: allowed, and the probe is not counted
    ref = pa.integrate(op, X, scheme, T=1.0, gradient="backprop").stats.n_evals
    assert pa.integrate(op, X, scheme, T=1.0, gradient="adjoint").stats.n_evals == ref


def test_the_adjoint_refuses_randomness_and_batch_norm_in_training_mode():
    """Its backward pass solves the adjoint ODE inside torchdiffeq, evaluating the operator again:
    a dropout mask drawn anew, or running statistics moved at every evaluation, out of reach."""
    for extra, match in ((lambda c: nn.Dropout(0.5), "adjoint gradient.*dropout mask"),
                         (lambda c: nn.BatchNorm2d(c), "adjoint gradient.*running statistics")):
        op = operator("first_order", extra)
        with pytest.raises(pa.IncompatibleOperatorError, match=match):
            pa.integrate(op, X, "dopri5", T=1.0, gradient="adjoint")
        op.eval()
        pa.integrate(op, X, "dopri5", T=1.0, gradient="adjoint").y.sum().backward()
    op = operator("first_order", lambda c: nn.Identity(), noise=1e-3)
    with pytest.raises(pa.IncompatibleOperatorError, match="adjoint gradient.*drew random numbers"):
        pa.integrate(op, X, "dopri5", T=1.0, gradient="adjoint")
