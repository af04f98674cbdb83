"""Scoring of a bounce classifier against the labelled corpus (shared by the benchmark and
the corpus tests).

Mapping of the manifest (one line per message: category, expected recipients with
recipient, alternate_addresses, reason, hardbounce, action, feedbacktype) to the figures:

- expected kind: category "feedback-loop" -> complaint, "auto-reply" -> autoreply,
  "delivered-dsn" -> delivered, "bounce" -> bounce, except the delay warnings listed in
  expected-kinds.json (hand-labelled: the manifest marks recipients of both warnings and
  expired final failures as action "delayed") -> delay; a "bounce" whose every expected
  reason is "feedback" (an SES complaint notification) counts as a complaint.
- failed recipients: expected recipients of "bounce" messages. A recipient is found when
  the classifier reports its address (or one of its alternate_addresses), compared
  case-insensitively, with action failed or delayed.
- recall = found / failed recipients; precision = reported failed/delayed addresses of
  "bounce" messages that match an expected recipient / all such reported addresses.
- reason agreement: found recipients whose reason equals the manifest's, with the
  manifest's older names mapped to the reason registry's (bounced/classify/registry.py) (mesgtoobig -> emailtoolarge,
  toomanyconn -> ratelimited).
- false hard: recipients with hardbounce false reported hard / all soft recipients.
  missed hard: recipients with hardbounce true not reported hard (or not found) / all hard.
- kind correct: messages whose reported kind equals the expected kind / all messages.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

ALIASES = {"mesgtoobig": "emailtoolarge", "toomanyconn": "ratelimited"}
CATEGORY_KINDS = {"feedback-loop": "complaint", "auto-reply": "autoreply",
                  "delivered-dsn": "delivered", "bounce": "bounce"}


@dataclass(frozen=True)
class Got:
    """What a classifier said about one recipient (reason '' when it gives none)."""

    address: str
    action: str
    reason: str
    hard: bool


@dataclass
class Score:
    """Counts accumulated over the corpus."""

    expected: int = 0
    found: int = 0
    reported: int = 0
    reported_ok: int = 0
    reason_ok: int = 0
    soft: int = 0
    false_hard: int = 0
    hard: int = 0
    missed_hard: int = 0
    messages: int = 0
    kind_ok: int = 0
    problems: list[str] = field(default_factory=list)

    def figures(self) -> dict[str, float]:
        """The target figures, as percentages."""
        def pct(a: int, b: int) -> float:
            return 100.0 * a / b if b else 0.0
        return {
            "recall": pct(self.found, self.expected),
            "precision": pct(self.reported_ok, self.reported),
            "reason_agreement": pct(self.reason_ok, self.found),
            "false_hard": pct(self.false_hard, self.soft),
            "missed_hard": pct(self.missed_hard, self.hard),
            "kind_correct": pct(self.kind_ok, self.messages),
        }


def load(corpus: Path, kinds_file: Path | None = None) -> list[dict[str, object]]:
    """Manifest rows, each with an added "expected_kind"."""
    overrides: dict[str, str] = {}
    for candidate in (kinds_file, corpus / "expected-kinds.json"):
        if candidate is not None and candidate.exists():
            overrides = {k: v for k, v in json.loads(candidate.read_text()).items()
                         if not k.startswith("_")}
            break
    rows = []
    for line in (corpus / "manifest.jsonl").read_text().splitlines():
        row = json.loads(line)
        kind = CATEGORY_KINDS[row["category"]]
        if row["expected"] and all(e["reason"] == "feedback" for e in row["expected"]):
            kind, row["category"] = "complaint", "feedback-loop"  # an SES complaint notice
        row["expected_kind"] = overrides.get(row["file"], kind)
        rows.append(row)
    return rows


def score_message(score: Score, row: dict[str, object], kind: str | None,
                  got: Iterable[Got]) -> None:
    """Add one message's result (kind None: the classifier gives no kind)."""
    name = str(row["file"])
    score.messages += 1
    if kind is not None and kind == row["expected_kind"]:
        score.kind_ok += 1
    elif kind is not None:
        score.problems.append(f"{name}: kind {kind}, expected {row['expected_kind']}")
    if row["category"] != "bounce":
        return
    failed = [g for g in got if g.action in ("failed", "delayed")]
    by_address = {g.address.lower(): g for g in failed}
    expected = row["expected"]
    assert isinstance(expected, list)
    known: set[str] = set()
    for exp in expected:
        names = {exp["recipient"].lower(), *(a.lower() for a in exp["alternate_addresses"])}
        known |= names
        match = next((by_address[n] for n in names if n in by_address), None)
        reason = ALIASES.get(exp["reason"], exp["reason"])
        score.expected += 1
        if exp["hardbounce"]:
            score.hard += 1
        else:
            score.soft += 1
        if match is None:
            score.missed_hard += bool(exp["hardbounce"])
            score.problems.append(f"{name}: missed {exp['recipient']} ({reason})")
            continue
        score.found += 1
        if match.reason == reason:
            score.reason_ok += 1
        elif match.reason:
            score.problems.append(f"{name}: {exp['recipient']} reason {match.reason}, "
                                  f"expected {reason}")
        if exp["hardbounce"] and not match.hard:
            score.missed_hard += 1
            score.problems.append(f"{name}: {exp['recipient']} not hard ({match.reason})")
        if not exp["hardbounce"] and match.hard:
            score.false_hard += 1
            score.problems.append(f"{name}: {exp['recipient']} FALSE HARD ({match.reason})")
    for g in failed:
        score.reported += 1
        if g.address.lower() in known:
            score.reported_ok += 1
        else:
            score.problems.append(f"{name}: reported stray {g.address}")


def run(rows: list[dict[str, object]], corpus: Path,
        judge: Callable[[bytes], tuple[str | None, list[Got]]]) -> Score:
    """Score ``judge`` (raw bytes -> kind, recipients) over every message of the corpus."""
    score = Score()
    for row in rows:
        raw = (corpus / "emails" / str(row["file"])).read_bytes()
        kind, got = judge(raw)
        score_message(score, row, kind, got)
    return score
