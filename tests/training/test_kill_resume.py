"""A training process killed with SIGKILL resumes from its last checkpoint, losing at most the
epoch in progress."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from pdenet_analysis.training import load_checkpoint


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="uses SIGKILL")
def test_sigkill_then_resume(tmp_path):
    out = str(tmp_path / "run")
    cmd = [sys.executable, "-m", "pdenet_analysis", "train", "--dataset", "digits", "--model", "digits-parabolic",
           "--epochs", "8", "--out", out, "--no-augment"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ck = os.path.join(out, "checkpoint.pt")
    deadline = time.time() + 120
    killed_after = None
    while time.time() < deadline and proc.poll() is None:
        if os.path.exists(ck):
            try:
                killed_after = load_checkpoint(ck)["epoch"]
            except Exception:  # noqa: BLE001 - the file is being replaced; try again
                killed_after = None
            if killed_after and killed_after >= 2:
                proc.send_signal(signal.SIGKILL)
                break
        time.sleep(0.05)
    proc.wait(timeout=30)
    assert killed_after is not None and killed_after < 8, "the run finished before it could be killed"
    # the kill may leave a torn temporary file, never a torn checkpoint: it must load
    start = load_checkpoint(ck)["epoch"]
    assert start >= killed_after
    done = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    final = load_checkpoint(ck)
    assert final["epoch"] == 8 and [m["epoch"] for m in final["metrics"]] == list(range(1, 9))
    rows = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    assert [r["epoch"] for r in rows] == list(range(1, 9))
    assert json.loads(open(os.path.join(out, "summary.json")).read())["test_accuracy"] > 0.8
