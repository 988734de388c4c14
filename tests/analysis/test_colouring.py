"""Dense Jacobians by grouped columns (analysis.colouring): equal to the column-by-column matrix
for every local map, with fewer products; a map that is not local is refused, never assembled
wrong; and the exact step-map counts that use it agree with the dense spectrum."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import pdenet_analysis as pa
from pdenet_analysis.analysis.colouring import local_jacobian
from pdenet_analysis.analysis.linear import JacobianOperator


def _grid_map(C, H, W, kernels, active, coupling=None):
    """w (the units at ``active`` of a C × H × W grid) ↦ the same units of
    tanh(conv_k(... conv_1(grid(w)))) (+ ``coupling`` · their mean over the whole grid)."""
    n = C * H * W

    def fn(w):
        z = torch.zeros(n, dtype=w.dtype).index_copy(0, active, w).reshape(1, C, H, W)
        for k in kernels:
            z = torch.tanh(torch.nn.functional.conv2d(z, k, padding=k.shape[-1] // 2) + 0.3)
        if coupling is not None:
            z = z + coupling * z.mean()
        return z.reshape(-1)[active]

    pos = torch.stack([active // (H * W), (active // W) % H, active % W], 1)
    return fn, pos


def _full_grid_case(C, H, W, layers, coupling=None):
    """Every unit of a C × H × W grid through ``layers`` random 3 × 3 convolutions: (J, positions)."""
    torch.manual_seed(0)
    kernels = [torch.randn(C, C, 3, 3, dtype=torch.float64) / 6 for _ in range(layers)]
    active = torch.arange(C * H * W)
    fn, pos = _grid_map(C, H, W, kernels, active, coupling)
    return JacobianOperator(fn, torch.randn(active.numel(), dtype=torch.float64)), pos


@settings(max_examples=25, deadline=None)
@given(C=st.integers(1, 3), H=st.integers(6, 24), W=st.integers(6, 24),
       sizes=st.lists(st.sampled_from([1, 3, 5]), min_size=1, max_size=3), all_active=st.booleans(),
       keep=st.floats(0.3, 1.0), seed=st.integers(0, 10_000))
def test_grouped_columns_equal_the_dense_jacobian_of_every_local_map(C, H, W, sizes, all_active, keep, seed):
    """For local maps of any reach (kernels 1, 3, 5 composed) on any grid and any subset of units,
    the grouped matrix is the column-by-column one to round-off, with fewer products, or None
    (where grouping gains nothing, or the probed columns saw less than the reach and the check
    refused the matrix). With every unit active on a grid wider than the reach, where grouping
    saves half the products, it is never None."""
    g = torch.Generator().manual_seed(seed)
    kernels = [torch.randn(C, C, s, s, generator=g, dtype=torch.float64) / (C * s) for s in sizes]
    n = C * H * W
    active = torch.arange(n) if all_active else torch.nonzero(torch.rand(n, generator=g) < keep).reshape(-1)
    if active.numel() < 2:
        return
    fn, pos = _grid_map(C, H, W, kernels, active)
    w0 = torch.randn(active.numel(), generator=g, dtype=torch.float64)
    got = local_jacobian(JacobianOperator(fn, w0), pos, (C, H, W))
    P = 2 * sum(s // 2 for s in sizes) + 1
    if all_active and min(H, W) >= P + 1 and C * P * P <= 0.5 * n:
        assert got is not None
    if got is not None:
        R, products = got
        assert products < active.numel() + 10
        dense = JacobianOperator(fn, w0).dense()
        torch.testing.assert_close(R, dense, rtol=0, atol=1e-13 * float(dense.abs().max()))
        sparse, sparse_products = local_jacobian(JacobianOperator(fn, w0), pos, (C, H, W), sparse=True)
        assert sparse_products == products and sparse.nnz <= int((R != 0).sum())  # only the nonzeros are stored
        torch.testing.assert_close(torch.as_tensor(sparse.toarray()), R, rtol=0, atol=0)


def test_grouped_columns_use_few_products_on_a_wide_grid():
    """A 3 × 3 composed twice (reach 2, P = 5) on 2 × 32 × 32 units: at most 2 · 25 groups plus the
    few probes and checks, against 2,048 columns, and the same matrix."""
    J, pos = _full_grid_case(2, 32, 32, layers=2)
    R, products = local_jacobian(J, pos, (2, 32, 32))
    assert products <= 2 * 25 + 8 + 2
    torch.testing.assert_close(R, J.dense(), rtol=0, atol=1e-14)


def test_a_map_that_is_not_local_is_refused():
    """A global coupling (every unit sees the grid's mean) makes every column dense: the measured
    reach is then the whole grid (nothing to group) or, where the probes miss it, the assembled
    matrix fails the check — either way None, never a wrong matrix."""
    J, pos = _full_grid_case(2, 24, 24, layers=1, coupling=1e-3)
    assert local_jacobian(J, pos, (2, 24, 24)) is None


def test_the_check_catches_a_reach_measured_too_small(monkeypatch):
    """If the probed columns under-estimate the reach (forced here: every probe is told to see
    only its own pixel), the grouped matrix is wrong and the check against J refuses it."""
    from pdenet_analysis.analysis import colouring

    J, pos = _full_grid_case(2, 16, 16, layers=2)
    monkeypatch.setattr(colouring, "_spatial_distance", lambda p, i: torch.zeros(len(i), p.shape[0], dtype=torch.long))
    assert local_jacobian(J, pos, (2, 16, 16)) is None


@pytest.mark.parametrize("name,factory", [("symplectic_euler", pa.hamiltonian), ("verlet", pa.hamiltonian),
                                          ("leapfrog", pa.second_order), ("euler", pa.parabolic)])
def test_exact_counts_through_grouped_columns_equal_the_dense_step_map(name, factory):
    """On a 16 × 16 grid, where the reduced matrix is assembled from grouped columns, the exact
    count of modes outside the unit disc and ρ(S) equal the dense eigenvalues of the step map."""
    from pdenet_analysis import analysis as A
    from pdenet_analysis.analysis.stepmap import _dense_count, active_unit_form, reduced_count

    torch.manual_seed(1)
    op = factory(4, T=2.0, n_pieces=2, normalise=True).double()
    with torch.no_grad():
        for layer in op.layers():
            for w in layer.kernels():
                w.mul_(3.0)
    disc = A.discretise(op, torch.randn(1, 4, 16, 16, dtype=torch.float64), name, n_steps=2)
    t, h, point = disc.steps[1]
    form = disc.step_scheme.reduced_step_form(disc.operator, point, t, h)
    active = active_unit_form(disc.operator, form)
    assert active is not None and active.positions is not None
    r = reduced_count(disc.step_scheme, disc.operator, point, t, h, 1 + 1e-6)
    assert r.n_matvecs < r.rows  # grouped: fewer products than rows
    fn, y = disc.step_map(1)
    d = _dense_count(JacobianOperator(fn, y).dense().numpy(), 1 + 1e-6)
    assert r.count == d.count
    assert abs(r.radius - d.radius) <= (1e-8 * d.radius if d.count else 1e-7)
    assert np.isfinite(r.radius)
