"""integrate() against hand-written loops, torchdiffeq, and its own gradients; statistics."""

import pytest
import torch
import torchdiffeq
from hypothesis import given, settings
from hypothesis import strategies as st

import pdenet_analysis as pa
from pdenet_analysis.gradients import Reversible
from pdenet_analysis.operators import functional as F
from pdenet_analysis.testing import SavedBytes

from .helpers import ADAPTIVE_SCHEMES, ARCH_OF_KIND, REVERSIBLE_SCHEMES, assert_same_arithmetic, paper_operator


pytestmark = pytest.mark.float64  # the mathematics is tested in float64

def _sym(layer, j, y):
    return F.symmetric_layer(y, layer.weight[j], layer.scale[j], layer.shift[j], torch.relu, layer.eps, True)


def _paper_op(arch, device, channels=4):
    op, y0 = paper_operator(arch, channels=channels, activation="relu", normalise=True,
                            interpolation="constant", n_pieces=3, T=3.0, scale=1.0)
    return op.to(device), y0.to(device)


def test_parabolic_euler_equals_hand_loop(device):
    op, y = _paper_op("parabolic", device)
    out = pa.integrate(op, y, "euler").y
    for j in range(3):
        y = y + 1.0 * _sym(op.layer, j, y)
    assert_same_arithmetic(out, y)


def test_hamiltonian_symplectic_euler_equals_hand_loop(device):
    op, x = _paper_op("hamiltonian", device)
    out = pa.integrate(op, x, "symplectic_euler").y
    Y, Z = x.split(2, dim=1)
    for j in range(3):
        Y = Y + 1.0 * _sym(op.layer_y, j, Z)
        Z = Z - 1.0 * _sym(op.layer_z, j, Y)
    assert_same_arithmetic(out, torch.cat([Y, Z], 1))


def test_second_order_leapfrog_equals_hand_loop(device):
    op, y = _paper_op("second_order", device)
    out = pa.integrate(op, y, "leapfrog").y
    y_old = y
    for j in range(3):
        y, y_old = 2 * y - y_old + 1.0**2 * _sym(op.layer, j, y), y
    assert torch.allclose(out, y, rtol=0, atol=1e-14)


def test_resnet_euler_equals_hand_loop(device):
    op, y = _paper_op("resnet", device)
    L = op.layer
    out = pa.integrate(op, y, "euler").y
    for j in range(3):
        y = y + 1.0 * F.resnet_layer(y, L.weight1[j], L.weight2[j], L.scale[j], L.shift[j], torch.relu, L.eps, True)
    assert_same_arithmetic(out, y)


@pytest.mark.parametrize("method", ["dopri5", "bosh3", "adaptive_heun"])
@pytest.mark.parametrize("arch", ["parabolic", "hamiltonian", "second_order"])
def test_adaptive_agrees_with_fine_fixed_step(method, arch):
    op, y0 = paper_operator(arch)
    rtol = {"dopri5": 1e-8, "bosh3": 1e-7, "adaptive_heun": 1e-5}[method]
    sol = pa.integrate(op, y0, method, rtol=rtol, atol=rtol * 1e-2)
    ref = pa.integrate(op, y0, "rk4", n_steps=512)
    err = max(float((a.detach() - b.detach()).abs().max()) for a, b in zip(sol.state, ref.state))
    assert err < 100 * rtol * max(float(x.detach().abs().max()) for x in ref.state)
    assert sol.stats.n_accepted > 0 and sol.stats.n_evals > 0


def test_adaptive_evaluations_equal_raw_torchdiffeq():
    op, y0 = paper_operator("parabolic")
    sol = pa.integrate(op, y0, "dopri5", rtol=1e-6, atol=1e-8)
    calls = []

    def f(t, y):
        calls.append(1)
        return op.vector_field(t, (y,))[0]

    # integrate() makes torchdiffeq end steps at the kinks of θ(t) (jump_t) and at T (step_t)
    opts = dict(jump_t=torch.tensor([0.5]), step_t=torch.tensor([1.0]))
    raw = torchdiffeq.odeint(f, y0, torch.tensor([0.0, 1.0]), rtol=1e-6, atol=1e-8, method="dopri5", options=opts)
    assert sol.stats.n_evals == len(calls)
    assert torch.allclose(raw[-1], sol.y, rtol=0, atol=1e-14)


