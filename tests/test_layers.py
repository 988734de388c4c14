import torch
from hypothesis import given
from hypothesis import strategies as st

from pdenet_analysis.operators import functional as F


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
