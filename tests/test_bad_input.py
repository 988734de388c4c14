"""Every kind of bad input raises a clear error naming the problem."""

import math

import numpy as np

import pytest
import torch

import pdenet_analysis as pa
from pdenet_analysis.analysis.eigen import eigs
from pdenet_analysis.analysis.linear import JacobianOperator

from .helpers import paper_operator


def test_wrong_channel_count():
    op, _ = paper_operator("parabolic", channels=4)
    with pytest.raises(pa.ShapeError, match=r"\(batch, 4, height, width\)"):
        pa.integrate(op, torch.randn(2, 3, 5, 5), "euler")


def test_wrong_rank():
    op, _ = paper_operator("parabolic", channels=4)
    with pytest.raises(pa.ShapeError, match="expects a state of shape"):
        pa.integrate(op, torch.randn(4, 5, 5), "euler")


def test_odd_channels_for_hamiltonian_operator():
    with pytest.raises(pa.ShapeError, match="even number of channels"):
        pa.hamiltonian(5)


def test_odd_channels_for_hamiltonian_state():
    op, _ = paper_operator("hamiltonian", channels=4)
    with pytest.raises(pa.ShapeError, match="even number of channels, got 5"):
        pa.integrate(op, torch.randn(1, 5, 5, 5), "verlet")


def test_odd_width_hamiltonian_network():
    with pytest.raises(pa.ShapeError, match="even number"):
        pa.networks.PDECNN("hamiltonian", [15, 16], in_channels=1)


@pytest.mark.parametrize("T", [0.0, -1.0, math.inf, math.nan, "x"])
def test_non_positive_final_time(T):
    op, y0 = paper_operator("parabolic")
    with pytest.raises(ValueError, match="final time T"):
        pa.integrate(op, y0, "euler", T=T)


def test_final_time_beyond_grid():
    op, y0 = paper_operator("parabolic")
    with pytest.raises(ValueError, match="exceeds the operator's final time"):
        pa.integrate(op, y0, "euler", T=2.0)


@pytest.mark.parametrize("n", [0, -3, 2.5, float("nan"), float("inf"), "4", True])
def test_bad_step_count(n):
    op, y0 = paper_operator("parabolic")
    with pytest.raises(ValueError, match="n_steps"):
        pa.integrate(op, y0, "euler", n_steps=n)


def test_scheme_not_accepting_kind_names_those_that_do():
    op, y0 = paper_operator("parabolic")
    with pytest.raises(pa.IncompatibleSchemeError) as e:
        pa.integrate(op, y0, "leapfrog")
    assert "does not accept first_order" in str(e.value) and "rk4" in str(e.value) and "leapfrog" not in str(e.value).split(":")[-1]


def test_unknown_scheme_lists_valid():
    op, y0 = paper_operator("parabolic")
    with pytest.raises(pa.UnknownNameError, match="valid schemes: .*dopri5.*rk4"):
        pa.integrate(op, y0, "rk5")
    with pytest.raises(pa.UnknownNameError, match=r"unknown scheme 'Verlet' \(did you mean 'verlet'\?\)"):
        pa.integrate(op, y0, "Verlet")
    with pytest.raises(pa.UnknownNameError, match=r"'symplectic-euler' \(did you mean 'symplectic_euler'\?\)"):
        pa.integrate(op, y0, "symplectic-euler")
    with pytest.raises(pa.UnknownNameError) as nothing_near:
        pa.integrate(op, y0, "magic")
    assert nothing_near.value.suggestion is None and "did you mean" not in str(nothing_near.value)


def test_unknown_gradient_and_incompatible_gradients():
    op, y0 = paper_operator("parabolic")
    with pytest.raises(pa.UnknownNameError, match="backprop"):
        pa.integrate(op, y0, "euler", gradient="magic")
    with pytest.raises(pa.IncompatibleSchemeError, match="reversible scheme"):
        pa.integrate(op, y0, "rk4", gradient="reversible")
    with pytest.raises(pa.IncompatibleSchemeError, match="adaptive"):
        pa.integrate(op, y0, "rk4", gradient="adjoint")


