"""Instructions per message: bounced.classify (and flufl.bounce) counted by callgrind.

    .venv/bin/python bench/classify_instructions.py [--corpus DIR] [--flufl]

A noisy machine changes how long code takes, not how many instructions it runs: each
contender is counted by ``valgrind --tool=callgrind`` (which must be installed) in a
process of its own, PYTHONHASHSEED=0, over one pass of the corpus files, less a run of
the same process that stops before that pass (imports, reading the files, and one
warm-up pass of every contender, so regex caches and lazy tables are built in both).
The figure is deterministic to within about 0.1 % for the same code and path; compare
trees by running this file from each (the checkout's path changes it a little).
"""

from __future__ import annotations

import argparse
import contextlib
import email
import os
import re
import subprocess
import sys
from email.policy import compat32
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_COLLECTED = re.compile(r"Collected : (\d+)")


def _inner(mode: str, corpus: Path) -> None:
    from flufl.bounce import all_failures

    from bounced.classify import classify

    def flufl(raw: bytes) -> None:
        msg = email.message_from_bytes(raw, policy=compat32)
        with contextlib.suppress(Exception):  # IndexError on a message without From
            all_failures(msg)

    raws = [f.read_bytes() for f in sorted((corpus / "emails").iterdir()) if f.is_file()]
    for raw in raws:  # warm-up, in every mode
        classify(raw)
        flufl(raw)
    counted = {"classify": classify, "flufl": flufl}.get(mode)
    if counted is not None:
        for raw in raws:
            counted(raw)


def _count(mode: str, corpus: Path) -> int:
    env = dict(os.environ, PYTHONHASHSEED="0")
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
         __file__, "--inner", mode, "--corpus", str(corpus)],
        env=env, capture_output=True, text=True, check=True)
    found = _COLLECTED.search(done.stderr)
    if found is None:
        raise SystemExit(f"no instruction count from callgrind:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", type=Path, default=ROOT / "tests" / "corpus")
    p.add_argument("--flufl", action="store_true", help="count flufl.bounce too")
    p.add_argument("--inner", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.inner:
        _inner(args.inner, args.corpus)
        return 0
    count = sum(1 for f in (args.corpus / "emails").iterdir() if f.is_file())
    base = _count("none", args.corpus)
    modes = ["classify", "flufl"] if args.flufl else ["classify"]
    per = {mode: (_count(mode, args.corpus) - base) / count for mode in modes}
    for mode, value in per.items():
        print(f"{mode:<9} {value:>12,.0f} instructions per message ({count} messages)")
    if args.flufl:
        print(f"flufl / classify: {per['flufl'] / per['classify']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
