"""The SMTP stage the classifier reads for each recipient, and the MTA corpus's truth.

The MTA matrix's remote answers each local part at a known stage (tests/mta/world.py
``REPLIES``: RCPT or DATA; closing.test at RCPT), so every recipient of tests/mta_corpus
has a stage known by construction; a refused connection, an unknown domain or a null MX
has none (no SMTP dialogue). ``read_stages`` classifies a message and returns the stage
the reason rules read for each recipient (their evidence's ``command``: what the report's
transcript says, '' when it says nothing). Used by bench/classify_stage.py and
tests/test_classify_forms.py.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import bounced.classify.rules as rules
from bounced.classify import classify
from tests.mta.world import CLOSING_DOMAIN, REMOTE_DOMAIN, reply_for

MTA_CORPUS = Path(__file__).resolve().parent.parent / "mta_corpus"


@contextlib.contextmanager
def _recording() -> Iterator[list[rules.Evidence]]:
    seen: list[rules.Evidence] = []
    real = rules.evidence

    def recording(*args: object, **kwargs: object) -> rules.Evidence:
        e = real(*args, **kwargs)  # type: ignore[arg-type]
        seen.append(e)
        return e

    rules.evidence = recording  # type: ignore[assignment]
    try:
        yield seen
    finally:
        rules.evidence = real  # type: ignore[assignment]


def read_stages(raw: bytes) -> list[tuple[str, str]]:
    """(address, stage read) for each recipient whose reason the rules decided."""
    with _recording() as seen:
        report = classify(raw)
        decided = [r for r in report.recipients if r.reason not in ("feedback", "vacation")]
        return [(r.address, e.command) for r, e in zip(decided, seen, strict=False)]


def true_stage(address: str) -> str:
    """The stage the MTA matrix's world refused ``address`` at ('' when no dialogue)."""
    domain = address.rpartition("@")[2]
    if domain == CLOSING_DOMAIN:
        return "RCPT"
    if domain == REMOTE_DOMAIN:
        reply = reply_for(address)
        return reply.stage.upper() if reply else ""
    return ""


@dataclass
class StageScore:
    """Recipients whose stage was read as the world gave it, and the misreads."""

    right: int = 0
    total: int = 0
    misreads: list[str] = field(default_factory=list)

    @property
    def percent(self) -> float:
        return 100.0 * self.right / self.total if self.total else 0.0


def score_mta_corpus(corpus: Path = MTA_CORPUS) -> StageScore:
    """The stage read for every failed recipient of the MTA corpus, against its truth."""
    score = StageScore()
    rows = [json.loads(line) for line in (corpus / "manifest.jsonl").read_text().splitlines()]
    for row in rows:
        for address, stage in read_stages((corpus / "emails" / row["file"]).read_bytes()):
            want = true_stage(address)
            score.total += 1
            if stage == want:
                score.right += 1
            else:
                score.misreads.append(f"{row['file']}: {address}: read {stage or '-'}, "
                                      f"was {want or '-'}")
    return score
