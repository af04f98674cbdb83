"""Adversarial strings and messages for the classifier (issue 12: a decoded line of an
address and spaces once took 29 s): tests/test_classify_linear.py runs every pattern of the
classifier on the strings, bench/classify_hostile.py times classify() on the messages."""

from __future__ import annotations

import base64
import functools
import quopri
import random
import re
from collections.abc import Callable, Iterator
from re import _parser as sre_parse  # type: ignore[attr-defined]

Make = Callable[[int], str]


def _repeat(unit: str) -> Make:
    return lambda n: (unit * (n // len(unit) + 1))[:n]


def _mixed(n: int) -> str:
    rng = random.Random(12)
    return "".join(rng.choices(" \ta@.<>:-\n\"'=;()[]1x_", k=n))


# Strings that make a backtracking pattern slow: long runs of what its quantifiers take
# (spaces, word characters, punctuation), of address shapes, of the words and codes of
# bounces, and the address, spaces and one character that a quoted-printable part decoded
# to in the attack of issue 12.
GENERIC: dict[str, Make] = {
    "address, spaces, one character": lambda n: "user@example.com" + " " * max(0, n - 17) + "x",
    "address, tabs, one character": lambda n: "<user@example.com>" + "\t" * max(0, n - 19) + "!",
    "words, then an address at the end": lambda n: "a" * max(0, n - 8) + ": x@y.zz",
    "mixed punctuation": _mixed,
    **{f"run of {ch!r}": _repeat(ch) for ch in " \t\n-<\"@.:1=a_\u00e9\u3000"},
    **{f"repeats of {unit!r}": _repeat(unit) for unit in (
        "a@", "a.", "a@a.", "<a@b.c>", "550-5.1.1 ", "\n ", "\r\n", ": ", "a:", "<script",
        "<a", "rcpt to:<", "recipient ", "to: ", "\"a\" ", "=?", "(a", "[a", "x: y\n",
        "<<< 550 ")},
}


def _walk(parsed: object, words: list[str], chars: set[str]) -> None:
    """Literal words and characters of a parsed pattern (re._parser's tree)."""
    word = ""
    for op, av in parsed:  # type: ignore[attr-defined]
        name = str(op)
        if name == "LITERAL":
            word += chr(av)
            chars.add(chr(av))
            continue
        if word:
            words.append(word)
            word = ""
        if name in ("IN", "NOT_IN"):
            for sop, sav in av:
                if str(sop) == "LITERAL":
                    chars.add(chr(sav))
                elif str(sop) == "RANGE":
                    chars.add(chr(sav[0]))
        elif name == "SUBPATTERN":
            _walk(av[3], words, chars)
        elif name == "BRANCH":
            for sub in av[1]:
                _walk(sub, words, chars)
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            _walk(av[2], words, chars)
        elif name in ("ASSERT", "ASSERT_NOT"):
            _walk(av[1], words, chars)
        elif name == "ATOMIC_GROUP":
            _walk(av, words, chars)
    if word:
        words.append(word)


def _own(pattern: re.Pattern[str] | re.Pattern[bytes]) -> dict[str, Make]:
    """Strings made of the pattern's own literals: its characters in a cycle, and its
    longest words repeated (with and without a space between)."""
    source = pattern.pattern
    text = source.decode("latin-1") if isinstance(source, bytes) else source
    words: list[str] = []
    chars: set[str] = set()
    try:
        _walk(sre_parse.parse(text, pattern.flags & ~re.UNICODE & ~re.ASCII), words, chars)
    except Exception:  # a parser detail of a later Python: the generic strings only
        return {}
    out: dict[str, Make] = {}
    if chars:
        out["the pattern's characters"] = _repeat("".join(sorted(chars)))
    for word in sorted(set(words), key=len, reverse=True)[:2]:
        out[f"repeats of its word {word[:20]!r}"] = _repeat(word)
        out[f"repeats of its word {word[:20]!r} and a space"] = _repeat(word + " ")
    return out


@functools.lru_cache(maxsize=256)
def _generic(label: str, size: int) -> str:
    return GENERIC[label](size)


def adversarial_strings(pattern: re.Pattern[str] | re.Pattern[bytes] | None = None
                        ) -> dict[str, Make]:
    """Label -> function of a size giving an adversarial string of that many characters:
    the generic ones (cached), and those made of ``pattern``'s own literals."""
    out: dict[str, Make] = {label: functools.partial(_generic, label) for label in GENERIC}
    if pattern is not None:
        out.update(_own(pattern))
    return out


def _qp(text: str) -> bytes:
    return quopri.encodestring(text.encode("utf-8"))


def _b64(text: str) -> bytes:
    return base64.encodebytes(text.encode("utf-8"))


_HEAD = (b"From: MAILER-DAEMON@x.example\r\nTo: bounces@bounces.example\r\n"
         b"Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n")


def _text_part(cte: str, body: bytes) -> bytes:
    return (_HEAD + b"Content-Type: text/plain; charset=utf-8\r\n"
            + f"Content-Transfer-Encoding: {cte}\r\n\r\n".encode() + body + b"\r\n")


# Where hostile bytes go in a bounce: message-building functions of (text, size in bytes).
def placements() -> dict[str, Callable[[str, int], bytes]]:
    def qp(text: str, size: int) -> bytes:
        return _text_part("quoted-printable", _qp(text))

    def b64(text: str, size: int) -> bytes:
        return _text_part("base64", _b64(text))

    def raw(text: str, size: int) -> bytes:
        return _text_part("8bit", text.encode("utf-8"))

    def dsn(text: str, size: int) -> bytes:
        return (_HEAD + b'Content-Type: multipart/report; report-type=delivery-status; '
                b'boundary="B"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\n'
                b"<rcpt@example.org>: delivery failed\r\n\r\n--B\r\n"
                b"Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n\r\n"
                b"Final-Recipient: rfc822; rcpt@example.org\r\nAction: failed\r\n"
                b"Status: 5.0.0\r\nDiagnostic-Code: smtp; " + text.encode("utf-8")
                + b"\r\n\r\n--B--\r\n")

    def html(text: str, size: int) -> bytes:
        body = "<html><body><p>" + text + "</p></body></html>"
        return (_HEAD + b"Content-Type: text/html; charset=utf-8\r\n"
                b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + _qp(body) + b"\r\n")

    def header(text: str, size: int) -> bytes:
        return (b"From: " + text[: size // 2].encode("utf-8") + b"\r\nSubject: "
                + text[size // 2:].encode("utf-8") + b"\r\n\r\nhello\r\n")

    return {"quoted-printable part": qp, "base64 part": b64, "raw text part": raw,
            "DSN diagnostic": dsn, "HTML part": html, "headers": header}


def adversarial_messages(size: int) -> Iterator[tuple[str, bytes]]:
    """(label, message of about ``size`` bytes) for every generic adversarial string in
    every placement, one at a time."""
    for label, make in GENERIC.items():
        text = make(size)
        for where, build in placements().items():
            yield f"{label} in {where}", build(text, size)
