"""Plain-text bounces: qmail, Exim, Sendmail, Postfix without a DSN part, Exchange, Gmail,
Yahoo, Japanese carriers and the many mail systems that write prose.

One scanner for all of them, driven by the line shapes in ``bounced.classify.textforms``:
a recipient is an address on a line shaped like a recipient line (alone on its line,
followed by a colon or a reason, after "RCPT TO:" or a "Recipient:" label, ...), that is
neither the reporting system nor the original sender. Its diagnostic is the rest of its
line and the lines under it, up to the next recipient or a blank line.
"""

from __future__ import annotations

import re
from typing import cast

from bounced.classify.detectors.base import (
    ADDRESS,
    MAX_RECIPIENTS,
    Detection,
    Found,
    clean_address,
    kind_of,
    normalise,
    reply_code_of,
    status_of,
)
from bounced.classify.literals import required
from bounced.classify.parse import Mail, header
from bounced.classify.textforms import (
    BOUNCE_FROM_FOLDED,
    BOUNCE_SUBJECT,
    BOUNCE_SUBJECT_FOLDED,
    BOUNCE_TEXT_FOLDED,
    DELAY_SUBJECT,
    DELAY_SUBJECT_FOLDED,
    DIAG_STOP,
    NOT_RECIPIENT_BEFORE_FOLDED,
    RECIPIENT_LINES,
    RECIPIENT_LINES_LOWER,
    REPLY_LINE,
    SUMMARY_FIELD,
    fold,
    says_delayed,
    says_delivered,
    says_final,
    search_subject,
)

MAX_LINES = 400  # lines of report text scanned
MAX_LINE_CHARS = 2_000  # characters of a line searched for a recipient
MAX_SCAN_CHARS = 64_000  # characters of lines with an "@" searched, in all
PREFILTER_FROM = 200  # characters of a line from which a pattern's words are looked for first
DIAG_LINES = 8


def _excluded(mail: Mail, own_to: bool = False) -> set[str]:
    """Addresses that are never the failed recipient: the reporter and the sender (and
    the report's own To:, unless ``own_to``: a message its sender sent to itself)."""
    out = set()
    names = ("from", "return-path", "reply-to", "sender") + (() if own_to else ("to",))
    for name in names:
        for m in ADDRESS.finditer(header(mail.msg, name)):
            out.add(m.group(0).lower())
    for part in mail.originals[:1]:
        payload = part.get_payload()
        inner = payload[0] if isinstance(payload, list) and payload else None
        if inner is not None and not isinstance(inner, str):
            for name in ("from", "return-path", "sender"):
                for m in ADDRESS.finditer(header(inner, name)):
                    out.add(m.group(0).lower())
    return out


def from_system(mail: Mail) -> bool:
    """Whether the message is an automatic one that names no author: its From: holds no
    address ("From: <>", as Exim writes a refusal it answers itself) and it says it was
    sent automatically (RFC 3834 Auto-Submitted). No person is away behind it: a mail
    system wrote it."""
    auto = header(mail.msg, "auto-submitted").lower()
    return bool(auto) and auto != "no" and not ADDRESS.search(header(mail.msg, "from"))


def is_bounce(mail: Mail) -> bool:
    """Whether the message presents itself as a delivery failure report."""
    if mail.msg.get("x-failed-recipients") or from_system(mail):
        return True
    if BOUNCE_FROM_FOLDED.search(fold(header(mail.msg, "from"))) or search_subject(
            BOUNCE_SUBJECT, BOUNCE_SUBJECT_FOLDED, mail.subject):
        return True
    return bool(BOUNCE_TEXT_FOLDED.search(fold(mail.text[:4000])))


def _says_something(parts: list[str]) -> bool:
    """Whether the lines gathered so far hold a reason, not just a lead-in ("because:")."""
    if not parts or parts[-1].endswith(":"):
        return False
    return sum(len(p.split()) for p in parts) >= 3


def _reply_follows(lines: list[str], j: int) -> bool:
    """Whether the paragraph after the blank line ``j`` introduces the remote server's
    reply ("The error that the other server returned was:" and a line with the code)."""
    rest = [line.strip() for line in lines[j + 1: j + 4] if line.strip()]
    return len(rest) >= 2 and rest[0].endswith(":") and bool(REPLY_LINE.match(rest[1]))


