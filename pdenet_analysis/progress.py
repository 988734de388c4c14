"""A one-line progress display on standard error for long work (analyses, quickstart).

``Progress(total, "analyze")`` is called once per finished unit; it redraws at most every half
second, shows done/total, elapsed time and an estimate of the time left (re-estimated when a unit
finishes, counting down in between, when a call only changes the label; a unit that outlasts its
estimate leaves at least what the units after it take at the rate so far, as if it had just
finished), and prints nothing when
``quiet`` (or when total is 0). Units of unequal cost can be given relative ``weights`` (one per
unit, in the order they finish): the time left is then the elapsed time per finished weight
times the weight still to come. It has no dependency and writes only to stderr, so output meant
for scripts (stdout) stays clean.
"""

from __future__ import annotations

import sys
import time

from .errors import InvalidArgumentError


class Progress:
    def __init__(self, total: int, desc: str = "", quiet: bool = False, stream=None, weights=None):
        self.total, self.desc, self.quiet = int(total), desc, quiet or total <= 0
        if weights is not None and (len(weights) != self.total or min(weights, default=1.0) <= 0):
            raise InvalidArgumentError(f"weights must be {self.total} positive numbers, one per unit, got {list(weights)!r}")
        self.weights = None if weights is None else [float(w) for w in weights]
        self.stream = stream or sys.stderr
        self.done, self.start, self._last = 0, time.perf_counter(), 0.0
        self.label = ""
        self._estimate = None  # (time of the last finished unit, time left estimated then)

    def __call__(self, n: int = 1, label: str | None = None) -> None:
        self.done += n
        if label is not None:
            self.label = label
        now = time.perf_counter()
        elapsed = now - self.start
        if n > 0 and self.done:  # re-estimated when a unit finishes; a label update only counts down
            finished, left = self._weights_done_left(self.done)
            self._estimate = (now, elapsed / finished * left)
        if self.quiet or (now - self._last < 0.5 and self.done < self.total):
            return
        self._last = now
        eta = f"~{self._time_left(now, elapsed):5.0f}s left" if self._estimate else "          "
        width = 24
        filled = int(width * min(self.done, self.total) / self.total)
        self.stream.write(f"\r{self.desc} [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
                          f"{elapsed:6.1f}s elapsed, {eta} {self.label[:40]:40s}")
        if self.done >= self.total:
            self.stream.write("\n")
        self.stream.flush()

    def _weights_done_left(self, done: int) -> tuple[float, float]:
        """(weight of the first ``done`` units, weight of the rest)."""
        done = min(done, self.total)
        if self.weights is None:
            return float(done), float(self.total - done)
        return sum(self.weights[:done]), sum(self.weights[done:])

    def _time_left(self, now: float, elapsed: float) -> float:
        """The estimate made when the last unit finished, counted down; once the running unit
        outlasts it, what the units after the running one take at the rate so far (the running
        unit counted as finished now)."""
        countdown = self._estimate[1] - (now - self._estimate[0])
        if self.done + 1 >= self.total:
            return max(0.0, countdown)
        finished, after = self._weights_done_left(self.done + 1)
        return max(countdown, elapsed / finished * after)

    def set_label(self, label: str) -> None:
        self.label = label