@pytest.mark.parametrize("name,per_step", [("euler", 1), ("rk4", 4), ("heun", 2)])
def test_fixed_step_evaluation_counts(name, per_step):
    op, y0 = paper_operator("parabolic")
    assert pa.integrate(op, y0, name, n_steps=7).stats.n_evals == 7 * per_step


def test_partitioned_evaluation_counts():
    op, x0 = paper_operator("hamiltonian")
    assert pa.integrate(op, x0, "symplectic_euler", n_steps=6).stats.n_evals == 6
    assert pa.integrate(op, x0, "verlet", n_steps=6).stats.n_evals == 9
    op2, y0 = paper_operator("second_order")
    assert pa.integrate(op2, y0, "leapfrog", n_steps=6).stats.n_evals == 6
    assert pa.integrate(op2, y0, "leapfrog_symmetric", n_steps=6).stats.n_evals == 7
    assert pa.integrate(op2, y0, "rk4", n_steps=6).stats.n_evals == 24


def _grads(op, y0, scheme, gradient, **kw):
    y0 = y0.clone().requires_grad_(True)
    params = [p for p in op.parameters()]
    for p in params:
        p.grad = None
    out = pa.integrate(op, y0, scheme, gradient=gradient, **kw).y
    w = torch.linspace(-1, 1, out.numel()).reshape(out.shape)
    (out * w).sum().backward()
    return [y0.grad.clone()] + [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in params]


@pytest.mark.parametrize("scheme", REVERSIBLE_SCHEMES)
@settings(max_examples=12, deadline=None)
@given(n_steps=st.integers(1, 7), keep_last=st.integers(0, 9), seed=st.integers(0, 10**6))
def test_reversible_gradient_equals_backprop(scheme, n_steps, keep_last, seed):
    """Every reversible scheme, on every kind it takes, with any number of final steps kept as a
    graph (0 = all rebuilt; ≥ n_steps = none): the gradient of the state and of every parameter is
    backprop's to round-off."""
    for arch in [a for kind in sorted(pa.get_scheme(scheme).kinds) for a in ARCH_OF_KIND[kind]]:
        op, y0 = paper_operator(arch, seed=seed, activation="relu", normalise=True, interpolation="constant",
                                n_pieces=3, T=3.0)
        g_bp = _grads(op, y0, scheme, "backprop", n_steps=n_steps)
        g_rev = _grads(op, y0, scheme, Reversible(keep_last=keep_last), n_steps=n_steps)
        for a, b in zip(g_bp, g_rev):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11, msg=f"{arch}, keep_last={keep_last}")


@pytest.mark.parametrize("scheme", REVERSIBLE_SCHEMES)
@settings(max_examples=8, deadline=None)
@given(n_steps=st.integers(1, 6), keep_last=st.integers(0, 7), used=st.integers(1, 2**7 - 1), seed=st.integers(0, 10**6))
def test_reversible_trajectory_is_differentiable_as_under_backprop(scheme, n_steps, keep_last, used, seed):
    """A loss on the states after every step (the bits of ``used`` pick which states enter it)
    has backprop's values and backprop's gradient, for every reversible scheme and any number of
    kept steps: each recorded state is an output of the reversible function, whose backward pass
    adds its gradient where the rebuild passes that step. Before, the records were detached and a
    loss on them silently lost those terms."""
    for arch in [a for kind in sorted(pa.get_scheme(scheme).kinds) for a in ARCH_OF_KIND[kind]]:
        op, x0 = paper_operator(arch, seed=seed, activation="relu", normalise=True, interpolation="constant",
                                n_pieces=3, T=3.0)
        out = {}
        for gradient in ("backprop", Reversible(keep_last=keep_last)):
            x = x0.clone().requires_grad_(True)
            sol = pa.integrate(op, x, scheme, n_steps=n_steps, trajectory=True, gradient=gradient)
            assert len(sol.trajectory) == n_steps + 1
            loss = sum((c.square() * (1 + k)).sum() for i, rec in enumerate(sol.trajectory) if used >> i & 1
                       for k, c in enumerate(rec))
            if not torch.is_tensor(loss):  # ``used`` picked no recorded state
                break
            wrt = [x, *op.parameters()]
            grads = torch.autograd.grad(loss, wrt, allow_unused=True)
            out[str(gradient)] = ([c.detach() for rec in sol.trajectory for c in rec],
                                  [torch.zeros_like(w) if g is None else g for w, g in zip(wrt, grads)])
        if len(out) < 2:
            continue
        (v0, g0), (v1, g1) = out.values()
        for a, b in zip(v0, v1):
            torch.testing.assert_close(b, a, rtol=0, atol=1e-13)
        for a, b in zip(g0, g1):
            torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-11, msg=f"{arch}, keep_last={keep_last}")


