"""The texts of a failure read for the reason decision (bounced.classify.rules): a
diagnostic normalised, its phrases of the phrase tables (bounced.classify.phrases) found
in one pass (bounced.classify.multisearch), the SMTP command it names, the reason its
status code names.
"""

from __future__ import annotations

import re

from bounced.classify.codes import GENERIC, STATUS_REASONS, TRANSIENT_REASONS
from bounced.classify.multisearch import Strings
from bounced.classify.phrases import PHRASES, SMTP_COMMANDS

MAX_SCAN = 4_000  # characters of diagnostic text scanned for phrases
CONTEXT_SCAN = 1_200  # characters of surrounding text scanned


# Every phrase of the reason table and of the SMTP command table, found in one pass over a
# text: a phrase stands for (_REASON, its entry's index, "") or (_COMMAND, its place in the
# command table, the command).
_REASON, _COMMAND = 0, 1
_PHRASE_STRINGS: Strings[tuple[int, int, str]] = Strings(
    [(phrase, (_REASON, i, "")) for i, (_, phrases) in enumerate(PHRASES) for phrase in phrases]
    + [(phrase, (_COMMAND, order, command)) for order, (command, phrase) in enumerate(
        (command, phrase) for command, phrases in SMTP_COMMANDS for phrase in phrases)])
_NAMES = tuple(name for name, _ in PHRASES)
_VAGUEST = len(_NAMES) - 1


class Scanned:
    """A text cut to ``MAX_SCAN`` and, once first asked, what the phrase tables find in
    it: the reason entries with a phrase in it (sorted) and the SMTP command its earliest
    command phrase names."""

    __slots__ = ("_command", "_entries", "text")

    def __init__(self, text: str) -> None:
        self.text = text[:MAX_SCAN]
        self._entries: list[int] | None = None
        self._command = ""

    def _scan(self) -> list[int]:
        entries: set[int] = set()
        best: tuple[int, int, str] | None = None  # (start, table order, command)
        for start, tags in _PHRASE_STRINGS.occurrences(self.text):
            for kind, i, command in tags:
                if kind == _REASON:
                    entries.add(i)
                else:  # the earliest phrase wins, the first in table order at one place
                    at = (start, i, command)
                    if best is None or at < best:
                        best = at
        self._command = best[2] if best is not None else ""
        found = self._entries = sorted(entries)
        return found

    @property
    def entries(self) -> list[int]:
        """The indexes of the reason table's entries with a phrase in the text, in order."""
        found = self._entries
        return found if found is not None else self._scan()

    @property
    def command(self) -> str:
        """The SMTP command the earliest command phrase names ('' if none)."""
        if self._entries is None:
            self._scan()
        return self._command


def _text(text: str | Scanned) -> Scanned:
    return text if isinstance(text, Scanned) else Scanned(text)


def phrase_reasons(text: str | Scanned) -> list[str]:
    """Every reason in the phrase table with a phrase in ``text``, in table order.

    ``text`` must already be lowercase with whitespace normalised."""
    return [_NAMES[i] for i in _text(text).entries]


def vague_only(text: str | Scanned) -> bool:
    """Whether the only reason words in ``text`` are the vaguest ones (rejected, denied)."""
    entries = _text(text).entries
    return bool(entries) and entries[0] == _VAGUEST


def phrase_reason(text: str | Scanned) -> str:
    """The first reason in the phrase table with a phrase in ``text`` ('' if none)."""
    entries = _text(text).entries
    return _NAMES[entries[0]] if entries else ""


def smtp_command(text: str | Scanned) -> str:
    """The SMTP command a failure report names (RCPT, DATA, MAIL, HELO, CONN) or ''."""
    return _text(text).command


def code_reason(status: str) -> tuple[str, bool]:
    """The reason an RFC 3463 status names, and whether the code is specific."""
    parts = status.split(".")
    if len(parts) != 3:
        return "", False
    key = parts[1] + "." + parts[2]
    if key in TRANSIENT_REASONS and parts[0] == "4":
        return TRANSIENT_REASONS[key], True
    reason = STATUS_REASONS.get(key) or STATUS_REASONS.get(parts[1] + ".0", "")
    return reason, bool(reason) and key not in GENERIC and key in STATUS_REASONS


# The code that starts each line of a multiline SMTP reply ("550-5.7.1 ... 550 5.7.1 ...")
# once the lines are joined: it would cut phrases in two. It follows a non-space: in text
# whose whitespace is normalised (single spaces, none at the start) every space does, so
# the pattern starts with its literal space (a fast search) instead of a lookbehind.
_CONTINUATION = re.compile(r" [245]\d\d[ -](?:[245]\.\d{1,3}\.\d{1,3} )?")


def normalised(text: str) -> str:
    """``text`` cut to MAX_SCAN, lowercased, whitespace collapsed to single spaces."""
    return " ".join(text[:MAX_SCAN].lower().split())


def joined(text: str) -> str:
    """A normalised text with the codes of continued reply lines removed."""
    return _CONTINUATION.sub(" ", text)
