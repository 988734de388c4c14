"""Matrix-free eigenvalues of layer Jacobians against dense ones and analytic spectra."""

import numpy as np
import pytest
import torch
import pdenet_analysis as pa
from pdenet_analysis.testing import LinearHamiltonian, random_spd
from pdenet_analysis.analysis.eigen import arnoldi, eigs
from pdenet_analysis.analysis.linear import operator_jacobian
from pdenet_analysis.analysis.stability import symmetry_defect
from ..helpers import paper_operator



def _top(vals, k):
    vals = np.asarray(vals)
    return vals[np.argsort(-np.abs(vals), kind="stable")][:k]


@pytest.mark.float64
@pytest.mark.parametrize("backend", ["scipy", "torch"])
@pytest.mark.parametrize("arch", ["parabolic", "resnet", "second_order", "hamiltonian"])
def test_matrix_free_eigenvalues_equal_dense(arch, backend):
    op, y0 = paper_operator(arch, channels=4, size=4, activation="relu", normalise=True)
    J, how = operator_jacobian(op, op.to_state(y0), 0.3)
    dense = np.linalg.eigvals(J.dense().numpy())
    res = eigs(J, k=4, which="LM", backend=backend, m=J.shape[0])
    assert res.status == "converged"
    np.testing.assert_allclose(np.sort(np.abs(res.values)), np.sort(np.abs(_top(dense, 4))), rtol=1e-6)


def test_largest_real_part_equals_dense():
    op, y0 = paper_operator("resnet", channels=3, size=4)
    J, _ = operator_jacobian(op, op.to_state(y0))
    dense = np.linalg.eigvals(J.dense().numpy())
    res = eigs(J, k=2, which="LR", backend="scipy")
    assert res.values.real.max() == pytest.approx(dense.real.max(), rel=1e-6)


@pytest.mark.float64
def test_parabolic_jacobian_symmetric_nsd_without_normalisation_but_not_with():
    op, y0 = paper_operator("parabolic", activation="relu", normalise=False)
    J, _ = operator_jacobian(op, op.to_state(y0))
    D = J.dense().numpy()
    assert np.abs(D - D.T).max() < 1e-12 and np.linalg.eigvalsh(0.5 * (D + D.T)).max() < 1e-12
    assert symmetry_defect(J) < 1e-12
    op2, y2 = paper_operator("parabolic", activation="relu", normalise=True)
    J2, _ = operator_jacobian(op2, op2.to_state(y2))
    assert symmetry_defect(J2) > 1e-3  # N_tv breaks the symmetry: reported, not assumed


@pytest.mark.float64
def test_laplacian_stencil_has_analytic_spectrum():
    """K = 5-point Laplacian with zero padding: λ_ij = −4 + 2cos(iπ/(n+1)) + 2cos(jπ/(n+1)).
    F = −KᵀK Y (σ = id, N = id), so the eigenvalues of ∂F/∂Y are −λ_ij²."""
    n = 12
    op = pa.parabolic(1, T=1.0, n_pieces=1, normalise=False, activation="identity")
    with torch.no_grad():
        op.layer.weight.zero_()
        op.layer.weight[0, 0, 0] = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]])
    J, _ = operator_jacobian(op, (torch.randn(1, 1, n, n),))
    c = 2 * np.cos(np.arange(1, n + 1) * np.pi / (n + 1))
    lam = -(( -4 + c[:, None] + c[None, :]) ** 2).ravel()
    res = eigs(J, k=3, which="LM", backend="scipy", symmetric=True)
    np.testing.assert_allclose(np.sort(res.values), np.sort(lam)[:3], rtol=1e-8)
    res_t = eigs(J, k=1, which="LM", backend="torch", symmetric=True, m=n * n)
    assert res_t.values[0] == pytest.approx(lam.min(), rel=1e-8)


@pytest.mark.float64
def test_linear_hamiltonian_product_spectrum():
    Am, Bm = random_spd(4, 1), -random_spd(4, 2)
    op = LinearHamiltonian(Am, Bm)
    J, how = operator_jacobian(op, (torch.randn(1, 4), torch.randn(1, 4)))
    assert how == "BA"
    expected = np.linalg.eigvals(Bm @ Am)
    res = eigs(J, k=4, which="LM", backend="torch")
    np.testing.assert_allclose(np.sort(res.values.real), np.sort(expected.real), rtol=1e-10)
    assert np.all(expected.real < 0)  # so z = h²λ lies on the negative axis: stable iff h²ρ ≤ 4


def test_non_converged_solver_reports_status():
    op, y0 = paper_operator("resnet", channels=4, size=6)
    J, _ = operator_jacobian(op, op.to_state(y0))
    res = arnoldi(J, k=6, which="LM", m=8)
    assert res.status == "not_converged" and res.residuals.max() > 1e-8
