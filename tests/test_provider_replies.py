"""The provider-wordings table (tests/classify/providers/): every documented reply of the
large providers and filtering gateways, put into a Postfix DSN and an Exim text bounce and
classified. The figures are held at floors (what the classifier reaches today); the soft
replies it calls hard are named one by one and must go to zero."""

from __future__ import annotations

import email
from email.policy import compat32
from pathlib import Path
from typing import Any

import pytest

from .helpers import bench_module

table = bench_module("classify_providers")
ROWS = table.load()

# Raise these as the classifier improves, never lower them (figures over both forms).
MIN_ROWS = 227
FLOOR_REASON_RIGHT = 80.6  # % of classifications whose reason is the row's (or an alternative)
FLOOR_HARD_RIGHT = 100.0  # % whose hard flag is the row's
# Soft replies the classifier calls hard today, as "row-id/form". Each one counts a live
# address against its owner: the classifier must bring this list to empty, and a fixed row
# must leave it (the test fails on a stale entry so the list stays true).
KNOWN_SOFT_CALLED_HARD: frozenset[str] = frozenset()


@pytest.fixture(scope="module")
def results() -> list[Any]:
    """Every row in both forms, classified once for the module."""
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
    """A 4xx labelled hard, an unknown reason or a missing source is refused, with the row named."""
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
    }
    for name, text in bad.items():
        folder = tmp_path / name.replace(" ", "_")
        folder.mkdir()
        (folder / "p.toml").write_text(head + text)
        with pytest.raises(table.TableError, match=r"p\.toml x"):
            table.load(folder)


@pytest.mark.parametrize("form", table.FORMS)
def test_wrappers_write_what_the_mtas_write(form: str) -> None:
    """The DSN names the provider's MX and the reply's status; the text bounce the SMTP stage."""
    row = next(r for r in ROWS if r.id == "google-no-such-user")
    raw = table.WRAPPERS[form](row)
    msg = email.message_from_bytes(raw, policy=compat32)
    if form == "dsn":
        assert msg.get_content_type() == "multipart/report"
        fields = raw.decode()
        assert "Remote-MTA: dns; gmail-smtp-in.l.google.com" in fields
        assert "Status: 5.1.1" in fields
        assert "(in reply to RCPT TO\n    command)" in fields or "(in reply to RCPT TO command)" in fields
    else:
        assert not msg.is_multipart()
        assert f"after RCPT TO:<{row.rcpt}>:" in raw.decode()
        assert "    550 5.1.1  https://support.google.com/mail/?p=NoSuchUser" in raw.decode()


def test_every_reply_yields_its_recipient(results: list[Any]) -> None:
    """Every row, in both forms, is a bounce naming exactly the row's recipient."""
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
