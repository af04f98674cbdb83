"""The classifier on the held-out sets labelled by other projects, scored per set.

Shared by bench/heldout_sets.py, which prints the figures (its docstring says what they
mean), and tests/test_heldout_sets.py, which holds them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bounced.classify import classify

ROOT = Path(__file__).resolve().parents[1]  # tests/
FAILED = ("failed", "delayed")


@dataclass(frozen=True)
class Row:
    """One labelled message (None: the label does not say)."""

    path: Path
    bounce: bool | None
    recipients: tuple[str, ...] | None
    reasons: tuple[str, ...]
    hard: bool | None
    min_recipients: int = 0
    permanent: bool | None = None  # a final failure (kind bounce) or a delay (kind delay)


def flufl_rows(base: Path = ROOT / "flufl_bounce") -> Iterator[Row]:
    """flufl.bounce's labels: failed addresses; a temporary failure is not hard."""
    for line in (base / "expected.jsonl").read_text().splitlines():
        entry = json.loads(line)
        yield Row(path=base / "data" / entry["file"], bounce=True,
                  recipients=tuple(entry["recipients"]), reasons=(),
                  hard=False if entry["temporary"] else None,
                  permanent=False if entry["temporary"] else None)


def jsonl_rows(base: Path) -> Iterator[Row]:
    """Rows of a set's expected.jsonl (the shape every set under tests/heldout shares)."""
    for line in (base / "expected.jsonl").read_text().splitlines():
        entry = json.loads(line)
        recipients = entry.get("recipients")
        yield Row(path=base / entry["file"], bounce=entry.get("bounce"),
                  recipients=None if recipients is None else tuple(recipients),
                  reasons=tuple(entry.get("reasons") or ()), hard=entry.get("hard"),
                  min_recipients=int(entry.get("min_recipients") or 0),
                  permanent=entry.get("permanent"))


def sets() -> dict[str, list[Row]]:
    """Every held-out set, by name."""
    found = {"flufl": list(flufl_rows())}
    for base in sorted((ROOT / "heldout").iterdir()):
        if (base / "expected.jsonl").exists():
            found[base.name] = list(jsonl_rows(base))
    return found


@dataclass
class Score:
    """Counts over one set (or all)."""

    messages: int = 0
    expected: int = 0
    found: int = 0
    reported: int = 0
    reported_ok: int = 0
    non_bounces: int = 0
    non_bounce_wrong: int = 0
    bounces: int = 0
    bounce_empty: int = 0
    hard: int = 0
    missed_hard: int = 0
    soft: int = 0
    false_hard: int = 0
    reasoned: int = 0
    reason_ok: int = 0
    finality: int = 0
    finality_wrong: int = 0
    problems: list[str] = field(default_factory=list)

    def add(self, other: Score) -> None:
        """Add another set's counts."""
        for name, value in vars(other).items():
            if isinstance(value, int):
                setattr(self, name, getattr(self, name) + value)
        self.problems += other.problems

    def figures(self) -> dict[str, float]:
        """The figures as percentages (0 where nothing is labelled)."""
        def pct(a: int, b: int) -> float:
            return 100.0 * a / b if b else 0.0
        return {
            "messages": float(self.messages),
            "recall": pct(self.found, self.expected),
            "precision": pct(self.reported_ok, self.reported),
            "non_bounce_wrong": pct(self.non_bounce_wrong, self.non_bounces),
            "bounce_empty": pct(self.bounce_empty, self.bounces),
            "missed_hard": pct(self.missed_hard, self.hard),
            "false_hard": pct(self.false_hard, self.soft),
            "reason_agreement": pct(self.reason_ok, self.reasoned),
            "finality_wrong": pct(self.finality_wrong, self.finality),
        }


