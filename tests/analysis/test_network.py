"""The conditioning of a whole network's feature map, exact against dense Jacobians."""

import math
import numpy as np
import pytest
import torch
import pdenet_analysis as pa
from pdenet_analysis import analysis as A
from ..helpers import paper_operator

pytestmark = pytest.mark.float64  # the mathematics is tested in float64


def test_batched_jacobian_blocks_equal_single_example_jacobians():
    op, y0 = paper_operator("hamiltonian", channels=4, size=3, activation="relu", normalise=True)
    disc = A.discretise(op, y0, "verlet", n_steps=2)
    Jb = disc.flow_jacobian().dense()
    for b in range(y0.shape[0]):
        one = A.discretise(op, y0[b : b + 1], "verlet", n_steps=2).flow_jacobian().dense()
        np.testing.assert_allclose(Jb[b].numpy(), one[0].numpy(), atol=1e-12)


@pytest.mark.parametrize("arch", ["parabolic", "hamiltonian", "second_order", "resnet"])
def test_feature_map_singular_values_equal_the_dense_svd(arch):
    from pdenet_analysis.analysis import features_conditioning

    torch.manual_seed(1)
    net = pa.build_preset(f"digits-{arch}").double().eval()
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    rep = features_conditioning(net, x)
    for b in range(2):
        # the paper's feature map, at the image the network sees (its preprocessing applied)
        J = torch.autograd.functional.jacobian(lambda z: net.features(z.unsqueeze(0), preprocessed=True)[0],
                                               net.preprocess(x)[b]).reshape(32, -1)
        sv = torch.linalg.svdvals(J)
        got = torch.tensor(rep.data["examples"][b]["singular_values"], dtype=torch.float64)
        assert torch.allclose(got, sv, rtol=1e-10, atol=1e-12 * float(sv[0]))


@pytest.mark.parametrize("arch", ["hamiltonian", "second_order"])
def test_feature_map_of_a_network_trained_with_the_reversible_gradient(arch):
    """A network whose blocks take the reversible gradient (which has reverse mode only, no
    torch.func rules) is analysed as the same map: the same singular values as with backprop."""
    from pdenet_analysis.analysis import features_conditioning

    torch.manual_seed(1)
    net = pa.build_preset(f"digits-{arch}").double().eval()
    rev = net.with_scheme(gradient="reversible")
    assert all(str(b.gradient) == "reversible" for b in rev.blocks)
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    ref, got = features_conditioning(net, x), features_conditioning(rev, x)
    for a, b in zip(ref.data["examples"], got.data["examples"]):
        np.testing.assert_allclose(b["singular_values"], a["singular_values"], rtol=1e-12)
    assert all(str(b.gradient) == "reversible" for b in rev.blocks)  # the model itself is left as it was


def test_a_dead_feature_is_a_rank_deficit_not_a_huge_condition_number():
    from pdenet_analysis.analysis import features_conditioning

    torch.manual_seed(0)
    net = pa.build_preset("digits-parabolic").double().eval()
    last = net.units[-1].connector
    with torch.no_grad():  # the last connector's channel 5 outputs relu(−1) = 0 for every input
        last[0].weight[5].zero_()
        last[1].weight[5] = 0.0
        last[1].bias[5] = -1.0
    rep = features_conditioning(net, torch.randn(3, 1, 8, 8, dtype=torch.float64))
    for e in rep.data["examples"]:
        assert e["rank"] <= 31 and e["condition"] == float("inf")
        assert math.isfinite(e["condition_effective"]) and e["condition_effective"] >= 1.0


def test_feature_conditioning_refuses_adaptive_blocks():
    from pdenet_analysis.analysis import features_conditioning

    net = pa.build_preset("digits-parabolic").with_scheme("dopri5")
    with pytest.raises(pa.InvalidArgumentError, match="fixed-step"):
        features_conditioning(net, torch.randn(1, 1, 8, 8))


def test_feature_jacobians_in_chunks_equal_one_batch():
    from pdenet_analysis.analysis.network import feature_jacobians

    torch.manual_seed(2)
    net = pa.build_preset("digits-hamiltonian")
    x = torch.randn(3, 1, 8, 8)
    np.testing.assert_allclose(feature_jacobians(net, x, rows=5).numpy(), feature_jacobians(net, x, rows=1000).numpy(),
                               rtol=1e-12, atol=1e-14)
