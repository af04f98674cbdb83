"""The reason of one recipient: its evidence read once, then ordered, named rules.

``reason_for`` gathers the ``Evidence`` of a recipient (its status, reply code and action,
the SMTP command that failed, the words of its diagnostic and of the report around it, the
hosts involved) and tries the rules of ``RULES`` in order: the first that names a reason
decides. Each rule is a small function with its own table test
(tests/test_classify_rules.py). In order:

1. ``delivered``: a delivery notice (Action delivered/relayed/expanded, status 2.x.x).
2. ``provider``: a provider's documented reply code or sentence, for the hosts it describes.
3. ``sender_refused``: the words say the *sender* was refused ("Sender address rejected:
   User unknown"): an address reason is then about our return path.
   ``sender_named``: a does-not-exist reply names the envelope sender's domain.
4. ``words_over_code``: a specific status code of the address (5.1.1...) is overridden by
   words that blame the sender, our host or content, or name another mailbox state.
5. ``before_rcpt``: an address reason at MAIL FROM is the sender's (rejected), at the
   greeting or HELO our host's (blocked).
6. ``sender_words``: a specific code that is not about the address, with words that blame
   the sender: the words.
7. ``status_code``: a specific RFC 3463 status decides (a transient unknown host is a
   network error; a 4xx given up after retries whose words say so, expired).
8. ``refused_recipient``: "Recipient address rejected" and nothing more, at RCPT or with an
   address status: the recipient is unknown there.
9. ``vague_refusal``: only the vaguest words with a generic code: the code decides.
10. ``user_unknown``: a does-not-exist wording, weighed by the stage and the reporter.
11. ``transient_host``: an unknown domain in a temporary failure is a DNS problem for now.
12. ``unreachable``: the host could not be reached until the retries ran out: expired.
13. ``phrase``: the reason of the first phrase of the diagnostic (or of the text around);
    only the vaguest words at the greeting or HELO: blocked (our host was refused).
14. ``stage``: nothing said, the stage decides (connection or HELO: blocked; MAIL: rejected).
15. ``retried``: a delay, or a temporary failure given up on: expired.
16. ``generic_code``: the reason a generic status code names.
17. ``nothing``: onhold (a generic X.0.0 failure) or undefined.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from bounced.classify.phrases import (
    CONNECT_FAILURES,
    RECIPIENT_REFUSED,
    REPORTER_LABELS,
    SENDER_REFUSED,
)
from bounced.classify.providers import provider_reason
from bounced.classify.reasons import (
    CONTEXT_SCAN,
    Scanned,
    code_reason,
    joined,
    normalised,
    phrase_reason,
    phrase_reasons,
    smtp_command,
    vague_only,
)
from bounced.classify.registry import HARD
from bounced.classify.systems import system_reply

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
# What else than the address words can name over an "unknown address" status code (a
# reporter that maps every 550 to 5.1.1: "550 max message size exceeded").
MESSAGE_STATES = frozenset({"mailererror", "emailtoolarge", "exceedlimit", "systemfull"})
# A refusal before RCPT TO is not about the recipient, whatever address reason its code or
# words name: at MAIL FROM it is the sender's address, at the greeting or HELO our host.
BEFORE_RCPT = {"MAIL": "rejected", "HELO": "blocked", "CONN": "blocked"}
# Characters around a domain named alone in text (not after "@": an address names a mailbox,
# as "original sender: <a@our.example>" does, not that the domain does not exist).
_BEFORE_HOST = " <([\"'"
_AFTER_HOST = " >)]\"',;:."
# A content filter's own words in a reply that also says "user unknown".
FILTER_MARKS = ("filter", "content scan", "scanner", "quarantin")

_REFUSED = re.compile(RECIPIENT_REFUSED)
# A reply that names the recipient, then what is wrong with it ("550 <a@b>: User unknown",
# "550 a@b... No such user"): the per-recipient answer to RCPT TO of Sendmail, Postfix and
# the systems that copy them (a content filter's refusal after DATA names no recipient).
_ADDRESS_THEN = re.compile(r"^(?:[245]\d\d[ -](?:[245]\.\d{1,3}\.\d{1,3} )?)?<[^\s<>@]+@[\w.-]+>"
                           r"(?:\.\.\.|:) ?(.{0,60})")


class Surroundings:
    """What a rule may ask about a recipient beyond its own report lines: the filtering
    gateway that wrote the report or gave the reply, the envelope sender's domains, the
    hosts involved. Each is worked out when a rule first asks (most recipients need none)."""

    __slots__ = ("_gateway", "_hosts", "_senders")

    def __init__(self, gateway: str | Callable[[], str] = "",
                 senders: tuple[str, ...] | Callable[[], tuple[str, ...]] = (),
                 hosts: tuple[str, ...] | Callable[[], tuple[str, ...]] = ()) -> None:
        self._gateway = gateway
        self._senders = senders
        self._hosts = hosts

    @property
    def gateway(self) -> str:
        if callable(self._gateway):
            self._gateway = self._gateway()
        return self._gateway

    @property
    def senders(self) -> tuple[str, ...]:
        if callable(self._senders):
            self._senders = self._senders()
        return self._senders

    @property
    def hosts(self) -> tuple[str, ...]:
        if callable(self._hosts):
            self._hosts = self._hosts()
        return self._hosts


@dataclass(slots=True)
class Evidence:
    """What is known about one failed recipient, read once for all the rules."""

    status: str  # RFC 3463 status ("5.1.1"), '' when none
    reply_code: str  # SMTP reply code ("550"), '' when none (a 2xx is none: not the failure)
    action: str  # DSN action: failed, delayed, delivered... ('' when the format gives none)
    plain: str  # the diagnostic, lowercased, whitespace normalised, nothing removed
    said: Scanned  # the same without reply-continuation codes and reporters' labels
    words: str  # said's text
    by_code: str  # the reason the status code names ('' when none)
    specific: bool  # whether the status code is specific enough to decide alone
    phrase: str  # the first phrase reason of the diagnostic (or of the text around)
    transient: bool  # a 4xx status (or reply code, without a status)
    around: Surroundings = field(default_factory=Surroundings)
    recipient: str = ""  # the recipient's address, lowercase
    # the report's text around the recipient (or how to get it: read only when a rule asks)
    context: str | Callable[[], str] = ""
    given_command: str = ""  # the failing command when the report's format names it
    near_cache: Scanned | None = None
    command_cache: str | None = None

    @property
    def near(self) -> Scanned:
        """The report's text around the recipient, lowercased and normalised."""
        if self.near_cache is None:
            text = self.context() if callable(self.context) else self.context
            self.near_cache = Scanned(joined(normalised(text[:CONTEXT_SCAN])))
        return self.near_cache

    @property
    def command(self) -> str:
        """The SMTP command that failed (RCPT, DATA, MAIL, HELO, CONN) or ''."""
        if self.command_cache is None:
            self.command_cache = (self.given_command or smtp_command(self.said)
                                  or smtp_command(self.near))
        return self.command_cache

    found_phrases: list[str] | None = None  # every phrase reason, once asked

    @property
    def gateway(self) -> str:
        """The filtering gateway that wrote the report or gave the reply ('' when none)."""
        return self.around.gateway

    @property
    def senders(self) -> tuple[str, ...]:
        """The domains of the envelope sender (not the recipient's)."""
        return self.around.senders

    @property
    def hosts(self) -> tuple[str, ...]:
        """The recipient's domain, the remote hosts and the reporting hosts."""
        return self.around.hosts

    @property
    def phrases(self) -> list[str]:
        """Every phrase reason of the diagnostic, in the phrase table's order."""
        if self.found_phrases is None:
            self.found_phrases = phrase_reasons(self.said)
        return self.found_phrases



