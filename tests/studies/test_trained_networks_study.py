import pytest
"""studies/trained_networks.py: the analysis of trained checkpoints, end to end on digits."""

import json
import os
import subprocess
import sys

import torch

import pdenet_analysis as pa
from pdenet_analysis.data import load_dataset
from pdenet_analysis.training import TrainConfig, train

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _script(*args, cwd):
    return subprocess.run([sys.executable, os.path.join(ROOT, "studies", "trained_networks.py"), *args],
                          capture_output=True, text=True, cwd=cwd)


@pytest.mark.slow
def test_trained_networks_study_summarises_every_block_of_every_checkpoint(tmp_path):
    data = load_dataset("digits")
    for arch in ("parabolic", "hamiltonian"):
        torch.manual_seed(0)
        train(pa.build_preset(f"digits-{arch}").float(), data,
              TrainConfig(epochs=1, progress=False, out=str(tmp_path / "runs" / arch)))
    out = tmp_path / "out"
    r = _script("--runs", str(tmp_path / "runs"), "--archs", "parabolic", "hamiltonian", "--dataset", "digits",
                "--examples", "2", "--training", "none.json", "--out", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["examples"] == 2 and summary["provenance"]["command"]
    for arch, scheme in (("parabolic", "euler"), ("hamiltonian", "symplectic_euler")):
        net = summary["networks"][arch]
        assert len(net["sha256"]) == 64 and net["test_accuracy"] is None
        assert len(net["blocks"]) == len(pa.build_preset(f"digits-{arch}").blocks)
        for block in net["blocks"]:
            assert block["scheme"] == scheme and len(block["steps"]) == 3
            assert all(s["exact"] for s in block["steps"])  # every example counted completely
            assert block["conditioning"]["all_converged"]
            c = block["conditioning"]
            assert c["certified"] == c["bracketed"] == 2 and 0 <= c["widest_bracket"] < 1e-3
            assert c["p5"] <= c["median"] <= c["p95"] <= c["max"]
            for s in block["steps"]:
                assert s["examples"] == 2 and 0 <= s["unstable_examples"] <= 2 and s["radius_median"] <= s["radius"]
                assert (s["unstable_examples"] > 0) == (s["radius"] > 1 + 1e-6)
            assert ("reversibility" in block) == (arch == "hamiltonian")
    table = (out / "summary.md").read_text()
    assert "### parabolic (euler)" in table and "| block | κ median |" in table
    assert (out / "trained_networks.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "parabolic" / "block0" / "stability.md").exists()
    again = _script("--replot", "--out", str(out), cwd=tmp_path)
    assert again.returncode == 0 and (out / "summary.md").read_text() == table
    # --replot rebuilds the block summaries from the reports' JSON: a summary written before a field
    # existed gets it back
    old = json.loads((out / "summary.json").read_text())
    del old["networks"]["parabolic"]["blocks"][0]["conditioning"]["widest_bracket"]
    (out / "summary.json").write_text(json.dumps(old))
    assert _script("--replot", "--out", str(out), cwd=tmp_path).returncode == 0
    assert json.loads((out / "summary.json").read_text())["networks"] == summary["networks"]
    assert (out / "summary.md").read_text() == table


def test_trained_networks_study_names_a_missing_checkpoint(tmp_path):
    r = _script("--runs", str(tmp_path), "--archs", "resnet", "--dataset", "digits", cwd=tmp_path)
    assert r.returncode != 0 and "no checkpoint for resnet" in r.stderr and "Traceback" not in r.stderr
