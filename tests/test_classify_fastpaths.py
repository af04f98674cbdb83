"""The shortcuts taken for speed answer exactly as the searches they replace."""

from __future__ import annotations

import random
import re
import re._parser as _sre
import string
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bounced.classify import systems
from bounced.classify.detectors.text import (
    _NOT_RECIPIENT_SHORT,
    _NOT_RECIPIENT_SPAN,
    _names_other,
)
from bounced.classify.parse import _LONG_LINE, MAX_LINE, _has_long_line, parse, walk
from bounced.classify.providers import (
    PROVIDER_NUMBERS,
    PROVIDER_TEXTS,
    provider_match,
    required_literal,
    required_literals,
)
from bounced.classify.reasons import joined, normalised, smtp_command
from bounced.classify.textforms import (
    BOUNCE_FROM,
    BOUNCE_FROM_FOLDED,
    BOUNCE_SUBJECT,
    BOUNCE_SUBJECT_FOLDED,
    BOUNCE_TEXT,
    BOUNCE_TEXT_FOLDED,
    DELAY_SUBJECT,
    DELAY_SUBJECT_FOLDED,
    DELAY_TEXT,
    DELAY_TEXT_FOLDED,
    DELIVERED_TEXT_FOLDED,
    FAILURE_WORDS_FOLDED,
    FINAL_TEXT,
    FINAL_TEXT_FOLDED,
    NOT_RECIPIENT_BEFORE,
    RECIPIENT_LINES,
    RECIPIENT_LINES_LOWER,
    fold,
    says_delayed,
    says_delivered,
    says_final,
    search_subject,
)
from tests.support.classify_providers import load as load_provider_rows
from tests.test_classify_phrase_index import _reference_command

CORPUS = Path(__file__).parent / "corpus" / "emails"
FOLDED = ((BOUNCE_TEXT, BOUNCE_TEXT_FOLDED), (DELAY_TEXT, DELAY_TEXT_FOLDED),
          (FINAL_TEXT, FINAL_TEXT_FOLDED), (BOUNCE_FROM, BOUNCE_FROM_FOLDED))
_LETTERS = re.compile("(?i)" + "|".join(string.ascii_lowercase))


def _corpus_texts() -> list[str]:
    return [walk(parse(f.read_bytes())).text for f in sorted(CORPUS.glob("*.eml"))]


_CORPUS_SAMPLE = _corpus_texts()[::40]


def test_fold_is_how_ignorecase_sees_ascii_letters() -> None:
    """Every character keeps one character, and re.IGNORECASE matches a character with a
    lowercase ASCII letter exactly when fold() turns it into that letter."""
    chars = [chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF]
    for char in chars:
        folded = fold(char)
        assert len(folded) == 1, hex(ord(char))
        letter = _LETTERS.fullmatch(char)
        if letter or folded in string.ascii_lowercase:
            assert letter is not None and re.fullmatch("(?i)" + folded, char), hex(ord(char))
            assert folded in string.ascii_lowercase, hex(ord(char))
    assert fold("\u0130\u017f\u0131 ABC \u00fcn") == "isi abc \u00fcn"


@pytest.mark.parametrize(("caseless", "folded"), FOLDED)
def test_folded_patterns_match_the_corpus_alike(caseless: re.Pattern[str],
                                               folded: re.Pattern[str]) -> None:
    for text in _corpus_texts():
        a, b = caseless.search(text), folded.search(fold(text))
        assert (a and a.span()) == (b and b.span())


_words = st.sampled_from(["Could NOT be delivered", "g\u0130ven up", "I'VE GIVEN UP", "retrying",
                          "\u017ftill trying", "ST\u0130LL \u0130N THE QUEUE", "Permanent Error",
                          "\u00fcn\u0131",
                          "will be retried", "Delivery has FAILED", "ßtill"])
_mixed = st.lists(st.one_of(_words, st.text(max_size=8)), max_size=8).map(" ".join)


@settings(max_examples=300, deadline=None)
@given(_mixed)
def test_folded_patterns_match_any_text_alike(text: str) -> None:
    for caseless, folded in FOLDED:
        a, b = caseless.search(text), folded.search(fold(text))
        assert (a and a.span()) == (b and b.span())


_PROVIDER_PATTERNS = [re.compile(rx) for _, rx, _ in PROVIDER_TEXTS + PROVIDER_NUMBERS]


