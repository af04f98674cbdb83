"""The phrase table (bounced.classify.phrases): wordings grouped by reason, searched in an
explicit priority order. Every group is in the order once, names a registered reason, and
no wording is repeated or shadowed (contained in... a wording that matches wherever it
does, in the same or an earlier group, so it could never decide anything)."""

from __future__ import annotations

from bounced.classify.phrases import PHRASES, PRIORITY, SMTP_COMMANDS, WORDINGS
from bounced.classify.registry import Reason

REASONS = {r.value for r in Reason}


def test_every_group_is_in_the_priority_order_once() -> None:
    """The priority order names each group exactly once, and each group a real reason."""
    assert sorted(PRIORITY) == sorted(WORDINGS)
    assert len(set(PRIORITY)) == len(PRIORITY)
    for key in PRIORITY:
        assert key.partition("/")[0] in REASONS, key
    assert [reason for reason, _ in PHRASES] == [k.partition("/")[0] for k in PRIORITY]


def test_wordings_are_lowercase_and_not_repeated() -> None:
    """Wordings are matched in lowercase normalised text: each is lowercase, single-spaced,
    and in one group only."""
    seen: dict[str, str] = {}
    for key in PRIORITY:
        for wording in WORDINGS[key]:
            assert wording == wording.lower() and wording == " ".join(wording.split()), wording
            assert wording not in seen, (wording, seen.get(wording), key)
            seen[wording] = key


def test_no_wording_is_shadowed() -> None:
    """No wording contains a wording of its own group or of an earlier one: that one would
    match first wherever it does, so it could never decide."""
    earlier: list[tuple[str, str]] = []
    shadowed = []
    for key in PRIORITY:
        group = WORDINGS[key]
        for wording in group:
            for other, where in earlier + [(w, key) for w in group if w != wording]:
                if other in wording:
                    shadowed.append(f"{wording!r} ({key}) contains {other!r} ({where})")
        earlier += [(w, key) for w in group]
    assert not shadowed, "\n".join(shadowed)


def test_command_wordings_are_not_repeated() -> None:
    """Each wording that names an SMTP command names one command, once."""
    seen: dict[str, str] = {}
    for command, wordings in SMTP_COMMANDS:
        for wording in wordings:
            assert wording not in seen, (wording, seen.get(wording), command)
            seen[wording] = command
