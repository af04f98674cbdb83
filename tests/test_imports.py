"""No module of bounced imports itself back through others (no import circle).

Read statically from the source, every import counts, also one inside a function: importing
lazily only postpones a circle to run time, and a reader still has to untangle it. Two kinds
of edge are left out: imports under ``if TYPE_CHECKING:`` (never run), and a package's
``__init__`` importing its own submodules (Python imports a package before any submodule of
it anyway, so that edge adds no order; ``bounced.store`` chooses its backends that way).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from .helpers import ROOT

PACKAGE = ROOT / "bounced"


def _modules() -> dict[str, tuple[Path, bool]]:
    """Module name -> (file, whether it is a package's __init__)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if package else parts)] = (path, package)
    return found


def _type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def import_graph() -> dict[str, set[str]]:
    """Module -> the bounced modules it imports (anywhere in it but TYPE_CHECKING blocks)."""
    modules = _modules()

    def owner(name: str) -> str | None:
        """The module that defines ``name`` (a module, or a name in one)."""
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, (path, package) in modules.items():
        deps: set[str | None] = set()
        stack: list[ast.AST] = [ast.parse(path.read_text(encoding="utf-8"))]
        while stack:
            node = stack.pop()
            if isinstance(node, ast.If) and _type_checking(node.test):
                stack.extend(node.orelse)
                continue
            if isinstance(node, ast.Import):
                deps.update(owner(a.name) for a in node.names if a.name.startswith("bounced"))
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = name if package else name.rpartition(".")[0]
                    for _ in range(node.level - 1):
                        anchor = anchor.rpartition(".")[0]
                    base = f"{anchor}.{base}" if base else anchor
                if base.startswith("bounced"):
                    deps.update(owner(f"{base}.{a.name}") if f"{base}.{a.name}" in modules
                                else owner(base) for a in node.names)
            stack.extend(ast.iter_child_nodes(node))
        graph[name] = {d for d in deps if d is not None and d != name
                       and not (package and d.startswith(name + "."))}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    result: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return result


def test_no_import_circle() -> None:
    """No bounced module imports, directly or through others, a module that imports it."""
    graph = import_graph()
    found = circles(graph)
    assert not found, "import circles (module -> what it imports of the circle):\n" + "\n".join(
        "; ".join(f"{m} -> {', '.join(sorted(graph[m] & set(c)))}" for m in c) for c in found)


def test_the_check_sees_lazy_and_relative_imports() -> None:
    """A circle closed by an import inside a function, or a relative one, is found; one that
    runs only under TYPE_CHECKING is not a circle."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [["a", "b", "c"]]
    real = import_graph()
    assert "bounced.store" in real["bounced.store.sqlite"]  # a submodule's import of its package
    assert "bounced.store.sqlite" not in real["bounced.store"]  # a package choosing a submodule
    assert "bounced.commands" in real["bounced.cli"]  # imported inside a function


def test_tests_import_no_benchmark_script() -> None:
    """Tests import no script of bench/ (what both need is in tests/support/, which the
    scripts import): a benchmark can change what it prints without breaking a test."""
    scripts = {p.stem for p in (ROOT / "bench").glob("*.py")}
    found = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level
                     else [])
            found += [f"{path.relative_to(ROOT)}: {n}" for n in names
                      if n.split(".")[0] in scripts or n.split(".")[0] == "bench"]
        if path.name != "test_imports.py" and re.search(
                r"""spec_from_file_location\(.*["']bench\b""", path.read_text(encoding="utf-8")):
            found.append(f"{path.relative_to(ROOT)}: loads a bench/ script as a module")
    assert not found, "\n".join(found)
