"""The texts of a failure read for the reason decision (bounced.classify.rules): a
diagnostic normalised, its phrases found through an index of the phrase tables
(bounced.classify.phrases), the SMTP command it names, the reason its status code names.
"""

from __future__ import annotations

import re

from bounced.classify.codes import GENERIC, STATUS_REASONS, TRANSIENT_REASONS
from bounced.classify.phrases import PHRASES, SMTP_COMMANDS

MAX_SCAN = 4_000  # characters of diagnostic text scanned for phrases
CONTEXT_SCAN = 1_200  # characters of surrounding text scanned


KEY = 4  # characters of a phrase's start that index it


Gram = tuple[str, ...]  # KEY characters


class Scanned:
    """A text cut to ``MAX_SCAN`` and, once a phrase index asks, the set of its runs of
    ``KEY`` characters (as tuples: zip builds them faster than slicing would)."""

    __slots__ = ("_grams", "text")

    def __init__(self, text: str) -> None:
        self.text = text[:MAX_SCAN]
        self._grams: set[Gram] | None = None

    @property
    def grams(self) -> set[Gram]:
        """The text's runs of KEY characters."""
        if self._grams is None:
            text = self.text
            self._grams = set(zip(*(text[k:] for k in range(KEY)), strict=False))
        return self._grams


class PhraseIndex:
    """A table of (name, phrases), searched by substring through an index of the phrases.

    Each method answers as testing every phrase of every entry would (a phrase matches
    wherever it is a substring of the text), but tests only the phrases whose first
    ``KEY`` characters occur in the text: the text's substrings of that length are
    intersected with the phrases' starts in one set operation, so the cost is one pass
    over the text and a few ``in`` tests, not one search per entry."""

    def __init__(self, table: tuple[tuple[str, tuple[str, ...]], ...]) -> None:
        self.names = tuple(name for name, _ in table)
        self.short: list[tuple[int, str]] = []  # phrases shorter than KEY: always tested
        self.index: dict[Gram, list[tuple[int, str]]] = {}
        for i, (_, phrases) in enumerate(table):
            for phrase in phrases:
                if len(phrase) < KEY:
                    self.short.append((i, phrase))
                else:
                    self.index.setdefault(tuple(phrase[:KEY]), []).append((i, phrase))
        self.keys = frozenset(self.index)

    def _candidates(self, scanned: Scanned) -> list[tuple[int, str]]:
        out = list(self.short)
        for gram in self.keys.intersection(scanned.grams):
            out.extend(self.index[gram])
        return out

    def first(self, scanned: Scanned) -> int:
        """The index of the first entry with a phrase in the text (-1 if none)."""
        text, best = scanned.text, len(self.names)
        for i, phrase in self._candidates(scanned):
            if i < best and phrase in text:
                best = i
        return best if best < len(self.names) else -1

    def all(self, scanned: Scanned) -> list[str]:
        """The name of every entry with a phrase in the text, in table order."""
        text = scanned.text
        hits = {i for i, phrase in self._candidates(scanned) if phrase in text}
        return [self.names[i] for i in sorted(hits)]


_PHRASES = PhraseIndex(PHRASES)


def _text(text: str | Scanned) -> Scanned:
    return text if isinstance(text, Scanned) else Scanned(text)


def phrase_reasons(text: str | Scanned) -> list[str]:
    """Every reason in the phrase table with a phrase in ``text``, in table order.

    ``text`` must already be lowercase with whitespace normalised."""
    return _PHRASES.all(_text(text))


def vague_only(text: str | Scanned) -> bool:
    """Whether the only reason words in ``text`` are the vaguest ones (rejected, denied)."""
    return _PHRASES.first(_text(text)) == len(_PHRASES.names) - 1


def phrase_reason(text: str | Scanned) -> str:
    """The first reason in the phrase table with a phrase in ``text`` ('' if none)."""
    i = _PHRASES.first(_text(text))
    return _PHRASES.names[i] if i >= 0 else ""


# Each SMTP command phrase filed under the first of these words it contains: a text
# without the word holds none of its phrases, so a few ``in`` tests leave only the phrases
# worth looking for (every phrase must contain one; checked at import).
_COMMAND_WORDS = ("data", "rcpt", "mail", "helo", "ehlo", "connect", "the message",
                  "error: dd", "user doesn't", "like recipient", "was rejected", "greeting",
                  "refused to talk", "text command")


def _command_index() -> tuple[tuple[str, tuple[tuple[int, str, str], ...]], ...]:
    filed: dict[str, list[tuple[int, str, str]]] = {word: [] for word in _COMMAND_WORDS}
    order = 0
    for command, phrases in SMTP_COMMANDS:
        for phrase in phrases:
            word = next((w for w in _COMMAND_WORDS if w in phrase), None)
            if word is None:
                raise ValueError(f"SMTP command phrase without a filing word: {phrase!r}")
            filed[word].append((order, command, phrase))
            order += 1
    return tuple((word, tuple(entries)) for word, entries in filed.items() if entries)


_COMMANDS_BY_WORD = _command_index()


def smtp_command(text: str | Scanned) -> str:
    """The SMTP command a failure report names (RCPT, DATA, MAIL, HELO, CONN) or ''."""
    # The earliest phrase in the text wins, the first in table order at the same place;
    # only the phrases whose filing word is in the text are looked for.
    text = text.text if isinstance(text, Scanned) else text[:MAX_SCAN]
    candidates: list[tuple[int, str, str]] = []
    for word, entries in _COMMANDS_BY_WORD:
        if word in text:
            candidates.extend(entries)
    if not candidates:
        return ""
    candidates.sort()
    best, where = "", len(text) + 1
    for _, command, phrase in candidates:
        pos = text.find(phrase, 0, where + len(phrase))
        if 0 <= pos < where:
            best, where = command, pos
    return best


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
