"""Registries the tests iterate over: every registered scheme, every problem kind."""

import torch

import pdenet_analysis as pa
from pdenet_analysis.operators import OPERATOR_FACTORIES
from pdenet_analysis.testing import linear_problem  # noqa: F401 - re-exported for the tests

FIXED_SCHEMES = [n for n in pa.available_schemes() if not pa.get_scheme(n).adaptive]
ADAPTIVE_SCHEMES = [n for n in pa.available_schemes() if pa.get_scheme(n).adaptive]
REVERSIBLE_SCHEMES = [n for n in FIXED_SCHEMES if pa.get_scheme(n).reversible]


def paper_operator(arch: str, channels: int = 4, size: int = 5, seed: int = 0, scale: float | None = None, **kw):
    """A small nonlinear operator of the paper (smooth: tanh, no normalisation unless asked).

    Kernels are multiplied by ``scale`` (default 2; 1 for the Hamiltonian, whose half-width
    kernels start twice as large), which keeps the problems non-stiff at the tested steps."""
    if scale is None:
        scale = 1.0 if arch == "hamiltonian" else 2.0
    torch.manual_seed(seed)
    kw = {"activation": "tanh", "normalise": False, "interpolation": "linear", "T": 1.0, "n_pieces": 2, **kw}
    op = OPERATOR_FACTORIES[arch](channels, **kw).to(torch.get_default_dtype())
    with torch.no_grad():
        for layer in op.layers():
            for w in layer.kernels():
                w.mul_(scale)
    y0 = torch.randn(2, channels, size, size)
    return op, y0


ARCH_OF_KIND = {"first_order": ["parabolic", "resnet"], "hamiltonian": ["hamiltonian"], "second_order": ["second_order"]}


def assert_same_arithmetic(out: torch.Tensor, ref: torch.Tensor) -> None:
    """``out`` is the result of the same arithmetic as ``ref``: bit for bit on the CPU. On CUDA, cuDNN
    may pick a different convolution algorithm (another summation order, or atomics in the
    transposed convolution) for two calls of the same convolution, so there the two may differ by
    round-off: a few units in the last place of the largest entry, never more."""
    if out.device.type == "cpu":
        assert torch.equal(out, ref)
        return
    tol = 16 * torch.finfo(ref.dtype).eps * ref.abs().max().item()
    assert (out - ref).abs().max().item() <= tol


def one_fast_per(cases, key):
    """The parametrisation ``cases`` (tuples) with, for each value of ``key(case)``, the first case in
    the fast tier and the others marked slow: a registry-driven test still exercises every scheme
    in the fast tier, and every combination in the slow tier."""
    import pytest

    seen, out = set(), []
    for case in cases:
        k = key(case)
        out.append(case if k not in seen else pytest.param(*case, marks=pytest.mark.slow))
        seen.add(k)
    return out
