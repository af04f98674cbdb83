"""Bounded parsing: bytes to a compat32 message, a capped walk, and the human-readable text.

Everything here is defensive: the input is hostile until proven otherwise. Sizes, line
lengths, MIME depth and the number of parts are capped, and the contents of an attached
original message (message/rfc822, text/rfc822-headers) are kept apart from the report.
"""

from __future__ import annotations

import contextlib
import email
import re
from dataclasses import dataclass, field
from email.header import Header, decode_header, make_header
from email.message import Message
from email.policy import compat32

from bounced.classify.mime import Part, parse_bytes
from bounced.classify.textforms import fold

MAX_BYTES = 1_000_000  # the report sits at the start; attached originals may be cut
MAX_BOUNDARIES = 64  # multipart declarations parsed; nesting beyond is cut (parser cost)
_BOUNDARY = re.compile(rb"(?i)boundary\s*=")
MAX_LINE = 16_384  # a longer line is cut (hostile headers)
MAX_DEPTH = 8
MAX_PARTS = 200
MAX_TEXT = 200_000
MAX_HEADER = 4_096  # characters kept of a decoded header value
# A line longer than MAX_LINE, its first MAX_LINE bytes in the group (searched only from
# line starts: a search from inside a long line would read it again).
_LONG_LINE = re.compile(rb"(?m)^([^\n]{%d})[^\n]++" % MAX_LINE)

ORIGINAL_TYPES = frozenset(
    {"message/rfc822", "text/rfc822-headers", "message/global", "message/global-headers",
     "message/partial", "message/external-body"}
)
# A tag: no "<" inside, so a run of "<" is not a run of tags each read to its end.
_TAG = re.compile(r"<[^<>]{0,2000}+>")
_SCRIPT_OPEN = re.compile(r"<(script|style)\b")  # in fold()ed text
_LINE_BREAKS = re.compile(r"(?i)<br\s*+/?>|</p>|</tr>|</div>|</li>|</h\d>")
_ENTITY = {"&nbsp;": " ", "&lt;": "<", "&gt;": ">", "&amp;": "&", "&quot;": '"', "&#39;": "'"}


def _has_long_line(raw: bytes) -> bool:
    """Whether a line of ``raw`` is longer than MAX_LINE (where _LONG_LINE matches): a
    window of MAX_LINE + 1 bytes after a line break holds another one, else that line is
    too long. The last line break of each window starts the next (memrchr's speed, not a
    regex step per byte)."""
    pos, size = 0, len(raw)
    while size - pos > MAX_LINE:
        last = raw.rfind(b"\n", pos, pos + MAX_LINE + 1)
        if last < 0:
            return True
        pos = last + 1
    return False


def bound(raw: bytes) -> bytes:
    """The message cut to the size and line-length caps."""
    if len(raw) > MAX_BYTES:
        raw = raw[:MAX_BYTES]
    if len(raw) > MAX_LINE and _has_long_line(raw):
        raw = _LONG_LINE.sub(rb"\1", raw)
    if raw.count(b"oundary") > MAX_BOUNDARIES:
        for i, match in enumerate(_BOUNDARY.finditer(raw)):
            if i == MAX_BOUNDARIES:
                raw = raw[: raw.rfind(b"\n", 0, match.start()) + 1]
                break
    return raw


def parse(raw: bytes) -> Message:
    """A compat32 message from bounded bytes (bodies are split and decoded when read)."""
    return parse_bytes(bound(bytes(raw)))


