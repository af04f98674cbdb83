"""debian/copyright parses as the machine-readable format (DEP-5) and names every file of
the tree under another licence than the project's: each LICENSE file (and each vendored
package manifest declaring a licence) falls under a stanza of its own, every pattern
matches something, and every licence named has its text."""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess

from .helpers import ROOT

COPYRIGHT = ROOT / "debian" / "copyright"
FIELD = re.compile(r"^([A-Za-z][A-Za-z0-9-]*):[ \t]*(.*)$")


def paragraphs() -> list[dict[str, str]]:
    """The file as deb822 paragraphs: fields, continuation lines joined with newlines."""
    result: list[dict[str, str]] = []
    current: dict[str, str] = {}
    name = ""
    for number, line in enumerate(COPYRIGHT.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            if current:
                result.append(current)
            current, name = {}, ""
        elif line[0] in " \t":
            assert name, f"line {number}: a continuation line outside a field"
            current[name] += "\n" + line.strip()
        else:
            match = FIELD.match(line)
            assert match is not None, f"line {number}: not a field: {line!r}"
            name = match[1]
            assert name not in current, f"line {number}: {name} repeated in a paragraph"
            current[name] = match[2]
    if current:
        result.append(current)
    return result


def tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=ROOT, capture_output=True, check=True).stdout
    return [name for name in out.decode().split("\0") if name and (ROOT / name).exists()]


def stanza_for(path: str, stanzas: list[dict[str, str]]) -> dict[str, str]:
    """The stanza that governs ``path``: the last one whose pattern matches (DEP-5)."""
    matching = [s for s in stanzas
                if any(fnmatch.fnmatchcase(path, p) for p in s["Files"].split())]
    assert matching, path
    return matching[-1]


def test_copyright_is_machine_readable_with_every_licence_text() -> None:
    """A header with Format, then Files stanzas with Copyright and License, whose licence
    names each have a text (inline or a stand-alone License paragraph)."""
    header, *rest = paragraphs()
    assert header["Format"].startswith("https://www.debian.org/doc/packaging-manuals/"
                                       "copyright-format/1.0")
    stanzas = [p for p in rest if "Files" in p]
    texts = {p["License"].split("\n", 1)[0]: p["License"] for p in rest if "Files" not in p}
    assert stanzas[0]["Files"] == "*", "the catch-all stanza comes first"
    for stanza in stanzas:
        assert stanza.get("Copyright") and stanza.get("License"), stanza
        short = stanza["License"].split("\n", 1)[0]
        for name in re.split(r" or | and ", short):
            assert name in texts or "\n" in stanza["License"], (name, stanza["Files"])
    for name, text in texts.items():
        assert len(text.splitlines()) > 2, f"License: {name} has no text"


def test_every_pattern_matches_and_every_foreign_licence_has_a_stanza() -> None:
    """No stale pattern; each LICENSE file and each vendored package.json declaring a
    licence is governed by a stanza other than the project's catch-all."""
    stanzas = [p for p in paragraphs()[1:] if "Files" in p]
    files = tracked_files()
    for stanza in stanzas:
        for pattern in stanza["Files"].split():
            assert any(fnmatch.fnmatchcase(f, pattern) for f in files), pattern
    foreign = [f for f in files if f != "LICENSE" and re.search(r"(^|/)(\w+\.)?LICENSE$", f)]
    foreign += [f for f in files if f.endswith("package.json")
                and "license" in json.loads((ROOT / f).read_text())]
    assert len(foreign) >= 7, foreign
    for path in foreign:
        assert stanza_for(path, stanzas)["Files"] != "*", \
            f"{path}: another licence, but only the project's stanza covers it"
