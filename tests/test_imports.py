"""How bounced's modules may import each other: no import circle, the layers of
ARCHITECTURE.md (a module imports from its own package and from lower layers only), the
third-party libraries each package may use, and the rules that keep the domain in one place
(events built by bounced.policy.core only; no rule in a store backend).

Read statically from the source, every import counts, also one inside a function: importing
lazily only postpones a circle to run time, and a reader still has to untangle it. Two kinds
of edge are left out: imports under ``if TYPE_CHECKING:`` (never run), and a package's
``__init__`` importing its own submodules (Python imports a package before any submodule of
it anyway, so that edge adds no order; ``bounced.store`` chooses its backends that way).
"""

from __future__ import annotations

import ast
import re
import sys
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
    assert "bounced.runtime.app" in real["bounced.cli"]  # imported inside a function


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


# The layers, lowest first (ARCHITECTURE.md): a module imports from its own package and from
# packages of a lower layer only. The longest matching prefix decides a module's package.
LAYERS = {
    "bounced": 0,  # the leaves: exceptions, compat, exits, model, verp (and the package)
    "bounced.classify": 1, "bounced.loop": 1, "bounced.metrics": 1, "bounced.logs": 1,
    "bounced.config": 2,
    "bounced.policy": 3, "bounced.store": 3,
    "bounced.policy.core": 4,
    "bounced.intake": 5, "bounced.queue": 5, "bounced.outbox": 5,
    "bounced.api": 6,
    "bounced.runtime": 7,
    "bounced.cli": 8,
}
# Modules whose package their place in the tree does not say.
PACKAGE_OF = {"bounced.__main__": "bounced.cli"}
# Third-party libraries each package may import (the standard library is free to all); the
# cross-cutting structlog and prometheus_client from layer 1 up.
THIRD_PARTY = {
    "bounced.store": {"aiosqlite", "asyncpg"},
    "bounced.intake": {"aiosmtpd", "aiohttp"},  # SMTP; HTTP ingest
    "bounced": {"aiosmtpd", "aiosqlite"},  # compat: the private APIs it wraps
    "bounced.outbox": {"aiohttp"},
    "bounced.api": {"aiohttp"},
    "bounced.runtime": {"aiohttp"},
    "bounced.loop": {"uvloop"},
    "bounced.metrics": {"prometheus_client"},
    "bounced.classify": {"ahocorasick"},  # the phrase search (multisearch)
}
CROSS_CUTTING = {"structlog", "prometheus_client"}
EXCEPTIONS: set[tuple[str, str]] = set()  # (package, package) allowed across the layers


def package_of(module: str) -> str:
    """The entry of LAYERS a module belongs to (the longest prefix)."""
    module = PACKAGE_OF.get(module, module)
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        candidate = ".".join(parts[:n])
        if candidate in LAYERS:
            return candidate
    raise AssertionError(f"{module} is in no layer: add its package to LAYERS")


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    found = []
    for src, deps in sorted(graph.items()):
        for dst in sorted(deps):
            a, b = package_of(src), package_of(dst)
            if a == b or b == "bounced" or (a, b) in EXCEPTIONS:  # anyone may use the leaves
                continue
            if a.startswith(b + ".") and LAYERS[a] > LAYERS[b]:
                continue  # policy.core over the rest of policy
            if not LAYERS[a] > LAYERS[b]:
                found.append(f"{src} imports {dst} (layer {LAYERS[a]} -> {LAYERS[b]}, "
                             f"{'same layer, other package' if LAYERS[a] == LAYERS[b] else 'upwards'})")
    return found


def test_every_module_imports_only_from_lower_layers() -> None:
    """Each module imports from its own package and from lower layers only (the table of
    ARCHITECTURE.md), lazy imports included."""
    found = layer_violations(import_graph())
    assert not found, "\n".join(found)


def test_the_layer_check_sees_an_import_upwards_and_sideways() -> None:
    """An import of a higher layer, or of another package of the same layer, is reported."""
    graph = {"bounced.store.sqlite.tx": {"bounced.policy.events", "bounced.model"},
             "bounced.queue.worker": {"bounced.api.views", "bounced.policy.core"}}
    found = layer_violations(graph)
    assert found == [
        "bounced.queue.worker imports bounced.api.views (layer 5 -> 6, upwards)",
        "bounced.store.sqlite.tx imports bounced.policy.events (layer 3 -> 3, same layer, "
        "other package)"]


