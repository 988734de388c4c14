"""Studies: one command each (``pdenet-analysis study NAME``), cached sweeps, pages with findings.

Each study module defines ``STUDY`` (a :class:`~.runner.Study`); the registry below maps the
command-line name to its module, imported only when the study is asked for.
"""

from __future__ import annotations

import importlib

from ..errors import UnknownNameError
from .runner import Study, load_point, point_key, run_point, run_study

_MODULES = {
    "scheme-properties": "scheme_properties",
    "discrete-vs-continuous": "discrete_vs_continuous",
    "stability-along-training": "stability_along_training",
}


def available_studies() -> list[str]:
    return sorted(_MODULES)


def get_study(name: str) -> Study:
    if name not in _MODULES:
        raise UnknownNameError("study", name, _MODULES)
    return importlib.import_module(f".{_MODULES[name]}", __name__).STUDY


__all__ = ["Study", "available_studies", "get_study", "load_point", "point_key", "run_point", "run_study"]
