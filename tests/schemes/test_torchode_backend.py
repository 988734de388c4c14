"""The optional torchode engine for dopri5: the same solves, steps and gradients as torchdiffeq's."""

import pytest
import torch

import pdenet_analysis as pa
from pdenet_analysis.errors import IncompatibleSchemeError, IntegrationError, UnknownNameError

from ..helpers import paper_operator

pytest.importorskip("torchode")


def _both(tol, **kw):
    return (pa.schemes.get_scheme("dopri5", rtol=tol, atol=tol, **kw),
            pa.schemes.get_scheme("dopri5", rtol=tol, atol=tol, backend="torchode", **kw))


@pytest.mark.parametrize("arch", ["parabolic", "hamiltonian", "second_order"])
@pytest.mark.parametrize("interpolation", ["constant", "linear"])
def test_same_solution_and_steps_as_torchdiffeq(arch, interpolation):
    """θ jumps at t = 1 and 2 (constant) or kinks there (linear): both engines end steps on them,
    read θ's left limit at a step's end, take the same accepted steps and agree to the tolerance."""
    op, y0 = paper_operator(arch, interpolation=interpolation, n_pieces=3, T=3.0)
    op, y0 = op.double(), y0.double()
    with torch.no_grad():
        ref = pa.integrate(op, y0, "rk4", n_steps=3 * 128).y
        runs = [[pa.integrate(op, y0, s) for s in _both(tol)] for tol in (1e-5, 1e-8)]
    for tol, (a, b) in zip((1e-5, 1e-8), runs):
        assert abs(a.stats.n_accepted - b.stats.n_accepted) <= max(2, 0.1 * a.stats.n_accepted)
        scale = float(ref.abs().max())
        for sol in (a, b):
            assert float((sol.y - ref).abs().max()) < 200 * tol * scale
        assert float((a.y - b.y).abs().max()) < 200 * tol * scale
        assert b.stats.n_evals > 0 and b.stats.n_rejected >= 0


def test_trajectory_at_output_times():
    op, y0 = paper_operator("parabolic", n_pieces=3, T=3.0)
    op, y0 = op.double(), y0.double()
    t_eval = torch.tensor([0.0, 0.4, 1.0, 2.5, 3.0], dtype=torch.float64)
    with torch.no_grad():
        a, b = (pa.integrate(op, y0, s, trajectory=True, t_eval=t_eval) for s in _both(1e-9))
    assert len(b.trajectory) == len(t_eval)
    assert torch.equal(b.trajectory[0][0], y0)
    for sa, sb in zip(a.trajectory, b.trajectory):
        torch.testing.assert_close(sa[0], sb[0], rtol=0, atol=1e-7)


@pytest.mark.parametrize("gradient", ["backprop", "adjoint"])
def test_gradients_equal_torchdiffeqs(gradient):
    """Backprop differentiates torchode's own operations; the adjoint runs on torchdiffeq."""
    op, y0 = paper_operator("hamiltonian", n_pieces=2, T=1.0)
    op, y0 = op.double(), y0.double()
    grads = []
    for scheme in _both(1e-9):
        x = y0.clone().requires_grad_(True)
        for p in op.parameters():
            p.grad = None
        out = pa.integrate(op, x, scheme, gradient=gradient).y
        (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape)).sum().backward()
        grads.append([x.grad.clone()] + [p.grad.clone() for p in op.parameters()])
    for ga, gb in zip(*grads):
        torch.testing.assert_close(ga, gb, rtol=0, atol=1e-6 * float(ga.abs().max()))


def test_bad_input_and_what_it_cannot_do():
    with pytest.raises(UnknownNameError, match="torchode"):
        pa.schemes.get_scheme("dopri5", backend="scipy")
    with pytest.raises(IncompatibleSchemeError, match="backend='torchdiffeq'"):
        pa.schemes.get_scheme("bosh3", backend="torchode")
    op, y0 = paper_operator("parabolic")
    scheme = pa.schemes.get_scheme("dopri5", backend="torchode")
    with pytest.raises(IncompatibleSchemeError, match="record_steps"):
        pa.integrate(op, y0, scheme, record_steps=True)
    with pytest.raises(IntegrationError, match="REACHED_MAX_STEPS"):
        pa.integrate(op, y0, pa.schemes.get_scheme("dopri5", rtol=1e-12, atol=1e-12, max_steps=3, backend="torchode"))
    assert "torchode" in repr(scheme)