Rule = Callable[[Evidence], str]


def delivered(e: Evidence) -> str:
    if e.action in ("delivered", "relayed", "expanded") or (
            e.status.startswith("2.") and e.action not in ("failed", "delayed")):
        return "delivered"  # a delivery notice: nothing failed
    return ""


def provider(e: Evidence) -> str:
    """A provider's documented reply code or sentence says more than the status: the
    codes only one provider writes wherever they appear, a system's own replies for the
    hosts it runs (bounced.classify.systems)."""
    return provider_reason(e.plain) or system_reply(lambda: e.hosts, e.plain)


def sender_refused(e: Evidence) -> str:
    address = (e.by_code if e.specific else e.phrase) in ADDRESS_REASONS
    if address and any(s in e.words for s in SENDER_REFUSED):
        return "rejected"  # the unknown user or domain is the sender's
    return ""


def sender_named(e: Evidence) -> str:
    """A does-not-exist reply that names the envelope sender's domain (not the recipient's:
    "553 our-domain.example does not exist") is about our return path."""
    if (e.by_code if e.specific else e.phrase) not in ("userunknown", "hostunknown") or (
            e.recipient and e.recipient in e.words):  # a reply naming the recipient is its
        return ""
    for domain in e.senders:
        at = e.words.find(domain)
        while at >= 0:
            end = at + len(domain)
            if (at == 0 or e.words[at - 1] in _BEFORE_HOST) and (
                    end == len(e.words) or e.words[end] in _AFTER_HOST):
                return "rejected"
            at = e.words.find(domain, end)
    return ""


