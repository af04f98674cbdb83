"""The classifier on flufl.bounce's 116 labelled test messages (tests/flufl_bounce), real
bounces outside the labelled corpus: failed-address recall and precision must not fall."""

from __future__ import annotations

from .support import classify_heldout as heldout

# Raise them as the classifier improves, never lower them. The three files that disagree:
# two name the recipient by a bare user name (flufl's AOL and Yale detectors add the domain
# they know), one names the address as sent and another in the reason.
FLOORS = {"recall": 97.7, "precision": 99.2, "delays_recognised": 100.0}


def test_heldout_figures_meet_floors() -> None:
    figures, problems = heldout.evaluate()
    assert figures["messages"] == 116
    low = {name: round(figures[name], 1) for name, floor in FLOORS.items()
           if round(figures[name], 1) < floor}
    assert not low, f"below the floors {FLOORS}: {low}; disagreeing files: {problems}"