def _reference_provider(text: str) -> tuple[str, str]:
    """provider_match as it was: every regex searched, in table order."""
    for provider, rx, ranges in PROVIDER_NUMBERS:
        m = re.search(rx, text)
        if m:
            for low, high, reason in ranges:
                if low <= int(m.group(1)) <= high:
                    return provider, reason
    for provider, rx, reason in PROVIDER_TEXTS:
        if re.search(rx, text):
            return provider, reason
    return "", ""


@pytest.mark.parametrize(("branch", "literal"), [
    (r"\baup#[a-z]{0,4}-?(\d{4})\b", "aup#"), (r"ab\d{3}cd", "ab"), (r"x{2,3}yz", "yz"),
    (r"[]ab]cd", "cd"), (r"a+bc", "bc"), (r"\.\[x\]", ".[x]"), (r"ab(cd)*ef", "ab"),
    (r"\b550 ?: ?user unknown", "user unknown"), (r"(a|b)", ""), (r"\d+", ""),
])
def test_required_literal(branch: str, literal: str) -> None:
    assert required_literal(branch) == literal


def test_every_provider_pattern_has_a_precheck() -> None:
    """Each entry is pre-checked (a new entry without a required literal would still be
    right, only slower: this keeps the table fast)."""
    assert all(required_literals(p) is not None for p in _PROVIDER_PATTERNS)
    assert required_literals(re.compile("(?i)abc")) is None


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_every_match_holds_a_required_literal(data: st.DataObject) -> None:
    for pattern in _PROVIDER_PATTERNS:
        needed = required_literals(pattern)
        assert needed is not None
        match = data.draw(st.from_regex(pattern, fullmatch=True))
        assert any(s in match for s in needed), (pattern.pattern, match)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(
    st.sampled_from(_PROVIDER_PATTERNS).flatmap(lambda p: st.from_regex(p, fullmatch=True)),
    st.text(alphabet="abc_#0123456789 .:[]()-", max_size=10)), max_size=5).map("".join))
def test_provider_match_equals_searching_every_pattern(text: str) -> None:
    assert provider_match(text) == _reference_provider(text)


def test_provider_match_on_the_corpus_text() -> None:
    for text in _corpus_texts():
        for raw in text.lower().splitlines()[:200]:
            line = " ".join(raw.split())
            assert provider_match(line) == _reference_provider(line)


_OLD_CONTINUATION = re.compile(r"(?<=\S) [245]\d\d[ -](?:[245]\.\d{1,3}\.\d{1,3} )?")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(["550", "550-5.7.1", "450 4.2.0", "5.1.1", " ", "-",
                                           "\t", "\n", "x", "250 "]),
                          st.text(alphabet="245 .-x\t\n", max_size=6)), max_size=10).map("".join))
def test_continuation_codes_removed_as_before(text: str) -> None:
    """In normalised text the lookbehind-free pattern removes what the old one did."""
    plain = normalised(text)
    assert joined(plain) == _OLD_CONTINUATION.sub(" ", plain)


def test_smtp_command_on_the_corpus_text() -> None:
    """The filing words leave smtp_command's answers as searching every phrase gives."""
    for text in _corpus_texts():
        lowered = normalised(text[:20_000])
        for start in range(0, len(lowered), 1_000):
            window = lowered[start:start + 1_200]
            assert smtp_command(window) == _reference_command(window)


def _spans(m: re.Match[str] | None) -> object:
    return m and [m.span(g) for g in range(len(m.groups()) + 1)]


def _same_line_matches(line: str) -> None:
    if line.isascii():
        for caseless, lower in zip(RECIPIENT_LINES, RECIPIENT_LINES_LOWER, strict=True):
            assert _spans(caseless.search(line)) == _spans(lower.search(line.lower()))


def test_recipient_lines_lowered_match_the_corpus_alike() -> None:
    """An ASCII line lowercased gives the case-sensitive patterns the same matches."""
    for text in _corpus_texts():
        for line in text.splitlines()[:400]:
            if "@" in line:
                _same_line_matches(line)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["Recipient:", "TO", "Final-Recipient: RFC822;", " ", "<",
                                 ">", "A.B@Example.COM", "user@x.example", ":", "...",
                                 "550 5.1.1", ">>>", "RCPT TO:", "Addresses", "\t", "x",
                                 "The following RECIPIENTS failed", "(", "-", "\"", "'"]),
                max_size=10).map("".join))
