"""Typed analysis results, and their rendering as a :class:`~.report.Report` as a separate step.

Every analysis returns a :class:`Result`: a dataclass whose fields are what was computed (a
stability result has its steps, each step its examples with their radius, count and status; a
conditioning result its σ_min route and bracket per example). Rendering — the Markdown table,
the figure, the notes — is done by :meth:`Result.report`, from the result alone, by the
renderer registered for the result's class (:mod:`.render`), with an optional ``context`` (the
model and block, which every title then names).

For JSON and for code written against reports, a result also answers ``data`` (the JSON dict of
what was computed), ``save``, ``to_markdown``, ``to_json``, ``notes`` and ``rows`` by rendering
itself once.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from .report import Report

#: result class → function(result, context) -> Report
_RENDERERS: dict[type, object] = {}


def renders(result_cls):
    """Register the decorated function as the renderer of ``result_cls``."""
    def deco(fn):
        _RENDERERS[result_cls] = fn
        return fn

    return deco


class Result:
    """Base of the typed results. Subclasses are dataclasses; ``name`` names the analysis (the
    file stem of its saved report)."""

    name: ClassVar[str] = "result"
    failure: dict | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None

    def to_dict(self) -> dict:
        """What was computed, as the JSON-able dict a report's ``data`` holds."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    @property
    def data(self) -> dict:
        return self.to_dict()

    def report(self, context: str | None = None) -> Report:
        """The rendered report (table, figure, notes); ``context`` (e.g. "digits-hamiltonian, block
        0") is named in its title and its figure's. Rendered once per context."""
        cache = self.__dict__.setdefault("_rendered", {})
        if context not in cache:
            from . import render  # noqa: F401 - registers the renderers

            for cls in type(self).__mro__:
                if cls in _RENDERERS:
                    cache[context] = _RENDERERS[cls](self, context)
                    break
            else:  # pragma: no cover - every result class has a renderer
                raise TypeError(f"no renderer for {type(self).__name__}")
        return cache[context]

    # what a Report answers, for code that reads results as reports
    def save(self, directory: str, context: str | None = None) -> dict:
        return self.report(context).save(directory)

    def to_markdown(self) -> str:
        return self.report().to_markdown()

    def to_json(self) -> str:
        return self.report().to_json()

    @property
    def title(self) -> str:
        return self.report().title

    @property
    def rows(self) -> list:
        return self.report().rows

    @property
    def columns(self) -> list:
        return self.report().columns

    @property
    def notes(self) -> list:
        return self.report().notes


@dataclasses.dataclass
class Failed(Result):
    """An analysis that stopped on an :class:`~pdenet_analysis.errors.IntegrationError` under
    ``throw=False``: ``failure`` says what happened (status, message, step, time)."""

    analysis: str
    failure: dict | None = None

    def __post_init__(self) -> None:
        self.name = self.analysis

    def to_dict(self) -> dict:
        return {}


@renders(Failed)
def _render_failed(result: Failed, context: str | None) -> Report:
    f = result.failure or {}
    return Report(result.analysis, f"{result.analysis}: failed ({f.get('status')})", [], [], {}, None,
                  [str(f.get("message"))], result.failure)


def sweepable(name: str):
    """Give an analysis a ``throw`` argument (default True). With ``throw=False`` an
    :class:`~pdenet_analysis.errors.IntegrationError` (NaN/Inf on the way, an adaptive solver out
    of steps) returns a result whose ``failure`` says what happened, so that a sweep over
    step sizes or checkpoints records its unstable points and goes on. The analysis runs in IEEE
    float32 on every device (:func:`.precision.ieee_float32`: no TensorFloat-32 on a GPU)."""
    import functools

    from ..errors import IntegrationError, failure_status
    from .precision import ieee_float32

    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*args, throw: bool = True, **kwargs):
            try:
                with ieee_float32():
                    return fn(*args, **kwargs)
            except IntegrationError as e:
                if throw:
                    raise
                failure = dict(status=failure_status(e), message=str(e), step=getattr(e, "step", None),
                               time=getattr(e, "time", None))
                return Failed(name, failure)

        return wrapper

    return deco
