"""mkdocs hook: every study's page and committed results become part of the docs site.

Each concrete study lives in its own subpackage, ``pdenet_analysis/studies/<package>/``, with its
page (``README.md``) and its results (``results/``), so that code, page and numbers stay together
and read well on GitHub. mkdocs serves only files under ``docs/``; this hook adds, for the study
registered as ``NAME``, the page as ``studies/NAME/index.md`` and every Markdown page and figure
under its ``results/`` at the same relative path. Links are rewritten from the repository's layout
to the site's: ``../../../docs/X`` (a docs page, seen from the package) becomes ``../../X``, and a
``README.md`` target becomes ``index.md``.
"""

from __future__ import annotations

import os
import re

from mkdocs.structure.files import File

_DOCS_FROM_PACKAGE = "../../../docs/"
_KEEP = (".md", ".png", ".svg")


def _site_text(text: str, depth: int) -> str:
    """The page's Markdown with its links pointing into the site (``depth``: folders below the
    study's own page)."""
    text = text.replace("](" + "../" * depth + _DOCS_FROM_PACKAGE, "](" + "../" * (depth + 2))
    return re.sub(r"\]\(([^)\s]*?)README\.md(#[^)]*)?\)", lambda m: f"]({m.group(1)}index.md{m.group(2) or ''})", text)


def on_files(files, config):
    from pdenet_analysis.studies import available_studies, study_folder

    for name in available_studies():
        root = study_folder(name)
        for folder, dirs, names in os.walk(root):
            dirs[:] = sorted(d for d in dirs if d not in ("points", "__pycache__"))
            rel = os.path.relpath(folder, root)
            depth = 0 if rel == "." else rel.count(os.sep) + 1
            for fname in sorted(names):
                if not fname.endswith(_KEEP):
                    continue
                src = os.path.join(folder, fname)
                target = fname if not fname == "README.md" else "index.md"
                uri = "/".join(p for p in ("studies", name, "" if rel == "." else rel.replace(os.sep, "/"), target) if p)
                if fname.endswith(".md"):
                    with open(src, encoding="utf-8") as f:
                        files.append(File.generated(config, uri, content=_site_text(f.read(), depth)))
                else:
                    files.append(File.generated(config, uri, abs_src_path=src))
    return files