def test_recipient_lines_lowered_match_any_line_alike(line: str) -> None:
    _same_line_matches(line)


def test_dsn_items_equal_message_items() -> None:
    """The DSN reader's shortcut for field values gives what Message.items() gives."""
    from email.message import Message

    from bounced.classify.detectors.dsn import DSN_TYPES, _items

    raws = [f.read_bytes() for f in sorted(CORPUS.glob("*.eml"))]
    raws.append(b"Content-Type: message/delivery-status\n\nReporting-MTA: dns; h\xe9\n\n"
                b"Final-Recipient: rfc822; a@b.example\nStatus: 5.1.1\n")
    seen = 0
    for raw in raws:
        for part in walk(parse(raw)).parts:
            payload = part.get_payload() if part.get_content_type() in DSN_TYPES else None
            for sub in payload if isinstance(payload, list) else []:
                if isinstance(sub, Message):
                    got, want = _items(sub), sub.items()
                    assert [(k, type(v), str(v)) for k, v in got] == [
                        (k, type(v), str(v)) for k, v in want]
                    seen += 1
    assert seen > 100


def _literal_end(items: list[tuple[object, object]]) -> str:
    """The literal characters that end a parsed regex branch (word boundaries skipped)."""
    out = ""
    for op, av in reversed(items):
        if op is _sre.AT and not out:
            continue
        if op is not _sre.LITERAL:
            break
        out = chr(av) + out  # type: ignore[call-overload]
    return out


def test_not_recipient_words_end_where_the_scanner_looks() -> None:
    """_names_other searches only the end of a text: every way NOT_RECIPIENT_BEFORE's words
    can be longer than the short span ends with 'with' or 'to' and fits in the long one."""
    tree = _sre.parse(NOT_RECIPIENT_BEFORE.pattern, NOT_RECIPIENT_BEFORE.flags)
    group = tree[0][1][-1]  # type: ignore[index]
    branches = group[0][1][1]
    for branch in branches:
        high = branch.getwidth()[1]
        if high <= _NOT_RECIPIENT_SHORT:
            continue
        items = list(branch.data)
        op, av = items[-1]
        if op is _sre.MAX_REPEAT and av[0] == 0:  # an optional tail: without it, short
            head = _sre.SubPattern(branch.state, items[:-1])
            assert head.getwidth()[1] <= _NOT_RECIPIENT_SHORT
            items = list(av[2].data)
            if items and items[0][0] is _sre.SUBPATTERN:
                items = list(items[0][1][-1].data)
        assert _literal_end(items).endswith(("with", "to")), branch
        assert high <= _NOT_RECIPIENT_SPAN, branch


def test_not_recipient_tail_search_answers_as_the_whole_search() -> None:
    words = [*re.findall(r"[a-z][a-z:-]*[a-z:]", NOT_RECIPIENT_BEFORE.pattern), "not", " ",
             "  ", "\t", ":", "<", "(", "'", '"', "\u2003", "\n", "x@y", "\u0130", "WITH", "To", "\u017fent by", "Wit\u0130", "\u212aontact"]
    rng = random.Random(14)
    for _ in range(50_000):
        text = "".join(rng.choice(words) + rng.choice(("", " ", "a" * rng.randint(0, 90)))
                       for _ in range(rng.randint(0, 12)))
        assert _names_other(text) == bool(NOT_RECIPIENT_BEFORE.search(text)), text


_ascii_subjects = st.lists(st.one_of(
    st.sampled_from(["Undeliverable:", "RETURNED MAIL", "Delivery Status Notification (Delay)",
                     "WARNING: delayed", "Still Being Retried", "Nicht Zustellbar", "fwd:"]),
    st.text(alphabet=string.printable, max_size=8)), max_size=6).map(" ".join)


@settings(max_examples=300, deadline=None)
@given(_ascii_subjects)
def test_subject_patterns_answer_alike_on_ascii_subjects(subject: str) -> None:
    for caseless, folded in ((BOUNCE_SUBJECT, BOUNCE_SUBJECT_FOLDED),
                             (DELAY_SUBJECT, DELAY_SUBJECT_FOLDED)):
        assert search_subject(caseless, folded, subject) == bool(caseless.search(subject))
    # a subject that is not ASCII is searched with the caseless pattern itself
    odd = "\u0417\u1c81\u0415\u0420\u0416\u041a\u0410"  # a rounded de (U+1C81)
    assert search_subject(DELAY_SUBJECT, DELAY_SUBJECT_FOLDED, odd) == bool(
        DELAY_SUBJECT.search(odd))


