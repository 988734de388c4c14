"""The analyses' floating-point formats: IEEE float32 on every device (TensorFloat-32 off), the
TF32 row of the reversibility report, and the process's settings restored."""

import pytest
import torch

import pdenet_analysis.analysis as A
from pdenet_analysis.analysis.precision import DTYPES, UNIT_ROUNDOFF, dtype_named, float32_products, ieee_float32
from pdenet_analysis.errors import UnknownNameError

from ..helpers import paper_operator


def _flags():
    if hasattr(torch.backends.cudnn, "conv"):
        return torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision
    return torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32


@pytest.mark.parametrize("tf32", [False, True])
def test_float32_products_sets_the_mode_and_restores_it_even_on_an_error(tf32):
    before = _flags()
    with pytest.raises(RuntimeError, match="inside"):
        with float32_products(tf32=tf32):
            inside = _flags()
            raise RuntimeError("inside")
    assert _flags() == before
    if hasattr(torch.backends.cudnn, "conv"):
        assert inside == (("tf32", "tf32") if tf32 else ("ieee", "ieee"))
    else:
        assert inside == (tf32, tf32)


def test_the_analyses_run_in_ieee_float32():
    seen, before = [], _flags()

    @ieee_float32()
    def probe():
        seen.append(_flags())

    probe()
    probe()  # a decorator that can be entered again
    ieee = ("ieee", "ieee") if hasattr(torch.backends.cudnn, "conv") else (False, False)
    assert seen == [ieee, ieee] and _flags() == before


def test_every_named_format_has_its_unit_roundoff_and_bad_names_are_refused():
    assert set(DTYPES) == set(UNIT_ROUNDOFF)
    for name, dt in DTYPES.items():
        assert dtype_named(name) == (name, dt)
        if dt != torch.float32:
            assert UNIT_ROUNDOFF[name] == pytest.approx(torch.finfo(dt).eps / 2)
    assert UNIT_ROUNDOFF["float32"] == torch.finfo(torch.float32).eps / 2
    with pytest.raises(UnknownNameError, match="float33"):
        dtype_named("float33")


def test_reversibility_reports_tensorfloat32_where_asked_and_by_default_on_cuda(device):
    op, y0 = paper_operator("hamiltonian", channels=4, size=5)
    op, y0 = op.to(device), y0.to(device)
    default = A.reversibility(op, y0, "verlet", n_steps_list=(2,))
    names = [r["dtype"] for r in default.data["results"]]
    assert names == ["float64", "float32", *(["tensorfloat32"] if device.type == "cuda" else []), "bfloat16"]
    rep = A.reversibility(op, y0, "verlet", n_steps_list=(2, 4), dtypes=("float32", "tensorfloat32"))
    err = {(r["dtype"], r["n_steps"]): r["relative_error"] for r in rep.data["results"]}
    for n in (2, 4):
        assert err["float32", n] < 50 * UNIT_ROUNDOFF["float32"]  # IEEE float32 on every device
        assert err["tensorfloat32", n] < 50 * UNIT_ROUNDOFF["tensorfloat32"]
        if device.type == "cpu":  # no TF32 on the CPU: the same computation
            assert err["tensorfloat32", n] == err["float32", n]
    assert "tensorfloat32 4.9e-04" in rep.notes[0] and "TF32 products" in rep.notes[1]


def test_every_report_function_runs_in_ieee_float32():
    """The decorator every report analysis carries (stability, conditioning, density,
    reversibility, energy) switches TensorFloat-32 off for its body."""
    from pdenet_analysis.analysis.results import sweepable

    before = _flags()
    probe = sweepable("probe")(_flags)
    ieee = ("ieee", "ieee") if hasattr(torch.backends.cudnn, "conv") else (False, False)
    with float32_products(tf32=True):
        assert probe() == ieee
    assert _flags() == before
