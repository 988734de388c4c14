"""A theorem about the Hamiltonian step map, checked numerically.

One symplectic Euler step a⁺ = a + h f(b), b⁺ = b + h g(a⁺) has the Jacobian
S = [[I, hA], [hB, I + h²BA]] with A = ∂f/∂b at b_j and B = ∂g/∂a at a_{j+1}. By the Schur
complement, det(S − ξI) = det((1 − ξ)²I − ξh²BA), so the eigenvalues of S are exactly the roots
of ξ² − (2 + μ)ξ + 1 = 0 over the eigenvalues μ of h²BA: a half-size problem. Without
normalisation (N = id) and with σ monotone, A and B are semi-definite of opposite signs, the μ
are real and ≤ 0, and the step is stable iff h²ρ(BA) ≤ 4. With N_tv, A and B lose their
definiteness and some μ leave the real line (or fall below −4), each such μ giving a mode with
|ξ| > 1.
"""

import numpy as np
import pytest
import torch

import pdenet_analysis as pa


def _step_pieces(normalise: bool, seed: int, h: float):
    torch.manual_seed(seed)
    op = pa.hamiltonian(4, T=1.0, n_pieces=1, normalise=normalise, activation="tanh").double()
    with torch.no_grad():
        for layer in op.layers():
            for w in layer.kernels():
                w.mul_(2.0)
    a0 = torch.randn(1, 2, 4, 4, dtype=torch.float64)
    b0 = torch.randn(1, 2, 4, 4, dtype=torch.float64)
    scheme = pa.schemes.get_scheme("symplectic_euler")
    n = a0.numel()

    def step(v):
        a, b = scheme.step(op, (v[:n].view_as(a0), v[n:].view_as(b0)), 0.0, h)
        return torch.cat([a.flatten(), b.flatten()])

    S = torch.autograd.functional.jacobian(step, torch.cat([a0.flatten(), b0.flatten()]))
    a1 = a0 + h * op.part_f(0.0, b0)
    A = torch.autograd.functional.jacobian(lambda b: op.part_f(0.0, b.view_as(b0)).flatten(), b0.flatten())
    B = torch.autograd.functional.jacobian(lambda a: op.part_g(0.0, a.view_as(a0)).flatten(), a1.flatten())
    return S.numpy(), (h * h * (B @ A)).numpy()


def _roots(mu):
    mu = mu.astype(complex)
    disc = np.sqrt((2 + mu) ** 2 - 4)
    return np.concatenate([(2 + mu + disc) / 2, (2 + mu - disc) / 2])


def _same_multiset(x, y, tol):
    """Greedy matching of two complex multisets."""
    y = list(y)
    for v in x:
        j = int(np.argmin([abs(v - w) for w in y]))
        assert abs(v - y[j]) <= tol * max(1.0, abs(v)), (v, y[j])
        y.pop(j)


@pytest.mark.parametrize("normalise", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_step_map_spectrum_is_the_quadratic_image_of_the_half_size_product(normalise, seed):
    S, M = _step_pieces(normalise, seed, h=0.7)
    xi = np.linalg.eigvals(S)
    mu = np.linalg.eigvals(M)
    _same_multiset(xi, _roots(mu), 1e-6)
    rho_half = float(np.max(pa.schemes.two_step_amplification(mu)))
    assert abs(rho_half - np.max(np.abs(xi))) < 1e-8


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_without_normalisation_the_half_size_spectrum_is_real_and_nonpositive(seed):
    _, M = _step_pieces(False, seed, h=0.7)
    mu = np.linalg.eigvals(M)
    assert np.max(np.abs(mu.imag)) < 1e-8 * max(1.0, np.max(np.abs(mu)))
    assert np.max(mu.real) < 1e-10
    xi_max = np.max(pa.schemes.two_step_amplification(mu))
    assert (xi_max <= 1 + 1e-9) == (np.min(mu.real) >= -4 - 1e-12)  # stable iff h²ρ(BA) ≤ 4


def test_with_tv_normalisation_the_half_size_spectrum_leaves_the_real_line():
    imag = []
    for seed in range(8):
        _, M = _step_pieces(True, seed, h=0.7)
        mu = np.linalg.eigvals(M)
        imag.append(float(np.max(np.abs(mu.imag)) / max(1.0, np.max(np.abs(mu)))))
    assert max(imag) > 1e-4  # complex μ: a pair ξ, 1/ξ̄ off the unit circle, one of them unstable
    _, M = _step_pieces(True, int(np.argmax(imag)), h=0.7)
    assert np.max(pa.schemes.two_step_amplification(np.linalg.eigvals(M))) > 1 + 1e-6
