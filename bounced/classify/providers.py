"""Reply codes and texts of large mail providers, mapped to reasons (data).

A provider's documented error codes mean the same thing in every message it sends, and
they say more than the RFC 3463 status the provider puts in front of them (Orange answers
"5.2.0" for spam, La Poste "5.5.0" for an unknown recipient, au "User unknown" for its
users' own sender filters). So a reply that carries one of these codes is classified by
the code, before the status and the phrase tables.

Each entry is (provider, pattern, reason); the pattern is a regular expression matched
against the normalised lowercase diagnostic and should be specific to that provider's
reply format (a code, or a sentence only that provider writes). Entries with a numeric
code list ranges of the number instead: (provider, pattern with one group, ranges).
Written from the providers' postmaster documentation; the reason names are those of the
reason registry (registry.py).
"""

from __future__ import annotations

import re

from bounced.classify.multisearch import Strings

PROVIDER_TEXTS: tuple[tuple[str, str, str], ...] = (
    # Yahoo / AOL / Verizon Media (postmaster.yahooinc.com/error-codes)
    ("yahoo", r"\[ts0?1\]|\[tss0?4\]|temporarily deferred due to (unexpected volume or )?"
              r"user complaints", "rejected"),  # the sender draws complaints
    ("yahoo", r"\[ts0?3\]|\[tss09\]|will be permanently deferred", "blocked"),
    ("yahoo", r"this user doesn't have a (yahoo|aol|ymail|rocketmail)[.\w]* account",
     "userunknown"),  # its answer at the end of DATA for an address that does not exist
    ("yahoo", r"sender is unauthenticated\. yahoo requires", "authfailure"),
    # the return path's domain does not resolve: the sender's address, not the recipient's
    ("yahoo", r"unresolvable rfc\.?532[12] from domain", "rejected"),
    # Zoho Mail: a sender its filters distrust (reputation of the sending domain or IP)
    ("zoho", r"email cannot be delivered\. reason: email flagged as spam", "rejected"),
    # Mimecast (community.mimecast.com SMTP error codes)
    ("mimecast", r"host network not allowed", "policyviolation"),
    ("mimecast", r"rejected due to security policies - mc\w*signature|"
                 r"message contains a virus", "virusdetected"),
    ("mimecast", r"envelope blocked - user (domain )?entry", "filtered"),
    ("mimecast", r"ip found in rbl|hostname found in rbl|(sender|ip) found in blocked senders",
     "blocked"),
    # Amazon SES (sending side): the sender identity is not verified for the region
    ("amazonses", r"email address is not verified\. the following identities failed",
     "norelaying"),
    ("amazonses", r"sending paused for this account", "rejected"),
    # Comcast (postmaster.comcast.net): BL = blocked IPs, RL = rate limits
    ("comcast", r"\bbl0000\d\d\b", "blocked"),
    ("comcast", r"\brl0000\d\d\b", "ratelimited"),
    # Microsoft (Outlook.com / Office 365)
    # rate limited for the sending IP's reputation
    ("microsoft", r"\(s311[34]\)|4\.7\.650 ", "badreputation"),
    # directory-based edge blocking: the address is not in the organisation's directory
    # (its AS(...) tag must not read as the anti-spam block of the next entry)
    ("microsoft", r"5\.4\.1 recipient address rejected: access denied", "userunknown"),
    # Outlook.com (Hotmail)'s refusal of an address it does not have, with its error triple
    ("microsoft", r"requested action not taken: mailbox unavailable \(-?\d+:-?\d+:-?\d+\)",
     "userunknown"),
    # an organisation's rule against forwarding outside it (its AS(...) tag is no IP block)
    ("microsoft", r"5\.7\.520 access denied", "policyviolation"),
    ("microsoft", r"\(s3140\)|\(s3150\)|part of their network is on our block list|"
                  r"\bas\(\d{4,}\)", "blocked"),
    ("microsoft", r"5\.7\.(60[6-9]|6[1-4]\d) access denied", "blocked"),  # banned IPs
    # Exchange Online throttles an IP it does not trust yet ("4.7.500 Server busy")
    ("microsoft", r"4\.7\.[56]\d\d server busy", "ratelimited"),
    # Exchange Online: the recipient's domain does not exist in DNS
    ("microsoft", r"5\.4\.310 dns domain", "hostunknown"),
    # Hotmail's older codes: SC (the IP's reputation), DY (dynamic or compromised IPs),
    # OU (the IP refused for policy), all about the sending host; RP: its rate limits
    ("microsoft", r"\b(sc|dy|ou)-00\d \(", "blocked"),
    ("microsoft", r"\brp-00\d \(", "speeding"),
    # Exchange / Exchange Online codes as sisimai's table of them reads them (its 4.25
    # Rhost::ExchangeOnline, from Microsoft's NDR documentation): where the status code or
    # the words alone would name the recipient, or nothing
    ("microsoft", r"5\.5\.4 invalid domain name", "blocked"),  # our HELO's domain
    ("microsoft", r"5\.4\.4 .{0,40}invalid ?arguments", "networkerror"),
    ("microsoft", r"submission quota exceeded|has exceeded permitted limits within|"
                  r"tenant has exceeded threshold|"
                  r"exceeded their limit for the number of messages", "ratelimited"),
    ("microsoft", r"access denied, banned recipient|mailbox cannot be accessed", "suspend"),
    ("microsoft", r"content filter agent quarantined", "spamdetected"),
    ("microsoft", r"access denied, rejected by recipient|does not accept email over ipv6|"
                  r"access denied, please try again later", "blocked"),
    ("microsoft", r"access denied, banned sender|access denied, spam abuse detected|"
                  r"blocked from sending from unregistered domains|"
                  r"sender (?:was )?not authenticated (?:by organization|for)", "rejected"),
    ("microsoft", r"5\.7\.1 client was not authenticated(?! to send anonymous)",
     "norelaying"),
    ("microsoft", r"single label domains not accepted|address reserved by rfc 2606",
     "userunknown"),
    # Gmail (support.google.com/a/answer/3726730)
    ("gmail", r"content presents a potential", "policyviolation"),
    ("gmail", r"rejected due to spam classification", "spamdetected"),  # Google Groups
    ("gmail", r"likely unsolicited mail\. to reduce the amount of spam", "spamdetected"),
    ("gmail", r"does not have authentication information or fails to pass authentication",
     "authfailure"),
    ("gmail", r"email account that you tried to reach is over quota", "mailboxfull"),
    # Spectrum / Charter named codes (the numbered ones are in SPECTRUM_CODES)
    ("spectrum", r"\baup#cxcnct\b", "ratelimited"),  # too many connections from the IP
    # Cloudmark Sender Intelligence: the connecting IP's reputation
    ("cloudmark", r"csi\.cloudmark\.com", "blocked"),
    # Proofpoint: the IP's reputation at its cloud service
    ("proofpoint", r"ipcheck\.proofpoint\.com|proofpoint\.com/dnsbl", "blocked"),
    # Barracuda: its reputation list; and its per-recipient verdict after DATA
    # ("permanent failure for one or more recipients (a@b:blocked)"), the message blocked
    # by its own policy, spam or sender checks: never the recipient's address
    ("barracuda", r"barracuda reputation|barracudacentral", "blocked"),
    ("barracuda", r"failure for one or more recipients \([^()]*:blocked\)", "blocked"),
    # Mail.ru answers for an unknown address at the end of DATA, naming the mailbox
    ("mailru", r"invalid mailbox\. local mailbox \S+ is unavailable: user not found",
     "userunknown"),
    # Tencent (QQ mail) frequency limits
    ("tencent", r"mailbox unavailable or access denied \[.{0,300}?frequency|frequency limited",
     "ratelimited"),
)

