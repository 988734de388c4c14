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
    return np.concatenate(pa.schemes.symplectic.two_step_roots(mu))


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


# ---- every two-level scheme of the registry: its half-size form against the dense step map ----

REDUCIBLE = ["symplectic_euler", "verlet", "leapfrog", "leapfrog_symmetric"]


def _discretised(name, kind, normalise, seed, h_scale=2.0, device="cpu"):
    from pdenet_analysis import analysis as A

    torch.manual_seed(seed)
    factory = {"hamiltonian": pa.hamiltonian, "second_order": pa.second_order, "first_order": pa.parabolic}[kind]
    op = factory(4, T=2.0, n_pieces=2, normalise=normalise).double()
    with torch.no_grad():
        for layer in op.layers():
            for w in layer.kernels():
                w.mul_(h_scale)
    y0 = torch.randn(2, 4, 4, 4, dtype=torch.float64)
    return A.discretise(op.to(device), y0.to(device), name, n_steps=4)


@pytest.mark.slow
def test_the_reducible_schemes_are_the_two_level_ones_and_forward_euler():
    """Registry-driven: exactly symplectic Euler, Verlet and leapfrog (on the kinds they take) and
    forward Euler on a first-order operator have a reduced step form."""
    found = set()
    for name in pa.schemes.available_schemes():
        scheme = pa.schemes.get_scheme(name)
        for kind in ("first_order", "second_order", "hamiltonian"):
            if not scheme.accepts(kind):
                continue
            disc = _discretised(name, kind, True, 0)
            t, h, point = disc.steps[1]
            if disc.step_scheme.reduced_step_form(disc.operator, point, t, h) is not None:
                found.add((name, kind))
    assert found == set(PAIRS)


PAIRS = [(name, kind) for name in REDUCIBLE for kind in ("hamiltonian", "second_order")
         if pa.schemes.get_scheme(name).accepts(kind)] + [("euler", "first_order")]


@pytest.mark.parametrize("name,kind", PAIRS)
@pytest.mark.parametrize("normalise", [False, True])
def test_reduced_form_gives_the_step_maps_eigenvalues(name, kind, normalise):
    """eig(S_j) = form.roots(eig(M_j)) as multisets, at every step: the roots of
    ξ² − (2 + μ)ξ + 1 for the two-level schemes, 1 + μ for forward Euler (θ jumps between steps
    1 and 2, so the stage times of Verlet's kicks matter)."""
    scheme = pa.schemes.get_scheme(name)
    from pdenet_analysis.analysis.linear import JacobianOperator

    for seed in (0, 1):
        disc = _discretised(name, kind, normalise, seed)
        for j in range(disc.n_steps):
            S = disc.step_jacobian(j).dense().numpy()
            t, h, point = disc.steps[j]
            form = scheme.reduced_step_form(disc.operator, point, t, h)
            M = JacobianOperator(form.map(disc.operator), form.u, batched=True).dense().numpy()
            assert M.shape[1] * (2 if form.label == "half size" else 1) == S.shape[1]
            for b in range(S.shape[0]):
                xi = form.roots(np.linalg.eigvals(M[b]))
                assert len(xi) == S.shape[1]
                _same_multiset(np.linalg.eigvals(S[b]), xi, 1e-6)


@pytest.mark.parametrize("name,kind", [(n, "hamiltonian" if pa.schemes.get_scheme(n).accepts("hamiltonian")
                                        else "second_order") for n in REDUCIBLE] + [("euler", "first_order")])
