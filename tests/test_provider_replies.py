"""The provider-wordings table (tests/classify/providers/): every documented reply of the
large providers and filtering gateways, put into a Postfix DSN, an Exim and a qmail text
bounce and classified. The figures are held at floors (what the classifier reaches today); the soft
replies it calls hard are named one by one and must go to zero."""

from __future__ import annotations

import email
from email.policy import compat32
from pathlib import Path
from typing import Any

import pytest

from .support import classify_providers as table

ROWS = table.load()

# Raise these as the classifier improves, never lower them (figures over all forms).
MIN_ROWS = 270
FLOOR_REASON_RIGHT = 100.0  # % of classifications whose reason is the row's (or an alternative)
FLOOR_HARD_RIGHT = 100.0  # % whose hard flag is the row's
# Soft replies the classifier calls hard today, as "row-id/form". Each one counts a live
# address against its owner: the classifier must bring this list to empty, and a fixed row
# must leave it (the test fails on a stale entry so the list stays true).
KNOWN_SOFT_CALLED_HARD: frozenset[str] = frozenset()
# Dead addresses the classifier does not call hard today (the address is never unconfirmed):
# the same rule, this list goes to empty and holds no fixed row.
KNOWN_MISSED_HARD: frozenset[str] = frozenset()


@pytest.fixture(scope="module")
def results() -> list[Any]:
    """Every row in every form, classified once for the module."""
    return list(table.evaluate(ROWS))


def test_table_is_large_and_labelled_by_the_rules() -> None:
    """The table holds enough rows, each with a source, and hard only when the address is dead."""
    assert len(ROWS) >= MIN_ROWS
    assert len({r.provider for r in ROWS}) >= 25
    for row in ROWS:
        assert row.source.strip(), row.id
        code = row.reply[:3]
        assert row.hard == (row.reason in table.HARD_REASONS and code.startswith("5")), row.id
        assert set(row.accepted) <= table.REASONS, row.id


def test_table_loader_refuses_a_row_against_the_rules(tmp_path: Path) -> None:
    """A 4xx labelled hard, an unknown reason, a missing source or a corrected label that
    does not say why is refused, with the row named."""
    head = 'provider = "P"\nmx = "mx.p.example"\ndomain = "p.example"\n'
    bad = {
        "hard 4xx": '[[reply]]\nid = "x"\nstage = "RCPT"\nreason = "userunknown"\nhard = true\n'
                    'source = "s"\nreply = "450 4.1.1 user unknown"\n',
        "reason": '[[reply]]\nid = "x"\nstage = "RCPT"\nreason = "nosuchreason"\nhard = false\n'
                  'source = "s"\nreply = "550 no"\n',
        "source": '[[reply]]\nid = "x"\nstage = "RCPT"\nreason = "blocked"\nhard = false\n'
                  'reply = "550 no"\n',
        "stage": '[[reply]]\nid = "x"\nstage = "QUIT"\nreason = "blocked"\nhard = false\n'
                 'source = "s"\nreply = "550 no"\n',
        "correction without why": '[[reply]]\nid = "x"\nstage = "RCPT"\nreason = "blocked"\n'
                                  'hard = false\nsource = "s"\ncorrected_from = "rejected"\n'
                                  'reply = "550 no"\n',
    }
    for name, text in bad.items():
        folder = tmp_path / name.replace(" ", "_")
        folder.mkdir()
        (folder / "p.toml").write_text(head + text)
        with pytest.raises(table.TableError, match=r"p\.toml x"):
            table.load(folder)


@pytest.mark.parametrize("form", table.FORMS)
def test_wrappers_write_what_the_mtas_write(form: str) -> None:
    """Each bounce names the provider's MX or address and the SMTP stage as its MTA does."""
    row = next(r for r in ROWS if r.id == "google-no-such-user")
    raw = table.WRAPPERS[form](row)
    text = raw.decode()
    msg = email.message_from_bytes(raw, policy=compat32)
    assert msg.is_multipart() == (form == "dsn")
    if form == "dsn":
        assert msg.get_content_type() == "multipart/report"
        assert "Remote-MTA: dns; gmail-smtp-in.l.google.com" in text
        assert "Status: 5.1.1" in text
        assert " ".join(text.split()).count("(in reply to RCPT TO command)") == 1
    elif form == "exim":
        assert f"after RCPT TO:<{row.rcpt}>:" in text
        assert "\n    550 5.1.1  https://support.google.com/mail/?p=NoSuchUser" in text
    else:
        assert f"<{row.rcpt}>:\n{row.ip} does not like recipient.\nRemote host said: 550-5.1.1" in text
        assert f"\nGiving up on {row.ip}.\n" in text


def test_every_reply_yields_its_recipient(results: list[Any]) -> None:
    """Every row, in every form, is a bounce naming the row's recipient."""
    lost = [r.key for r in results if not r.found or r.kind != "bounce"]
    assert not lost, lost


def test_reason_and_hard_floors(results: list[Any]) -> None:
    """Reason and hard flag are right at least as often as the floors say."""
    got = table.figures(results)
    assert round(got.reason_right, 1) >= FLOOR_REASON_RIGHT, (
        f"reason right {got.reason_right:.1f} % < {FLOOR_REASON_RIGHT} %; misses: "
        + "; ".join(f"{r.key}: {r.reason}" for r in table.misses(results)))
    assert round(got.hard_right, 1) >= FLOOR_HARD_RIGHT, got.missed_hard


def test_soft_replies_called_hard_are_the_known_ones(results: list[Any]) -> None:
    """No soft reply is called hard beyond the named list, and the list holds no fixed row."""
    got = set(table.figures(results).soft_called_hard)
    assert not got - KNOWN_SOFT_CALLED_HARD, f"new soft replies called hard: {sorted(got - KNOWN_SOFT_CALLED_HARD)}"
    assert not KNOWN_SOFT_CALLED_HARD - got, (
        f"now right, remove them from KNOWN_SOFT_CALLED_HARD: {sorted(KNOWN_SOFT_CALLED_HARD - got)}")


def test_missed_hard_replies_are_the_known_ones(results: list[Any]) -> None:
    """No dead address is missed beyond the named list, and the list holds no fixed row."""
    got = set(table.figures(results).missed_hard)
    assert not got - KNOWN_MISSED_HARD, f"new hard replies missed: {sorted(got - KNOWN_MISSED_HARD)}"
    assert not KNOWN_MISSED_HARD - got, (
        f"now right, remove them from KNOWN_MISSED_HARD: {sorted(KNOWN_MISSED_HARD - got)}")
