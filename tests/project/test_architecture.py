"""The package's layering, checked on its source: imports go one way (docs/architecture.md).

Every import of the package is read from the source, those inside functions included, so a lazy
import cannot hide a circle."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2] / "pdenet_analysis"

#: the layers, lowest first: a module may import its own layer's modules and lower layers only.
#: ``gradients.autograd`` (autograd helpers that import nothing of the package but errors) sits
#: below the schemes, whose reversible backward steps use it; the gradient strategies above them.
LAYERS = [
    {"errors", "status", "progress", "provenance", "benchmarking", "replay"},
    {"operators", "data", "gradients.autograd"},
    {"schemes"},
    {"gradients"},
    {"integrate", "solution"},
    {"networks"},
    {"analysis"},
    {"training", "testing"},
    {"studies", "quickstart"},
    {"cli", "__main__", ""},
]


def _module(path: pathlib.Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: pathlib.Path):
    mod = _module(path)
    pkg = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [f"{target}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            target, names = None, [a.name for a in node.names]
        else:
            continue
        for name in ([target] if target else []) + names:
            if name.startswith("pdenet_analysis"):
                yield name


def _graph() -> dict[str, set[str]]:
    files = {_module(p): p for p in ROOT.rglob("*.py")}
    graph = {}
    for mod, path in files.items():
        # an imported name is a module where such a module exists, else the module that holds it
        targets = set()
        for name in _imports(path):
            while name not in files and "." in name:
                name = name.rsplit(".", 1)[0]
            if name != mod:
                targets.add(name)
        graph[mod] = targets
    return graph


def _layer(mod: str) -> int:
    rest = mod.split(".", 1)[1] if "." in mod else ""
    for i, layer in enumerate(LAYERS):
        for unit in sorted(layer, key=len, reverse=True):
            if rest == unit or (unit and rest.startswith(unit + ".")):
                return i
    raise AssertionError(f"{mod} is in no layer of the architecture test")


def test_every_import_goes_to_the_same_or_a_lower_layer():
    graph = _graph()
    upward = [(a, b) for a, targets in graph.items() for b in targets
              if b != "pdenet_analysis" and _layer(b) > _layer(a)]
    assert not upward, f"imports from a lower layer to a higher one: {sorted(upward)}"


def test_no_module_imports_itself_through_a_circle():
    """Within a layer imports may go either way, but never round in a circle (the registry of
    schemes, the data readers and their split were such circles)."""
    graph = {a: {b for b in t if b != "pdenet_analysis"} for a, t in _graph().items()}
    state, stack, circles = {}, [], []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt.startswith(node + "."):  # a package importing its own submodules is not a circle
                continue
            if state.get(nxt) == "open":
                circles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    # a submodule importing a name its own package re-exports goes through the package's __init__:
    # count only circles between modules that are not each other's packages
    real = [c for c in circles if not any(b.startswith(a + ".") or a.startswith(b + ".") for a, b in zip(c, c[1:]))]
    assert not real, f"import circles: {real[:5]}"


def test_no_module_is_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in ROOT.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert not long, f"modules over 400 lines: {long}"
