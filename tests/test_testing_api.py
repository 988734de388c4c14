"""The public property checks and strategies work, and catch a broken scheme."""

import pytest
import torch
from hypothesis import given

import pdenet_analysis as pa
from pdenet_analysis.operators import functional as F
from pdenet_analysis.schemes import ButcherTableau, ExplicitRungeKutta, SymplecticEuler
from pdenet_analysis.testing import check_adjoint, check_inversion, check_order
from pdenet_analysis.testing import strategies as pst


@pytest.mark.parametrize("name", ["euler", "rk4", "verlet", "leapfrog_symmetric"])
def test_check_order_passes_for_registered_schemes(name):
    check_order(name)


def test_check_order_catches_a_mislabelled_scheme():
    class Liar(ExplicitRungeKutta):
        name = "liar"

        def __init__(self):
            super().__init__(ButcherTableau.explicit([[1.0]], [0.5, 0.5]), 2, "liar")
            self.order = 3  # claims more than Heun delivers

    with pytest.raises(AssertionError, match=r"observed order 2\.\d+, declared 3"):
        check_order(Liar(), kinds=["first_order"])


def test_check_inversion_catches_a_wrong_inverse():
    class Broken(SymplecticEuler):
        name = "broken"

        def inverse_step(self, op, state, t, h):
            a, b = state
            return (a - h * op.part_f(t, b), b - h * op.part_g(t, a))  # wrong order of updates

    op = pa.hamiltonian(4, normalise=False).double()
    x = torch.randn(1, 4, 4, 4, dtype=torch.float64)
    with pytest.raises(AssertionError, match="reconstruction error"):
        check_inversion(Broken(), op, x, n_steps=3)


@given(pst.paper_operators(kinds=("hamiltonian", "second_order")), pst.step_counts(1, 8), pst.final_times(0.1, 1.0))
def test_reversible_schemes_invert_for_drawn_operators(op_y0, n, T):
    op, y0 = op_y0
    for name in ("symplectic_euler", "verlet") if op.kind == "hamiltonian" else ("leapfrog", "leapfrog_symmetric"):
        check_inversion(name, op, y0, n_steps=n, T=min(T, op.T))


@given(pst.states(channels=3), pst.states(channels=3))
def test_adjoint_check_on_drawn_states(x, y):
    W = torch.randn(3, 3, 3, 3, dtype=torch.float64)
    h, w = min(x.shape[2], y.shape[2]), min(x.shape[3], y.shape[3])
    b = min(x.shape[0], y.shape[0])
    check_adjoint(lambda u: F.conv(u, W), lambda v: F.conv_adjoint(v, W), x[:b, :, :h, :w], y[:b, :, :h, :w])


def test_host_reads_counts_scalar_and_whole_tensor_reads():
    """Each value brought to Python is one read: .item(), float(), bool() (an if), and a whole
    tensor's .tolist() or .numpy(), which dispatch no operation on the CPU but copy and wait on a
    GPU. Arithmetic, moves between devices and views read nothing."""
    from pdenet_analysis.testing import HostReads

    x = torch.arange(6.0).reshape(2, 3)
    with HostReads() as none:
        y = (x * 2).sum(0).cpu()[1:]
    assert none.count == 0
    with HostReads() as reads:
        x[0, 0].item()
        float(x[1, 2])
        if x.sum() > 0:
            pass
        x.tolist()
        y.numpy()
    assert reads.count == 5