def test_step_map_spectra_reduced_route_equals_the_dense_count(name, kind):
    """Above dense_max, a scheme with a reduced form is counted exactly from it: the same radius
    and number of modes outside as the dense step map, example by example."""
    from pdenet_analysis.analysis import Budget
    from pdenet_analysis.analysis.stepmap import step_map_spectra

    disc = _discretised(name, kind, True, 3, h_scale=3.0)
    checked = 0
    for j in range(disc.n_steps):
        dense = step_map_spectra(disc, j, budget=Budget(dense_max=10_000))
        half = step_map_spectra(disc, j, budget=Budget(dense_max=16, reduced_dense_max=10_000))
        for d, r in zip(dense, half):
            assert r.method.startswith("dense, ") and r.n_matvecs > 0 and r.exact and r.status == "converged"
            assert r.count == d.count
            # a double root ξ = 1 (μ = 0, channels a ReLU switched off) costs the dense eig of S
            # √ε in |ξ|; the half-size form computes it from μ without that loss
            assert abs(r.radius - d.radius) <= (1e-8 * d.radius if d.count else 1e-7)
            checked += d.count > 0
    assert checked > 0  # some step has modes outside, so the counts were put to the test


@pytest.mark.skipif(not torch.cuda.is_available(), reason="compares the GPU's eigenvalue solver with the CPU's")
@pytest.mark.parametrize("name,kind", PAIRS)
def test_reduced_count_on_cuda_equals_the_cpu_count(name, kind):
    """The exact count's dense eigenvalues run on the operator's device: on CUDA the same counts and
    radii as on the CPU, example by example and step by step."""
    from pdenet_analysis.analysis import Budget
    from pdenet_analysis.analysis.stepmap import step_map_spectra

    cpu, gpu = (_discretised(name, kind, True, 3, h_scale=3.0, device=d) for d in ("cpu", "cuda"))
    for j in range(cpu.n_steps):
        for c, g in zip(step_map_spectra(cpu, j, budget=Budget(dense_max=16, reduced_dense_max=10_000)),
                        step_map_spectra(gpu, j, budget=Budget(dense_max=16, reduced_dense_max=10_000))):
            assert g.method == c.method and g.count == c.count and g.exact
            # a double root ξ = 1 (μ = 0) turns round-off δμ into √δμ in |ξ|
            assert abs(g.radius - c.radius) <= (1e-8 * c.radius if c.count else 1e-7)


# ---- the half-size form through the active hidden units -----------------------------------------

#: the pairs whose form evaluates a layer with hidden units (second order with symplectic Euler or
#: Verlet evaluates f(V) = V there, which has none)
THROUGH_A_LAYER = [(name, kind) for name, kind in PAIRS if kind != "second_order" or name.startswith("leapfrog")]


@pytest.mark.parametrize("name,kind", PAIRS)
@pytest.mark.parametrize("normalise", [False, True])
def test_active_unit_form_gives_the_nonzero_eigenvalues_of_the_half_size_form(name, kind, normalise):
    """eig(M) = eig(R) ∪ {0}^(m − r) as multisets, R the r × r matrix through the hidden units a
    ReLU keeps on, at every step and example; r < m where the form goes through a layer."""
    from pdenet_analysis.analysis.linear import JacobianOperator
    from pdenet_analysis.analysis.stepmap import active_unit_form

    scheme = pa.schemes.get_scheme(name)
    reduced = 0
    for seed in (0, 1):
        disc = _discretised(name, kind, normalise, seed)
        for j in range(disc.n_steps):
            t, h, point = disc.steps[j]
            for b in range(point[0].shape[0]):
                form = scheme.reduced_step_form(disc.operator, tuple(c[b : b + 1] for c in point), t, h)
                M = JacobianOperator(form.map(disc.operator), form.u).dense().numpy()
                active = active_unit_form(disc.operator, form)
                if (name, kind) not in THROUGH_A_LAYER:
                    assert active is None
                    continue
                phi, w0, r = active[:3]
                assert r < M.shape[0]
                R = JacobianOperator(phi, w0).dense().numpy()
                mu = np.concatenate([np.linalg.eigvals(R), np.zeros(M.shape[0] - r)])
                _same_multiset(np.linalg.eigvals(M), mu, 1e-6)
                reduced += 1
    assert reduced > 0 or (name, kind) not in THROUGH_A_LAYER


def test_active_unit_form_does_not_apply_where_no_unit_is_switched_off():
    """tanh has σ' > 0 everywhere: every hidden unit is active and M is not reduced."""
    from pdenet_analysis.analysis.stepmap import active_unit_form

    torch.manual_seed(0)
    op = pa.hamiltonian(4, T=1.0, n_pieces=1, activation="tanh").double()
    point = tuple(torch.randn(1, 2, 4, 4, dtype=torch.float64) for _ in range(2))
    form = pa.schemes.get_scheme("symplectic_euler").reduced_step_form(op, point, 0.0, 0.5)
    assert active_unit_form(op, form) is None


