"""The study runner (cache, failures, corruption, resumption, parallel and submitit execution),
the study CLI, and the scheme-properties study's verdicts."""

import json
import math
import os
import subprocess
import sys

import pytest

from pdenet_analysis.studies import Study, available_studies, get_study, point_key, run_study
from pdenet_analysis.studies.runner import canonical


def square(config):
    if config["x"] == 3 and config.get("fail"):
        raise RuntimeError("point 3 fails on purpose")
    if config["x"] == int(os.environ.get("_TOY_INTERRUPT_AT", "-1")):  # a Ctrl-C in the middle of the sweep
        raise KeyboardInterrupt
    return {"x": config["x"], "y": config["x"] ** 2, "pid": os.getpid()}


def _aggregate(points, out, quick):
    return "| x | y |\n|---|---|\n" + "\n".join(f"| {p['result']['x']} | {p['result']['y']} |" for p in points)


def toy(**extra):
    return Study(name="toy", title="Toy", question="What is x²?", run=square, aggregate=_aggregate,
                 grid=lambda quick: [dict(x=i, **extra) for i in range(4 if quick else 6)])


def test_runs_every_point_then_takes_them_from_the_cache(tmp_path):
    s = run_study(toy(), str(tmp_path), quick=True, quiet=True)
    assert s["run_now"] == 4 and s["cached"] == 0 and not s["failed"]
    assert sorted(p["result"]["y"] for p in s["points"]) == [0, 1, 4, 9]
    again = run_study(toy(), str(tmp_path), quick=True, quiet=True)
    assert again["run_now"] == 0 and again["cached"] == 4
    full = run_study(toy(), str(tmp_path), quick=False, quiet=True)  # a larger grid reuses the common points
    assert full["run_now"] == 2 and full["cached"] == 4
    page = (tmp_path / "README.md").read_text()
    assert "What is x²?" in page and "| 5 | 25 |" in page and "6 points" in page


def test_point_files_carry_provenance_and_keys_depend_on_the_config(tmp_path):
    run_study(toy(), str(tmp_path), quick=True, quiet=True)
    rec = json.loads((tmp_path / "points" / f"{point_key(toy(), dict(x=1, device='cpu'))}.json").read_text())
    assert rec["config"] == dict(x=1, device="cpu") and rec["status"] == "ok"
    assert {"command", "date", "device", "torch", "commit"} <= set(rec["provenance"])
    assert point_key(toy(), dict(x=1, device="cpu")) != point_key(toy(), dict(x=1, device="cuda"))


def test_a_failing_point_is_recorded_and_the_sweep_goes_on(tmp_path):
    s = run_study(toy(fail=True), str(tmp_path), quick=True, quiet=True)
    assert [f["config"]["x"] for f in s["failed"]] == [3]
    assert "point 3 fails on purpose" in s["failed"][0]["error"]
    assert sum(p["status"] == "ok" for p in s["points"]) == 3
    assert "Failed points" in (tmp_path / "README.md").read_text()
    assert run_study(toy(fail=True), str(tmp_path), quick=True, quiet=True)["run_now"] == 0  # failures are cached
    assert run_study(toy(fail=True), str(tmp_path), quick=True, quiet=True, retry_failed=True)["run_now"] == 1


