"""The SLQ density of the layer Jacobian and the parabolic operator's certified norm bound."""

import numpy as np
import pytest
import scipy.stats
import torch
import pdenet_analysis as pa
from pdenet_analysis import analysis as A
from pdenet_analysis.analysis.linear import JacobianOperator, operator_jacobian
from ..helpers import paper_operator

pytestmark = pytest.mark.float64  # the mathematics is tested in float64


def test_slq_density_matches_dense_histogram():
    op, y0 = paper_operator("parabolic", channels=4, size=6, activation="relu", normalise=True, interpolation="constant",
                            n_pieces=2)
    rep = A.spectral_density(op, y0, "euler", n_steps=2, n_vectors=16, m=40)
    J, _ = operator_jacobian(op, op.to_state(y0), pa.schemes.base.stage_time(0.0, 0.0, 0.5), 0)
    D = J.dense().numpy()
    ev = np.linalg.eigvalsh(0.5 * (D + D.T))
    d = rep.data
    w = scipy.stats.wasserstein_distance(d["slq"]["nodes"].ravel(), ev, u_weights=d["slq"]["weights"].ravel())
    assert w < 0.03 * (ev.max() - ev.min())
    assert d["bendixson"]["re_min"] == pytest.approx(ev.min(), rel=1e-8)
    assert d["bendixson"]["re_max"] == pytest.approx(ev.max(), abs=1e-8)
    assert np.all(np.linalg.eigvals(D).real <= d["bendixson"]["re_max"] + 1e-8)


def test_parabolic_norm_bound_is_certified_and_sharp():
    """Without normalisation ρ(∂F/∂Y) ≤ ‖K‖₂² (ReLU), and ‖K‖₂ equals the dense norm of the conv."""
    op, y0 = paper_operator("parabolic", channels=3, size=5, activation="relu", normalise=False, interpolation="constant",
                            n_pieces=1, T=1.0)
    rep = A.spectral_density(op, y0, "euler", n_steps=1)
    w = op.layer.weight[0]
    K = JacobianOperator(lambda y: pa.operators.functional.conv(y, w.detach()), torch.zeros(1, 3, 5, 5)).dense().numpy()
    b = rep.data["parabolic_bound"][0]
    assert b["norm_K"] == pytest.approx(np.linalg.norm(K, 2), rel=1e-8)
    J, _ = operator_jacobian(op, op.to_state(y0), 0.0, 0)
    assert np.abs(np.linalg.eigvals(J.dense().numpy())).max() <= b["rho_bound"] * (1 + 1e-10)