def _remote_reply(lines: list[str], index: int) -> list[str]:
    """The remote server's reply lines ("<<< 550 ...") right above a recipient's line of a
    Sendmail transcript: what the server said, where the recipient's own line may only say
    "Remote protocol error" (Sendmail V5)."""
    out: list[str] = []
    k = index - 1
    while k >= 0 and index - k <= 5 and lines[k].lstrip().startswith("<<<"):
        out.insert(0, lines[k].lstrip()[3:].strip())
        k -= 1
    return out


def _diagnostic(lines: list[str], index: int, rest: str, starts: dict[int, str]) -> str:
    parts = [rest.strip()] if rest.strip(" :<>.,;") else []
    parts = _remote_reply(lines, index) + parts
    address = starts.get(index, "")
    for j in range(index + 1, min(len(lines), index + 1 + DIAG_LINES)):
        if starts.get(j, address) != address or DIAG_STOP.match(lines[j]):
            break
        line = lines[j].strip()
        if not line:
            if _says_something(parts) and not _reply_follows(lines, j):
                break
            continue
        parts.append(line)
    return normalise(" ".join(parts))


# Words of which a line must contain one for each recipient pattern to be tried on it
# (None: always tried), as fold() leaves them.
_NEEDS = tuple(None if words is None else tuple(fold(w) for w in words)
               for words in map(required, RECIPIENT_LINES))


def _line_matches(mail: Mail) -> list[tuple[int, str, re.Match[str]]]:
    """(line number, line, match) for each line of the report's text with an "@" that a
    recipient pattern matches: the first pattern that does. Bounded work: the first
    MAX_LINES lines, each cut to MAX_LINE_CHARS, and MAX_SCAN_CHARS characters of lines
    with an "@" in all (a report of 500 recipients is about 30,000). Kept on the mail,
    as the scan may look twice."""
    cached = mail.memo.get("recipient-lines")
    if cached is not None and cached[0] is mail.text:
        return cast("list[tuple[int, str, re.Match[str]]]", cached[1])
    out: list[tuple[int, str, re.Match[str]]] = []
    budget = MAX_SCAN_CHARS
    for i, whole in enumerate(mail.text.splitlines()[:MAX_LINES]):
        if "@" not in whole:
            continue
        line = whole[:MAX_LINE_CHARS]
        budget -= len(line)
        if budget < 0:
            break
        # an ASCII line is searched lowercased (faster); groups are cut from ``line``
        ascii_line = line.isascii()
        target = line.lower() if ascii_line else line
        folded = target if ascii_line or len(line) <= PREFILTER_FROM else fold(line)
        patterns = RECIPIENT_LINES_LOWER if ascii_line else RECIPIENT_LINES
        long_line = len(line) > PREFILTER_FROM
        for pattern, needs in zip(patterns, _NEEDS, strict=True):
            if long_line and needs is not None and not any(word in folded for word in needs):
                continue  # (a short line is searched at once: the test would cost more)
            m = pattern.search(target)
            if m:
                out.append((i, line, m))
                break
    mail.memo["recipient-lines"] = (mail.text, out)
    return out


