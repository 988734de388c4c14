"""Every user mistake on the command line is one line on stderr and exit code 2, checked before
any work is done; an internal error is one line and exit code 1 (the traceback behind --debug)."""

import subprocess
import sys

import pytest
import torch

from pdenet_analysis.cli import main

TRAIN = ["train", "--dataset", "digits", "--model", "digits-parabolic", "--epochs", "1"]

CASES = {
    "cuda without CUDA (train)": (TRAIN + ["--device", "cuda"], "CUDA is not available"),
    "cuda without CUDA (analyze)": (["analyze", "digits-parabolic", "--device", "cuda"], "CUDA is not available"),
    "bad device name": (["analyze", "digits-parabolic", "--device", "gpu0"], "not a device name"),
    "negative learning rate": (TRAIN + ["--lr", "-0.1"], "--lr must be a positive"),
    "infinite learning rate": (TRAIN + ["--lr", "inf"], "--lr must be a positive"),
    "negative steps": (TRAIN + ["--steps", "-1"], "--steps must be a positive integer"),
    "zero steps": (["analyze", "digits-parabolic", "--steps", "0"], "--steps must be a positive integer"),
    "zero epochs": (["train", "--dataset", "digits", "--model", "digits-parabolic", "--epochs", "0"], "--epochs must be"),
    "zero examples": (["analyze", "digits-parabolic", "--examples", "0"], "--examples must be"),
    "negative count examples": (["analyze", "digits-parabolic", "--count-examples", "-1"], "--count-examples must be"),
    "negative reduced dense max": (["analyze", "digits-parabolic", "--reduced-dense-max", "-5"], "--reduced-dense-max must be"),
    "zero count budget": (["analyze", "digits-parabolic", "--count-budget", "0"], "--count-budget must be a positive"),
    "negative reduced sparse max": (["analyze", "digits-parabolic", "--reduced-sparse-max", "-1"],
                                    "--reduced-sparse-max must be"),
    "failure probability out of range": (["analyze", "digits-parabolic", "--failure-probability", "1.5"],
                                         "--failure-probability is the chance"),
    "negative seed": (["analyze", "digits-parabolic", "--seed", "-1"], "--seed must be a non-negative integer"),
    "preset does not fit the data": (["train", "--dataset", "digits", "--model", "cifar10-hamiltonian"], "takes 3-channel"),
    "analyze data that does not fit": (["analyze", "cifar10-hamiltonian", "--dataset", "digits"], "takes 3-channel"),
    "unknown preset": (["analyze", "nope-model"], "no file or preset named 'nope-model'"),
    "missing model file": (["analyze", "runs/none/checkpoint.pt"], "no model file runs/none/checkpoint.pt"),
    "image size of a preset": (["analyze", "digits-hamiltonian", "--image-size", "1"], "--image-size does nothing"),
    "data dir without a data set": (["analyze", "cifar10-parabolic", "--data-dir", "x"], "add --dataset"),
    "tolerance of a fixed-step scheme (analyze)": (["analyze", "digits-parabolic", "--rtol", "1e-3"],
                                                    "adaptive scheme"),
    "tolerance of a fixed-step scheme (train)": (TRAIN + ["--scheme", "rk4", "--atol", "1e-3"], "adaptive scheme"),
    "several values without --grid": (["evaluate", "digits-parabolic", "--steps", "3,6"], "add --grid"),
    "evaluate a model with no data set": (["evaluate", "digits-parabolic"], "--dataset"),
    "preset name in the other order": (["analyze", "parabolic-digits"], "did you mean 'digits-parabolic'"),
    "unknown scheme": (["analyze", "digits-parabolic", "--scheme", "rk5"], "valid schemes"),
    "unknown tableau": (["tableaux", "dorpi5"], "did you mean 'dopri5'?); valid tableaux"),
    "unknown dataset": (["train", "--dataset", "nope", "--model", "digits-parabolic"], "valid datasets"),
    "scheme for another operator kind": (["analyze", "digits-hamiltonian", "--scheme", "leapfrog"], "leapfrog"),
    "keep-last without the reversible gradient": (TRAIN + ["--keep-last", "1"], "add --gradient reversible"),
    "bfloat16 autocast with float64": (TRAIN + ["--amp", "--dtype", "float64"], "--dtype float64 rules out"),
    "coupling without a scheme": (TRAIN + ["--coupling", "0.9"], "add --scheme reversible_heun"),
    "coupling of a scheme that has none": (["analyze", "digits-parabolic", "--scheme", "euler", "--coupling", "0.9"],
                                           "does not take coupling"),
    "coupling out of range": (TRAIN + ["--scheme", "reversible_heun", "--coupling", "1.5"], "in (0, 1]"),
    "reversible rebuild swamped by round-off": (TRAIN + ["--scheme", "reversible_heun", "--steps", "20", "--gradient",
                                                         "reversible"], "at most 13 rebuilt steps"),
    "negative keep-last": (["train", "--dataset", "digits", "--model", "digits-hamiltonian", "--gradient", "reversible",
                            "--keep-last", "-1"], "keep_last"),
    "CUDA graph with an adaptive scheme": (TRAIN + ["--cuda-graph", "--scheme", "dopri5", "--device",
                                                    "cuda" if torch.cuda.is_available() else "cpu"], "fixed-step"),
}
if not torch.cuda.is_available():  # where there is a GPU these are not mistakes
    CASES["CUDA graph on the CPU"] = (TRAIN + ["--cuda-graph"], "needs a CUDA device")