# Orange / Wanadoo / La Poste: "OFR_506 [506]", "LPN007_416": the last number is the reason.
ORANGE_CODES: tuple[tuple[int, int, str], ...] = (
    (104, 104, "ratelimited"),  # "Trop de connexions": too many connections from the IP
    (100, 199, "blocked"),  # the sending IP is refused (blocklists, reputation)
    (416, 416, "userunknown"),  # recipient address invalid
    (417, 417, "mailboxfull"),  # recipient mailbox full
    (418, 418, "userunknown"),
    (420, 420, "suspend"),  # mailbox inactive
    (426, 426, "suspend"),  # "le compte du destinataire est bloque": the account is blocked
    (506, 506, "spamdetected"),  # message refused as spam
    (630, 630, "policyviolation"),
    (999, 999, "ratelimited"),  # "Service refusé, essayez plus tard": too many connections
)
# Spectrum / Charter (spectrum.net "Understanding email error codes"): "AUP#In-1310".
SPECTRUM_CODES: tuple[tuple[int, int, str], ...] = (
    (1000, 1099, "blocked"),  # the IP is blocked (blocklists, dynamic ranges)
    (1300, 1399, "ratelimited"),  # connection and message rate limits exceeded
)

PROVIDER_NUMBERS: tuple[tuple[str, str, tuple[tuple[int, int, str], ...]], ...] = (
    ("orange", r"\b(?:ofr\d{0,3}|lpn\d{3})_(\d{3})\b", ORANGE_CODES),
    ("spectrum", r"\baup#[a-z]{0,4}-?(\d{4})\b", SPECTRUM_CODES),
)



