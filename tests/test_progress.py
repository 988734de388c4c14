"""The progress line: its estimate of the time left follows the finished units and counts down
while a long unit only updates its label."""

import io

from pdenet_analysis import progress


def test_time_left_counts_down_between_units(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(progress.time, "perf_counter", lambda: clock[0])
    buf = io.StringIO()
    p = progress.Progress(3, "t", stream=buf)
    clock[0] = 10.0
    p(1, "first done")  # 10 s per unit, 2 left: 20 s
    assert "~   20s left" in buf.getvalue().split("\r")[-1]
    clock[0] = 15.0
    p(0, "second, halfway")  # no unit finished: 5 s later, 15 s left (not re-estimated to 30 s)
    assert "~   15s left" in buf.getvalue().split("\r")[-1]
    clock[0] = 40.0
    p(0, "second, late")  # the estimate ran out: the third unit still takes its share, 40 s per 2 units
    assert "~   20s left" in buf.getvalue().split("\r")[-1]
    clock[0] = 41.0
    p(0, "second, later")  # and grows with the overrun, never counting down to 0 with units left
    assert "~   20s left" in buf.getvalue().split("\r")[-1]
    clock[0] = 42.0
    p(1)
    assert "~   21s left" in buf.getvalue().split("\r")[-1]  # 42 s for 2 units, 1 left


def test_quiet_progress_writes_nothing():
    buf = io.StringIO()
    p = progress.Progress(2, "t", quiet=True, stream=buf)
    p(1)
    p(1)
    assert buf.getvalue() == ""


def test_weighted_units_estimate_by_their_weights(monkeypatch):
    """A first unit of weight 4 that took 40 s leaves 10 s per weight: units of weight 1 and 0.5
    still to come give 15 s (not the 80 s of counting units)."""
    clock = [0.0]
    monkeypatch.setattr(progress.time, "perf_counter", lambda: clock[0])
    buf = io.StringIO()
    p = progress.Progress(3, "t", stream=buf, weights=[4, 1, 0.5])
    clock[0] = 40.0
    p(1, "heavy done")
    assert "~   15s left" in buf.getvalue().split("\r")[-1]
    clock[0] = 50.0
    p(1)
    assert "~    5s left" in buf.getvalue().split("\r")[-1]  # 50 s for weight 5, 0.5 left


def test_weights_must_match_the_units():
    import pytest

    from pdenet_analysis.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="one per unit"):
        progress.Progress(3, "t", weights=[1, 2])


def test_last_unit_overrunning_counts_down_to_zero(monkeypatch):
    """With no unit after the running one nothing is left to estimate from: the countdown stops at
    0, never negative."""
    clock = [0.0]
    monkeypatch.setattr(progress.time, "perf_counter", lambda: clock[0])
    buf = io.StringIO()
    p = progress.Progress(2, "t", stream=buf)
    clock[0] = 10.0
    p(1)
    clock[0] = 30.0
    p(0, "last, late")
    assert "~    0s left" in buf.getvalue().split("\r")[-1]