def test_nan_during_integration_names_step_and_time():
    op, y0 = paper_operator("parabolic", activation="relu", interpolation="constant", n_pieces=1)
    with torch.no_grad():
        op.layer.weight.mul_(1e3)
    with pytest.raises(pa.NonFiniteError) as e:
        pa.integrate(op, y0, "euler", n_steps=400)
    assert e.value.step is not None and f"step {e.value.step} of 400" in str(e.value) and "t = " in str(e.value)


def test_nan_in_initial_state():
    op, y0 = paper_operator("parabolic")
    y0[0, 0, 0, 0] = float("nan")
    with pytest.raises(pa.NonFiniteError, match="initial state"):
        pa.integrate(op, y0, "euler")


class _NaNAfterHalf(pa.operators.FirstOrderOperator):
    """Y' = −Y, but the right-hand side is NaN for t > 0.5."""

    def __init__(self):
        super().__init__(torch.nn.Identity())

    def vector_field(self, t, state):
        y = state[0]
        return (-y if float(t) <= 0.5 else y * float("nan"),)


def test_nan_during_adaptive_integration_names_time():
    with pytest.raises(pa.NonFiniteError, match=r"t = 0\.[5-9]") as e:
        pa.integrate(_NaNAfterHalf(), torch.ones(3), "dopri5", T=1.0)
    assert e.value.time > 0.5


@pytest.mark.parametrize("backend", ["torchdiffeq", "torchode"])
def test_deferred_nan_check_of_adaptive_solves_names_the_same_time(backend, monkeypatch):
    """On a GPU the right-hand side's NaN check is deferred to the end of the solve (one host read
    instead of one per evaluation); forced here on the CPU, it names the first non-finite
    evaluation's time as the per-evaluation check does, and changes nothing in a finite solve."""
    pytest.importorskip(backend)
    from pdenet_analysis.schemes import adaptive

    scheme = pa.schemes.get_scheme("dopri5", backend=backend)
    times = {}
    for host in (True, False):
        monkeypatch.setattr(adaptive, "HOST_CHECK_EVERY_EVALUATION", host)
        with pytest.raises(pa.NonFiniteError, match=r"t = 0\.[5-9]") as e:
            pa.integrate(_NaNAfterHalf(), torch.ones(3), scheme, T=1.0)
        times[host] = e.value.time
    assert times[False] == times[True] and times[False] > 0.5
    op, y0 = paper_operator("parabolic")
    sols = {}
    for host in (True, False):
        monkeypatch.setattr(adaptive, "HOST_CHECK_EVERY_EVALUATION", host)
        sols[host] = pa.integrate(op, y0, scheme)
    assert torch.equal(sols[True].y, sols[False].y) and sols[True].stats == sols[False].stats


@pytest.mark.parametrize("backend", ["torchdiffeq", "torchode"])
@pytest.mark.parametrize("host", [True, False])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nonfinite_initial_state_of_adaptive_solves_is_named(backend, host, bad, monkeypatch):
    """A NaN or Inf in the initial state is named as such, whether it is read at once (the CPU's
    default) or with the evaluations' deferred check at the end of the solve (a GPU's: no host read
    before the solve starts)."""
    pytest.importorskip(backend)
    from pdenet_analysis.schemes import adaptive

    monkeypatch.setattr(adaptive, "HOST_CHECK_EVERY_EVALUATION", host)
    op, y0 = paper_operator("parabolic")
    y0 = y0.clone()
    y0.view(-1)[3] = bad
    with pytest.raises(pa.NonFiniteError, match="initial state contains NaN or Inf") as e:
        pa.integrate(op, y0, pa.schemes.get_scheme("dopri5", backend=backend, max_steps=50))
    assert e.value.step == 0 and e.value.time == 0.0


def test_nan_during_fixed_integration_of_custom_operator():
    with pytest.raises(pa.NonFiniteError, match=r"step 7 of 10 \(t = 0.7\)"):
        pa.integrate(_NaNAfterHalf(), torch.ones(3), "euler", T=1.0, n_steps=10)


class _NaNAfterHalfSecondOrder(pa.operators.SecondOrderOperator):
    """Y'' = −Y, but the acceleration is NaN for t > 0.5."""

    def __init__(self):
        super().__init__(torch.nn.Identity())

    def acceleration(self, t, y):
        return -y if float(t) <= 0.5 else y * float("nan")


