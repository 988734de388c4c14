"""The single entry point ``pa.analyze`` and the analyses' surface: small signatures, option
objects validated once, typed results rendered in a separate step, reports a researcher reads."""

import inspect
import re
import warnings

import numpy as np
import pytest
import torch

import pdenet_analysis as pa
from pdenet_analysis import analysis as A
from pdenet_analysis.analysis import Budget, Certification

from ..helpers import paper_operator

pytestmark = pytest.mark.float64


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return pa.build_preset("digits-hamiltonian").double().eval()


def test_analyze_finds_a_later_blocks_input_itself(net):
    """Block 1 from Python with no forward hook: the same result as analysing that block on the
    input a hook records."""
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    res = pa.analyze(net, x, blocks=[1], analyses=["stability"], progress=False)
    assert list(res.units) == [1]
    seen = {}
    hook = net.blocks[1].register_forward_hook(lambda m, inp, out: seen.setdefault("x", inp[0].detach()))
    with torch.no_grad():
        net(x)
    hook.remove()
    ref = pa.analyze(net.blocks[1], seen["x"], analyses=["stability"], progress=False)[0]["stability"]
    got = res[1]["stability"]
    assert isinstance(got, A.StabilityResult)
    assert [s.max_amplification for s in got.steps] == pytest.approx([s.max_amplification for s in ref.steps],
                                                                      rel=1e-12)
    assert [s.n_outside_max for s in got.steps] == [s.n_outside_max for s in ref.steps]


def test_analyze_takes_an_operator_with_a_scheme_and_types_its_results():
    op, y0 = paper_operator("hamiltonian", channels=2, size=4)
    res = pa.analyze(op, y0, "verlet", n_steps=4, progress=False)
    unit = res[0]
    assert set(unit.results) == {"stability", "conditioning", "density", "reversibility", "convergence", "energy"}
    cond = unit["conditioning"]
    assert isinstance(cond, A.ConditioningResult) and cond.smallest.route.startswith("dense")
    assert all(e.condition_upper_probable >= e.condition for e in cond.examples)
    st = unit["stability"]
    assert all(len(s.examples) == 2 and s.examples[0].count.exact for s in st.steps)
    assert unit["reversibility"].worst("float64") < 1e-12
    assert st.data["steps"][0]["max_amplification"] == st.steps[0].max_amplification  # JSON stays available


def test_an_analysis_asked_for_that_does_not_apply_is_refused():
    op, y0 = paper_operator("parabolic", channels=2, size=4)
    with pytest.raises(pa.InvalidArgumentError, match="reversibility needs a scheme with an exact inverse"):
        pa.analyze(op, y0, "euler", analyses=["reversibility"], progress=False)
    with pytest.raises(pa.InvalidArgumentError, match="unknown analysis 'stabilty'"):
        pa.analyze(op, y0, "euler", analyses=["stabilty"], progress=False)
    with pytest.raises(pa.InvalidArgumentError, match="blocks chooses among a network's PDE blocks"):
        pa.analyze(op, y0, "euler", blocks=[0], progress=False)
    with pytest.raises(pa.InvalidArgumentError, match="'features' .* needs a network"):
        pa.analyze(op, y0, "euler", analyses=["features"], progress=False)


def test_the_options_are_validated_once_when_built():
    with pytest.raises(pa.InvalidArgumentError, match="Budget.count_budget"):
        Budget(count_budget=0)
    with pytest.raises(pa.InvalidArgumentError, match="Certification.failure_probability"):
        Certification(failure_probability=2.0)
    with pytest.raises(pa.InvalidArgumentError, match="budget must be a Budget"):
        A.stability(*paper_operator("parabolic", channels=2, size=3), "euler", budget=dict(dense_max=0))


def test_the_former_keywords_still_work_with_a_deprecation_warning():
    op, y0 = paper_operator("parabolic", channels=2, size=3)
    new = A.conditioning(op, y0, "euler", certification=Certification(tol=1e-10), budget=Budget(dense_max=0))
    with pytest.warns(DeprecationWarning, match=r"certification=Certification\(tol=...\); budget=Budget\(dense_max"):
        old = A.conditioning(op, y0, "euler", tol=1e-10, dense_max=0)
    assert old.data["examples"] == new.data["examples"]
    with pytest.warns(DeprecationWarning, match="spectrum_along_trajectory is deprecated"):
        A.spectrum_along_trajectory(op, y0, "euler")
    with pytest.raises(pa.InvalidArgumentError, match="rtol set the error control of an adaptive scheme"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            A.stability(op, y0, "euler", rtol=1e-3)


def test_no_public_analysis_function_takes_more_than_12_parameters():
    for name in A.__all__:
        obj = getattr(A, name)
        if inspect.isfunction(obj):
            named = [p for p in inspect.signature(obj).parameters.values() if p.kind is not p.VAR_KEYWORD]
            assert len(named) <= 12, (name, len(named))


def test_the_analysis_package_exports_what_users_call():
    assert A.__all__[0] == "analyze" and pa.analyze is A.analyze
    internal = {"distribution", "COUNT_BUDGET", "count_outside", "step_map_spectra", "golub_kahan", "gmres"}
    assert not internal & set(A.__all__)
    with pytest.warns(DeprecationWarning, match="import it from pdenet_analysis.analysis.steps"):
        assert A.distribution is pa.analysis.steps.distribution


def _sentences(text: str) -> int:
    """Sentences of a note: full stops followed by a space and a capital, plus the last one."""
    return 1 + len(re.findall(r"[.!?] (?=[A-Z])", text.strip().rstrip(".")))


@pytest.mark.slow  # analyses every block with every analysis (10 s)
def test_every_report_names_its_model_and_block_and_keeps_its_notes_to_two_sentences(net, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    res = pa.analyze(net, torch.randn(2, 1, 8, 8, dtype=torch.float64), blocks=[0], progress=False)
    for unit in res:
        for name, result in unit.results.items():
            rep = result.report(unit.context)
            assert rep.title.startswith(unit.context), (name, rep.title)
            assert sum(_sentences(n) for n in rep.notes) <= 2, (name, rep.notes)
            fig = rep.figure()
            assert unit.context in fig._suptitle.get_text(), name
            for ax in fig.axes:  # typeset labels: no ASCII "h^2" or "lambda"
                assert "^" not in ax.get_xlabel().replace("$", "") or "$" in ax.get_xlabel(), (name, ax.get_xlabel())
                assert "lambda" not in ax.get_xlabel().replace("\\lambda", ""), (name, ax.get_xlabel())
    paths = res.save(str(tmp_path))
    index = open(paths["index"]).read()
    assert "| block0 | symplectic_euler |" in index and "[stability](block0/stability.md)" in index


def test_the_step_axes_count_in_integers(net):
    from matplotlib.ticker import MaxNLocator

    st = pa.analyze(net, torch.randn(1, 1, 8, 8, dtype=torch.float64), blocks=[0], analyses=["stability"],
                    progress=False)[0]["stability"]
    fig = st.report("digits-hamiltonian, block 0").figure()
    step_axis = [ax for ax in fig.axes if "step" in ax.get_xlabel()][0]
    assert isinstance(step_axis.xaxis.get_major_locator(), MaxNLocator)
    ticks = [t for t in step_axis.get_xticks() if step_axis.get_xlim()[0] <= t <= step_axis.get_xlim()[1]]
    assert all(float(t).is_integer() for t in ticks) and np.all(np.diff(ticks) > 0)