def _branches(pattern: str) -> list[str]:
    """``pattern`` cut at its top-level ``|`` (not inside a group or a class)."""
    out, start, depth, i, in_class = [], 0, 0, 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            if pattern[i + 1: i + 2] == "^":
                i += 1
            if pattern[i + 1: i + 2] == "]":
                i += 1  # a "]" first in a class is a literal
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth == 0:
            out.append(pattern[start:i])
            start = i + 1
        i += 1
    out.append(pattern[start:])
    return out


def required_literal(branch: str) -> str:
    """The longest run of plain characters outside groups and classes, not made optional
    by a quantifier, in a regex without a top-level ``|``: every match contains it ('' when
    the branch has none)."""
    best, run, depth, i, in_class = "", "", 0, 0, False
    while i < len(branch):
        c = branch[i]
        literal = ""
        if c == "\\":
            nxt = branch[i + 1: i + 2]
            literal = "" if nxt.isalnum() or in_class or depth else nxt  # \b \d \w...: none
            i += 2
        else:
            i += 1
            if in_class:
                in_class = c != "]"
            elif c == "[":
                in_class = True
                if branch[i: i + 1] == "^":
                    i += 1
                if branch[i: i + 1] == "]":
                    i += 1
            elif c == "{":  # a counted repeat: its bounds are no literal
                i = branch.find("}", i) + 1 or len(branch)
            elif c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
            elif depth == 0 and c not in ".^$?*+}|":
                literal = c
        if literal and branch[i: i + 1] not in ("?", "*", "+", "{"):
            run += literal
            continue
        best = max(best, run, key=len)  # the run ends: a quantified character, a group...
        run = ""
    return max(best, run, key=len)


def required_literals(pattern: re.Pattern[str]) -> tuple[str, ...] | None:
    """One string per top-level branch of ``pattern`` that every match of that branch
    contains, or None when a branch has none (or case is ignored): a text holding none of
    them cannot match, so the regex need not run."""
    if pattern.flags & re.IGNORECASE:
        return None
    literals = tuple(required_literal(b) for b in _branches(pattern.pattern))
    return None if not all(literals) else literals


_TEXTS = tuple((p, re.compile(rx), r) for p, rx, r in PROVIDER_TEXTS)
_NUMBERS = tuple((p, re.compile(rx), ranges) for p, rx, ranges in PROVIDER_NUMBERS)
_PATTERNS = [rx for _, rx, _ in _NUMBERS] + [rx for _, rx, _ in _TEXTS]  # the search order
# Each entry's required strings (a text holding none of them cannot match it): one pass
# over the text finds the entries worth a regex search.
_REQUIRED = Strings((s, i) for i, rx in enumerate(_PATTERNS) for s in required_literals(rx) or ())
_ALWAYS = frozenset(i for i, rx in enumerate(_PATTERNS) if required_literals(rx) is None)


def provider_match(text: str) -> tuple[str, str]:
    """(provider, reason) for a provider's reply code in ``text`` (lowercase, whitespace
    normalised), or ("", "") when it carries none."""
    worth = _REQUIRED.values_in(text)
    if _ALWAYS:
        worth |= _ALWAYS
    for i in sorted(worth):  # the first entry in table order that matches, numbers first
        if i < len(_NUMBERS):
            provider, pattern, ranges = _NUMBERS[i]
            m = pattern.search(text)
            if m:
                number = int(m.group(1))
                for low, high, reason in ranges:
                    if low <= number <= high:
                        return provider, reason
        else:
            provider, pattern, reason = _TEXTS[i - len(_NUMBERS)]
            if pattern.search(text):
                return provider, reason
    return "", ""


def provider_reason(text: str) -> str:
    """The reason a provider's reply code in ``text`` names ('' if none)."""
    return provider_match(text)[1]