def _raw_8bit(text: str) -> str:
    """A header with unencoded 8-bit bytes (which the parser keeps as surrogates) decoded
    as UTF-8, or Latin-1 when it is not UTF-8 (RFC 6532 headers, careless mailers)."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def header(msg: Message, name: str) -> str:
    """A header decoded to text (RFC 2047), whitespace normalised, capped; '' if absent.
    Remembered on a parsed Part until its headers change."""
    texts = msg.texts if isinstance(msg, Part) else None
    if texts is not None:
        text = texts.get(name)
        if text is None:
            text = texts[name] = _header_text(msg, name)
        return text
    return _header_text(msg, name)


def _header_text(msg: Message, name: str) -> str:
    value = msg.get(name)
    if value is None:
        return ""
    if isinstance(value, Header):  # unencoded 8-bit bytes: the parser's raw text has them
        value = next((v for k, v in msg.raw_items() if k.lower() == name), "")
        text = _raw_8bit(str(value)[:MAX_HEADER])
    else:
        text = str(value)[:MAX_HEADER]
    if "=?" in text:
        with contextlib.suppress(Exception):  # a broken encoded word: keep the raw text
            text = str(make_header(decode_header(text)))
    return " ".join(text.split())


def decode_part(part: Message) -> str:
    """The decoded text of a leaf part ('' when it has none)."""
    payload: object = part.leaf_bytes() if isinstance(part, Part) else None
    if payload is None:
        try:
            payload = part.get_payload(decode=True)
        except Exception:
            return ""
    if not isinstance(payload, bytes):
        return ""
    payload = payload[:MAX_TEXT]
    charset = part.get_content_charset() or "utf-8"
    if not payload.isascii() and charset in _SINGLE_BYTE:
        # a report that declares ASCII or a Latin charset but quotes UTF-8 (a remote's
        # reply, an SMTPUTF8 address): a line that is valid UTF-8 with non-ASCII bytes is
        # almost never Latin text, so each line is read as what it is
        return _mixed(payload, _SINGLE_BYTE[charset])
    for cs in (charset, "utf-8"):
        try:
            return payload.decode(cs)
        except (LookupError, UnicodeDecodeError, ValueError):
            continue
    return _mixed(payload, "latin-1")


# Declared charsets whose text may quote UTF-8, and the codec for their other lines.
_SINGLE_BYTE = {"us-ascii": "latin-1", "ascii": "latin-1", "iso-8859-1": "latin-1",
                "latin1": "latin-1", "latin-1": "latin-1", "iso-8859-15": "iso-8859-15",
                "windows-1252": "cp1252", "cp1252": "cp1252"}


def _mixed(payload: bytes, other: str) -> str:
    """Text in mixed encodings, line by line: UTF-8 where a line is UTF-8, else ``other``
    (a report in one charset quoting a reply in another)."""
    try:
        return payload.decode("utf-8")  # all of it (the usual case: one decode)
    except UnicodeDecodeError:
        pass
    out = []
    for line in payload.split(b"\n"):
        try:
            out.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            out.append(line.decode(other, "replace"))
    return "\n".join(out)


# Bytes above 127 that Exim writes as octal escapes in its report ("unknown-j\303\274rgen@"):
# a run of them that is UTF-8 is the text it stands for.
_OCTAL_RUN = re.compile(r"(?:\\[23][0-7]{2}){2,8}")


def _octal(m: re.Match[str]) -> str:
    run = m.group(0)
    raw = bytes(int(run[i + 1: i + 4], 8) for i in range(0, len(run), 4))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return run


def octal_unescaped(text: str) -> str:
    """``text`` with runs of octal escapes that are UTF-8 decoded (Exim's way of printing
    a non-ASCII address or reply in its plain-text report)."""
    return _OCTAL_RUN.sub(_octal, text) if "\\" in text else text


def _without_scripts(html: str) -> str:
    """``html`` with its script and style elements replaced by a space. An element that is
    never closed is left (its closing tag is not after any later opening one either, so no
    opening tag is searched for its close twice: linear in the text)."""
    folded = fold(html)
    out: list[str] = []
    pos = 0
    unclosed: set[str] = set()
    for m in _SCRIPT_OPEN.finditer(folded):
        name = m.group(1)
        if m.start() < pos or name in unclosed:
            continue
        close = folded.find(f"</{name}>", m.end())
        if close < 0:
            unclosed.add(name)
            continue
        out += (html[pos:m.start()], " ")
        pos = close + len(name) + 3
    if not out:
        return html
    out.append(html[pos:])
    return "".join(out)


def html_to_text(html: str) -> str:
    """Rough text of an HTML body: tags to spaces/newlines, a few entities decoded."""
    html = _without_scripts(html)
    html = _LINE_BREAKS.sub("\n", html)
    text = _TAG.sub(" ", html)
    for ent, ch in _ENTITY.items():
        text = text.replace(ent, ch)
    return text


@dataclass
class Mail:
    """A parsed message split into what the reporting system wrote and what it attached."""

    msg: Message
    parts: list[Message] = field(default_factory=list)  # leaves and containers, originals excluded
    originals: list[Message] = field(default_factory=list)  # attached original messages/headers
    text: str = ""  # human-readable text written by the reporting system
    # results of work on ``text`` that more than one reader needs (each keyed as its reader
    # says, with the text it was computed from)
    memo: dict[str, tuple[str, object]] = field(default_factory=dict)

    @property
    def subject(self) -> str:
        """The report's own Subject."""
        return header(self.msg, "subject")


_BOUNDARY_LINE = re.compile(r"(?m)^--([^\s]{1,200}?)(?:--)?[ \t]*$")


def _repaired(part: Message) -> Message:
    """A multipart whose declared boundary is not in its body, re-read with the boundary
    the body does use; without any, its body is read as plain text."""
    payload = part.get_payload()
    if not isinstance(payload, str):
        return part
    payload = payload[:MAX_BYTES]
    match = _BOUNDARY_LINE.search(payload)
    if match:
        text = f'Content-Type: multipart/mixed; boundary="{match.group(1)}"\n\n{payload}'
        try:  # a parsed message's text is ASCII with its other bytes as surrogates
            fixed: Message = parse_bytes(text.encode("ascii", "surrogateescape"))
        except UnicodeEncodeError:  # a message built by the caller
            fixed = email.message_from_string(text, policy=compat32)
        if fixed.is_multipart():
            return fixed
    plain = Message(policy=compat32)
    plain.set_payload(payload)
    return plain


def walk(msg: Message) -> Mail:
    """Split a message into report parts and attached originals, within the caps."""
    mail = Mail(msg=msg)
    texts: list[str] = []
    htmls: list[str] = []
    stack: list[tuple[Message, int]] = [(msg, 0)]
    seen = 0
    while stack and seen < MAX_PARTS:
        part, depth = stack.pop()
        seen += 1
        ctype = part.get_content_type()
        if part is not msg and ctype in ORIGINAL_TYPES:
            mail.originals.append(part)
            continue
        if ctype.startswith("multipart/") and not part.is_multipart() and depth < MAX_DEPTH:
            part = _repaired(part)  # boundary parameter and body disagree
            ctype = part.get_content_type()
        mail.parts.append(part)
        if part.is_multipart():
            if depth >= MAX_DEPTH or ctype == "message/delivery-status":
                continue
            payload = part.get_payload()
            if isinstance(payload, list):
                stack.extend((p, depth + 1) for p in reversed(payload) if isinstance(p, Message))
            continue
        if ctype == "text/plain" or (ctype == "text/html" and not texts):
            if str(part.get("content-disposition", "")).lower().startswith("attachment") and texts:
                continue
            (texts if ctype == "text/plain" else htmls).append(decode_part(part))
    body = "\n".join(texts) if texts else "\n".join(html_to_text(h) for h in htmls)
    mail.text = octal_unescaped(body[:MAX_TEXT])
    return mail
