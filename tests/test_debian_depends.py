"""The Debian package depends on Debian's package of every library the wheel depends on, so
that the installed daemon imports what pip would have installed."""

from __future__ import annotations

import re
import tomllib

from .helpers import ROOT

# Debian's name for a library where it is not python3-<name as PyPI writes it, lowercased>.
DEBIAN_NAMES = {"pyahocorasick": "python3-ahocorasick"}


def _depends(stanza: str, field: str) -> set[str]:
    """The package names of a field of debian/control's stanza (versions and comments left
    out)."""
    match = re.search(rf"^{field}:\n((?:[ #].*\n)+)", stanza, re.MULTILINE)
    assert match, field
    lines = [line for line in match.group(1).splitlines() if not line.startswith("#")]
    return {item.split("(")[0].strip() for item in ",".join(lines).split(",") if item.strip()}


def test_every_runtime_dependency_is_a_debian_dependency() -> None:
    control = (ROOT / "debian" / "control").read_text()
    binary = control[control.index("\nPackage: bounced\n"):]
    depends = _depends(binary, "Depends")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        name = re.split(r"[<>=!~; \[]", requirement, maxsplit=1)[0].lower()
        wanted = DEBIAN_NAMES.get(name, f"python3-{name}")
        assert wanted in depends, (requirement, sorted(depends))