def scan(mail: Mail, own_to: bool = False) -> list[Found]:
    """Recipients and their diagnostics found in the report's text (``own_to``: the second
    look, when the first found no one, that accepts the report's To: and a postmaster)."""
    excluded = _excluded(mail, own_to)
    # a postmaster is the reporter or a contact, unless no one else is named at all
    reporters = ("mailer-daemon",) if own_to else ("postmaster", "mailer-daemon")
    lines = mail.text.splitlines()[:MAX_LINES]
    hits: list[tuple[int, str, str]] = []
    for i, line, m in _line_matches(mail):
        address = clean_address(line[m.start("addr"): m.end("addr")])
        if not address or address in excluded or address.split("@")[0] in reporters:
            continue
        before = next((lines[k] for k in range(i - 1, max(-1, i - 3), -1)
                       if lines[k].strip()), "")
        if _names_other(before[-MAX_LINE_CHARS:]) or _names_other(line[: m.start("addr")]):
            continue
        if "@" in before and "generated from" in m.string[: m.start("addr")]:
            continue  # the alias a named recipient was generated from: that one failed
        if "listed" in m.re.groupindex and not _starts_list(lines, i, hits):
            continue  # an address that begins a line of wrapped prose
        lead = line[m.start("lead"): m.end("lead")] if "lead" in m.re.groupindex else ""
        hits.append((i, address, lead.strip() or line[m.end():]))
    starts = {i: address for i, address, _ in hits}
    # addresses named only in a summary of the original's headers ("Your message / To: list
    # / Subject: ... / Sent: ..."): the original's addressees, not the failed recipients
    named = {address for i, address, _ in hits if not _in_summary(lines, i)}
    summary_only = {address for _, address, _ in hits} - named
    final, delayed = outcome(mail)
    found: list[Found] = []
    seen: set[str] = set()
    for i, address, rest in hits:
        if _listed_as_delivered(lines, i, starts):
            if address not in seen:  # a report of several: this one arrived
                seen.add(address)
                found.append(Found(address=address, action="delivered"))
            continue
        diagnostic = _diagnostic(lines, i, rest, starts)
        if address in seen:
            # named again (Exchange's prose, then "Diagnostic information for
            # administrators"): the later lines add the code the prose left out
            k = next(k for k, f in enumerate(found) if f.address == address)
            prior = found[k]
            if diagnostic and not prior.diagnostic:
                prior.diagnostic = diagnostic
            elif diagnostic and not _failure_code(prior.status, prior.reply_code) and (
                    _failure_code(status_of(diagnostic), reply_code_of(diagnostic))):
                found[k] = _found(address, diagnostic + " " + prior.diagnostic, delayed, final)
            continue
        seen.add(address)
        found.append(_found(address, diagnostic, delayed, final))
        if len(found) >= MAX_RECIPIENTS:
            break
    for value in mail.msg.get_all("x-failed-recipients", [])[:20]:
        for m in ADDRESS.finditer(str(value)):
            address = m.group(0).lower()
            if address not in seen:
                seen.add(address)
                found.append(_found(address, "", delayed, final))
    if summary_only and len(summary_only) < len(found):  # someone else is named
        found = [f for f in found if f.address not in summary_only]
    return found


def _listed_as_delivered(lines: list[str], i: int, starts: dict[int, str]) -> bool:
    """Whether line ``i`` is in a list under a heading that says its addresses were
    delivered ("Your message has been delivered to the following recipients:"), in a report
    that lists the failed ones under a heading of their own."""
    k = i - 1
    while k >= 0 and i - k <= 40 and (k in starts or not lines[k].strip()):
        k -= 1  # up through the list and the blank lines to its heading
    return k >= 0 and i - k <= 40 and says_delivered(fold(lines[k][-MAX_LINE_CHARS:]))


def _failure_code(status: str, reply_code: str) -> bool:
    """Whether a status or reply code says something failed: a 2xx one is a greeting or an
    acceptance quoted from a transcript (MDaemon's "<-- 220 mx.example.org ESMTP" lines
    under its summary of the original's To:), never the failure."""
    return status[:1] in ("4", "5") or reply_code[:1] in ("4", "5")


# How far before the end of its words (the run of blanks and brackets that ends the text)
# a match of NOT_RECIPIENT_BEFORE can start: its words with a gap ("by ... with", "forward
# ... to", "try ... to") end with "with" or "to" and span at most 2 + 200 + 4 characters;
# the others at most 16 ("contacting us at").
_NOT_RECIPIENT_SPAN = 210
_NOT_RECIPIENT_SHORT = 20
_NOT_RECIPIENT_TAIL = frozenset(":<\"'(")


def _names_other(text: str) -> bool:
    """Whether ``text`` ends with words that make the address after it someone else's
    (NOT_RECIPIENT_BEFORE). Only the end of the text where those words can be is searched
    (the search still sees the characters before it, for its word boundaries), not every
    position of the line: the pattern can only match at its end."""
    end = len(text)
    while end and (text[end - 1] in _NOT_RECIPIENT_TAIL or text[end - 1].isspace()):
        end -= 1
    folded = fold(text)
    gap = folded.endswith(("with", "to"), 0, end)
    span = _NOT_RECIPIENT_SPAN if gap else _NOT_RECIPIENT_SHORT
    return NOT_RECIPIENT_BEFORE_FOLDED.search(folded, max(0, end - span)) is not None


_RULE = re.compile(r"^[\s=*#_~-]*$")  # a line of dashes, equals signs, stars...


def _starts_list(lines: list[str], i: int, hits: list[tuple[int, str, str]]) -> bool:
    """Whether line ``i`` is in a list of recipients: the line above is blank, a rule, a
    banner that ends with a colon, or another recipient's line."""
    if i == 0:
        return True
    above = lines[i - 1].rstrip()
    return (_RULE.match(above) is not None or above.endswith(":")
            or bool(hits and hits[-1][0] == i - 1))