@pytest.mark.parametrize("keep_last", [0, 2, 4, 10])
def test_nan_during_reversible_integration_names_the_step(keep_last):
    """The reversible gradient's forward pass runs the first steps without a graph and the last
    ``keep_last`` with one; wherever the NaN appears, the error names the same step."""
    from pdenet_analysis.gradients import Reversible

    y0 = torch.ones(3, requires_grad=True)
    with pytest.raises(pa.NonFiniteError, match=r"step 7 of 10 \(t = 0.7\)"):
        pa.integrate(_NaNAfterHalfSecondOrder(), y0, "leapfrog", T=1.0, n_steps=10,
                     gradient=Reversible(keep_last=keep_last))


@pytest.mark.parametrize("keep_last", [-1, 1.5, "1", True, None])
def test_bad_keep_last(keep_last):
    from pdenet_analysis.gradients import Reversible

    with pytest.raises(pa.InvalidArgumentError, match="keep_last.*integer ≥ 0"):
        Reversible(keep_last=keep_last)


@pytest.mark.float64
def test_dtype_mismatch_is_explained():
    op, y0 = paper_operator("parabolic")
    with pytest.raises(pa.TensorTypeError, match="dtype"):  # a PDENetError and a TypeError
        pa.integrate(op, y0.float(), "euler")


def test_adaptive_failure_is_an_integration_error():
    op, y0 = paper_operator("parabolic")
    with pytest.raises(pa.IntegrationError, match="max_num_steps|failed"):
        pa.integrate(op, y0, "dopri5", rtol=1e-14, atol=1e-16, max_steps=3)


def test_throw_false_returns_the_failure_of_a_fixed_step_run():
    """A sweep over step sizes records its unstable points instead of stopping at the first."""
    with pytest.raises(pa.NonFiniteError) as raised:
        pa.integrate(_NaNAfterHalf(), torch.ones(3), "euler", T=1.0, n_steps=10)
    sol = pa.integrate(_NaNAfterHalf(), torch.ones(3), "euler", T=1.0, n_steps=10, throw=False)
    assert sol.status == "nonfinite" and not sol.ok and sol.y is None
    assert sol.failed_step == raised.value.step == 7 and sol.failed_time == pytest.approx(0.7)
    assert "step 7 of 10" in sol.message and sol.stats.n_evals > 0
    with pytest.raises(pa.IntegrationError, match="did not succeed"):
        sol.state
    ok = pa.integrate(_NaNAfterHalf(), torch.ones(3), "euler", T=0.5, n_steps=10, throw=False)
    assert ok.ok and ok.status == "success" and torch.isfinite(ok.y).all()


def test_throw_false_reports_adaptive_budget_and_nonfinite_failures():
    op, y0 = paper_operator("parabolic")
    sol = pa.integrate(op, y0, "dopri5", rtol=1e-14, atol=1e-16, max_steps=3, throw=False)
    assert sol.status == "max_steps_reached" and "max_num_steps" in sol.message
    sol = pa.integrate(_NaNAfterHalf(), torch.ones(3), "dopri5", T=1.0, throw=False)
    assert sol.status == "nonfinite" and sol.failed_time > 0.5
    with pytest.raises(ValueError, match="n_steps"):  # bad arguments still raise
        pa.integrate(op, y0, "euler", n_steps=0, throw=False)


def test_hamiltonian_tuple_with_mismatched_shapes():
    op = pa.hamiltonian(4, T=1.0, n_pieces=2)
    with pytest.raises(pa.ShapeError, match="Y0 and Z0 .* same shape"):
        pa.integrate(op, (torch.randn(1, 2, 5, 5), torch.randn(1, 2, 4, 4)), "verlet")


@pytest.mark.parametrize("scheme,option", [("euler", "h"), ("rk4", "rtol"), ("verlet", "atol"), ("dopri5", "h")])
def test_options_a_scheme_does_not_take_say_which_it_takes(scheme, option):
    op, y0 = paper_operator("parabolic" if scheme != "verlet" else "hamiltonian")
    with pytest.raises(pa.IncompatibleSchemeError, match=f"{scheme}' does not take {option}.*adaptive schemes take rtol"):
        pa.integrate(op, y0, scheme, **{option: 0.1})


