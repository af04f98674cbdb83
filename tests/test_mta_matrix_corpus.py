"""The MTA matrix corpus (tests/mta_corpus): bounces of real MTAs, labelled by construction.

The files and the manifest agree with the scenarios; the classifier's figures over the
corpus stay at or above the floors (raised as the classifier improves, never lowered).
The live run that regenerates the files is tests/test_mta_matrix.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bounced.classify import classify

from .mta.matrix import unsupported_cells
from .mta.scenarios import BY_NAME, CORRECTIONS, SCENARIOS, labels
from .support import classify_score as score_mod

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "mta_corpus"
ROWS = score_mod.load(CORPUS)
MTAS = ("postfix", "exim", "sendmail", "opensmtpd", "courier", "dma", "chasquid")
FILE_NAME = re.compile(r"^(?P<mta>[a-z]+)-(?P<version>[0-9][0-9A-Za-z.]*)-(?P<scenario>[a-z0-9-]+?)"
                       r"(?:-part\d+)?\.eml$")

# The classifier's issue's targets: every recipient found, hard right for all, reason
# >= 98 %, kind right for every message.
FLOORS = {"recall": 100.0, "precision": 100.0, "reason_agreement": 98.0, "kind_correct": 100.0}
CEILINGS = {"false_hard": 0.0, "missed_hard": 0.0}


def _judge(raw: bytes) -> tuple[str, list[object]]:
    report = classify(raw)
    return report.kind, [score_mod.Got(r.address, r.action, r.reason, r.hard)
                         for r in report.recipients]


def test_aggregate_figures_meet_floors() -> None:
    """Recall, precision, reason, hardness and kind over the MTA corpus meet the floors."""
    score = score_mod.run(ROWS, CORPUS, _judge)
    figures = score.figures()
    problems = "\n".join(score.problems)
    for key, floor in FLOORS.items():
        assert figures[key] >= floor, (key, figures, problems)
    for key, ceiling in CEILINGS.items():
        assert figures[key] <= ceiling, (key, figures, problems)


def test_manifest_names_every_file_and_its_scenario() -> None:
    """Each file is <mta>-<version>-<scenario>.eml, in the manifest with that scenario's labels."""
    files = sorted(p.name for p in (CORPUS / "emails").glob("*.eml"))
    assert files == sorted(str(r["file"]) for r in ROWS)
    for row in ROWS:
        match = FILE_NAME.match(str(row["file"]))
        assert match is not None, row["file"]
        assert match["mta"] in MTAS and match["scenario"] == row["scenario"]
        scenario = BY_NAME[match["scenario"]]
        assert row["expected"], row["file"]
        named = {e["recipient"] for e in row["expected"]}  # type: ignore[attr-defined]
        want = labels(match["mta"], scenario, [e for e in scenario.expected
                                              if e.recipient in named])
        assert {k: row.get(k) for k in want} == want, row["file"]
        assert ("why" in row) == ("why" in want), row["file"]
        assert row["expected_kind"] == scenario.kind, row["file"]


def test_corrected_labels_say_what_they_were_and_why() -> None:
    """A label corrected for one MTA (its report names another reason than the scenario
    built) keeps the scenario's label in ``corrected_from`` and says why; each correction
    is used by a file of the corpus."""
    used = set()
    for row in ROWS:
        if "corrected_from" not in row:
            continue
        entry = row["expected"][0]  # type: ignore[index]
        old = row["corrected_from"]
        assert isinstance(old, dict) and old["reason"] != entry["reason"], row["file"]
        assert old["reason"] == BY_NAME[str(row["scenario"])].expected[0].reason
        assert len(str(row["why"])) > 80, row["file"]
        used.add((str(row["file"]).split("-", 1)[0], row["scenario"], entry["recipient"]))
    assert used == set(CORRECTIONS)


def test_matrix_lists_every_cell_with_a_file_or_a_reason() -> None:
    """matrix.json: per MTA that ran, every scenario either produced a file or is one the
    MTA cannot do, with the reason its adapter declares (the cells the live test has)."""
    cells = json.loads((CORPUS / "matrix.json").read_text())
    files = {p.name for p in (CORPUS / "emails").glob("*.eml")}
    assert {"postfix", "exim"} <= set(cells)
    for kind, entry in cells.items():
        assert set(entry["cells"]) == {s.name for s in SCENARIOS}, kind
        for scenario, state in entry["cells"].items():
            name = f"{kind}-{entry['version']}-{scenario}"
            if state == "produced":
                assert f"{name}.eml" in files or f"{name}-part1.eml" in files, name
            else:
                assert state == f"unsupported: {unsupported_cells(kind)[scenario]}", (name, state)
        assert {s for s, state in entry["cells"].items() if state != "produced"} == \
            set(unsupported_cells(kind)), kind


def test_ret_hdrs_returns_headers_and_ret_full_the_whole_message() -> None:
    """RET=HDRS bounces carry no body of ours, RET=FULL ones do (OpenSMTPD 6.8 ignores HDRS)."""
    body = b"A message of the MTA matrix"
    hdrs = sorted((CORPUS / "emails").glob("*-ret-hdrs.eml"))
    full = sorted((CORPUS / "emails").glob("*-ret-full.eml"))
    assert len(hdrs) >= 4 and {p.name.split("-")[0] for p in hdrs} == \
        {p.name.split("-")[0] for p in full}
    for path in hdrs:
        assert (body in path.read_bytes()) == path.name.startswith("opensmtpd-"), path.name
    for path in full:
        assert body in path.read_bytes(), path.name


@pytest.mark.parametrize("row", ROWS, ids=[str(r["file"]) for r in ROWS])
def test_sender_side_failures_are_never_hard(row: dict[str, object]) -> None:
    """Our IP, DMARC, size, relaying and expiry never make a recipient hard, in any MTA's words."""
    report = classify((CORPUS / "emails" / str(row["file"])).read_bytes())
    by_address = {r.address: r for r in report.recipients}
    for entry in row["expected"]:  # type: ignore[attr-defined]
        got = by_address.get(entry["recipient"].lower())
        if got is not None and not entry["hardbounce"]:
            assert not got.hard, (entry["recipient"], got.reason, entry["reason"])