@pytest.mark.parametrize("arch", ["parabolic", "hamiltonian", "second_order"])
@pytest.mark.parametrize("interpolation", ["constant", "linear"])
def test_no_host_read_per_evaluation(arch, interpolation, monkeypatch):
    """With the finiteness checks deferred and θ looked up on the device (as on a GPU), a solve reads tensor values on the host
    only in torchode's step loop (3 per step, and one in its initial step selection) and once per
    segment between θ's jumps (status, step counts, carried step size), once at the end (the
    deferred finiteness checks, the initial state's among them): none per evaluation of the
    right-hand side, where θ(t) is looked up at a tensor t, and none for the output times, which
    stay on the host. Before, the output times' checks and the segments' four reads added 8 + 4
    per segment."""
    from pdenet_analysis.operators import timegrid
    from pdenet_analysis.schemes import adaptive
    from pdenet_analysis.testing import HostReads

    monkeypatch.setattr(adaptive, "HOST_CHECK_EVERY_EVALUATION", False)  # both as on a GPU
    monkeypatch.setattr(timegrid, "LOOKUP_ON_DEVICE", True)
    op, y0 = paper_operator(arch, interpolation=interpolation, n_pieces=3, T=3.0)
    op, y0 = op.double(), y0.double()
    scheme = pa.schemes.get_scheme("dopri5", rtol=1e-9, atol=1e-9, backend="torchode")
    with torch.no_grad(), HostReads() as reads:
        sol = pa.integrate(op, y0, scheme)
    steps = sol.stats.n_accepted + sol.stats.n_rejected
    assert sol.stats.n_evals >= 5 * steps > 0
    assert reads.count <= 3 * steps + 1 + 3 + 1, (reads.count, steps, sol.stats.n_evals)


def test_the_engine_adds_at_most_two_launches_per_evaluation_to_torchodes_loop(monkeypatch):
    """On a GPU these solves are bound by kernel launches: with the checks deferred and θ looked up
    on the device (as there), our engine launches at most 2 more operations per evaluation than
    torchode's own loop on the same field (its deferred finiteness check is one reduction; the
    left limit of θ and the step size carried to the next segment cost nothing on a solve without
    jumps). It launched 11 more (46 %) when the check was isfinite/all/where."""
    import torchode as to

    from pdenet_analysis.operators import timegrid
    from pdenet_analysis.schemes import adaptive
    from pdenet_analysis.testing import Launches

    monkeypatch.setattr(adaptive, "HOST_CHECK_EVERY_EVALUATION", False)
    monkeypatch.setattr(timegrid, "LOOKUP_ON_DEVICE", True)
    torch.manual_seed(0)
    op = pa.parabolic(2, T=1.0, n_pieces=1, activation="tanh").double()
    x = torch.randn(2, 2, 4, 4, dtype=torch.float64)
    calls = []

    def field(t, y):
        calls.append(1)
        return op.vector_field(t[0], (y.view(x.shape),))[0].reshape(2, -1)

    term = to.ODETerm(field)
    solver = to.AutoDiffAdjoint(to.Dopri5(term=term), to.IntegralController(atol=1e-8, rtol=1e-8, term=term))
    span = torch.tensor([0.0, 1.0], dtype=torch.float64).expand(2, 2)
    with torch.no_grad():
        with Launches() as theirs:
            solver.solve(to.InitialValueProblem(x.reshape(2, -1), span[:, 0], span[:, 1], span))
        with Launches() as ours:
            sol = pa.integrate(op, x, pa.schemes.get_scheme("dopri5", rtol=1e-8, atol=1e-8, backend="torchode"))
    per_eval = ours.count / sol.stats.n_evals - theirs.count / len(calls)
    assert sol.stats.n_evals > 50 and 0 <= per_eval <= 2, (per_eval, ours.by_op, theirs.by_op)
