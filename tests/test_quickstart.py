import pytest
"""The README's main job runs end to end (one epoch per model, to keep the suite short)."""

import json
import os

from pdenet_analysis.quickstart import ARCHS, run_quickstart


@pytest.mark.slow
def test_quickstart_writes_a_complete_report(tmp_path):
    path = run_quickstart(str(tmp_path), epochs=1, examples=1)
    text = open(path).read()
    for arch in ARCHS:
        assert f"| {arch} |" in text
        for name in ("stability", "energy", "conditioning", "convergence", "density"):
            assert os.path.exists(tmp_path / arch / "block0" / f"{name}.png"), (arch, name)
    data = json.loads(open(tmp_path / "report.json").read())
    assert [r["model"] for r in data["summary"]] == list(ARCHS)
    assert all(0 <= r["test_accuracy"] <= 1 for r in data["summary"])
    assert data["meta"]["command"].startswith("pdenet-analysis quickstart")
