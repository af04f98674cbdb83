"""Reason and hardness of one recipient.

The order of evidence:

1. A specific RFC 3463 status code (5.1.1, 5.1.2, 5.2.2, 5.2.3, 5.3.4, 5.4.6, 5.6.x...)
   names the reason, unless the words blame the sender (a blocklisted IP, spam,
   authentication...) or name another state of the mailbox (full, moved, disabled).
2. Otherwise (no status, or a generic one: X.0.0, X.1.0, X.2.0, 5.5.0, 5.7.0, 5.7.1...)
   the diagnostic's words decide (the phrase tables in ``bounced.classify.phrases``), and
   the text around the recipient when the diagnostic says nothing.
3. A "user unknown" in words only proves the address dead when the SMTP command that
   failed was RCPT TO, or when the reporting system answered for its own users (no
   remote SMTP reply); a remote "550 unknown user" at another or an unknown stage is
   what content filters say, so it is reported as filtered. After MAIL FROM, or when the
   words say the sender was refused ("Sender address rejected: Domain not found"), an
   address reason is about the sender (rejected), whatever the status code.
4. Nothing said: the failing command (connection/HELO: blocked), the action (delayed:
   expired) or the generic code.
"""

from __future__ import annotations

import re

from bounced.classify.codes import GENERIC, STATUS_REASONS
from bounced.classify.phrases import (
    CONNECT_FAILURES,
    PHRASES,
    RECIPIENT_REFUSED,
    REMOTE_REPLY,
    REPORTER_LABELS,
    SENDER_REFUSED,
    SMTP_COMMANDS,
)
from bounced.classify.providers import provider_reason
from bounced.classify.registry import HARD

HARD_REASONS = frozenset({"userunknown", "hostunknown", "hasmoved"})
ADDRESS_REASONS = HARD_REASONS | {"notaccept", "suspend", "mailboxfull"}
# The sender's fault, not the address's: these phrases override an address status code.
SENDER_SIDE = frozenset(
    {"blocked", "spamdetected", "virusdetected", "policyviolation", "authfailure",
     "requireptr", "badreputation", "ratelimited", "speeding", "norelaying",
     "securityerror", "filtered", "notcompliantrfc"}
)
# Mailbox states that override an "unknown address" status code (a full mailbox
# answered with 5.1.1, a null MX reported as 5.1.10).
MAILBOX_STATES = frozenset({"mailboxfull", "hasmoved", "suspend", "notaccept"})
# A refusal before RCPT TO is not about the recipient, whatever address reason its code or
# words name: at MAIL FROM it is the sender's address, at the greeting or HELO our host.
BEFORE_RCPT = {"MAIL": "rejected", "HELO": "blocked", "CONN": "blocked"}
# Reasons too vague to override a specific status code.
WEAK = frozenset({"rejected", "filtered", "systemerror", "networkerror", "contenterror",
                  "policyviolation", "expired", "syntaxerror", "undefined"})
MAX_SCAN = 4_000  # characters of diagnostic text scanned for phrases
CONTEXT_SCAN = 1_200  # characters of surrounding text scanned


_REFUSED = re.compile(RECIPIENT_REFUSED)
# A reply that names the recipient, then what is wrong with it ("550 <a@b>: User unknown",
# "550 a@b... No such user"): the per-recipient answer to RCPT TO of Sendmail, Postfix and
# the systems that copy them (a content filter's refusal after DATA names no recipient).
_ADDRESS_THEN = re.compile(r"^(?:[245]\d\d[ -](?:[245]\.\d{1,3}\.\d{1,3} )?)?<[^\s<>@]+@[\w.-]+>"
                           r"(?:\.\.\.|:) ?(.{0,60})")


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
                  "refused to talk")


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
    reason = STATUS_REASONS.get(key) or STATUS_REASONS.get(parts[1] + ".0", "")
    return reason, bool(reason) and key not in GENERIC and key in STATUS_REASONS


# The code that starts each line of a multiline SMTP reply ("550-5.7.1 ... 550 5.7.1 ...")
# once the lines are joined: it would cut phrases in two. It follows a non-space: in text
# whose whitespace is normalised (single spaces, none at the start) every space does, so
# the pattern starts with its literal space (a fast search) instead of a lookbehind.
_CONTINUATION = re.compile(r" [245]\d\d[ -](?:[245]\.\d{1,3}\.\d{1,3} )?")


def _normalised(text: str) -> str:
    """``text`` cut to MAX_SCAN, lowercased, whitespace collapsed to single spaces."""
    return " ".join(text[:MAX_SCAN].lower().split())


def _lower(text: str) -> str:
    return _joined(_normalised(text))


def _joined(normalised: str) -> str:
    """A normalised text with the codes of continued reply lines removed."""
    return _CONTINUATION.sub(" ", normalised)


