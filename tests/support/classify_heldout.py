"""The classifier on flufl.bounce's labelled test messages (tests/flufl_bounce), scored.

Shared by bench/classify_heldout.py, which prints the figures (its docstring says what they
mean), and tests/test_classify_heldout.py, which holds them.
"""

from __future__ import annotations

import json
from pathlib import Path

from bounced.classify import classify

DATA = Path(__file__).resolve().parent.parent / "flufl_bounce"


def evaluate(data: Path = DATA) -> tuple[dict[str, float], list[str]]:
    """Figures over the labelled messages, and one line per file that disagrees."""
    found = expected = correct = delays = delays_seen = hard = 0
    problems: list[str] = []
    entries = [json.loads(line) for line in (data / "expected.jsonl").read_text().splitlines()]
    for entry in entries:
        report = classify((data / "data" / entry["file"]).read_bytes())
        got = {r.address.lower() for r in report.recipients
               if r.action in ("failed", "delayed")}
        want = set(entry["recipients"])
        found += len(got)
        expected += len(want)
        correct += len(got & want)
        hard += sum(r.hard for r in report.recipients if r.address.lower() in got & want)
        if entry["temporary"]:
            delays += 1
            delays_seen += report.kind == "delay"
        if got != want or (entry["temporary"] and report.kind != "delay"):
            problems.append(f"{entry['file']}: kind {report.kind}, expected {sorted(want)}, "
                            f"got {sorted(got)}")
    figures = {
        "messages": float(len(entries)),
        "recall": 100.0 * correct / max(1, expected),
        "precision": 100.0 * correct / max(1, found),
        "delays_recognised": 100.0 * delays_seen / max(1, delays),
        "hard_share": 100.0 * hard / max(1, correct),
    }
    return figures, problems
