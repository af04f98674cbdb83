"""The golden file: what the classifier says about every corpus message, pinned.

    .venv/bin/python bench/classify_golden.py           # compare, print the differences
    .venv/bin/python bench/classify_golden.py --write   # regenerate the files

For every message of the labelled corpus (tests/corpus) and of the hand-written samples
(tests/classify/general), one JSON line: the file, the kind, and per recipient its address,
action, status, reason and hard flag. tests/test_classify_golden.py fails on any difference,
so a change of the classifier shows, message by message, what it changes; regenerate with
``--write`` and review the files' diff (``git diff tests/classify/golden``) before committing.
The aggregate figures are in bench/classify_bench.py; this pins each message.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from bounced.classify import classify

ROOT = Path(__file__).resolve().parent.parent
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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--write", action="store_true", help="regenerate the golden files")
    args = p.parse_args()
    changed = 0
    for name, folder in SETS.items():
        if args.write:
            GOLDEN.mkdir(parents=True, exist_ok=True)
            (GOLDEN / f"{name}.jsonl").write_text("\n".join(lines(folder)) + "\n")
            continue
        diff = differences(name, folder)
        changed += len(diff)
        for line in diff:
            print(f"{name}: {line}")
    if not args.write:
        print("golden files: no difference" if not changed else
              "golden files differ (review, then: .venv/bin/python bench/classify_golden.py "
              "--write)")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