@pytest.mark.parametrize("damage", ["truncate", "edit", "foreign"])
def test_a_corrupt_cache_entry_is_detected_and_run_again(tmp_path, damage, capsys):
    run_study(toy(), str(tmp_path), quick=True, quiet=True)
    path = tmp_path / "points" / f"{point_key(toy(), dict(x=2, device='cpu'))}.json"
    text = path.read_text()
    if damage == "truncate":
        path.write_text(text[: len(text) // 2])
    elif damage == "edit":  # a plausible but wrong value: only the checksum can tell
        path.write_text(text.replace('"y": 4', '"y": 5'))
    else:
        other = tmp_path / "points" / f"{point_key(toy(), dict(x=1, device='cpu'))}.json"
        path.write_text(other.read_text())
    s = run_study(toy(), str(tmp_path), quick=True)
    assert s["run_now"] == 1
    assert [p["result"]["y"] for p in s["points"]] == [0, 1, 4, 9]
    assert "running it again" in capsys.readouterr().err
    assert path.with_suffix(".json.corrupt").exists()


def test_an_interrupted_sweep_resumes(tmp_path, monkeypatch):
    monkeypatch.setenv("_TOY_INTERRUPT_AT", "2")
    with pytest.raises(KeyboardInterrupt):
        run_study(toy(), str(tmp_path), quick=True, quiet=True)
    assert len(list((tmp_path / "points").glob("*.json"))) == 2  # x = 0, 1 finished before the interrupt
    monkeypatch.delenv("_TOY_INTERRUPT_AT")
    s = run_study(toy(), str(tmp_path), quick=True, quiet=True)
    assert s["run_now"] == 2 and s["cached"] == 2 and not s["failed"]
    assert [p["result"]["y"] for p in s["points"]] == [0, 1, 4, 9]


@pytest.mark.slow
def test_parallel_jobs_give_the_same_results(tmp_path):
    one = run_study(toy(), str(tmp_path / "one"), quick=True, quiet=True)
    two = run_study(toy(), str(tmp_path / "two"), quick=True, quiet=True, jobs=2)
    strip = [{k: v for k, v in p["result"].items() if k != "pid"} for p in one["points"]]
    assert strip == [{k: v for k, v in p["result"].items() if k != "pid"} for p in two["points"]]
    assert {p["result"]["pid"] for p in two["points"]} != {os.getpid()}  # really in other processes


@pytest.mark.slow
def test_submitit_local_executor_runs_the_same_function(tmp_path):
    pytest.importorskip("submitit")
    from pdenet_analysis.studies import scheme_properties as sp

    study = Study(name="scheme-properties-sub", title="t", question="q", run=sp.run, aggregate=lambda p, o, q: "",
                  grid=lambda quick: [dict(scheme=s, check="tableau") for s in ("ralston", "rk4_wrong_weight")])
    s = run_study(study, str(tmp_path), executor="submitit-local", quiet=True)
    assert not s["failed"], s["failed"]
    assert [p["result"]["caught"] for p in s["points"]] == [False, True]
    assert (tmp_path / "submitit").is_dir()


def test_bad_arguments(tmp_path):
    from pdenet_analysis.errors import InvalidArgumentError, UnknownNameError

    with pytest.raises(UnknownNameError, match="unknown study 'nope'; valid studies: .*scheme-properties"):
        get_study("nope")
    with pytest.raises(InvalidArgumentError, match="jobs"):
        run_study(toy(), str(tmp_path), jobs=0)
    with pytest.raises(InvalidArgumentError, match="executor"):
        run_study(toy(), str(tmp_path), executor="dask")


def test_every_study_declares_a_valid_grid():
    assert available_studies() == ["discrete-vs-continuous", "initial-blocks", "scheme-properties",
                                   "stability-along-training", "trained-networks"]
    for name in available_studies():
        study = get_study(name)
        for quick in (True, False):
            grid = study.grid(quick)
            canonical(grid)  # JSON only
            keys = [point_key(study, c) for c in grid]
            assert len(set(keys)) == len(keys) > 0


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "pdenet_analysis", *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.slow
def test_study_cli(tmp_path):
    r = _cli("study", "--list")
    assert r.returncode == 0 and "discrete-vs-continuous" in r.stdout and "scheme-properties" in r.stdout
    r = _cli("study", "nope")
    assert r.returncode == 2 and "unknown study 'nope'" in r.stderr and "Traceback" not in r.stderr
    r = _cli("study")
    assert r.returncode == 2 and "--list" in r.stderr
    r = _cli("study", "scheme-properties", "--jobs", "0")
    assert r.returncode == 2 and "--jobs" in r.stderr


@pytest.mark.slow
def test_scheme_properties_study_catches_each_defect_with_the_right_check(tmp_path):
    """The study's verdicts are the tutorial's claims: each defect is caught, and by which check."""
    s = run_study(get_study("scheme-properties"), str(tmp_path), quick=True, quiet=True)
    assert not s["failed"]
    verdict = {(p["result"]["scheme"], p["result"]["check"]): (p["result"]["applicable"], p["result"]["caught"])
               for p in s["points"]}
    caught = {k for k, (app, c) in verdict.items() if c}
    assert caught == {("rk4_wrong_weight", "tableau"), ("rk4_wrong_weight", "order"), ("rk4_wrong_weight", "hypothesis"),
                      ("verlet_inverse_sign", "inversion"), ("verlet_inverse_sign", "hypothesis"),
                      ("midpoint_wrong_node", "order"), ("midpoint_wrong_node", "hypothesis"),
                      ("rk4_wrong_weight", "certificate"), ("verlet_inverse_sign", "certificate"),
                      ("midpoint_wrong_node", "certificate")}
    assert verdict[("ralston", "order")] == (True, False) and verdict[("verlet_inverse_sign", "order")] == (True, False)
    assert "rk4_wrong_weight" not in __import__("pdenet_analysis").schemes.available_schemes()  # unregistered again
    assert (tmp_path / "README.md").exists()


def test_discrete_vs_continuous_page_pairs_the_seeds(tmp_path):
    """The page's last table pairs each network's own-scheme and converged accuracy seed by seed:
    two seeds with drops of +2.0 and 0.0 points give the mean 1.0, the range and both values; the
    matrix shows the mean over seeds, and a missing dopri5 accuracy (a failed solve) is a dash."""
    import copy

    from pdenet_analysis.studies.discrete_vs_continuous import aggregate

    def point(arch, training, seed, own, converged):
        evals = [dict(scheme=s, n_steps=n, rtol=None, accuracy=own if (s, n) in (("euler", 3), ("rk4", 12)) else 0.5)
                 for s in ("euler", "rk4") for n in (3, 12)]
        evals += [dict(scheme="dopri5", n_steps=None, rtol=r, accuracy=a) for r, a in ((1e-3, own), (1e-7, converged))]
        return dict(config=dict(seed=seed), result=dict(arch=arch, training=training, train_seconds=1.0,
                                                        evals_per_epoch=54.0, evaluations=evals))

    points = [point("parabolic", "paper", 0, 0.99, 0.97), point("parabolic", "paper", 1, 0.98, 0.98),
              point("parabolic", "rk4-12", 0, 0.95, math.nan)]
    page = aggregate(copy.deepcopy(points), str(tmp_path), quick=True)
    assert "| parabolic | paper | 0.985 (0.980 to 0.990) | 0.975 (0.970 to 0.980) | 1.0 (0.0 to 2.0) [+2.0, +0.0] | 0.500 (0.500 to 0.500) |" in page
    assert "| parabolic | rk4-12 | 0.950 | — | — | 0.500 |" in page
    assert "| paper | 1 | 54 | 0.985 | 0.500 | 0.500 | 0.985 | 0.985 | 0.975 |" in page  # means over the seeds
    assert {"heatmap_parabolic.png", "accuracy_vs_steps.png"} <= set(os.listdir(tmp_path))
