"""Every regular expression of the classifier runs in time linear in its input.

A bounce is hostile input: one decoded line of an address, tens of thousands of spaces and
one more character once made a recipient pattern backtrack quadratically (a 32k line took
29 s). The patterns are collected from the modules of ``bounced.classify`` (so a new one is
covered without being listed here), each is run on adversarial strings of 10k, 100k and 1M
characters, and the growth of its time is compared within the same run: ten times the
input may cost about ten times the time, never the hundred times of a quadratic pattern.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from re import _parser  # type: ignore[attr-defined]

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bounced.classify as package
from bounced.classify.literals import required
from bounced.classify.textforms import fold

from .support import classify_hostile as hostile

ROOT = Path(package.__file__).resolve().parent
# Patterns only ever used anchored, with ``.match`` / ``.fullmatch`` at a given position:
# they are timed as they run (one attempt from the start), and the source is checked for
# any other use of them.
MATCH_ONLY = {
    "bounced.classify.mime._HEADER_BLOCK", "bounced.classify.mime._HEADER_BLOCK_TEXT",
    "bounced.classify.mime._BOUNDARY_TAIL", "bounced.classify.mime._NL_FIELDS_RUN",
    "bounced.classify.mime._FIELDS_RUN", "bounced.classify.mime._HEADER_START",
    "bounced.classify.rules._ADDRESS_THEN", "bounced.classify.textforms.SUMMARY_FIELD",
    "bounced.classify.textforms.REPLY_LINE", "bounced.classify.textforms.DIAG_STOP",
    "bounced.classify.textforms.FORWARD_SUBJECT", "bounced.classify.detectors.dsn._FIELD",
    "bounced.classify.detectors.fml._FML", "bounced.classify.cli.HEADER_START",
}
# Patterns only ever applied to text made of whole lines (the code guarantees it: see where
# they are used), so timed on adversarial strings that end with that line ending.
WHOLE_LINES = {"bounced.classify.mime._LF_FIELD": "\n", "bounced.classify.mime._CRLF_FIELD": "\r\n"}
PATTERN_METHODS = {"search", "match", "fullmatch", "finditer", "findall", "sub", "subn",
                   "split"}
# One run on ten times the input against ten runs on the input: about 1 when the time is
# linear in the input, about 10 when it is quadratic.
MAX_GROWTH = 5.0
FLOOR = 100e-6  # seconds: shorter times are noise (caches, timer), not growth
BUDGET_PER_CHAR = 1e-6  # seconds: a pattern may never cost more than this per character


def _modules() -> Iterator[tuple[str, object]]:
    yield package.__name__, package
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        yield info.name, importlib.import_module(info.name)


def _defined(module: object) -> set[str]:
    """The names a module assigns at its top level (not the ones it imports)."""
    path = Path(str(getattr(module, "__file__", "")))
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AnnAssign) else [])
        names |= {t.id for t in targets if isinstance(t, ast.Name)}
        if isinstance(node, ast.ClassDef):
            names.add(node.name)
    return names


def patterns() -> dict[str, re.Pattern[str] | re.Pattern[bytes]]:
    """Every compiled pattern a module of the package defines (module globals, class
    attributes, and the tuples, lists and dicts they hold), by where it is defined."""
    found: dict[int, tuple[str, re.Pattern[str] | re.Pattern[bytes]]] = {}

    def visit(obj: object, where: str, depth: int = 0) -> None:
        if isinstance(obj, re.Pattern):
            found.setdefault(id(obj), (where, obj))
        elif depth < 4 and isinstance(obj, (tuple, list, set, frozenset)):
            for i, item in enumerate(obj):
                visit(item, f"{where}[{i}]", depth + 1)
        elif depth < 4 and isinstance(obj, dict):
            for key, item in obj.items():
                visit(item, f"{where}[{key!r}]", depth + 1)
        elif depth == 0 and isinstance(obj, type):
            for attr, value in vars(obj).items():
                visit(value, f"{where}.{attr}", depth + 1)

    for name, module in _modules():
        for attr in sorted(_defined(module)):
            visit(getattr(module, attr, None), f"{name}.{attr}")
    return dict(found.values())


def _sources() -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted(ROOT.rglob("*.py")):
        yield path, ast.parse(path.read_text())


def test_patterns_are_collected() -> None:
    """The collector finds the classifier's patterns (a sanity check on the collection)."""
    found = patterns()
    assert len(found) > 80
    assert "bounced.classify.detectors.base.ADDRESS" in found
    assert any(name.startswith("bounced.classify.textforms.RECIPIENT_LINES[") for name in found)
    assert set(MATCH_ONLY) <= set(found), set(MATCH_ONLY) - set(found)


def test_every_pattern_is_compiled_where_the_collector_sees_it() -> None:
    """No regex is written inline (``re.search(r"...")``...): every pattern is a compiled
    object the linearity test below collects."""
    inline = []
    for path, tree in _sources():
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "re"
                    and node.func.attr in PATTERN_METHODS):
                inline.append(f"{path.name}:{node.lineno} re.{node.func.attr}")
    assert not inline, inline


def _module_of(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_match_only_patterns_are_only_matched() -> None:
    """The patterns timed as anchored matches are never searched."""
    misuse = []
    for path, tree in _sources():
        module = _module_of(path)
        imported = {alias.asname or alias.name: f"{node.module}.{alias.name}"
                    for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                    for alias in node.names}
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in PATTERN_METHODS - {"match", "fullmatch"}
                    and isinstance(node.func.value, ast.Name)):
                continue
            name = node.func.value.id
            if imported.get(name, f"{module}.{name}") in MATCH_ONLY:
                misuse.append(f"{path.name}:{node.lineno} {name}.{node.func.attr}")
    assert not misuse, misuse


