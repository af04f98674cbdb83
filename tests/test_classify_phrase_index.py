"""The phrase index answers exactly as a search of every phrase of the table would."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bounced.classify.multisearch import Strings
from bounced.classify.phrases import PHRASES, SMTP_COMMANDS
from bounced.classify.reasons import (
    MAX_SCAN,
    Scanned,
    phrase_reason,
    phrase_reasons,
    smtp_command,
    vague_only,
)

_TABLE = tuple((reason, re.compile("|".join(re.escape(p) for p in phrases)))
               for reason, phrases in PHRASES)
_ALL_PHRASES = [p for _, phrases in PHRASES for p in phrases]
_COMMAND_PHRASES = [p for _, phrases in SMTP_COMMANDS for p in phrases]


def _reference_reasons(text: str) -> list[str]:
    text = text[:MAX_SCAN]
    return [reason for reason, pattern in _TABLE if pattern.search(text)]


def _reference_command(text: str) -> str:
    text = text[:MAX_SCAN]
    best, where = "", len(text) + 1
    for command, phrases in SMTP_COMMANDS:
        for phrase in phrases:
            pos = text.find(phrase)
            if 0 <= pos < where:
                best, where = command, pos
    return best


# Texts made of table phrases, pieces of them (a phrase's start without its end) and
# filler, so that phrases overlap, share their first characters and sit at the edges.
_piece = st.one_of(
    st.sampled_from(_ALL_PHRASES),
    st.sampled_from(_COMMAND_PHRASES),
    st.sampled_from(_ALL_PHRASES).map(lambda p: p[: max(1, len(p) // 2)]),
    st.text(alphabet="abcdeilmnorstu .:<>@5", max_size=12),
)
_texts = st.lists(_piece, max_size=12).map("".join)


@settings(max_examples=400, deadline=None)
@given(_texts)
def test_index_equals_searching_every_phrase(text: str) -> None:
    reasons = _reference_reasons(text)
    assert phrase_reasons(text) == reasons
    assert phrase_reason(text) == (reasons[0] if reasons else "")
    first = next((i for i, (_, p) in enumerate(_TABLE) if p.search(text[:MAX_SCAN])), -1)
    assert vague_only(text) == (first == len(_TABLE) - 1)
    assert smtp_command(text) == _reference_command(text)
    scanned = Scanned(text)  # the same answers from one scan reused
    assert (phrase_reasons(scanned), smtp_command(scanned)) == (
        reasons, _reference_command(text))


def test_index_cuts_at_max_scan() -> None:
    phrase = PHRASES[0][1][0]
    assert phrase_reason("x" * MAX_SCAN + phrase) == ""
    assert phrase_reason("x" * (MAX_SCAN - len(phrase)) + phrase) == PHRASES[0][0]
    assert phrase_reason("x" * (MAX_SCAN - len(phrase) + 1) + phrase) == ""


def test_every_phrase_alone_is_found() -> None:
    for reason, phrases in PHRASES:
        for phrase in phrases:
            assert phrase_reasons(phrase)[:1] == _reference_reasons(phrase)[:1]
            assert reason in phrase_reasons("<" + phrase + ">")


_words = st.sampled_from(["ab", "abc", "bc", "c", "user", "unknown user", "容量", "ä"])


@settings(max_examples=300, deadline=None)
@given(st.lists(_words, min_size=1, max_size=8, unique=True),
       st.text(alphabet="abcuser nkowä容量", max_size=40))
def test_strings_finds_what_in_finds(words: list[str], text: str) -> None:
    """One pass finds every occurrence of every string, overlapping ones and strings
    inside others included, where ``in`` and ``str.find`` would."""
    strings = Strings((w, i) for i, w in enumerate(words))
    assert strings.values_in(text) == {i for i, w in enumerate(words) if w in text}
    expected = sorted((start, i) for i, w in enumerate(words)
                      for start in range(len(text)) if text.startswith(w, start))
    assert sorted((start, i) for start, values in strings.occurrences(text)
                  for i in values) == expected


def test_strings_refuses_the_empty_string_and_holds_several_values() -> None:
    with pytest.raises(ValueError, match="empty string"):
        Strings([("", 1)])
    assert Strings([("no such user", "a"), ("no such user", "b")]).values_in(
        "550 no such user") == {"a", "b"}
    assert Strings([]).values_in("anything") == set()