else:
    for name in ("cuda without CUDA (train)", "cuda without CUDA (analyze)"):
        CASES.pop(name)


@pytest.mark.parametrize("name", sorted(CASES))
def test_user_mistakes_are_one_line_and_exit_2(name, capsys):
    argv, message = CASES[name]
    assert main(argv) == 2, name
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pdenet-analysis: error:") and message in err[0], err


def test_out_pointing_at_a_file_is_refused_before_any_work(tmp_path, capsys):
    f = tmp_path / "results.txt"
    f.write_text("keep me")
    assert main(TRAIN + ["--out", str(f)]) == 2
    assert "is an existing file" in capsys.readouterr().err
    assert f.read_text() == "keep me"


def test_model_file_that_is_not_a_checkpoint(tmp_path, capsys):
    f = tmp_path / "model.pt"
    f.write_bytes(b"\x00" * 64)
    assert main(["analyze", str(f), "--out", str(tmp_path / "o")]) == 2
    assert "model.pt" in capsys.readouterr().err


def test_internal_error_is_one_line_exit_1_and_debug_shows_it(monkeypatch, capsys):
    import pdenet_analysis.cli as cli

    def boom(args):
        raise RuntimeError("a bug")

    parser = cli.build_parser
    monkeypatch.setattr(cli, "build_parser", lambda: _with_presets(parser(), boom))
    assert main(["presets"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error: RuntimeError: a bug" in err and "--debug" in err
    with pytest.raises(RuntimeError, match="a bug"):
        main(["--debug", "presets"])


def _with_presets(parser, fn):
    sub = next(a for a in parser._actions if a.dest == "command")
    sub.choices["presets"].set_defaults(func=fn)
    return parser


def test_the_installed_command_prints_no_traceback():
    r = subprocess.run([sys.executable, "-m", "pdenet_analysis", "train", "--dataset", "digits", "--model",
                        "digits-parabolic", "--lr", "-1"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.startswith("pdenet-analysis: error:")


def test_schemes_and_presets_have_json_output(capsys):
    import json

    import pdenet_analysis as pa

    assert main(["schemes", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == pa.available_schemes()
    assert all(set(r) == {"name", "order", "kinds", "symplectic", "reversible", "adaptive"} for r in rows)
    assert main(["presets", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"]: r["weights"] for r in rows}["cifar10-hamiltonian"] == pa.build_preset("cifar10-hamiltonian").n_parameters()


def test_tableaux_lists_the_catalogue_and_shows_one_with_the_trees_it_misses(capsys):
    import json

    import pdenet_analysis as pa

    assert main(["tableaux", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == list(pa.schemes.TABLEAUX)
    assert {r["name"]: r["order"] for r in rows}["dopri8"] == 8
    assert main(["tableaux", "rk4"]) == 0
    out = capsys.readouterr().out
    assert "order 5 fails on 9 of the 9 trees" in out and "[[[[•]]]]" in out and "2.785" in out
    assert main(["tableaux", "gauss4", "--json"]) == 0
    one = json.loads(capsys.readouterr().out)
    assert one["symplectic"] and one["a_stable"] and one["real_stability_interval"] == "inf"


def test_analyze_passes_its_analysis_options_to_the_library(monkeypatch, tmp_path):
    """--count-budget, --reduced-dense-max, --reduced-sparse-max, --count-examples, --seed and
    --failure-probability reach the library's Budget and Certification; left out, the library's
    defaults apply."""
    import pdenet_analysis.analysis as A

    seen = []
    monkeypatch.setattr(A, "analyze", lambda *a, **kw: seen.append(kw) or A.Analysis("net", "images"))
    out = str(tmp_path / "o")
    assert main(["analyze", "digits-parabolic", "--examples", "1", "--quiet", "--out", out, "--count-budget", "123",
                 "--reduced-dense-max", "7", "--reduced-sparse-max", "9", "--count-examples", "0", "--seed", "4",
                 "--failure-probability", "1e-3"]) == 0
    assert main(["analyze", "digits-parabolic", "--examples", "1", "--quiet", "--out", out]) == 0
    b, c = seen[0]["budget"], seen[0]["certification"]
    assert (b.count_budget, b.reduced_dense_max, b.reduced_sparse_max, b.count_examples) == (123, 7, 9, None)
    assert (c.seed, c.failure_probability) == (4, 1e-3)
    assert seen[1]["budget"] == A.Budget(count_examples=1) and seen[1]["certification"] == A.Certification()
