"""Rendering of typed results as :class:`~pdenet_analysis.analysis.report.Report`: the Markdown
table, the figure and at most two sentences of notes under the table (what the table's values
mean and where they are only bounds; the methods are explained in docs/analysis.md). Each module
registers the renderer of one analysis's result class (:func:`~..results.renders`)."""

from . import conditioning, convergence, density, flow, network, stability  # noqa: F401 - registers the renderers
from .common import figure_title, integer_ticks, titled

__all__ = ["figure_title", "integer_ticks", "titled"]
