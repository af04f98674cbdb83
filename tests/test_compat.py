"""The libraries whose private APIs bounced uses (bounced/compat.py) are versions it was tested
with, and a daemon on any other version refuses to start in one line."""

from __future__ import annotations

import ast
import os
import subprocess
import tomllib
from pathlib import Path

import pytest

from bounced import compat

from .helpers import BOUNCED, ROOT, base_env


def test_installed_libraries_are_supported() -> None:
    """Every library with a private API in use is within its tested range, and every private
    API is there and behaves as used; else the failure names the library and the range."""
    problems = compat.problems()
    assert not problems, "\n".join(problems)


def test_a_version_outside_the_range_is_named_with_the_range() -> None:
    """A newer (or older) release than tested is refused with the library, its version, what
    bounced uses of it and the supported range."""
    [line] = compat.version_problems({"aiosqlite": "0.23.0", "aiosmtpd": "1.4.6"})
    assert line.startswith("aiosqlite 0.23.0 is not supported: ")
    assert "Connection._execute" in line
    assert ">= 0.17, < 0.23" in line
    [line] = compat.version_problems({"aiosmtpd": "1.3.2"})
    assert "aiosmtpd 1.3.2" in line and ">= 1.4.3, < 1.5" in line
    assert compat.version_problems({"aiosmtpd": "1.4.4.post2", "aiosqlite": "0.17.0"}) == []


def test_pyproject_bounds_are_the_supported_ranges() -> None:
    """pyproject.toml caps each library below the first release compat.SUPPORTED does not
    cover (its floors may be higher: PyPI's releases with security fixes)."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for name, (low, high) in compat.SUPPORTED.items():
        [spec] = [d for d in deps if d.split(">")[0].split("<")[0].strip() == name]
        assert f"<{high}" in spec, (name, spec)
        floor = spec.split(">=")[1].split(",")[0]
        assert compat.release(floor) >= compat.release(low), (name, spec)


def test_serve_refuses_an_unsupported_library_in_one_line(tmp_path: Path) -> None:
    """`bounced serve` with an aiosqlite release it was not tested with exits 1 with one line
    naming it and the supported range, before it listens or opens anything."""
    fake = tmp_path / "site"
    info = fake / "aiosqlite-0.99.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: aiosqlite\nVersion: 0.99.0\n")
    env = {**os.environ, **base_env(tmp_path), "PYTHONPATH": str(fake)}
    proc = subprocess.run([BOUNCED, "serve"], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.splitlines() == [
        "bounced serve: aiosqlite 0.99.0 is not supported: bounced uses its private "
        "Connection._execute, Connection._conn, tested with aiosqlite >= 0.17, < 0.23; "
        "install a version in that range"]
    assert not (tmp_path / "bounced.db").exists()


def _private_imports(path: Path) -> list[str]:
    """The private modules or names of other packages that a source file imports."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if node.module.split(".")[0] == "bounced" or node.module == "__future__":
                continue
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found += [n for n in names
                  if n.split(".")[0] != "bounced" and any(p.startswith("_") for p in n.split("."))]
    return found


def test_private_apis_are_imported_by_compat_only() -> None:
    """A library's (or the standard library's) private module or name is imported by
    bounced/compat.py alone, where problems() checks it is still there and behaves."""
    offenders = {str(p.relative_to(ROOT)): found for p in sorted((ROOT / "bounced").rglob("*.py"))
                 if p.name != "compat.py" and (found := _private_imports(p))}
    assert offenders == {}
    assert "re._parser" in _private_imports(ROOT / "bounced" / "compat.py")


def test_a_changed_regex_parser_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Python whose re._parser no longer parses as the classifier reads it is refused
    with one line naming it."""
    monkeypatch.setattr(compat, "parse_regex", lambda pattern, flags: [])
    [line] = [p for p in compat.api_problems() if "re._parser" in p]
    assert line.startswith("this Python's re._parser does not parse patterns")