def third_party_imports() -> dict[str, set[str]]:
    """Module -> the top-level names of what it imports from outside bounced and the standard
    library (TYPE_CHECKING blocks left out)."""
    result: dict[str, set[str]] = {}
    for name, (path, _) in _modules().items():
        found: set[str] = set()
        stack: list[ast.AST] = [ast.parse(path.read_text(encoding="utf-8"))]
        while stack:
            node = stack.pop()
            if isinstance(node, ast.If) and _type_checking(node.test):
                stack.extend(node.orelse)
                continue
            if isinstance(node, ast.Import):
                found.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                found.add(node.module.split(".")[0])
            stack.extend(ast.iter_child_nodes(node))
        result[name] = {m for m in found if m != "bounced" and m != "__future__"
                        and m not in sys.stdlib_module_names}
    return result


def test_third_party_libraries_only_where_they_belong() -> None:
    """aiosqlite and asyncpg only in the store, aiosmtpd only in SMTP (and compat), aiohttp
    only for HTTP (API, webhooks, the daemon's client session), uvloop in the loop runner;
    structlog and prometheus_client from layer 1 up; the classifier and policy use none."""
    found = []
    for module, libraries in sorted(third_party_imports().items()):
        package = package_of(module)
        allowed = THIRD_PARTY.get(package, set()) | (
            CROSS_CUTTING if LAYERS[package] >= 1 and not package.startswith(
                ("bounced.classify", "bounced.policy")) else set())
        found += [f"{module} imports {lib}" for lib in sorted(libraries - allowed)]
    assert not found, "\n".join(found)


def test_the_classifier_imports_nothing_of_bounced_but_compat() -> None:
    """bounced.classify is self-contained: of bounced it imports its own modules and compat."""
    found = [f"{src} imports {dst}" for src, deps in sorted(import_graph().items())
             if src.startswith("bounced.classify") for dst in sorted(deps)
             if not dst.startswith("bounced.classify") and dst not in ("bounced.compat",)]
    assert not found, "\n".join(found)


CONSTRUCTORS = {"unconfirmed", "reconfirmed", "complaint", "unrecognised", "breaker_tripped",
                "breaker_released"}


def test_events_are_built_by_the_policy_core_alone() -> None:
    """Only bounced.policy.core builds events (others may read the event types and the
    evidence helper of bounced.policy.events, never call its constructors)."""
    found = []
    for name, (path, _) in _modules().items():
        if name in ("bounced.policy.core", "bounced.policy.events"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "bounced.policy.events":
                found += [f"{name} imports {a.name}" for a in node.names
                          if a.name in CONSTRUCTORS or a.name == "*"]
            elif isinstance(node, ast.ImportFrom) and node.module == "bounced.policy":
                found += [f"{name} imports the events module" for a in node.names
                          if a.name == "events"]
            elif isinstance(node, ast.Import):
                found += [f"{name} imports the events module" for a in node.names
                          if a.name == "bounced.policy.events"]
    assert not found, "\n".join(found)


# What a store backend must not know: the decisions' words and the breaker's thresholds.
POLICY_WORDS = re.compile(r"[\"']held[\"']|[\"']tripped[\"']|[\"']unconfirm[\"']|\bevents\.\w+\(|"
                          r"BreakerSettings|PolicySettings|min_addresses|min_bounces|HISTORY_LIMIT|"
                          r"bounced\.policy")


def test_no_rule_in_a_store_backend() -> None:
    """No store backend module says "held", "tripped" or "unconfirm", builds an event or
    reads the policy's settings: recording an outcome is bounced.policy.core's, a backend
    carries out data operations."""
    backends = [p for p in (PACKAGE / "store").rglob("*.py") if p.name != "__init__.py"
                or p.parent != PACKAGE / "store"]
    assert len(backends) >= 10
    found = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}" for p in backends
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
             if POLICY_WORDS.search(line)]
    assert not found, "\n".join(found)
