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
