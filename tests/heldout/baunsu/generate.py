"""Regenerate expected.jsonl from the upstream tests of the npm package baunsu 0.2.3.

    python3 tests/heldout/baunsu/generate.py

Each upstream test file (tests/*Test.js, unchanged) picks the messages of tests/emails
whose name matches one prefix (``/^bounce/i.test(file)``) and asserts the same of all of
them: ``result.bounced`` true or false, ``result.isHard()`` true or false. Baunsu's
isHard() is "a bounce whose status class is 5", i.e. a permanent failure: it maps to
``permanent`` (the report must be a bounce, not a delay), never to the project's hard flag,
which needs the address proven dead. A message no test selects (``encoded_spam.txt``)
gets no label.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
_PREFIX = re.compile(r"if \(/\^(\w+)/i\.test\(file\)\)")
_ASSERT = re.compile(r"assert\.is(True|False)\(result\.(bounced|isHard\(\))\)")


def expectations() -> dict[str, dict[str, bool]]:
    """File-name prefix -> what the test asserts of every message it selects."""
    out: dict[str, dict[str, bool]] = {}
    for test in sorted((HERE / "tests").glob("*Test.js")):
        text = test.read_text()
        prefixes = _PREFIX.findall(text)
        assert len(prefixes) == 1, f"{test.name}: expected one file prefix, got {prefixes}"
        asserted = {field.rstrip("()"): value == "True" for value, field in _ASSERT.findall(text)}
        out[prefixes[0].lower()] = asserted
    return out


def build() -> list[dict[str, object]]:
    """One expected row per message."""
    table = expectations()
    rows = []
    for path in sorted((HERE / "tests" / "emails").iterdir()):
        said = next((v for k, v in table.items() if path.name.lower().startswith(k)), {})
        bounced = said.get("bounced")
        rows.append({
            "file": path.relative_to(HERE).as_posix(),
            "bounce": bounced,
            "min_recipients": 1 if bounced else 0,
            "permanent": said.get("isHard") if bounced else None,
            "recipients": None,
            "reasons": [],
            "hard": None,
        })
    return rows


def main() -> None:
    rows = build()
    with (HERE / "expected.jsonl").open("w") as out:
        for row in rows:
            out.write(json.dumps(row, sort_keys=True) + "\n")
    print(f"{len(rows)} rows")


if __name__ == "__main__":
    main()
