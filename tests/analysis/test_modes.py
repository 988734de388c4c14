"""Networks and operators are analysed as they predict: eval mode, modes put back, layers that are
another map at every evaluation refused; the CLI draws the same images on every device."""

import pytest
import torch
import pdenet_analysis as pa
from pdenet_analysis.analysis.linear import operator_jacobian



def test_analyze_draws_the_same_standard_normal_images_on_every_device(device, tmp_path, monkeypatch):
    """`analyze PRESET` without data analyses seeded standard-normal images drawn on the CPU and
    moved to the device, so that a GPU run and a CPU run of the same command report on the same
    inputs (CUDA's own generator would draw other images from the same seed)."""
    import pdenet_analysis.analysis as analysis_mod
    from pdenet_analysis.cli import main

    seen = {}

    def record(model, x, *args, **kwargs):  # the analyses themselves are tested elsewhere
        seen["x"] = x
        return analysis_mod.Analysis("a network", "some images")

    monkeypatch.setattr(analysis_mod, "analyze", record)
    device = torch.device(device)
    assert main(["analyze", "cifar10-hamiltonian", "--examples", "3", "--device", str(device), "--quiet",
                 "--seed", "5", "--out", str(tmp_path)]) == 0
    x = seen["x"]
    assert x.device.type == device.type
    assert torch.equal(x.cpu(), torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(5)))


def test_block_inputs_leave_a_training_model_as_they_found_it():
    """The analyses run the opening layers in eval mode (running statistics, no dropout), and put
    every module's mode back: an analysis in the middle of training used to leave the network in
    eval mode, so that the training went on without batch statistics."""
    from pdenet_analysis.analysis.model import block_inputs

    torch.manual_seed(0)
    net = pa.build_preset("digits-parabolic").double()
    net.train()
    net.blocks[0].eval()  # a mixed state is restored module by module
    modes = [m.training for m in net.modules()]
    stats = [b.clone() for b in net.buffers()]
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    inputs = block_inputs(net, x)
    assert [m.training for m in net.modules()] == modes
    assert all(torch.equal(a, b) for a, b in zip(stats, net.buffers()))
    assert not any(h.requires_grad for h in inputs)
    net.eval()
    with torch.no_grad():  # the first block's input: the opening layer on the network's own preprocessing
        torch.testing.assert_close(inputs[0], net.opening(net.preprocess(x)), rtol=0, atol=0)


def test_analyze_analyses_a_network_in_eval_mode_and_leaves_the_modes_as_found(monkeypatch, tmp_path):
    """The network is analysed as it predicts (batch norm's running statistics, no dropout), also
    when called in the middle of training, and is handed back in the modes it came in."""
    from pdenet_analysis.analysis import api

    seen = []
    monkeypatch.setattr(api, "analyze_block", lambda block, x, **kw: seen.append(
        (block.training, [m.training for m in block.modules()])) or {})
    torch.manual_seed(0)
    net = pa.build_preset("digits-parabolic").double().train()
    modes = [m.training for m in net.modules()]
    pa.analyze(net, torch.randn(2, 1, 8, 8, dtype=torch.float64), analyses=["stability"], progress=False)
    assert len(seen) == len(net.blocks) and not any(t or any(ms) for t, ms in seen)
    assert [m.training for m in net.modules()] == modes


class _Noise(torch.nn.Module):
    """A custom random layer, no PyTorch dropout class: adds noise in training mode."""

    def forward(self, y):
        return y + 0.1 * torch.randn_like(y) if self.training else y


class _PowerIteration(torch.nn.Module):
    """A layer that writes a buffer as it runs in training mode (as spectral normalisation does)."""

    def __init__(self, c):
        super().__init__()
        self.register_buffer("u", torch.ones(c, dtype=torch.float64))

    def forward(self, y):
        if self.training:
            self.u.mul_(0.5)
        return y * self.u.view(1, -1, 1, 1)


def _operator_with(extra):
    """A first-order operator −tanh(extra(conv(y))) with the layer ``extra(channels)`` inside, and a
    state for it."""
    from pdenet_analysis.operators.operators import FirstOrderOperator

    class Layer(torch.nn.Module):
        def __init__(self, c):
            super().__init__()
            self.conv, self.extra = torch.nn.Conv2d(c, c, 3, padding=1, bias=False), extra(c)

        def forward(self, t, y):
            return -torch.tanh(self.extra(self.conv(y)))

    torch.manual_seed(0)
    return FirstOrderOperator(Layer(2)).double(), torch.randn(2, 2, 3, 3, dtype=torch.float64)


