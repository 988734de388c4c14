"""Every Python snippet in the README, in docs/ and in the studies' pages runs: the blocks of one page run in order, in
one fresh interpreter (a page is read top to bottom), so a renamed function or a changed
signature fails here rather than in a reader's hands."""

import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("**/*.md")) + \
    sorted((ROOT / "pdenet_analysis" / "studies").glob("*/README.md"))  # the studies' pages
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _snippets(page: pathlib.Path) -> list[str]:
    return BLOCK.findall(page.read_text())


PAGES_WITH_CODE = [p for p in PAGES if _snippets(p)]


def test_the_pages_with_code_are_found():
    names = {p.name for p in PAGES_WITH_CODE}
    assert {"README.md", "extending.md", "conventions.md"} <= names
    assert any(p.parent.name == "scheme_properties" for p in PAGES_WITH_CODE)  # the tutorial


@pytest.mark.slow  # a subprocess per page, each importing torch and running the page's examples
@pytest.mark.parametrize("page", PAGES_WITH_CODE, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_python_snippet_runs(page, tmp_path):
    code = "\n\n".join(_snippets(page))
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{page.name}:\n{r.stderr[-3000:]}"


@pytest.mark.slow
def test_the_test_file_in_extending_md_passes_under_pytest(tmp_path):
    """docs/extending.md's copyable test file, as a user saves and runs it."""
    blocks = [b for b in _snippets(ROOT / "docs" / "extending.md") if "def test_certificate" in b]
    assert len(blocks) == 1
    (tmp_path / "test_my_scheme.py").write_text(blocks[0])
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_my_scheme.py"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "4 passed" in r.stdout, r.stdout[-3000:] + r.stderr[-2000:]


BASH = re.compile(r"^```bash\n(.*?)^```", re.S | re.M)


def _readme_commands() -> list[str]:
    """The README's shell commands, continuation lines joined; the set-up commands (an install,
    the quickstart and the test run, each tested on its own) left out."""
    text = "\n".join(BASH.findall((ROOT / "README.md").read_text())).replace("\\\n", " ")
    lines = [" ".join(line.split()) for line in text.splitlines() if line.strip()]
    return [line for line in lines if not line.startswith("pip install")]


def test_the_readme_names_only_commands_that_exist():
    from pdenet_analysis.cli import build_parser

    parser = build_parser()
    for line in _readme_commands():
        assert line.startswith("pdenet-analysis "), line
        with pytest.raises(SystemExit) as e:  # every command and option parses (--help stops before any work)
            parser.parse_args(line.split()[1:] + ["--help"])
        assert e.value.code == 0, line


@pytest.mark.slow
def test_the_readme_workflow_commands_run(tmp_path):
    for line in _readme_commands():
        r = subprocess.run([sys.executable, "-m", "pdenet_analysis", *line.split()[1:]], cwd=tmp_path,
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, f"{line}\n{r.stderr[-2000:]}"
