"""No exception escapes classify(): generated MIME trees, cut and corrupted corpus
messages, and hostile messages (deep nesting, a huge header, very many recipients)."""

from __future__ import annotations

import random
import tracemalloc
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from bounced.classify import classify
from bounced.classify.detectors.base import MAX_RECIPIENTS

CORPUS = Path(__file__).resolve().parent / "corpus" / "emails"
KINDS = {"bounce", "delay", "complaint", "autoreply", "delivered", "unknown"}
CTYPES = ["text/plain", "text/html", "message/delivery-status", "message/rfc822",
          "message/feedback-report", "text/rfc822-headers", "message/global-delivery-status",
          "application/octet-stream"]
FIELD_LINES = st.sampled_from([
    "Final-Recipient: rfc822; a@b.example", "Action: failed", "Status: 5.1.1", "Status: 4.",
    "Diagnostic-Code: smtp; 550", "Feedback-Type: abuse", "Original-Rcpt-To: <x@y>",
    "Final-Recipient: utf-8; \u00e9@\u00e9.example", "Content-Transfer-Encoding: base64", "",
    "=?utf-8?b?broken", "<a@b.example>:", "Remote host said: 550 5.1.1 user unknown",
])


def _tree(depth: int) -> st.SearchStrategy[str]:
    leaf = st.builds(
        lambda ct, lines: f"Content-Type: {ct}\r\n\r\n" + "\r\n".join(lines),
        st.sampled_from(CTYPES), st.lists(st.one_of(FIELD_LINES, st.text(max_size=40)),
                                          max_size=8))
    if depth == 0:
        return leaf
    multi = st.builds(
        lambda sub, parts: (f'Content-Type: multipart/{sub}; boundary="b{depth}"\r\n\r\n'
                            + "".join(f"--b{depth}\r\n{p}\r\n" for p in parts)
                            + f"--b{depth}--\r\n"),
        st.sampled_from(["report", "mixed", "alternative"]),
        st.lists(_tree(depth - 1), max_size=4))
    return st.one_of(leaf, multi)


def _check(raw: bytes) -> None:
    report = classify(raw)
    assert report.kind in KINDS
    report.to_json()


@settings(max_examples=150, deadline=None)
@given(_tree(3), st.sampled_from(["MAILER-DAEMON@x.example", "a@b", ""]))
def test_generated_mime_trees_never_raise(body: str, sender: str) -> None:
    """Any generated MIME tree gives a report of a known kind."""
    _check(f"From: {sender}\r\nSubject: Undelivered\r\nMIME-Version: 1.0\r\n{body}"
           .encode("utf-8", "surrogatepass"))


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=3000))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    """Arbitrary bytes give a report of a known kind."""
    _check(raw)


def test_corpus_cut_at_ten_points_and_flipped() -> None:
    """Every corpus message cut at 10 points, and with random byte flips, is classified."""
    rng = random.Random(3)
    for path in sorted(CORPUS.iterdir()):
        raw = path.read_bytes()
        for i in range(1, 11):
            _check(raw[: len(raw) * i // 10])
        flipped = bytearray(raw)
        for _ in range(8):
            flipped[rng.randrange(len(flipped))] = rng.randrange(256)
        _check(bytes(flipped))


def test_deep_nesting_is_bounded() -> None:
    """A message nested 5,000 multiparts deep is classified (or rejected as unknown)."""
    depth = 5000
    head = "".join(f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n'
                   for i in range(depth))
    raw = ("From: MAILER-DAEMON@x.example\r\nSubject: failure\r\n" + head
           + "Content-Type: text/plain\r\n\r\n<a@b.example>:\r\n550 5.1.1 unknown\r\n").encode()
    _check(raw)


def test_huge_header_is_bounded() -> None:
    """A 50 MB header line is classified within bounded memory."""
    raw = b"Subject: " + b"x" * 50_000_000 + b"\r\nFrom: a@b.example\r\n\r\nhi\r\n"
    tracemalloc.start()
    try:
        _check(raw)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 100_000_000


def test_hundred_thousand_recipients_are_capped() -> None:
    """A DSN with 100k recipient blocks is classified and reports at most the cap."""
    blocks = "".join(f"\r\nFinal-Recipient: rfc822; u{i}@x.example\r\nAction: failed\r\n"
                     f"Status: 5.1.1\r\n" for i in range(100_000))
    raw = ("From: MAILER-DAEMON@x.example\r\nSubject: failure\r\nMIME-Version: 1.0\r\n"
           'Content-Type: multipart/report; boundary="B"\r\n\r\n--B\r\n'
           "Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n"
           + blocks + "\r\n--B--\r\n").encode()
    report = classify(raw)
    assert report.kind == "bounce"
    assert 0 < len(report.recipients) <= MAX_RECIPIENTS
