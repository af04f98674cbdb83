"""The classifier on flufl.bounce's 116 labelled test messages (tests/flufl_bounce), real
bounces outside the labelled corpus: failed-address recall and precision must not fall."""

from __future__ import annotations

import json

from .support import classify_heldout as heldout

# Raise them as the classifier improves, never lower them. The file that disagrees names the
# address as sent and another in the remote's reason (simple_14.txt: flufl expects both);
# yale_01.txt's expectation is corrected as data (tests/flufl_bounce/README.md).
FLOORS = {"recall": 99.2, "precision": 100.0, "delays_recognised": 100.0}


def test_corrected_expectations_say_what_they_were_and_why() -> None:
    """An expectation changed from flufl.bounce's keeps flufl's (``corrected_from``) and why."""
    rows = [json.loads(line) for line in (heldout.DATA / "expected.jsonl").read_text()
            .splitlines()]
    corrected = [row for row in rows if "corrected_from" in row]
    assert corrected
    for row in corrected:
        assert row["corrected_from"]["recipients"] != row["recipients"], row["file"]
        assert len(row["why"]) > 80, row["file"]


def test_heldout_figures_meet_floors() -> None:
    figures, problems = heldout.evaluate()
    assert figures["messages"] == 116
    low = {name: round(figures[name], 1) for name, floor in FLOORS.items()
           if round(figures[name], 1) < floor}
    assert not low, f"below the floors {FLOORS}: {low}; disagreeing files: {problems}"
