"""The reasons a recipient's failure can have: the vocabulary every part of bounced shares.

The names are those of the sisimai bounce analyser (so an operator can compare the two).
Per reason: whether it proves the address dead when the failure is permanent (``hard``:
the mailbox or its domain does not exist, or the address says it moved away), whether it
counts towards unconfirming an address by default (``[policy] counting_reasons``: the hard
ones and the mailbox states that say the address is not read), and what it means.

The classifier only ever gives these reasons (tests check it over every corpus message),
the policy counts by them, and the configuration refuses any other name.
This module imports nothing: the configuration reads it without loading the classifier.
"""

from __future__ import annotations

import enum


class Reason(enum.StrEnum):
    """One reason, with ``hard``, ``counts`` (by default) and ``meaning``."""

    hard: bool
    counts: bool
    meaning: str

    def __new__(cls, value: str, hard: bool, counts: bool, meaning: str) -> Reason:
        member = str.__new__(cls, value)
        member._value_ = value
        member.hard = hard
        member.counts = counts
        member.meaning = meaning
        return member

    # The address itself: proven dead when the failure is permanent.
    USERUNKNOWN = ("userunknown", True, True,
                   "the mailbox does not exist at the receiving domain")
    HOSTUNKNOWN = ("hostunknown", True, True,
                   "the recipient's domain does not exist (no address, no MX)")
    HASMOVED = ("hasmoved", True, True,
                "the address is no longer used and the reply names where the person went")
    NOTACCEPT = ("notaccept", True, True,
                 "the domain accepts no mail at all (a null MX, RFC 7505)")
    # The mailbox exists but is not read: counts by default, never proof on its own.
    SUSPEND = ("suspend", False, True,
               "the mailbox is disabled, suspended or inactive")
    MAILBOXFULL = ("mailboxfull", False, True,
                   "the mailbox is over its quota")
    # The receiving system, the network or the time: nothing about the address.
    SYSTEMFULL = ("systemfull", False, False,
                  "the receiving system is out of disk or resources")
    SYSTEMERROR = ("systemerror", False, False,
                   "the receiving system failed (configuration, internal error, loop)")
    MAILERERROR = ("mailererror", False, False,
                   "a local delivery program (procmail, a pipe, maildrop) failed")
    NETWORKERROR = ("networkerror", False, False,
                    "DNS or the network failed on the way (timeout, routing, lookups)")
    EXPIRED = ("expired", False, False,
               "delivery was given up after retrying for the queue's lifetime")
    ONHOLD = ("onhold", False, False,
              "the report says a delivery failed and nothing more that a reason can be read from")
    UNDEFINED = ("undefined", False, False,
                 "no reason could be read from the report")
    # The recipient's own choice about this mail or sender.
    FILTERED = ("filtered", False, False,
                "the recipient's filter or preferences refused the message")
    # Our sender, host, message or sending: never the address's fault.
    REJECTED = ("rejected", False, False,
                "the envelope sender was refused (its address, domain or permission to post)")
    BLOCKED = ("blocked", False, False,
               "the sending host was refused (blocklist, our IP or host name, connection)")
    BADREPUTATION = ("badreputation", False, False,
                     "the sending IP or domain has too poor a reputation")
    REQUIREPTR = ("requireptr", False, False,
                  "the sending IP has no (matching) reverse DNS name")
    AUTHFAILURE = ("authfailure", False, False,
                   "SPF, DKIM or DMARC did not authenticate the message")
    SECURITYERROR = ("securityerror", False, False,
                     "authentication or authorisation of our session was required or failed")
    FAILEDSTARTTLS = ("failedstarttls", False, False,
                      "TLS was required and could not be negotiated")
    NORELAYING = ("norelaying", False, False,
                  "the server would not relay for us (not its domain, not authenticated)")
    SPAMDETECTED = ("spamdetected", False, False,
                    "the message was judged to be spam")
    VIRUSDETECTED = ("virusdetected", False, False,
                     "the message was judged to carry malware")
    POLICYVIOLATION = ("policyviolation", False, False,
                       "the message broke the receiver's policy (content, attachment types)")
    CONTENTERROR = ("contenterror", False, False,
                    "the message's MIME structure, encoding or headers were unacceptable")
    NOTCOMPLIANTRFC = ("notcompliantrfc", False, False,
                       "the message does not follow RFC 5322 (header fields, From:)")
    EMAILTOOLARGE = ("emailtoolarge", False, False,
                     "the message is larger than the receiver accepts")
    EXCEEDLIMIT = ("exceedlimit", False, False,
                   "a limit of the receiver other than size was exceeded (recipients, header)")
    RATELIMITED = ("ratelimited", False, False,
                   "our sending was throttled (connections or messages per period)")
    SPEEDING = ("speeding", False, False,
                "the recipient received too much mail too fast")
    SYNTAXERROR = ("syntaxerror", False, False,
                   "an SMTP command of ours was refused as wrong (syntax, sequence)")
    # Not failures: what a recipient of another kind of report is given.
    DELIVERED = ("delivered", False, False,
                 "a delivery notice: the message reached the mailbox")
    FEEDBACK = ("feedback", False, False,
                "a complaint (feedback loop report) about the message")
    VACATION = ("vacation", False, False,
                "an automatic reply (out of office, vacation)")


HARD: frozenset[str] = frozenset(r.value for r in Reason if r.hard)
DEFAULT_COUNTING: tuple[str, ...] = tuple(r.value for r in Reason if r.counts)
# What a failed or delayed recipient may be given (complaints, auto-replies and delivery
# notices have the last three).
FAILURES: tuple[str, ...] = tuple(
    r.value for r in Reason if r not in (Reason.DELIVERED, Reason.FEEDBACK, Reason.VACATION))
