"""The training step recorded as a CUDA graph trains exactly as the ordinary step does: the same
weights after epochs whose learning rate changes (the graph is recorded again), with every
preset's kind of block; set-ups a graph cannot replay are refused before any work."""

import pytest
import torch

import pdenet_analysis as pa
from pdenet_analysis.data import load_dataset
from pdenet_analysis.errors import InvalidArgumentError
from pdenet_analysis.training import TrainConfig, train

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="a CUDA graph needs a CUDA device")


@pytest.fixture(scope="module")
def digits():
    d = load_dataset("digits")
    return type(d)(d.x_train[:400], d.y_train[:400], d.x_test[:200], d.y_test[:200], "digits")


def _run(preset, data, gradient=None, **kw):
    torch.manual_seed(0)
    model = pa.build_preset(preset).double()
    if gradient is not None:
        model = model.with_scheme(gradient=gradient)
    # 3 epochs, the rate divided after the first and the second: the graph is recorded three times
    cfg = TrainConfig(epochs=3, batch_size=32, lr_milestones=(0.3, 0.6), progress=False, device="cuda", **kw)
    return model, train(model, data, cfg)


@cuda
@pytest.mark.parametrize("preset,gradient", [("digits-parabolic", None), ("digits-hamiltonian", None),
                                             ("digits-second_order", None), ("digits-resnet", None),
                                             ("digits-hamiltonian", "reversible"), ("digits-second_order", "reversible")])
def test_cuda_graph_step_gives_the_ordinary_steps_weights(preset, gradient, digits):
    """The reversible gradient's backward pass (inverse steps inside autograd) records as well."""
    torch.backends.cudnn.deterministic = True
    try:
        ref, r_ref = _run(preset, digits, gradient)
        got, r_got = _run(preset, digits, gradient, cuda_graph=True)
    finally:
        torch.backends.cudnn.deterministic = False
    for (name, a), b in zip(ref.state_dict().items(), got.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-11, msg=name)
    for h_ref, h_got in zip(r_ref["history"], r_got["history"]):
        assert h_got["train_loss"] == pytest.approx(h_ref["train_loss"], rel=1e-9)
        assert h_got["train_accuracy"] == h_ref["train_accuracy"]
        assert h_got["operator_evals_per_forward"] == h_ref["operator_evals_per_forward"]


def test_cuda_graph_refuses_cpu_and_adaptive_schemes(digits):
    model = pa.build_preset("digits-parabolic")
    with pytest.raises(InvalidArgumentError, match="needs a CUDA device"):
        train(model, digits, TrainConfig(epochs=1, progress=False, cuda_graph=True))
    adaptive = model.with_scheme("dopri5")
    with pytest.raises(InvalidArgumentError, match="fixed-step"):
        train(adaptive, digits, TrainConfig(epochs=1, progress=False, cuda_graph=True))


@cuda
def test_a_block_with_its_finiteness_check_on_can_be_recorded():
    """The blocks' host-side NaN check is left out while a graph is recorded (it would invalidate
    the recording); the replayed forward pass equals the ordinary one."""
    from pdenet_analysis.training.cuda_graph import CapturedStep, warm_step

    torch.manual_seed(0)
    model = pa.build_preset("digits-hamiltonian").double().cuda()
    assert all(b.check_finite for b in model.blocks)
    x = torch.randn(8, 1, 8, 8, dtype=torch.float64, device="cuda")
    y = torch.zeros(8, dtype=torch.long, device="cuda")
    with torch.no_grad():
        want = model(x)
        warm_step(lambda a, b: (model(a),), x, y)
        step = CapturedStep(lambda a, b: (model(a),), x, y)
        x2 = torch.randn_like(x)
        (got,) = step(x2, y)
        torch.testing.assert_close(got, model(x2), rtol=1e-12, atol=1e-12)
        (got,) = step(x, y)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
