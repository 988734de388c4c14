"""Every Python snippet in the README and in docs/ runs: the blocks of one page run in order, in
one fresh interpreter (a page is read top to bottom), so a renamed function or a changed
signature fails here rather than in a reader's hands."""

import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("**/*.md"))
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _snippets(page: pathlib.Path) -> list[str]:
    return BLOCK.findall(page.read_text())


PAGES_WITH_CODE = [p for p in PAGES if _snippets(p)]


def test_the_pages_with_code_are_found():
    names = {p.name for p in PAGES_WITH_CODE}
    assert {"README.md", "extending.md", "conventions.md"} <= names


@pytest.mark.parametrize("page", [p if p.name == "README.md" else pytest.param(p, marks=pytest.mark.slow) for p in PAGES_WITH_CODE],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_every_python_snippet_runs(page, tmp_path):
    code = "\n\n".join(_snippets(page))
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{page.name}:\n{r.stderr[-3000:]}"