def reason_for(status: str, reply_code: str, action: str, diagnostic: str, context: str,
               command: str = "") -> str:
    """The reason for one recipient from its status, reply code, action and texts
    (``command``: the failing SMTP command when the report's format names it)."""
    if action in ("delivered", "relayed", "expanded") or (
            status.startswith("2.") and action not in ("failed", "delayed")):
        return "delivered"  # a delivery notice: nothing failed
    if reply_code.startswith("2"):
        reply_code = ""  # a greeting or an acceptance quoted in a transcript, not the failure
    normalised = _normalised(diagnostic)
    provider = provider_reason(normalised)
    if provider:
        return provider  # a provider's documented code says more than the status
    said = _joined(normalised)
    for label in REPORTER_LABELS:
        if label in said:
            said = said.replace(label, " ")
    near = _lower(context[:CONTEXT_SCAN])
    said_scan = Scanned(said)
    near_scan = Scanned(near)
    command = command or smtp_command(said_scan) or smtp_command(near_scan)
    by_code, specific = code_reason(status)
    phrase = phrase_reason(said_scan)
    reporter_says = False  # the words are the reporting system's own prose
    if not phrase and not specific:
        phrase = phrase_reason(near_scan)
        reporter_says = bool(phrase) and not said.strip(" .:;<>")
    transient = status.startswith("4") or (not status and reply_code.startswith("4"))
    if (by_code if specific else phrase) in ADDRESS_REASONS and any(
            s in said for s in SENDER_REFUSED):
        return "rejected"  # the unknown user or domain is the sender's
    if specific:
        if by_code in ADDRESS_REASONS:  # unless the words blame the sender or the mailer
            overriding = SENDER_SIDE | ({"mailererror"} | MAILBOX_STATES
                                        if by_code == "userunknown" else set())
            other = next((r for r in phrase_reasons(said_scan) if r in overriding), "")
            if other:
                return other
            if command in BEFORE_RCPT:
                return BEFORE_RCPT[command]
        if by_code not in ADDRESS_REASONS and phrase in SENDER_SIDE:
            return phrase
        if by_code == "hostunknown" and transient:
            return "networkerror"
        if by_code == "expired" and phrase == "hostunknown":
            return "networkerror"  # the name never resolved: DNS, not a slow host
        if (transient and action == "failed" and by_code in ("systemerror", "networkerror")
                and "expired" in phrase_reasons(said_scan)):
            return "expired"  # given up after retries ("been in the queue too long")
        return by_code
    if (phrase == "rejected" and not transient and vague_only(said_scan)
            and (status[2:4] == "1." or command == "RCPT")
            and _REFUSED.search(said)):
        return "userunknown"  # the recipient refused, no reason given: not known there
    if (phrase == "rejected" and command != "MAIL" and not transient
            and vague_only(said_scan) and (status.endswith(".0.0") or status[2:4] == "7.")):
        # "550 5.0.0 <a@b> rejected", "5.7.1 ... access denied": the words say no more
        # than the code, so the code decides (a bare X.0.0 leaves the reason on hold)
        return "onhold" if status.endswith(".0.0") else by_code
    if phrase in ADDRESS_REASONS and command in BEFORE_RCPT:
        return BEFORE_RCPT[command]
    if phrase == "userunknown":
        if command == "RCPT" or status[2:4] == "1.":  # RCPT, or an address status (X.1.*)
            return "userunknown"
        shaped = _ADDRESS_THEN.match(said)
        if (not command and shaped and status[2:4] in ("", "0.")
                and phrase_reason(shaped.group(1)) == "userunknown"):
            return "userunknown"
        if reporter_says and not (command or reply_code):
            return "userunknown"  # the reporting system's own summary ("Address not found")
        if command or reply_code or status or any(m in said for m in REMOTE_REPLY):
            return "filtered"
        return "userunknown"  # the reporting system's own verdict on its own user
    if phrase == "hostunknown" and transient:
        return "networkerror"  # a DNS failure that may yet resolve
    if phrase == "networkerror" and (transient or action == "delayed" or not (
            status or reply_code)) and any(p in said or p in near for p in CONNECT_FAILURES):
        return "expired"  # the host could not be reached until the retries ran out
    if phrase:
        return phrase
    if command in ("HELO", "CONN"):
        return "blocked"
    if command == "MAIL":
        return "rejected"
    if action == "delayed" or (action == "failed" and transient):
        return "expired"
    if by_code:
        return by_code
    return "onhold" if status.endswith(".0.0") else "undefined"


def is_hard(reason: str, status: str, reply_code: str, action: str) -> bool:
    """True only when the failure proves the address itself is dead."""
    if action not in ("failed", ""):
        return False
    if status.startswith("4") or (not status and reply_code.startswith("4")):
        return False
    return reason in HARD