def _judge(score: Score, name: str, row: Row, got: dict[str, tuple[str, bool]],
           address: str) -> None:
    """Hard flag and reason of one labelled failure (address '' : the row names none)."""
    found = [got[a] for a in ([address] if address else got) if a in got]
    reasons = sorted({reason for reason, _ in found})
    if row.hard is True:
        score.hard += 1
        if not any(hard for _, hard in found):
            score.missed_hard += 1
            score.problems.append(f"missed hard | {name} {address or '(row)'}: got {reasons}")
    elif row.hard is False:
        score.soft += 1
        if any(hard for _, hard in found):
            score.false_hard += 1
            score.problems.append(f"soft called hard | {name} {address or '(row)'}: "
                                  f"got {reasons}, expected {list(row.reasons)}")
    if row.reasons and found:
        score.reasoned += 1
        if all(reason in row.reasons for reason, _ in found):
            score.reason_ok += 1
        else:
            score.problems.append(f"reason | {name} {address or '(row)'}: got {reasons}, "
                                  f"expected one of {list(row.reasons)}")


def score_row(score: Score, name: str, row: Row) -> None:
    """Add one message's result."""
    report = classify(row.path.read_bytes())
    score.messages += 1
    got = {r.address.lower(): (r.reason, r.hard) for r in report.recipients
           if r.action in FAILED}
    failed = {r.address.lower() for r in report.recipients if r.action == "failed"}
    if row.bounce is False:
        score.non_bounces += 1
        if report.kind == "bounce" or failed:
            score.non_bounce_wrong += 1
            score.problems.append(f"non-bounce read as bounce | {name}: kind {report.kind}, "
                                  f"failed {sorted(failed)}")
        return
    if row.permanent is not None:
        score.finality += 1
        if report.kind != ("bounce" if row.permanent else "delay"):
            score.finality_wrong += 1
            score.problems.append(f"final/delay | {name}: kind {report.kind}, expected "
                                  f"{'a final failure' if row.permanent else 'a delay'}")
    if row.recipients is not None:
        want = set(row.recipients)
        score.expected += len(want)
        score.found += len(want & got.keys())
        score.reported += len(got)
        score.reported_ok += len(got.keys() & want)
        for address in sorted(want - got.keys()):
            score.problems.append(f"address missed | {name}: {address} (kind {report.kind}, "
                                  f"got {sorted(got)})")
        for address in sorted(got.keys() - want):
            score.problems.append(f"address not failed | {name}: reported {address}")
        for address in sorted(want & got.keys()):
            _judge(score, name, row, got, address)
        missed = len(want - got.keys())
        if row.hard is True:
            score.hard += missed
            score.missed_hard += missed
        elif row.hard is False:
            score.soft += missed
    if row.bounce and (row.recipients or row.reasons or row.min_recipients):
        score.bounces += 1
        if not got:
            score.bounce_empty += 1
            if row.recipients is None:
                score.problems.append(f"nothing found | {name}: kind {report.kind}")
                if row.hard is True:
                    score.hard += 1
                    score.missed_hard += 1
                elif row.hard is False:
                    score.soft += 1
    if row.recipients is None and got and (row.reasons or row.hard is not None):
        _judge(score, name, row, got, "")


def evaluate(only: str | None = None) -> dict[str, Score]:
    """Scores per set, and over all of them under 'overall'."""
    scores: dict[str, Score] = {}
    overall = Score()
    for name, rows in sets().items():
        if only and name != only:
            continue
        score = Score()
        for row in rows:
            score_row(score, f"{name}/{row.path.name}", row)
        scores[name] = score
        overall.add(score)
    if len(scores) > 1:
        scores["overall"] = overall
    return scores


LINES = (
    ("recall", "failed-address recall", "found / labelled failed addresses"),
    ("precision", "failed-address precision", "labelled / reported"),
    ("missed_hard", "missed hard", "of the labelled hard failures"),
    ("false_hard", "soft called hard", "of the labelled soft failures"),
    ("reason_agreement", "reason agrees", "of the found failures with a reason label"),
    ("non_bounce_wrong", "non-bounces read as bounces", "of the labelled non-bounces"),
    ("bounce_empty", "bounces with nothing found", "of the labelled bounces"),
    ("finality_wrong", "final failure / delay wrong", "of the rows that say which"),
)
DENOMINATORS = {"recall": "expected", "precision": "reported", "missed_hard": "hard",
                "false_hard": "soft", "reason_agreement": "reasoned",
                "non_bounce_wrong": "non_bounces", "bounce_empty": "bounces",
                "finality_wrong": "finality"}
