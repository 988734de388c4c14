"""Studies: one command each (``pdenet-analysis study NAME``), cached sweeps, pages with findings.

The framework (:mod:`.runner`: the declared grid, one pure function per point, the cache, local
processes and submitit) is this package; every concrete study is a subpackage of it holding its
code (``STUDY``, a :class:`~.runner.Study`), its page (``README.md``: the question, how to run it,
the findings) and its committed results (``results/``, with the provenance of the run). The
registry below maps the command-line name to its subpackage, imported only when asked for.
"""

from __future__ import annotations

import importlib
import os

from ..errors import UnknownNameError
from .runner import Study, load_point, point_key, run_point, run_study

_MODULES = {
    "scheme-properties": "scheme_properties",
    "discrete-vs-continuous": "discrete_vs_continuous",
    "stability-along-training": "stability_along_training",
    "trained-networks": "trained_networks",
    "initial-blocks": "initial_blocks",
}


def available_studies() -> list[str]:
    return sorted(_MODULES)


def study_folder(name: str) -> str:
    """The folder of study ``name``'s subpackage: its code, its page (``README.md``) and its
    committed results (``results/``)."""
    if name not in _MODULES:
        raise UnknownNameError("study", name, _MODULES)
    return os.path.join(os.path.dirname(__file__), _MODULES[name])


def get_study(name: str) -> Study:
    if name not in _MODULES:
        raise UnknownNameError("study", name, _MODULES)
    return importlib.import_module(f".{_MODULES[name]}", __name__).STUDY


__all__ = ["Study", "available_studies", "get_study", "load_point", "point_key", "run_point", "run_study", "study_folder"]