def _in_summary(lines: list[str], i: int) -> bool:
    """Whether line ``i`` is the To: or Cc: line of a summary of the original's header
    fields (the nearest line above or below is another of them: Subject:, Sent:, From:...;
    an HTML report's line breaks may leave a blank line between them)."""
    m = SUMMARY_FIELD.match(lines[i])
    if not m or m.group(1).lower() not in ("to", "cc", "bcc"):
        return False
    for step in (-1, 1):
        k = i + step
        while 0 <= k < len(lines) and abs(k - i) <= 3 and not lines[k].strip():
            k += step
        if 0 <= k < len(lines) and SUMMARY_FIELD.match(lines[k]):
            return True
    return False


def outcome(mail: Mail) -> tuple[bool, bool]:
    """(final, delayed): whether the report's words say the delivery was given up (a 4xx
    all the same), or that it is still being tried (its subject or its text)."""
    start = fold(mail.text[:6000])
    if says_final(start):
        return True, False
    delayed = says_delayed(start) or search_subject(
        DELAY_SUBJECT, DELAY_SUBJECT_FOLDED, mail.subject)
    return False, delayed


def _found(address: str, diagnostic: str, delayed: bool, final: bool = False) -> Found:
    """A recipient of a text report. Whether it is delayed is read from the report's words
    (it says it will keep trying), not from the reply's class: a report of a failure with
    a 4xx reply and no such words failed (it was given up on, or reports a session)."""
    status = status_of(diagnostic)
    reply = reply_code_of(diagnostic)
    action = "delayed" if delayed and not status.startswith("5") else "failed"
    if final:
        action = "failed"  # a 4xx given up on is a failure all the same
    host = _REMOTE_HOST.search(diagnostic)
    return Found(address=address, action=action, status=status, reply_code=reply,
                 diagnostic=diagnostic, remote_mta=host.group(1).lower() if host else "")


# The remote host a text report names with its address ("host mx.example.org [192.0.2.1]",
# Exim; "host mx.example.org[192.0.2.1] said:", Postfix): the host that gave the reply, so
# the rules that hold for one mail system's hosts apply to a text report as to a DSN.
_REMOTE_HOST = re.compile(r"(?i)\bhost ([a-z0-9-]{1,63}(?:\.[a-z0-9-]{1,63}){1,10}) ?\[")


# A line that holds only a bare local part, indented under a banner ("\tscreenname").
_BARE_NAME = re.compile(r"^[ \t]++([A-Za-z0-9][\w.+-]{0,63})[ \t]*$")
_LIST_WORDS = ("recipient", "address", "following", "user")
BARE_NAMES = 20  # bare names read under one banner


def bare_names(mail: Mail) -> list[Found]:
    """Recipients a report names by their local part alone, under a banner that ends with
    a colon and speaks of recipients or addresses (AOL's "Your mail to the following
    recipients could not be delivered because ...:" then "\tscreenname"): the address is
    the name at the reporting system's own domain (its From: address's), the one that
    knows the name. Read only when the report names no address at all."""
    sender = ADDRESS.search(header(mail.msg, "from"))
    domain = sender.group(0).rpartition("@")[2].lower() if sender else ""
    if "." not in domain:
        return []
    lines = mail.text.splitlines()[:MAX_LINES]
    paragraph = ""
    for i, line in enumerate(lines):
        if not line.strip():
            paragraph = ""
            continue
        paragraph += " " + line.lower()
        if not (line.rstrip().endswith(":") and any(w in paragraph for w in _LIST_WORDS)):
            continue
        names = []
        for nxt in lines[i + 1: i + 1 + BARE_NAMES]:
            m = _BARE_NAME.match(nxt)
            if m is None:
                break
            names.append(m.group(1).lower())
        if names:
            said = normalise(paragraph)
            return [Found(address=f"{name}@{domain}", action="failed", diagnostic=said)
                    for name in names]
    return []


class TextDetector:
    """A failure report written as text, recognised by its sender, subject or wording."""

    name = "text"

    def detect(self, mail: Mail) -> Detection | None:
        """Recipients scanned from the report's text, or None if it is not a bounce."""
        if not is_bounce(mail):
            return None
        found = scan(mail) or scan(mail, own_to=True) or bare_names(mail)
        if not found:
            return None
        if says_delivered(fold(mail.text[:6000])) and not any(
                _failure_code(f.status, f.reply_code) for f in found):
            for f in found:  # a delivery notice written as text: nothing failed
                f.action = "delivered"
        return Detection(self.name, kind_of(found), found)