def words_over_code(e: Evidence) -> str:
    if not (e.specific and e.by_code in ADDRESS_REASONS):
        return ""
    overriding = SENDER_SIDE | (MESSAGE_STATES | MAILBOX_STATES
                                if e.by_code == "userunknown" else set())
    if e.by_code == "hasmoved":  # a reporter's mapping of 551; the words say unknown
        overriding = overriding | {"userunknown"}
    return next((r for r in e.phrases if r in overriding), "")


def before_rcpt(e: Evidence) -> str:
    if (e.by_code if e.specific else e.phrase) in ADDRESS_REASONS:
        return BEFORE_RCPT.get(e.command, "")
    return ""


def sender_words(e: Evidence) -> str:
    if e.specific and e.by_code not in ADDRESS_REASONS and e.phrase in SENDER_SIDE:
        return e.phrase
    return ""


def status_code(e: Evidence) -> str:
    if not e.specific:
        return ""
    if e.by_code == "hostunknown" and e.transient:
        return "networkerror"
    if e.by_code == "expired" and e.phrase == "hostunknown":
        return "networkerror"  # the name never resolved: DNS, not a slow host
    if (e.transient and e.action == "failed" and e.by_code in ("systemerror", "networkerror")
            and "expired" in e.phrases):
        return "expired"  # given up after retries ("been in the queue too long")
    return e.by_code


def refused_recipient(e: Evidence) -> str:
    if (e.phrase == "rejected" and not e.transient and vague_only(e.said)
            and (e.status[2:4] == "1." or e.command == "RCPT") and _REFUSED.search(e.words)):
        return "userunknown"  # the recipient refused, no reason given: not known there
    return ""


def vague_refusal(e: Evidence) -> str:
    if (e.phrase == "rejected" and e.command != "MAIL" and not e.transient
            and vague_only(e.said) and (e.status.endswith(".0.0") or e.status[2:4] == "7.")):
        # "550 5.0.0 <a@b> rejected", "5.7.1 ... access denied": the words say no more
        # than the code, so the code decides (a bare X.0.0 leaves the reason on hold)
        return "onhold" if e.status.endswith(".0.0") else e.by_code
    return ""


def user_unknown(e: Evidence) -> str:
    """A does-not-exist wording is the recipient's, at RCPT TO, after the message (providers
    that check recipients at the end of DATA) and at a stage the report does not name,
    unless a content filter gave it: its own words say so, or a filtering gateway wrote the
    report or answered (a gateway's "user unknown" after the message may be its verdict)."""
    if e.phrase != "userunknown":
        return ""
    subject = e.status[2:4] if e.status in e.words or not e.reply_code else ""
    if e.command == "RCPT" or subject == "1.":  # RCPT, or an address status (X.1.*)
        return "userunknown"
    if subject == "2.":  # a mailbox status (X.2.*): the mailbox exists; the code says more
        return e.by_code or "filtered"
    if subject == "7.":  # a security or policy status: the policy refused, in these words
        return "filtered"
    if e.gateway or any(m in e.words for m in FILTER_MARKS):
        return "filtered"
    return "userunknown"


def transient_host(e: Evidence) -> str:
    return "networkerror" if e.phrase == "hostunknown" and e.transient else ""


def unreachable(e: Evidence) -> str:
    """The host could not be reached until the retries ran out: a temporary failure, a
    delay, or a failure without status or reply that says so; or a final failure whose
    only words are a connection failure, with the reporter's generic status and no reply
    of the remote (Courier writes 5.0.0 for all it gives up on): SMTP clients retry a host
    they cannot talk to until the queue lifetime ends (RFC 5321 4.5.4.1)."""
    if e.phrase != "networkerror":
        return ""
    if e.transient or e.action == "delayed" or not (e.status or e.reply_code):
        texts: tuple[str, ...] = (e.words, e.near.text)
    elif e.action == "failed" and e.status.endswith(".0.0") and not e.reply_code:
        texts = (e.words,)
    else:
        return ""
    return "expired" if any(p in t for t in texts for p in CONNECT_FAILURES) else ""


def phrase(e: Evidence) -> str:
    if e.command in ("HELO", "CONN") and e.phrase == "rejected" and vague_only(e.said):
        # only "rejected" at the greeting or HELO ("Connected to ... but my name was
        # rejected", qmail): what was refused there is our host, not a sender
        return "blocked"
    return e.phrase


