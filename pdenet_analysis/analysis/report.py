"""Reports: the rendered form of an analysis result (:mod:`.results`): a Markdown table with its
notes, JSON, and a matplotlib figure (PNG)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


def _jsonable(x):
    if isinstance(x, dict):  # keys starting with "_" are for the figure only (large arrays)
        return {str(k): _jsonable(v) for k, v in x.items() if not str(k).startswith("_")}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (complex, np.complexfloating)):
        return {"re": float(x.real), "im": float(x.imag)}
    if isinstance(x, (np.floating, float)):
        return None if not math.isfinite(float(x)) else float(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.bool_,)):
        return bool(x)
    return x


def _fmt(v) -> str:
    """A table cell: 4 significant digits, and "—" where the quantity is undefined (None)."""
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, complex):
        return f"{v.real:.4g}{v.imag:+.4g}i"
    return str(v)


@dataclass
class Report:
    """``title``; ``columns`` and ``rows`` for the Markdown table; ``data`` for JSON; ``plot``
    draws into a matplotlib figure."""

    name: str
    title: str
    columns: list[str]
    rows: list[list]
    data: dict = field(default_factory=dict)
    plot: Callable | None = field(default=None, repr=False)
    notes: list[str] = field(default_factory=list)
    #: None, or (with ``throw=False``) what made the analysis fail: status, message, step, time
    failure: dict | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None

    def to_dict(self) -> dict:
        return _jsonable(dict(name=self.name, title=self.title, columns=self.columns, rows=self.rows,
                              notes=self.notes, data=self.data, failure=self.failure))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_markdown(self) -> str:
        lines = [f"### {self.title}", ""]
        if self.rows:
            lines += ["| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
            lines += ["| " + " | ".join(_fmt(v) for v in r) + " |" for r in self.rows]
        lines += [""] + [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"

    def figure(self):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(6.4, 4.4))
        if self.plot is not None:
            self.plot(fig)
        # leave room for the figure's title (the model, block and scheme) above the panels
        fig.tight_layout(rect=(0, 0, 1, 0.93) if fig._suptitle is not None else None)
        return fig

    def save(self, directory: str) -> dict:
        """Write ``<name>.json``, ``<name>.md`` and ``<name>.png``; returns their paths."""
        import matplotlib.pyplot as plt

        os.makedirs(directory, exist_ok=True)
        paths = {ext: os.path.join(directory, f"{self.name}.{ext}") for ext in ("json", "md", "png")}
        with open(paths["json"], "w") as f:
            f.write(self.to_json())
        with open(paths["md"], "w") as f:
            f.write(self.to_markdown())
        if self.plot is not None:
            fig = self.figure()
            fig.savefig(paths["png"], dpi=110)
            plt.close(fig)
        else:
            paths.pop("png")
        return paths
