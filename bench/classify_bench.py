"""Benchmark: bounced.classify against flufl.bounce alone, over the labelled corpus.

    .venv/bin/python bench/classify_bench.py [--corpus DIR] [--rounds N] [--problems]

DIR defaults to tests/corpus (its manifest holds the corrected labels: ``corrected_from``
and ``why`` on each changed line). Prints, for both classifiers in the same run, every
target figure of issue 14: failed-recipient recall,
address precision, reason agreement, false hard, missed hard, kind correct, and the
throughput of each over the same files with parsing included (and their ratio). How the
manifest maps to each figure is documented in tests/support/classify_score.py. Beside them, the
same figures of bounced.classify over the MTA matrix corpus (tests/mta_corpus: bounces of
real MTAs labelled by construction; ``--mta-corpus DIR`` to point elsewhere), whose
targets are every recipient found, hard right for all, reason >= 98 %, kind right for all.
flufl.bounce gives no kind and no reason: its kind and reason figures print as n/a; every
address in its ``all_failures`` counts as failed and hard (it calls every failure permanent).
"""

from __future__ import annotations

import argparse
import email
import sys
import time
from email.policy import compat32
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout

from flufl.bounce import all_failures

from bounced.classify import classify
from tests.support.classify_score import Got, Score, load, run

ROOT = Path(__file__).resolve().parent.parent
# Issue 14's targets over the corpus with its corrected labels.
TARGETS = {"recall": (">=", 99.5), "precision": (">=", 99.5), "reason_agreement": (">=", 97.0),
           "false_hard": ("<=", 1.0), "missed_hard": ("<=", 2.0), "kind_correct": (">=", 98.0)}
# The MTA matrix corpus's targets (same direction as TARGETS): every recipient found, no
# stray address, hard right for every recipient, reason >= 98 %, kind right for every message.
MTA_TARGETS = {"recall": 100.0, "precision": 100.0, "reason_agreement": 98.0,
               "false_hard": 0.0, "missed_hard": 0.0, "kind_correct": 100.0}


def judge_bounced(raw: bytes) -> tuple[str | None, list[Got]]:
    report = classify(raw)
    return report.kind, [Got(r.address, r.action, r.reason, r.hard) for r in report.recipients]


def flufl(raw: bytes) -> tuple[set[str], set[str]]:
    msg = email.message_from_bytes(raw, policy=compat32)
    try:
        temporary, permanent = all_failures(msg)
    except Exception:  # flufl raises IndexError on a message without From
        return set(), set()
    def text(a: object) -> str:
        return a.decode("utf-8", "replace") if isinstance(a, bytes) else str(a)
    return {text(a) for a in temporary}, {text(a) for a in permanent}


def judge_flufl(raw: bytes) -> tuple[str | None, list[Got]]:
    temporary, permanent = flufl(raw)
    got = [Got(a, "failed", "", True) for a in permanent]
    got += [Got(a, "delayed", "", False) for a in temporary - permanent]
    return None, got


def throughput(raws: list[bytes], fn: object, rounds: int) -> float:
    assert callable(fn)
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for raw in raws:
            fn(raw)
        best = min(best, time.perf_counter() - start)
    return len(raws) / best


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", type=Path, default=ROOT / "tests" / "corpus",
                   help="the labelled corpus (default: tests/corpus, whose manifest holds the "
                        "corrected labels)")
    p.add_argument("--rounds", type=int, default=5, help="timing rounds (best is kept)")
    p.add_argument("--problems", action="store_true", help="list every disagreement")
    p.add_argument("--mta-corpus", type=Path, default=ROOT / "tests" / "mta_corpus",
                   help="the MTA matrix corpus, scored beside the first")
    args = p.parse_args()
    rows = load(args.corpus, ROOT / "tests" / "corpus" / "expected-kinds.json")
    ours: Score = run(rows, args.corpus, judge_bounced)
    theirs: Score = run(rows, args.corpus, judge_flufl)
    raws = [(args.corpus / "emails" / str(r["file"])).read_bytes() for r in rows]
    ours_rate = throughput(raws, classify, args.rounds)
    theirs_rate = throughput(raws, flufl, args.rounds)
    mta_rows = load(args.mta_corpus) if (args.mta_corpus / "manifest.jsonl").exists() else []
    mta: Score = run(mta_rows, args.mta_corpus, judge_bounced)
    if args.problems:
        print("\n".join(ours.problems))
        print("\n".join(f"mta corpus: {line}" for line in mta.problems))
    print(f"corpus: {args.corpus} ({len(rows)} messages, {ours.expected} failed recipients, "
          f"{ours.hard} hard, {ours.soft} soft)")
    print(f"mta corpus: {args.mta_corpus} ({len(mta_rows)} messages, {mta.expected} failed "
          f"recipients, {mta.hard} hard, {mta.soft} soft)")
    print(f"{'figure':<18} {'bounced':>9} {'flufl':>9}  target   met  {'mta corpus':>10}  "
          "target   met")
    a, b, m = ours.figures(), theirs.figures(), mta.figures()
    failures = 0
    for key, (op, goal) in TARGETS.items():
        ok = a[key] >= goal if op == ">=" else a[key] <= goal
        failures += not ok
        fl = "n/a" if key in ("reason_agreement", "kind_correct") else f"{b[key]:.1f}%"
        mgoal = MTA_TARGETS[key]
        mok = m[key] >= mgoal if op == ">=" else m[key] <= mgoal
        failures += not mok
        print(f"{key:<18} {a[key]:>8.1f}% {fl:>9}  {op}{goal:<5}  {'yes' if ok else 'NO ':<3}  "
              f"{m[key]:>9.1f}%  {op}{mgoal:<5}  {'yes' if mok else 'NO'}")
    ratio = ours_rate / theirs_rate
    failures += ratio < 1.5
    print(f"{'throughput msg/s':<18} {ours_rate:>9.0f} {theirs_rate:>9.0f}  "
          f"ratio {ratio:.2f}x (target >=1.5x) {'yes' if ratio >= 1.5 else 'NO'}")
    print("all targets met" if not failures else f"{failures} target(s) missed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