def stage(e: Evidence) -> str:
    if e.command in ("HELO", "CONN"):
        return "blocked"
    return "rejected" if e.command == "MAIL" else ""


def retried(e: Evidence) -> str:
    if e.action == "delayed" or (e.action == "failed" and e.transient):
        return "expired"
    return ""


def generic_code(e: Evidence) -> str:
    return e.by_code


def nothing(e: Evidence) -> str:
    return "onhold" if e.status.endswith(".0.0") else "undefined"


RULES: tuple[tuple[str, Rule], ...] = (
    ("delivered", delivered),
    ("provider", provider),
    ("sender_refused", sender_refused),
    ("sender_named", sender_named),
    ("words_over_code", words_over_code),
    ("before_rcpt", before_rcpt),
    ("sender_words", sender_words),
    ("status_code", status_code),
    ("refused_recipient", refused_recipient),
    ("vague_refusal", vague_refusal),
    ("user_unknown", user_unknown),
    ("transient_host", transient_host),
    ("unreachable", unreachable),
    ("phrase", phrase),
    ("stage", stage),
    ("retried", retried),
    ("generic_code", generic_code),
    ("nothing", nothing),
)


def evidence(status: str, reply_code: str, action: str, diagnostic: str,
             context: str | Callable[[], str], command: str = "", gateway: str = "",
             senders: tuple[str, ...] = (), hosts: tuple[str, ...] = (),
             around: Surroundings | None = None, recipient: str = "") -> Evidence:
    """The evidence of one recipient (``context``: the report's text around it, or a
    function that gives it; ``command``: the failing SMTP command when the report's format
    names it; ``gateway``: the filtering gateway that wrote the report or gave the reply,
    bounced.classify.systems)."""
    if reply_code.startswith("2"):
        reply_code = ""  # a greeting or an acceptance quoted in a transcript, not the failure
    plain = normalised(diagnostic)
    said = joined(plain)
    for label in REPORTER_LABELS:
        if label in said:
            said = said.replace(label, " ")
    said_scan = Scanned(said)
    by_code, specific = code_reason(status)
    e = Evidence(
        status=status, reply_code=reply_code, action=action, plain=plain, said=said_scan,
        words=said_scan.text, by_code=by_code, specific=specific, phrase="",
        transient=status.startswith("4") or (not status and reply_code.startswith("4")),
        around=around or Surroundings(gateway, senders, hosts), recipient=recipient,
        context=context, given_command=command,
    )
    e.phrase = phrase_reason(said_scan)
    if not e.phrase and not specific:  # the words around it, when the reply says nothing
        e.phrase = phrase_reason(e.near)
    return e


# Reasons of a failure that say only that something went wrong on the way: in a delay
# notice the message is being retried, and that is its reason (expired, as sisimai reads
# a delay).
RETRIED = frozenset({"systemerror", "mailererror", "onhold", "undefined"})


def delay(e: Evidence, reason: str, rule: str) -> str:
    """A delay whose words name no more than a passing failure is expired (also the
    "system not accepting network messages" of a 421 that closes the connection, X.3.2,
    a system error while it is temporary)."""
    if e.action == "delayed" and reason in RETRIED:
        return "expired"
    return reason


FINISHES: tuple[tuple[str, Callable[[Evidence, str, str], str]], ...] = (("delay", delay),)


def decide(e: Evidence) -> tuple[str, str]:
    """(reason, name of the rule that decided, and of the finishing rule that changed it)."""
    for name, rule in RULES:
        reason = rule(e)
        if reason:
            decided = name
            if e.action == "delayed":  # the finishing rules are about delays
                for finish_name, finish in FINISHES:
                    finished = finish(e, reason, name)
                    if finished != reason:
                        reason, decided = finished, f"{decided}+{finish_name}"
            return reason, decided
    return "undefined", "nothing"  # not reached: the last rule always names one


def reason_for(status: str, reply_code: str, action: str, diagnostic: str,
               context: str | Callable[[], str],
               command: str = "", around: Surroundings | None = None, recipient: str = ""
               ) -> str:
    """The reason for one recipient from its status, reply code, action and texts."""
    return decide(evidence(status, reply_code, action, diagnostic, context, command,
                           around=around, recipient=recipient))[0]


def is_hard(reason: str, status: str, reply_code: str, action: str) -> bool:
    """True only when the failure proves the address itself is dead: a registered hard
    reason (bounced.classify.registry) in a permanent failure."""
    if action not in ("failed", ""):
        return False
    if status.startswith("4") or (not status and reply_code.startswith("4")):
        return False
    return reason in HARD
