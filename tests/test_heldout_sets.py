"""The classifier on real bounces labelled by other projects (tests/heldout/*, flufl.bounce's
messages): per set, no figure may get worse than what the classifier achieves today."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from .support import heldout_sets as sets

# What the classifier achieves now (bench/heldout_sets.py prints the same figures). Raise
# a floor / lower a ceiling when the classifier improves; never the other way. The misreads
# behind each figure are listed by `bench/heldout_sets.py --problems`.
AT_LEAST = {
    "flufl": {"recall": 97.7, "precision": 99.2},
    "bounceparser": {"recall": 100.0, "precision": 100.0, "reason_agreement": 98.1},
    "pybounced": {"recall": 100.0, "precision": 100.0, "reason_agreement": 100.0},
    "baunsu": {},
}
AT_MOST = {
    "flufl": {"false_hard": 0.0, "bounce_empty": 0.0, "finality_wrong": 0.0},
    "bounceparser": {"missed_hard": 0.0, "false_hard": 1.4, "non_bounce_wrong": 0.0,
                     "bounce_empty": 0.0},
    "pybounced": {"missed_hard": 0.0, "false_hard": 0.0, "non_bounce_wrong": 0.0,
                  "bounce_empty": 0.0, "finality_wrong": 0.0},
    "baunsu": {"non_bounce_wrong": 0.0, "bounce_empty": 0.0, "finality_wrong": 0.0},
}
MESSAGES = {"flufl": 116, "bounceparser": 126, "pybounced": 44, "baunsu": 15}


@pytest.fixture(scope="module")
def scores() -> dict[str, Any]:
    """Every set scored once for the module."""
    return dict(sets.evaluate())


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_heldout_set_meets_its_floors(name: str, scores: dict[str, Any]) -> None:
    """Failed addresses, hard flags and reasons of the set's messages are read as well as today."""
    score = scores[name]
    figures = score.figures()
    assert figures["messages"] == MESSAGES[name]
    low = {key: round(figures[key], 1) for key, floor in AT_LEAST[name].items()
           if round(figures[key], 1) < floor}
    high = {key: round(figures[key], 1) for key, ceiling in AT_MOST[name].items()
            if round(figures[key], 1) > ceiling}
    problems = "\n".join(score.problems)
    assert not low and not high, (f"{name}: below floors {low}, above ceilings {high}; "
                                  f"misreads:\n{problems}")


def test_every_set_is_floored(scores: dict[str, Any]) -> None:
    """A set added under tests/heldout gets its floors here too."""
    assert set(scores) - {"overall"} == set(MESSAGES)


@pytest.mark.parametrize("name", ["bounceparser", "pybounced", "baunsu"])
def test_labels_are_what_the_generator_derives(name: str) -> None:
    """expected.jsonl is exactly what the set's generate.py derives from upstream's tests."""
    base = Path(__file__).resolve().parent / "heldout" / name
    spec = importlib.util.spec_from_file_location(f"heldout_{name}", base / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    committed = [json.loads(line) for line in (base / "expected.jsonl").read_text().splitlines()]
    assert module.build() == committed
