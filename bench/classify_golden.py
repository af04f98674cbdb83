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
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout

from tests.support.classify_golden import GOLDEN, SETS, differences, lines


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