@pytest.mark.parametrize("factory", [pa.parabolic, pa.resnet, pa.second_order])
@pytest.mark.parametrize("normalise", [False, True])
def test_layer_factors_compose_to_the_layer(factory, normalise):
    """F(θ(t), y) = readout(hidden(y)) exactly, with readout linear, at times on every piece."""
    torch.manual_seed(0)
    layer = factory(4, T=2.0, n_pieces=2, normalise=normalise).double().layers()[0]
    y, a, c = torch.randn(3, 2, 4, 4, 4, dtype=torch.float64)
    for t in (0.0, 0.7, 1.5):
        hidden, readout = layer.factors(t)
        assert torch.equal(readout(hidden(y)), layer(t, y))
        assert torch.allclose(readout(2.0 * a - c), 2.0 * readout(a) - readout(c), atol=1e-13)


HAMILTONIAN_KINDS = ("hamiltonian", "second_order")
FIXED = [n for n in pa.available_schemes() if not pa.get_scheme(n).adaptive]
SYMPLECTIC_CASES = [(n, k) for n in FIXED for k in sorted(pa.get_scheme(n).kinds) if k in HAMILTONIAN_KINDS]


@pytest.mark.parametrize("name,kind", SYMPLECTIC_CASES)
def test_the_symplectic_flag_says_what_the_step_map_does(name, kind):
    """Without normalisation the paper's Hamiltonian and second-order operators are Hamiltonian
    systems: a' = f(b), b' = g(a) with f = −K₁ᵀσ(K₁b) and g = K₂ᵀσ(K₂a) gradients (∂f/∂b and ∂g/∂a
    symmetric), and Y'' = −Kᵀσ(KY) with V = Y'. A scheme that declares ``symplectic`` must keep
    the symplectic form, SᵀΩS = Ω with Ω = [[0, I], [−I, 0]], for the Jacobian S of its step on
    its own internal state (for leapfrog (Y_j, Y_{j−1}): S = [[2I + h²J, −I], [I, 0]] keeps Ω
    exactly when J is symmetric), to round-off; one that does not declare it must miss it (no
    explicit Runge–Kutta method is symplectic). Every registered fixed-step scheme, each kind it
    accepts: the metadata is read, so a wrong flag fails."""
    arch = {"hamiltonian": "hamiltonian", "second_order": "second_order"}[kind]
    torch.manual_seed(0)
    op = pa.operators.OPERATOR_FACTORIES[arch](4, T=1.0, n_pieces=2, activation="tanh", normalise=False,
                                              interpolation="linear").double()
    with torch.no_grad():
        for layer in op.layers():
            for w in layer.kernels():
                w.mul_(2.0)
    scheme = pa.get_scheme(name)
    y0 = torch.randn(1, 4, 3, 3, dtype=torch.float64)
    h, t = 0.3, 0.2
    internal = scheme.init(op, op.to_state(y0), t, h)
    shapes = [c.shape for c in internal]
    sizes = [c.numel() for c in internal]

    def step(v):
        parts = tuple(p.view(s) for p, s in zip(v.split(sizes), shapes))
        return torch.cat([o.flatten() for o in scheme.step(op, parts, t, h)])

    S = torch.autograd.functional.jacobian(step, torch.cat([c.flatten() for c in internal])).numpy()
    m = S.shape[0] // 2
    omega = np.block([[np.zeros((m, m)), np.eye(m)], [-np.eye(m), np.zeros((m, m))]])
    defect = np.linalg.norm(S.T @ omega @ S - omega) / np.linalg.norm(S) ** 2
    if scheme.symplectic:
        assert defect < 1e-14, (name, kind, defect)
    else:
        assert defect > 1e-8, (name, kind, defect)  # RK4: O(h⁵) per step, 1.7e-5 here
