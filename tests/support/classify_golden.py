"""The golden files of the classifier (tests/classify/golden): every corpus message's and
hand-written sample's kind and recipients (address, action, status, reason, hard), as
bench/classify_golden.py writes them and tests/test_classify_golden.py compares them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from bounced.classify import classify

ROOT = Path(__file__).resolve().parent.parent.parent
GOLDEN = ROOT / "tests" / "classify" / "golden"
SETS = {"corpus": ROOT / "tests" / "corpus" / "emails",
        "general": ROOT / "tests" / "classify" / "general"}


def lines(folder: Path) -> Iterator[str]:
    """One JSON line per message file of ``folder``, in file name order."""
    for path in sorted(p for p in folder.iterdir() if p.is_file() and p.suffix == ".eml"):
        report = classify(path.read_bytes())
        recipients = [[r.address, r.action, r.status, r.reason, r.hard]
                      for r in report.recipients]
        yield json.dumps({"file": path.name, "kind": report.kind, "recipients": recipients},
                         ensure_ascii=False)


def differences(name: str, folder: Path) -> list[str]:
    """Lines of the golden file of ``name`` that the classifier no longer gives, and the
    ones it gives instead, by file ("- old", "+ new")."""
    path = GOLDEN / f"{name}.jsonl"
    old = {json.loads(line)["file"]: line for line in path.read_text().splitlines()
           } if path.exists() else {}
    new = {json.loads(line)["file"]: line for line in lines(folder)}
    out = []
    for file in sorted(old.keys() | new.keys()):
        if old.get(file) != new.get(file):
            if file in old:
                out.append(f"- {old[file]}")
            if file in new:
                out.append(f"+ {new[file]}")
    return out