@pytest.mark.float64
def test_reverse_refuses_another_operator_and_another_step_count():
    op, y0 = paper_operator("hamiltonian")
    sol = pa.integrate(op, y0, "verlet", n_steps=4)
    other, _ = paper_operator("hamiltonian", seed=1)
    with pytest.raises(ValueError, match="another operator"):
        pa.reverse(other, sol)
    with pytest.raises(ValueError, match="took 4 steps"):
        pa.reverse(op, sol, n_steps=8)
    import copy

    back = pa.reverse(copy.deepcopy(op).double(), sol)  # a copy with the same weights is the same operator
    assert back[0].shape == y0[:, :2].shape


@pytest.mark.parametrize("bad", ["channels", "rank", "dtype"])
def test_images_a_network_cannot_take_name_what_it_takes(bad):
    m = pa.build_preset("digits-parabolic").float()
    x = {"channels": torch.randn(2, 3, 8, 8).float(), "rank": torch.randn(1, 8, 8).float(),
         "dtype": torch.randn(2, 1, 8, 8, dtype=torch.float64)}[bad]
    err = pa.TensorTypeError if bad == "dtype" else pa.ShapeError
    with pytest.raises(err, match="digits-parabolic"):
        m(x)


def test_small_or_empty_requests_are_refused():
    from pdenet_analysis import analysis as A

    op, y0 = paper_operator("parabolic")
    with pytest.raises(ValueError, match="positive integer factor"):
        op.grid.refined(-1)
    J = JacobianOperator(lambda v: 2 * v, torch.randn(10))
    for k in (0, 11, 2.5):
        with pytest.raises(ValueError, match="k must be an integer between 1 and .* 10"):
            eigs(J, k=k)
    full = eigs(J, k=10)  # as many values as unknowns: all of them, exactly
    assert full.status == "converged" and len(full.values) == 10 and np.allclose(full.values, 2.0)
    with pytest.raises(ValueError, match="at least two step counts"):
        A.convergence_study(op, y0, "euler", [])
    with pytest.raises(ValueError, match="t_eval must be increasing finite times from 0 to at most T"):
        pa.integrate(op, y0, "dopri5", trajectory=True, t_eval=torch.tensor([0.0, 2.0]))


@pytest.mark.parametrize("analysis", ["spectrum_along_trajectory", "conditioning", "energy"])
def test_analyses_with_throw_false_report_a_blow_up_instead_of_raising(analysis, tmp_path):
    from pdenet_analysis import analysis as A

    op, y0 = paper_operator("parabolic", activation="relu", interpolation="constant", n_pieces=1)
    with torch.no_grad():
        op.layer.weight.mul_(1e3)
    fn = getattr(A, analysis)
    with pytest.raises(pa.NonFiniteError):
        fn(op, y0, "euler", n_steps=400)
    rep = fn(op, y0, "euler", n_steps=400, throw=False)
    assert not rep.ok and rep.failure["status"] == "nonfinite" and rep.failure["step"] is not None
    paths = rep.save(str(tmp_path))
    assert "failed (nonfinite)" in open(paths["md"]).read()
    ok = fn(*paper_operator("parabolic"), "euler", n_steps=2, throw=False)
    assert ok.ok and ok.failure is None


def test_unknown_dtype_name_in_reversibility():
    op, y0 = paper_operator("hamiltonian", channels=4)
    with pytest.raises(pa.UnknownNameError, match="unknown dtype 'float8'.*bfloat16"):
        pa.analysis.reversibility(op, y0, "verlet", dtypes=("float64", "float8"))


def test_reversibility_takes_torch_dtypes():
    op, y0 = paper_operator("hamiltonian", channels=4)
    rep = pa.analysis.reversibility(op, y0, "verlet", dtypes=(torch.float64,), n_steps_list=(2,))
    assert rep.data["results"][0]["dtype"] == "float64"
    assert rep.data["results"][0]["relative_error"] < 1e-12