def _analyses_of(op, y0):
    from pdenet_analysis import analysis as A

    return {
        "discretise": lambda: A.discretise(op, y0, "euler", T=1.0, n_steps=2),
        "conditioning": lambda: A.conditioning(op, y0, "euler", T=1.0, n_steps=2, k=1),
        "spectrum_along_trajectory": lambda: A.stability(op, y0, 'euler', T=1.0, n_steps=2, k=2),
        "spectral_density": lambda: A.spectral_density(op, y0, "euler", T=1.0, n_steps=2, m=10, n_arnoldi=10),
        "reversibility": lambda: A.reversibility(op, y0, "reversible_heun", T=1.0, n_steps_list=(1, 2)),
        "energy": lambda: A.energy(op, y0, "euler", T=1.0, n_steps=2),
        "convergence_study": lambda: A.convergence_study(op, y0, "euler", [2, 4, 8], T=1.0),
        "operator_jacobian": lambda: operator_jacobian(op, (y0,)),
    }


@pytest.mark.parametrize("extra,match", [(lambda c: _Noise(), r"drew random numbers.*another map"),
                                         (_PowerIteration, r"changed its buffer\(s\) layer\.extra\.u.*operator\.eval\(\)")])
def test_the_analyses_refuse_an_operator_that_is_another_map_at_every_evaluation(extra, match):
    """A layer the mode check does not know (a custom random layer, a buffer written as it runs)
    is found by one evaluation before the analysis: each analysis refuses it, the caller's random
    numbers are left as they were, and in eval mode they run."""
    op, y0 = _operator_with(extra)
    for name, call in _analyses_of(op, y0).items():
        state = torch.random.get_rng_state()
        with pytest.raises(pa.IncompatibleOperatorError, match=match):
            call()
        assert torch.equal(torch.random.get_rng_state(), state), name
    op.eval()
    for name, call in _analyses_of(op, y0).items():
        call()


def test_the_analyses_refuse_an_operator_that_draws_only_later_in_the_solve():
    """A layer that draws only at t > 0.25 passes the probe at t = 0; the record kept over the whole
    analysis refuses it when the analysis ends (the result is not returned), with the caller's
    random numbers as they were; in eval mode every analysis runs. (``operator_jacobian``
    evaluates at t = 0 only, where this operator is one map.)"""
    from pdenet_analysis.operators.operators import FirstOrderOperator

    class Late(torch.nn.Module):
        def __init__(self, c):
            super().__init__()
            self.conv = torch.nn.Conv2d(c, c, 3, padding=1, bias=False)

        def forward(self, t, y):
            z = self.conv(y)
            if self.training and float(t) > 0.25:
                z = z + 0.1 * torch.randn_like(z)
            return -torch.tanh(z)

    torch.manual_seed(0)
    op, y0 = FirstOrderOperator(Late(2)).double(), torch.randn(2, 2, 3, 3, dtype=torch.float64)
    calls = _analyses_of(op, y0)
    del calls["operator_jacobian"]
    for name, call in calls.items():
        state = torch.random.get_rng_state()
        with pytest.raises(pa.IncompatibleOperatorError, match=r"drew random numbers during the analysis"):
            call()
        assert torch.equal(torch.random.get_rng_state(), state), name
    op.eval()
    for call in calls.values():
        call()


@pytest.mark.parametrize("extra", [lambda c: torch.nn.Dropout(0.2), lambda c: torch.nn.BatchNorm2d(c)])
def test_the_analyses_of_an_operator_refuse_a_layer_in_training_mode(extra):
    """Dropout draws a new map at every evaluation and batch norm couples the examples in
    training mode: each analysis of an operator refuses it, naming the layer; in eval mode they run."""
    op, y0 = _operator_with(extra)
    calls = _analyses_of(op, y0)
    for name, call in calls.items():
        with pytest.raises(pa.IncompatibleOperatorError, match=r"layer\.extra is in training mode.*operator\.eval\(\)"):
            call()
    op.eval()
    for name, call in calls.items():
        call()