def test_long_line_check_answers_as_the_pattern() -> None:
    """bound() looks for a line over MAX_LINE by line breaks, as _LONG_LINE would find it."""
    rng = random.Random(16)
    sizes = (0, 1, MAX_LINE - 1, MAX_LINE, MAX_LINE + 1, MAX_LINE + 2)
    for _ in range(3_000):
        lines = [b"x" * rng.choice((*sizes, rng.randint(0, 3 * MAX_LINE)))
                 for _ in range(rng.randint(0, 6))]
        raw = b"\n".join(lines) + rng.choice((b"", b"\n", b"\n\n"))
        assert _has_long_line(raw) == bool(_LONG_LINE.search(raw)), [len(x) for x in lines]


@settings(max_examples=300, deadline=None)
@given(_mixed)
def test_final_and_delay_words_answer_as_their_patterns(text: str) -> None:
    delivered = ("Your message has been successfully relayed to the following recipients",
                 "Delivery to these recipients or groups is complete", "delivered to these "
                 "recipients: a@b.example", "successfully delivered, then it failed")
    for folded in (fold(text), *(fold(t[:6000]) for t in _CORPUS_SAMPLE),
                   *(fold(t + " " + text) for t in delivered)):
        assert says_final(folded) == bool(FINAL_TEXT_FOLDED.search(folded))
        assert says_delayed(folded) == bool(DELAY_TEXT_FOLDED.search(folded))
        assert says_delivered(folded) == (bool(DELIVERED_TEXT_FOLDED.search(folded))
                                          and not FAILURE_WORDS_FOLDED.search(folded))


def _reference_system_reply(hosts: tuple[str, ...], text: str) -> str:
    """system_reply as it was: every system's replies in order, each searched when the text
    holds one of its words; a system with hosts, none of which runs, skipped."""
    for system, replies in systems._REPLIES:
        for pattern, reason, words in replies:
            if words is not None and not any(w in text for w in words):
                continue
            if system.hosts and not any(system.runs(h) for h in hosts if h):
                break
            if pattern.search(text):
                return reason
    return ""


# Texts made of the systems' reply words and hosts, so that replies of several systems
# (with and without their hosts) meet in one text.
_REPLY_WORDS = sorted({w for _, replies in systems._REPLIES for _, _, words in replies
                       for w in words or ()})
_SYSTEM_HOSTS = sorted({h for system, _ in systems._REPLIES for h in system.hosts})


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(_REPLY_WORDS),
                          st.text(alphabet="abcdeilmnorstu 0123456789.:<>@#()", max_size=10)),
                max_size=10).map(" ".join),
       st.lists(st.sampled_from([*_SYSTEM_HOSTS, "mx.example.org", ""]), max_size=3))
def test_system_reply_equals_searching_every_reply(text: str, hosts: list[str]) -> None:
    assert systems.system_reply(lambda: tuple(hosts), text) == _reference_system_reply(
        tuple(hosts), text)


def test_system_reply_on_the_corpus_text_and_the_provider_replies() -> None:
    """The same answers on the corpus's text and on the documented provider replies (the
    systems' own wordings among them: 29 of them answer a reason), each with the reply's
    own hosts, with none and with another's."""
    rows = load_provider_rows()
    for row in rows:
        text = normalised(row.reply)
        for hosts in ((), (row.mx, row.rcpt.rpartition("@")[2]), ("mx.example.org",)):
            assert systems.system_reply(lambda h=hosts: h, text) == (
                _reference_system_reply(hosts, text))
    assert sum(bool(_reference_system_reply((row.mx, row.rcpt.rpartition("@")[2]),
                                            normalised(row.reply))) for row in rows) >= 25
    for text in _corpus_texts():
        lowered = normalised(text[:20_000])
        for start in range(0, len(lowered), 1_000):
            window = lowered[start:start + 1_200]
            for hosts in ((), ("mx.example.org",), tuple(_SYSTEM_HOSTS[:3])):
                assert systems.system_reply(lambda h=hosts: h, window) == (
                    _reference_system_reply(hosts, window))