@pytest.mark.parametrize("scheme", REVERSIBLE_SCHEMES)
def test_reversible_memory_is_independent_of_depth(scheme):
    """The tensors autograd keeps for the backward pass: the final state alone with keep_last=0,
    one step's graph more with keep_last=1, at any depth; backprop's grow with the depth."""
    arch = ARCH_OF_KIND[sorted(pa.get_scheme(scheme).kinds)[0]][0]

    def saved(gradient, n_steps):
        op, y0 = paper_operator(arch, activation="relu", normalise=True, interpolation="constant",
                                n_pieces=n_steps, T=float(n_steps))
        y0.requires_grad_(True)
        with SavedBytes(exclude=op.parameters()) as saved:  # the weights are held anyway
            pa.integrate(op, y0, scheme, n_steps=n_steps, gradient=gradient)
        return saved.bytes, y0.numel() * y0.element_size()

    for keep in (0, 1):
        assert saved(Reversible(keep_last=keep), 16)[0] == saved(Reversible(keep_last=keep), 4)[0], keep
    # the final state (two tensors for the two-level schemes), and the graph of a starting
    # evaluation outside the integration (leapfrog_symmetric's), nothing more
    assert saved(Reversible(keep_last=0), 4)[0] <= 2 * saved(Reversible(keep_last=0), 4)[1] + saved("backprop", 1)[0]
    assert saved(Reversible(keep_last=1), 4)[0] > saved(Reversible(keep_last=0), 4)[0]
    assert saved("backprop", 16)[0] > 3 * saved("backprop", 4)[0]
    assert saved(Reversible(keep_last=1), 16)[0] < 0.25 * saved("backprop", 16)[0]


@pytest.mark.parametrize("arch", ["parabolic", "hamiltonian", "second_order"])
def test_adjoint_gradient_equals_backprop(arch):
    """Both adaptive gradients agree with each other and with a fine fixed-step gradient.

    (Backprop through an adaptive solver also differentiates its step sizes; that needs θ(t) to
    be differentiable in t, which piecewise-linear θ is.)"""
    op, y0 = paper_operator(arch)
    kw = dict(rtol=1e-10, atol=1e-12)
    g_bp = _grads(op, y0, "dopri5", "backprop", **kw)
    g_adj = _grads(op, y0, "dopri5", "adjoint", **kw)
    g_ref = _grads(op, y0, "rk4", "backprop", n_steps=256)
    for a, b, r in zip(g_bp, g_adj, g_ref):
        scale = float(r.abs().max())
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5 * scale)
        torch.testing.assert_close(b, r, rtol=0, atol=1e-7 * scale)


def test_backprop_gradient_matches_finite_differences():
    op, y0 = paper_operator("parabolic", channels=2, size=3)
    y0 = y0[:1].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda y: pa.integrate(op, y, "rk4", n_steps=4).y, (y0,))


@pytest.mark.parametrize("interp", ["constant", "linear"])
def test_refined_weights_describe_the_same_ode(interp):
    op, y0 = paper_operator("parabolic", interpolation=interp, n_pieces=3)
    fine = op.refined(2)
    assert fine.grid.n_pieces == 6
    for t in torch.linspace(0, 1, 13).tolist():
        a, b = op.vector_field(t, (y0,))[0], fine.vector_field(t, (y0,))[0]
        assert torch.allclose(a, b, atol=1e-13, rtol=0)
    s1 = pa.integrate(op, y0, "rk4", n_steps=12).y
    s2 = pa.integrate(fine, y0, "rk4", n_steps=12).y
    assert torch.allclose(s1, s2, atol=1e-13, rtol=0)


def test_trajectory_and_times():
    op, y0 = paper_operator("parabolic")
    sol = pa.integrate(op, y0, "heun", n_steps=5, trajectory=True)
    assert len(sol.trajectory) == 6 and sol.times.shape == (6,)
    assert torch.equal(sol.trajectory[0][0], y0) and torch.equal(sol.trajectory[-1][0], sol.y)
    sol = pa.integrate(op, y0, "dopri5", trajectory=True, t_eval=torch.linspace(0, 1, 4))
    assert len(sol.trajectory) == 4