@pytest.mark.parametrize("preset", ["digits-parabolic", "cifar10-hamiltonian"])
def test_network_names_its_input(preset):
    net = pa.build_preset(preset).eval()
    c, m = net.config["in_channels"], net.min_image_size
    with pytest.raises(pa.ShapeError, match=rf"{preset} takes images shaped \(N, {c}, H, W\)"):
        net(torch.randn(2, c + 1, 16, 16))
    with pytest.raises(pa.ShapeError, match=rf"at least {m}×{m} pixels, got {m // 2}×{m}"):
        net(torch.randn(2, c, m // 2, m))
    w = next(net.parameters()).dtype
    other = torch.float32 if w == torch.float64 else torch.float64
    with pytest.raises(pa.TensorTypeError, match=f"{w} weights but got {other} images"):
        net(torch.randn(2, c, m, m, dtype=other))
    with pytest.raises(pa.TensorTypeError, match="takes a torch.Tensor"):
        net(np.zeros((2, c, m, m)))
    assert net(torch.randn(2, c, m, m, dtype=w)).shape == (2, net.config["n_classes"])  # the smallest size runs



@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_adaptive_finiteness_checks_are_exact_for_float32_fields(dtype):
    """Both checks of an adaptive solve's right-hand side (on the host per evaluation; deferred:
    one float64 sum per evaluation, read once) pass a field of entries 3·10³⁸, finite although the
    sum of its entries in its own precision is not, and name the first evaluation with a NaN or an
    Inf among finite ones."""
    import types

    from pdenet_analysis.schemes.adaptive import _Field

    y = torch.zeros(4, 64, dtype=dtype)
    huge = torch.full_like(y, 3e38)
    assert torch.isfinite(huge).all() and not torch.isfinite(huge.sum())
    values = {0.1: huge, 0.2: huge.clone().index_fill_(1, torch.tensor([5]), float("nan")), 0.3: -huge,
              0.4: huge.clone().index_fill_(1, torch.tensor([7]), float("inf"))}
    op = types.SimpleNamespace(operator=torch.nn.Identity(), vector_field=lambda t, state: (values[round(float(t), 6)],))
    field = _Field(op, None)
    field(torch.tensor(0.1), (y,))
    with pytest.raises(pa.NonFiniteError, match=r"t = 0\.2"):
        field(torch.tensor(0.2), (y,))
    for first_bad in (0.2, 0.4):
        field.defer_checks()
        for t in (0.1, 0.3, first_bad, 0.3, 0.2):
            field(torch.tensor(t, dtype=torch.float64), (y,))
        with pytest.raises(pa.NonFiniteError, match=rf"t = {first_bad}"):
            field.raise_if_nonfinite()
    field.defer_checks()
    field(torch.tensor(0.1), (y,))
    field(torch.tensor(0.3), (y,))
    field.raise_if_nonfinite()  # all finite: nothing raised


@pytest.mark.parametrize("analysis", ["conditioning", "spectrum_along_trajectory"])
@pytest.mark.parametrize("arg,value,match", [
    ("tol", -1.0, "tol is a relative tolerance"), ("tol", 0.0, "tol is a relative tolerance"),
    ("tol", "1e-8", "tol is a relative tolerance"), ("failure_probability", 0.0, "failure_probability.*strictly between"),
    ("failure_probability", 1.0, "failure_probability.*strictly between"),
    ("failure_probability", float("nan"), "failure_probability"), ("seed", -1, "seed must be a non-negative integer"),
    ("seed", 1.5, "seed must be"), ("seed", True, "seed must be")])
def test_analysis_arguments_out_of_range_are_named(analysis, arg, value, match):
    from pdenet_analysis import analysis as A

    op, y0 = paper_operator("parabolic", channels=2, size=4)
    with pytest.raises(pa.InvalidArgumentError, match=match):
        getattr(A, analysis)(op, y0, "euler", n_steps=2, **{arg: value})


@pytest.mark.parametrize("delta", [-1e-6, 1.0, float("nan"), "0"])
def test_stability_margin_out_of_range_is_named(delta):
    from pdenet_analysis import analysis as A

    op, y0 = paper_operator("parabolic", channels=2, size=4)
    with pytest.raises(pa.InvalidArgumentError, match="delta is the margin of the unit circle"):
        A.stability(op, y0, 'euler', n_steps=2, delta=delta)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_analyses_of_a_low_precision_state_say_how_to_convert(dtype):
    """The Krylov solvers and dense spectra work in float32 or float64: a half-precision operator
    gets a named error (it was torch's "not implemented for 'Half'")."""
    from pdenet_analysis import analysis as A

    op, y0 = paper_operator("parabolic", channels=2, size=4)
    op, y0 = op.to(dtype), y0.to(dtype)
    for analysis in (A.conditioning, A.stability):
        with pytest.raises(pa.InvalidArgumentError, match=r"float32 or float64.*\.double\(\)"):
            analysis(op, y0, "euler", n_steps=2)
