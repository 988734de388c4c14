import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from pdenet_analysis.operators import functional as F


@pytest.mark.float64
@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 7), st.integers(1, 7), st.sampled_from([1, 3, 5]), st.integers(0, 2**31 - 1))
def test_conv_adjoint_is_exact(c_in, c_out, h, w, k, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, c_in, h, w, generator=g)
    y = torch.randn(2, c_out, h, w, generator=g)
    W = torch.randn(c_out, c_in, k, k, generator=g)
    lhs = (F.conv(x, W) * y).sum()
    rhs = (x * F.conv_adjoint(y, W)).sum()
    assert torch.allclose(lhs, rhs, rtol=1e-12, atol=1e-12)


def test_tv_norm_unit_norm_per_pixel():
    x = torch.randn(3, 5, 4, 4) * 10
    z = F.tv_norm(x, None, None, eps=0.0)
    torch.testing.assert_close(z.square().sum(1), torch.ones(3, 4, 4))


def test_tv_norm_matches_spec_formula_with_affine():
    x = torch.randn(2, 3, 4, 4)
    s, b = torch.rand(3), torch.randn(3)
    ref = x / torch.sqrt((x**2).sum(1, keepdim=True) + 1e-3) * s.view(1, -1, 1, 1) + b.view(1, -1, 1, 1)
    torch.testing.assert_close(F.tv_norm(x, s, b, 1e-3), ref)


def test_tv_norm_does_not_couple_examples():
    x = torch.randn(4, 3, 5, 5)
    full = F.tv_norm(x, None, None, 1e-3)
    torch.testing.assert_close(full[1:2], F.tv_norm(x[1:2], None, None, 1e-3))


@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 7), st.integers(1, 7), st.sampled_from([1, 3, 5]), st.integers(0, 2**31 - 1))
def test_conv_adjoint_float64_route_is_the_transposed_convolution(c_in, c_out, h, w, k, seed):
    """In float64 on the CPU Kᵀ runs as a convolution with the flipped, channel-transposed kernel:
    the same numbers as PyTorch's transposed convolution (the float32 route) to round-off."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randn(2, c_out, h, w, generator=g, dtype=torch.float64)
    W = torch.randn(c_out, c_in, k, k, generator=g, dtype=torch.float64)
    ref = torch.nn.functional.conv_transpose2d(y, W, padding=k // 2)
    torch.testing.assert_close(F.conv_adjoint(y, W), ref, rtol=0, atol=1e-13)


def test_hamiltonian_g_is_minus_the_layer_bit_for_bit():
    """g = −F_sym(θ², ·): the sign put on the kernel gives exactly the negated layer output, and a
    layer subclass with its own forward (no ``negate``) is negated the plain way."""
    import pdenet_analysis as pa
    from pdenet_analysis.operators import HamiltonianOperator
    from pdenet_analysis.operators.layers import SymmetricLayer
    from pdenet_analysis.operators.timegrid import TimeGrid

    torch.manual_seed(0)
    for dtype in (torch.float32, torch.float64):
        op = pa.hamiltonian(8, T=2.0, n_pieces=2).to(dtype)
        y = torch.randn(3, 4, 7, 7, dtype=dtype)
        assert torch.equal(op.part_g(0.5, y), -op.layer_z(0.5, y))

    class Halved(SymmetricLayer):
        def forward(self, t, y):
            return 0.5 * super().forward(t, y)

    g = TimeGrid(1.0, 1)
    op = HamiltonianOperator(SymmetricLayer(4, g), Halved(4, g))
    y = torch.randn(2, 4, 5, 5)
    assert torch.equal(op.part_g(0.5, y), -op.layer_z(0.5, y))


@given(st.sampled_from(["constant", "linear"]), st.integers(1, 6), st.floats(0.25, 4.0),
       st.one_of(st.floats(-1.0, 5.0), st.integers(-1, 12).map(lambda k: k / 3)),
       st.sampled_from([torch.float32, torch.float64]))
def test_theta_at_a_tensor_time_is_theta_at_the_float(interpolation, n_pieces, T, t, dtype):
    """θ(t) for a tensor t (adaptive solvers; gathered on the device, no host read) is the θ of
    the same t as a float, bit for bit, at the pieces' ends too; a linear θ is differentiable in t
    with ∂θ/∂t = (θ_{j+1} − θ_j)/spacing inside a piece."""
    from pdenet_analysis.operators import timegrid
    from pdenet_analysis.operators.timegrid import TimeGrid, evaluate_all

    grid = TimeGrid(T, n_pieces, interpolation)
    g = torch.Generator().manual_seed(n_pieces)
    values = [torch.randn(grid.n_nodes, 3, 2, generator=g, dtype=torch.float64).to(dtype),
              torch.randn(grid.n_nodes, 4, generator=g, dtype=torch.float64).to(dtype)]
    t = t * T / 3
    for lookup_on_device in (True, False):  # both routes, whatever the device
        timegrid.LOOKUP_ON_DEVICE = lookup_on_device
        try:
            for tt in (torch.tensor(t, dtype=torch.float64), torch.tensor(t, dtype=torch.float32)):
                for a, b in zip(evaluate_all(grid, values, tt), evaluate_all(grid, values, float(tt))):
                    assert torch.equal(a, b)
            if interpolation == "linear":
                tt = torch.tensor(t, dtype=torch.float64, requires_grad=True)
                (d,) = torch.autograd.grad(evaluate_all(grid, values[1:], tt)[0].sum(), tt, allow_unused=True)
                u = t / grid.spacing
                if 0 < u < n_pieces and u != int(u):
                    j = int(u)
                    expected = float((values[1][j + 1] - values[1][j]).double().sum()) / grid.spacing
                    assert float(d) == pytest.approx(expected, rel=1e-5, abs=1e-5)
                elif not 0 <= u <= n_pieces:
                    assert d is None or float(d) == 0.0  # θ is constant outside [0, T]
        finally:
            timegrid.LOOKUP_ON_DEVICE = None


def test_theta_at_a_tensor_time_reads_nothing_on_the_host(monkeypatch):
    """No .item()/float() of t on the device route (a GPU's default): each such read is a
    synchronisation of a GPU's queue per evaluation."""
    from pdenet_analysis.operators import timegrid
    from pdenet_analysis.operators.timegrid import TimeGrid, evaluate_all
    from pdenet_analysis.testing import HostReads

    monkeypatch.setattr(timegrid, "LOOKUP_ON_DEVICE", True)

    for interpolation in ("constant", "linear"):
        grid = TimeGrid(3.0, 3, interpolation)
        values = [torch.randn(grid.n_nodes, 4, 4)]
        with HostReads() as reads:
            evaluate_all(grid, values, torch.tensor(1.7, dtype=torch.float64))
        assert reads.count == 0
        with HostReads() as reads:  # the meter itself: a float() of a tensor is one read
            grid.coefficients(torch.tensor(1.7))
        assert reads.count == 1