def _source(pattern: re.Pattern[str] | re.Pattern[bytes]) -> str:
    source = pattern.pattern
    return source.decode("latin-1") if isinstance(source, bytes) else source


def _run(pattern: re.Pattern[str] | re.Pattern[bytes], texts: list[str | bytes],
         anchored: bool) -> float:
    """CPU seconds of this thread (not wall time: on a busy machine the wall clock also
    counts the time other processes ran)."""
    start = time.thread_time()
    for text in texts:
        if anchored:
            pattern.match(text)  # type: ignore[arg-type]
        else:
            for _match in pattern.finditer(text):  # type: ignore[arg-type]
                pass
    return time.thread_time() - start


def _texts(name: str, pattern: re.Pattern[str] | re.Pattern[bytes],
           make: Callable[[int], str], size: int, copies: int = 1) -> list[str | bytes]:
    """``copies`` distinct strings (not one object: ten copies of a text take the room in
    the processor's caches that a text ten times as long takes)."""
    text = make(size) + WHOLE_LINES.get(name, "")
    out: list[str | bytes] = []
    for i in range(copies):
        copy = (text + str(i))[: len(text)]
        out.append(copy.encode("utf-8", "surrogatepass")
                   if isinstance(pattern.pattern, bytes) else copy)
    return out


def _growth(name: str, pattern: re.Pattern[str] | re.Pattern[bytes],
            make: Callable[[int], str], small: int, anchored: bool, rounds: int
            ) -> tuple[float, float]:
    """(time of one run on 10 x ``small`` characters, that time over the time of a run on
    each of ten texts of ``small`` characters): about 1 when the cost is linear, about 10
    when it is quadratic. The two are timed in turn, ``rounds`` times, and the fastest of
    each kept, so that a busy machine slows both alike."""
    short = _texts(name, pattern, make, small, 10)
    long = _texts(name, pattern, make, small * 10)
    tens, ones = [], []
    for _ in range(rounds):
        tens.append(_run(pattern, short, anchored))
        ones.append(_run(pattern, long, anchored))
    return min(ones), min(ones) / max(min(tens), FLOOR)


PATTERNS = patterns()


def _retry(big: float, growth: float, budget: float) -> bool:
    """Whether a measurement over the limits is worth repeating (a busy machine), that is
    not far beyond the time budget (a slow pattern would only waste the time)."""
    return (growth >= MAX_GROWTH or big >= budget) and big < 3 * budget


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_pattern_time_grows_linearly(name: str) -> None:
    """Ten times the adversarial input costs about ten times the time (never a hundred),
    from 10k to 100k and 100k to 1M characters, within a per-character budget."""
    pattern, anchored = PATTERNS[name], name in MATCH_ONLY
    inputs = hostile.adversarial_strings(pattern)
    # a text shorter than the shortest match is not searched at all (the engine knows it
    # cannot match): such a pattern's growth is measured from 100k characters only
    shortest = _parser.parse(_source(pattern), pattern.flags).getwidth()[0]
    small = 10_000 if shortest * 2 < 10_000 else 100_000
    cost: list[tuple[float, str]] = []
    for label, make in inputs.items():
        # one run first, so that a pattern far beyond the budget fails before a larger one
        first = _run(pattern, _texts(name, pattern, make, small), anchored)
        assert first < small * BUDGET_PER_CHAR, (name, label, small, first)
        big, growth = _growth(name, pattern, make, small, anchored, 1)
        for rounds in (3, 7):  # again: a busy machine may have slowed one run
            if not _retry(big, growth, small * 10 * BUDGET_PER_CHAR):
                break
            big, growth = _growth(name, pattern, make, small, anchored, rounds)
        assert big < small * 10 * BUDGET_PER_CHAR, (name, label, small * 10, big)
        assert growth < MAX_GROWTH, (name, label, f"{small}->{small * 10}", growth)
        cost.append((big, label))
    if small > 10_000:
        return  # measured up to 1M already
    # 1M characters for the inputs that cost this pattern the most at 100k
    for _, label in sorted(cost, reverse=True)[:2]:
        big, growth = _growth(name, pattern, inputs[label], 100_000, anchored, 1)
        for rounds in (3, 5):
            if not _retry(big, growth, 1_000_000 * BUDGET_PER_CHAR):
                break
            big, growth = _growth(name, pattern, inputs[label], 100_000, anchored, rounds)
        assert big < 1_000_000 * BUDGET_PER_CHAR, (name, label, "1M", big)
        assert growth < MAX_GROWTH, (name, label, "100k->1M", growth)


def _with_required_words() -> list[tuple[str, re.Pattern[str], tuple[str, ...]]]:
    out = []
    for name, pattern in sorted(PATTERNS.items()):
        if isinstance(pattern.pattern, str):
            words = required(pattern)
            if words is not None:
                out.append((name, pattern, words))
    return out


@pytest.mark.parametrize(("name", "pattern", "words"), _with_required_words(),
                         ids=[n for n, _, _ in _with_required_words()])
def test_required_words_are_in_every_match(name: str, pattern: re.Pattern[str],
                                           words: tuple[str, ...]) -> None:
    """A line without any of the words ``literals.required`` reads from a pattern cannot
    match it (the scanner skips the pattern on such lines): strings generated from the
    pattern all contain one."""

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.from_regex(pattern))
    def check(text: str) -> None:
        match = pattern.search(text)
        assert match is not None
        found = match.group(0)
        found = fold(found) if pattern.flags & re.IGNORECASE else found
        assert any(word in found for word in words), (text, words)

    check()
