"""The GPU campaign refuses cleanly where there is no GPU, and names every part it would run."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # a subprocess
@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU machine the campaign would really run")
def test_campaign_without_cuda_says_so_and_measures_nothing():
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "gpu" / "gpu_campaign.py"), "--budget-min", "1"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "no CUDA device" in r.stderr


def test_campaign_parts_point_at_existing_scripts():
    gpu_campaign = _campaign()
    names = [p[0] for p in gpu_campaign.PARTS]
    assert names == ["training", "regulariser", "memory", "reversible_peers", "guards", "tests", "analysis", "analysis_stl10", "analyze", "adaptive", "trained_networks", "study",
                     "tests_full"]
    args = type("A", (), dict(data_root="data", compile=["hamiltonian"]))()
    for _, least, most, cmd in gpu_campaign.PARTS:
        argv = cmd(args)
        scripts = [a for a in argv if a.endswith(".py")]
        assert all((ROOT / s).exists() for s in scripts), argv
        if "study" in argv:  # a study the package has, with options its command takes
            from pdenet_analysis.studies import available_studies

            assert argv[argv.index("study") + 1] in available_studies() and "--out" in argv
        assert 0 < least <= most
    assert gpu_campaign.parse_caps(["training=2.5", "tests=1"]) == {"training": 2.5, "tests": 1.0}
    for bad in (["training"], ["nope=2"], ["memory=-1"], ["memory=x"]):
        with pytest.raises(SystemExit, match="PART=MINUTES"):
            gpu_campaign.parse_caps(bad)


@pytest.mark.slow
def test_dry_run_runs_every_part_on_the_cpu(tmp_path):
    """``--dry-run``: every part's script runs on the CPU at its smallest sizes and ends well, into
    the scratch folder only (nothing under benchmarks/results changes); a part left out says why."""
    import json

    results = ROOT / "benchmarks" / "results"
    before = {p: p.stat().st_mtime_ns for p in results.rglob("*") if p.is_file()}
    scratch = tmp_path / "dry"
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "gpu" / "gpu_campaign.py"), "--dry-run", "--jobs", "2",
                        "--scratch", str(scratch)], capture_output=True, text=True, timeout=900)
    summary = json.loads((scratch / "gpu_campaign.json").read_text())
    status = {p["part"]: p["status"] for p in summary["parts"]}
    assert r.returncode == 0, (status, r.stdout[-3000:])
    assert summary["dry_run"] and list(status) == [p[0] for p in _campaign().PARTS]
    for part, s in status.items():
        assert s == "ok" or (s == "not run in the dry run" and part == "study"), (part, s)
    assert (scratch / "memory.json").exists()
    peers = json.loads((scratch / "reversible_peers.json").read_text())["results"]
    for row in peers:  # the recorded (CUDA-graph) timing path ran, with an eager stand-in
        g = row["cuda_graph"]
        assert not g["errors"] and set(g["time_over_backprop"]) == {"reversible", "reversible keep_last=1"}
        assert max(g["grad_rel_diff_vs_backprop"].values()) < 1e-5
    after = {p: p.stat().st_mtime_ns for p in results.rglob("*") if p.is_file()}
    assert after == before


def _benchmark_module(name: str):
    """A script of tools/gpu/ imported as a module (under its own name, as its neighbour imports it)."""
    import importlib.util

    if name not in sys.modules:
        if name != "gpu_campaign":
            _benchmark_module("gpu_campaign")  # prepare_gpu_lease imports it by name
        spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / "gpu" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _campaign():
    return _benchmark_module("gpu_campaign")


@pytest.mark.slow  # a subprocess
def test_a_misspelt_part_is_refused_before_anything_runs():
    """``--only fashion-mnist`` used to match no part and run nothing, a lease's worth of silence."""
    gpu_campaign = _campaign()
    assert gpu_campaign.check_parts(["trained_networks", "tests"]) == ["trained_networks", "tests"]
    assert gpu_campaign.check_parts(None) is None
    with pytest.raises(SystemExit, match="fashion-mnist: no such part"):
        gpu_campaign.check_parts(["fashion-mnist"])
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "gpu" / "gpu_campaign.py"), "--only", "trainig"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "trainig: no such part" in r.stderr


def test_lease_preparation_finds_what_is_missing_and_writes_a_command_the_tool_takes(tmp_path):
    prep = _benchmark_module("prepare_gpu_lease")
    assert prep.missing_idx(str(tmp_path)) == list(prep.IDX_FILES)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"x")
    assert "train-images-idx3-ubyte.gz" not in prep.missing_idx(str(tmp_path))
    assert prep.missing_wheels(str(tmp_path)) == [req for _, req in prep.WHEELS]
    (tmp_path / "typeguard-2.13.3-py3-none-any.whl").write_bytes(b"x")
    assert "typeguard<3" not in prep.missing_wheels(str(tmp_path))
    assert prep.size_mib(str(tmp_path)) == pytest.approx(2 / 2**20) and prep.size_mib(str(tmp_path / "none")) == 0

    cmd = prep.device_command("abc1234", 8.5, 590, ["trained_networks"], ["trained_networks=8"])
    assert len(cmd) <= prep.COMMAND_LIMIT and "PDENET_COMMIT=abc1234" in cmd
    assert ("timeout 580 python3 tools/gpu/gpu_campaign.py --budget-min 8.5 --only trained_networks "
            "--cap trained_networks=8") in cmd
    assert cmd.endswith("tar czf $OUT/results.tgz benchmarks/results runs")
    with pytest.raises(SystemExit, match="no time to write its summary"):
        prep.device_command("abc1234", 9.8, 590)
    with pytest.raises(SystemExit, match="no such part"):
        prep.device_command("abc1234", 8.5, 590, ["analyse"])
    with pytest.raises(SystemExit, match="PART=MINUTES"):
        prep.device_command("abc1234", 8.5, 590, [], ["analysis"])