def test_float32_runs_and_matches_float64():
    op, y0 = paper_operator("parabolic")
    ref = pa.integrate(op, y0, "rk4", n_steps=8).y
    out = pa.integrate(op.float(), y0.float(), "rk4", n_steps=8).y
    assert out.dtype == torch.float32
    assert torch.allclose(out.double(), ref, atol=1e-5)


_SPECIAL = st.sampled_from([0.0, 1.0, -2.5, 3e38, -3e38, 1.7e308, float("nan"), float("inf"), float("-inf")])


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.lists(_SPECIAL, min_size=1, max_size=5), min_size=0, max_size=4),
       dtypes=st.lists(st.sampled_from([torch.float32, torch.float64]), min_size=4, max_size=4))
def test_all_finite_is_the_exact_check_with_one_host_read_when_finite(values, dtypes):
    """The blocks' NaN/Inf check reads one sum on the host where everything is finite and falls
    back to the exact check otherwise: for every input, above all sums that overflow (3e38 in
    float32, 1.7e308 in float64) and opposite infinities, it answers as the entry-wise check does."""
    from pdenet_analysis.schemes.adaptive import all_finite
    from pdenet_analysis.testing import HostReads

    tensors = [torch.tensor(v, dtype=d) for v, d in zip(values, dtypes)]
    exact = all(bool(torch.isfinite(x).all()) for x in tensors)
    with HostReads() as reads:
        got = all_finite(tensors)
    assert got == exact
    if exact and tensors and all(bool(torch.isfinite(x.sum())) for x in tensors) \
            and bool(torch.isfinite(sum(x.sum() for x in tensors))):
        assert reads.count == 1


@given(values=st.lists(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e30, max_value=1e30), max_size=6),
       dtype=st.sampled_from([torch.float64, torch.float32, torch.float16, torch.bfloat16]))
def test_host_times_round_as_the_device_tensor_holds_them(values, dtype):
    """The adaptive solves keep their output times on the host as Python floats: each is the value
    the device tensor of the same times holds (round to nearest even, overflow to ±inf), so the
    steps end exactly where the solution's times say."""
    from pdenet_analysis.integrate import _rounded

    assert _rounded(values, dtype) == torch.tensor(values, dtype=dtype).tolist()


@pytest.mark.parametrize("name,backend", [(n, "torchdiffeq") for n in ADAPTIVE_SCHEMES] + [("dopri5", "torchode")])
def test_an_adaptive_solve_reads_no_output_time_from_the_device(name, backend, monkeypatch):
    """The output times of an adaptive solve (default, or given as a list) are checked and
    stepped to on the host: given as a tensor they cost one read more than as a list (the same
    times, the same steps), and nothing else. With torchode's loop the whole count is known: 3
    per step and 1 in its initial step selection, 1 per segment between output times, 1 for the
    deferred finiteness checks."""
    pytest.importorskip(backend)
    from pdenet_analysis.operators import timegrid
    from pdenet_analysis.schemes import adaptive
    from pdenet_analysis.testing import HostReads

    monkeypatch.setattr(adaptive, "HOST_CHECK_EVERY_EVALUATION", False)  # as on a GPU: one deferred read
    monkeypatch.setattr(timegrid, "LOOKUP_ON_DEVICE", True)  # and θ(t) looked up without reading t
    op, y0 = paper_operator("parabolic", n_pieces=1, T=1.0)
    scheme = pa.schemes.get_scheme(name, backend=backend, rtol=1e-4, atol=1e-4)
    times = [0.0, 0.25, 0.5, 0.75, 1.0]
    counts, steps = {}, {}
    for kind, t_eval in {"default": None, "list": times, "tensor": torch.tensor(times)}.items():
        with torch.no_grad(), HostReads() as reads:
            sol = pa.integrate(op, y0, scheme, t_eval=t_eval, trajectory=t_eval is not None)
        counts[kind], steps[kind] = reads.count, sol.stats.n_accepted + sol.stats.n_rejected
    assert counts["tensor"] == counts["list"] + 1 and steps["tensor"] == steps["list"], counts
    if backend == "torchode":
        assert counts["default"] == 3 * steps["default"] + 1 + 1 + 1, (counts, steps)
        assert counts["list"] == 3 * steps["list"] + 1 + 4 + 1, (counts, steps)
