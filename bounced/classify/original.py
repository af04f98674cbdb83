"""Headers of the original message, from an attached copy or a quoted one."""

from __future__ import annotations

import functools
import re
from email.message import Message

from bounced.classify.mime import parse_headers
from bounced.classify.model import Original
from bounced.classify.parse import Mail, decode_part, header
from bounced.classify.phrases import ORIGINAL_MARKERS

MAX_HEADERS_TEXT = 32_000
_BLANK_LINE = re.compile(r"\n[ \t]*\r?\n")
# A banner line that starts a copy of the original, however many dashes frame it ("----
# START OF RETURNED MESSAGE ----", "-------- Returned Mail --------", "----- This is a copy
# of the message, including all the headers. ------"): dashes, then words that name the
# returned, original or unsent message or mail, or a copy of it. Searched in lowercase.
# (It starts with the line break before it, a literal the search skips to; a banner on the
# first line is matched at position 0 on its own.)
_ORIGINAL_BANNER = re.compile(
    r"\n[ \t]*-{2,}+[ \t]*[^\n@]{0,40}?\b(?:returned|original|unsent|undelivered|bounced|"
    r"copy of (?:the|your)) (?:message|mail)\b")


def _headers_message(part: Message) -> Message | None:
    payload = part.get_payload()
    if isinstance(payload, list):
        first = payload[0] if payload else None
        return first if isinstance(first, Message) else None
    text = decode_part(part) if isinstance(payload, str) else ""
    if not text.strip():
        return None
    return parse_headers(text[:MAX_HEADERS_TEXT].lstrip())


# A copy of the original's header block pasted after the report's words with no banner
# (X1's, Zoho's and others' plain-text reports: a blank line, then "Received: from ..."):
# a trace field at the start of a line, which no report's own prose begins with. Searched
# in lowercase; the match starts with the line break before the blank line.
_PASTED_HEADERS = re.compile(
    r"\n[ \t]*+\n(?=received: (?:from|by) |return-path: ?<|dkim-signature: )")


@functools.lru_cache(maxsize=2)  # asked twice of the same text per message
def quoted_original_start(text: str) -> int:
    """Where a plain-text bounce starts quoting the original (len(text) if it does not)."""
    lowered = text.lower()
    best = len(text)
    for marker in ORIGINAL_MARKERS:
        pos = lowered.find(marker)
        if 0 <= pos < best:
            best = pos
    if _ORIGINAL_BANNER.match("\n" + lowered[:120]):
        return 0
    banner = _ORIGINAL_BANNER.search(lowered, 0, best)
    if banner:
        best = banner.start() + 1
    pasted = _PASTED_HEADERS.search(lowered, 0, best)
    return pasted.start() + 1 if pasted else best


def original_of(mail: Mail) -> Original:
    """The original's Message-ID, From, To and Subject ('' for each one not found)."""
    headers: Message | None = None
    for part in mail.originals:
        headers = _headers_message(part)
        if headers is not None and len(headers):
            break
    if headers is None or not len(headers):
        start = quoted_original_start(mail.text)
        if start < len(mail.text):
            rest = mail.text[start:start + MAX_HEADERS_TEXT].split("\n", 1)[-1].lstrip()
            rest = _BLANK_LINE.split(rest, 1)[0]  # the header block is all that is needed
            headers = parse_headers(rest)
    if headers is None:
        return Original()
    return Original(
        message_id=header(headers, "message-id"),
        from_=header(headers, "from"),
        to=header(headers, "to"),
        subject=header(headers, "subject"),
        cc=header(headers, "cc"),
    )
