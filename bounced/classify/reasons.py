"""Reason and hardness of one recipient: status code first where it is specific, the
diagnostic's words where the code is generic, and never an address reason for a failure
the words blame on the sender (blocked IP, spam, policy, authentication)."""

from __future__ import annotations

from bounced.classify.codes import GENERIC, STATUS_REASONS
from bounced.classify.phrases import DATA_PHASE, MAIL_FROM_PHASE, PHRASES

HARD_REASONS = frozenset({"userunknown", "hostunknown", "hasmoved"})
ADDRESS_REASONS = HARD_REASONS | {"notaccept", "suspend", "mailboxfull"}
# The sender's fault, not the address's: these phrases override an address status code.
SENDER_SIDE = frozenset(
    {"blocked", "spamdetected", "virusdetected", "policyviolation", "authfailure",
     "requireptr", "badreputation", "ratelimited", "speeding", "norelaying",
     "failedstarttls", "securityerror", "filtered"}
)
# A phrase this weak does not override a specific status code.
WEAK_PHRASES = frozenset({"rejected", "filtered", "systemerror", "networkerror", "contenterror",
                          "notcompliantrfc", "policyviolation", "expired", "suspend"})
CONTEXT_PHASE = 600  # characters of context searched for the failing command
MAX_SCAN = 4_000  # characters of diagnostic text scanned for phrases


def phrase_reason(text: str) -> str:
    """The first reason in the phrase table whose phrase occurs in ``text`` ('' if none)."""
    text = text[:MAX_SCAN].lower()
    for reason, phrases in PHRASES:
        for phrase in phrases:
            if phrase in text:
                return reason
    return ""


def code_reason(status: str) -> tuple[str, bool]:
    """The reason an RFC 3463 status names, and whether the code is specific."""
    parts = status.split(".")
    if len(parts) != 3:
        return "", False
    key = parts[1] + "." + parts[2]
    reason = STATUS_REASONS.get(key) or STATUS_REASONS.get(parts[1] + ".0", "")
    return reason, bool(reason) and key not in GENERIC and key in STATUS_REASONS


def reason_for(status: str, reply_code: str, action: str, diagnostic: str, context: str) -> str:
    """The reason for one recipient from its status, reply code, action and texts,
    corrected for the SMTP command that failed (see DATA_PHASE)."""
    reason = _reason(status, reply_code, action, diagnostic, context)
    if reason in ADDRESS_REASONS:
        said = diagnostic.lower()
        near = context[:CONTEXT_PHASE].lower()
        data = any(p in said for p in DATA_PHASE) or "in reply to end of data" in near
        if reason == "userunknown" and data:
            return "filtered"
        if any(p in said for p in MAIL_FROM_PHASE):
            return "rejected"
    return reason


def _reason(status: str, reply_code: str, action: str, diagnostic: str, context: str) -> str:
    by_code, specific = code_reason(status)
    if action == "failed" and (status.startswith("4") or (not status and reply_code[:1] == "4")):
        phrase = phrase_reason(diagnostic)
        return phrase if phrase in SENDER_SIDE else "expired"  # transient, retries ran out
    phrase = phrase_reason(diagnostic)
    if not phrase and not specific and context:
        phrase = phrase_reason(context)
    if specific:
        if phrase in SENDER_SIDE and by_code in ADDRESS_REASONS:
            return phrase
        if phrase and phrase not in WEAK_PHRASES and by_code == "securityerror":
            return phrase
        return by_code
    if phrase:
        return phrase
    if action == "delayed":
        return "expired"
    return by_code or "undefined"


def is_hard(reason: str, status: str, reply_code: str, action: str) -> bool:
    """True only when the failure proves the address itself is dead."""
    if action not in ("failed", ""):
        return False
    if reason in HARD_REASONS:
        return not status.startswith("4") and not reply_code.startswith("4")
    if reason == "notaccept":
        return status.startswith("5") or (not status and reply_code.startswith("5"))
    return False
