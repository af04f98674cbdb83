"""Byte-level MIME splitting into compat32 messages whose bodies are read lazily.

``parse_bytes(raw)`` gives the same tree as ``email.message_from_bytes(raw,
policy=compat32)``: the same headers, payloads, preambles and epilogues, the same rules
for boundary lines (outer boundaries end inner parts, repeated boundary lines, a missing
start or close boundary, the newline before a boundary belonging to it),
message/delivery-status read as blocks of fields and multipart/digest parts defaulting to
message/rfc822. It is faster because it never reads a body line by line: a part's extent
is found with ``bytes.find`` on its boundary, only header blocks are split into lines,
and a body is decoded or split into sub-parts only when it is first read. An attached
original message costs the parse of its header block, and nothing when nobody reads it.

Caps the email package does not have: at most ``MAX_CHILDREN`` parts per multipart
and ``MAX_BLOCKS`` field blocks per delivery-status part are built (the rest is dropped),
and a header block is read up to ``MAX_HEADER_BLOCK`` bytes (the rest is left to its body).
"""

from __future__ import annotations

import binascii
import quopri
import re
from email.message import Message
from email.policy import compat32
from email.utils import quote, unquote
from typing import Any

from bounced.compat import message_params

MAX_CHILDREN = 200  # parts kept per multipart (the classifier walks at most 200 parts)
MAX_BLOCKS = 1_000  # field blocks kept per message/delivery-status part
# Bytes of one header block read as fields (the largest in the corpus is 15 KB): a hostile
# block of a megabyte of tiny fields or folds would cost the parse 0.1-0.2 s.
MAX_HEADER_BLOCK = 65_536

# A header field name's characters (printable ASCII but ":"), and line endings.
_N = r"[\041-\071\073-\176]"
_EOL = r"(?:\r\n|\r|\n|\Z)"
# (Each repetition below that ends a pattern or its value is possessive: nothing after it
# could make it give characters back, and the regex engine keeps no state to backtrack into.)
# One header line as the email package's feedparser recognises it (its headerRE).
_HEADER_BLOCK_TEXT = re.compile(rf"(?:(?:From |{_N}*:|[\t ])[^\r\n]*+{_EOL})*+")
_HEADER_BLOCK = re.compile(_HEADER_BLOCK_TEXT.pattern.encode())
# What may follow "--boundary" on a boundary line.
_BOUNDARY_TAIL = re.compile(rb"(--)?[ \t]*+(\r\n|\r|\n|\Z)")
# A line ending followed by an empty line (the empty line starts at the match's end).
_BLANK_AFTER = re.compile(rb"(?:\r\n|\r(?!\n)|\n)(?=[\r\n])")
# A header field and its folded lines; any line in a block that is neither (a leading
# fold, "From ", a line starting with ":") sends the block to the line-by-line reader.
# The patterns searched for fields (findall) start where a run of name characters starts
# (the lookbehind): from inside the run the match would fail where it failed from its
# start, after reading the run again, once for every character of a long run.
_NAME_START = rf"(?<!{_N})"
_FIELD = re.compile(
    rf"{_NAME_START}({_N}+):([^\r\n]*+{_EOL}(?:[ \t][^\r\n]*+{_EOL})*+)")
# A run of header fields from a given position: one match instead of one per field (the
# fields cannot overlap or be cut shorter, so the run ends where matching field after
# field would stop).
# The same field with the value's leading blanks and final line ending left out of its
# group (the value as the email package stores it).
_FIELD_STRIPPED = re.compile(
    rf"{_NAME_START}({_N}+):[ \t]*+([^\r\n]*+(?:(?:\r\n|\r|\n)[ \t][^\r\n]*+)*+){_EOL}")
_FIELDS_RUN = re.compile(rf"(?:{_N}+:[^\r\n]*+{_EOL}(?:[ \t][^\r\n]*+{_EOL})*+)*+".encode())
_HEADER_START = re.compile(rf"From |{_N}*:|[\t ]".encode())
# The same run and fields for the usual header block, whose lines all end in "\n" (LF) or
# all in "\r\n" (CRLF): a negated single character is scanned several times faster than
# a class of two, and no alternation is tried at each line end. _part checks the line
# endings of what the run covers before it uses them. (The two field patterns are only
# searched in such a run: whole lines, each field matched where the last one ended. In
# a line without its ending they would read to its end from every name. In CRLF text no
# lone CR is left, so a value is what precedes CRLF.)
_NL_FIELDS_RUN = re.compile(rf"(?:{_N}+:[^\n]*+\n(?:[ \t][^\n]*+\n)*+)*+".encode())
_LF_FIELD = re.compile(rf"{_NAME_START}({_N}+):[ \t]*+([^\n]*+(?:\n[ \t][^\n]*+)*+)\n")
_CRLF_FIELD = re.compile(
    rf"{_NAME_START}({_N}+):[ \t]*+([^\r\n]*+(?:\r\n[ \t][^\r\n]*+)*+)\r\n")
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")
_CR, _LF = 13, 10

_LEAF, _MESSAGE, _DSN, _MULTIPART = range(4)
# The transfer encodings get_payload(decode=True) decodes; any other value leaves the bytes.
_DECODED_CTES = frozenset({"quoted-printable", "base64", "x-uuencode", "uuencode", "uue",
                           "x-uue"})
# A body not read yet: raw bytes, start, end, whether its final line ending belongs to
# the next boundary, and the multipart boundary (None when the part has none).
_Body = tuple[bytes, int, int, bool, bytes | None]


def _text(data: bytes) -> str:
    return data.decode("ascii", "surrogateescape")


def _eol_len(raw: bytes, pos: int, end: int) -> int:
    """Length of the line ending at ``pos`` (0 when there is none)."""
    if pos >= end:
        return 0
    c = raw[pos]
    if c == _CR:
        return 2 if pos + 1 < end and raw[pos + 1] == _LF else 1
    return 1 if c == _LF else 0


def _without_eol(raw: bytes, start: int, end: int) -> int:
    """``end`` moved back over one final line ending within [start, end)."""
    if end > start and raw[end - 1] == _LF:
        end -= 1
        if end > start and raw[end - 1] == _CR:
            end -= 1
    elif end > start and raw[end - 1] == _CR:
        end -= 1
    return end


def _boundary_at(raw: bytes, sep: bytes, pos: int, end: int) -> tuple[int, bool, bool] | None:
    """When a line starting at ``pos`` is a boundary line of ``sep``: (where the next
    line starts, whether it is the close boundary, whether it ends with a newline)."""
    if not raw.startswith(sep, pos, end):
        return None
    m = _BOUNDARY_TAIL.match(raw, pos + len(sep), end)
    if m is None:
        return None
    return m.end(), m.start(1) >= 0, m.end() > m.start(2)


def _next_boundary(raw: bytes, sep: bytes, lo: int, pos: int, end: int
                   ) -> tuple[int, int, bool, bool] | None:
    """The first boundary line of ``sep`` starting in [pos, end): (its start, where the
    next line starts, close boundary, ends with a newline); ``lo`` is a line start."""
    while True:
        i = raw.find(sep, pos, end)
        if i < 0:
            return None
        if i == lo or raw[i - 1] in (_CR, _LF):
            found = _boundary_at(raw, sep, i, end)
            if found is not None:
                return (i, *found)
        pos = i + 1


def _simple_params(value: str) -> list[tuple[str, str]] | None:
    """A header's parameters as Message._get_params_preserve reads them, for the usual
    value: no RFC 2231 parameter (``*``), no backslash, no ";" inside quotes. None for any
    other value (the email package's reader then reads it)."""
    if "*" in value or "\\" in value:
        return None
    segments = value.split(";")
    if any(segment.count('"') % 2 for segment in segments):
        return None  # a quoted ";" (or an unbalanced quote): not a separator there
    params: list[tuple[str, str]] = []
    for segment in segments:
        name, eq, val = segment.partition("=")
        if eq:
            name, val = name.strip().lower(), val.strip()
        else:
            name = name.strip()
        # the first is the value itself, kept as it is; the others are re-quoted (a value
        # without quotes or angle brackets is its own unquoted and quoted form)
        if not params:
            params.append((name, val))
        elif '"' not in val and val[:1] != "<":
            params.append((name, f'"{val}"'))
        else:
            params.append((name, f'"{quote(unquote(val))}"'))
    return params


class Part(Message):
    """A compat32 message whose body is split from the raw bytes when first read."""

    _headers: list[tuple[str, str]]  # set by Message.__init__; filled by the parser

    def __init__(self) -> None:
        self._lazy: _Body | None = None
        self._kind = _LEAF
        self._p: object = None
        self._pre: str | None = None
        self._epi: str | None = None
        self._ctype: str | None = None
        self._index: dict[str, int] | None = None
        self._params: dict[str, list[tuple[str, Any]]] = {}
        # a header's text as bounced.classify.parse.header makes it (decoded, whitespace
        # normalised), per name asked: the detectors ask for From, To, Subject... many times
        self.texts: dict[str, str] = {}
        # Message.__init__(policy=compat32) written out (it sets the body attributes through
        # the properties below; tests/test_classify_parse.py checks the two agree)
        self.policy = compat32
        self._headers = []
        self._unixfrom = None
        self._charset = None
        self.defects = []
        self._default_type = "text/plain"

    def _load(self) -> None:
        body, self._lazy = self._lazy, None
        assert body is not None
        raw, start, end, strip, sep = body
        if self._kind == _MESSAGE:
            self._p = [_part(raw, start, end, strip, "text/plain")]
        elif self._kind == _DSN:
            self._p = _blocks(raw, start, end, strip)
        elif self._kind == _MULTIPART and sep is not None:
            _split(self, raw, start, end, strip, sep)
        else:
            if self._kind == _LEAF and strip:
                end = _without_eol(raw, start, end)
            self._p = _text(raw[start:end])

    # The email package reads and writes these attributes directly: reading one loads the
    # body, so a lazy part behaves as the eagerly parsed message would.
    @property
    def _payload(self) -> object:
        if self._lazy is not None:
            self._load()
        return self._p

    @_payload.setter
    def _payload(self, value: object) -> None:
        if self._lazy is not None:
            self._load()
        self._p = value

    @property
    def preamble(self) -> str | None:
        if self._lazy is not None:
            self._load()
        return self._pre

    @preamble.setter
    def preamble(self, value: str | None) -> None:
        if self._lazy is not None:
            self._load()
        self._pre = value

    @property
    def epilogue(self) -> str | None:
        if self._lazy is not None:
            self._load()
        return self._epi

    @epilogue.setter
    def epilogue(self, value: str | None) -> None:
        if self._lazy is not None:
            self._load()
        self._epi = value

    # Detectors read the content type and a few headers of every part many times: the
    # content type and where each header name first appears are remembered until a header
    # or the default type changes (every method of Message that changes them is below).
    def _changed(self) -> None:
        self._ctype = None
        self._index = None
        self._params = {}
        self.texts = {}

    def _get_params_preserve(self, failobj: Any, header: str) -> Any:
        """As Message._get_params_preserve (the parameters get_param, get_boundary and
        get_content_charset read), remembered per header; a copy of the list is returned."""
        params = self._params.get(header)
        if params is None:
            value = self.get(header)
            params = _simple_params(value) if isinstance(value, str) else None
            if params is None:
                found = message_params(self, failobj, header)
                if found is failobj:
                    return failobj
                params = found
            self._params[header] = params
        return list(params)

    def _indexed(self) -> dict[str, int]:
        index = self._index
        if index is None:
            headers = self._headers  # walked from the end: a name's first field wins
            index = {headers[i][0].lower(): i for i in range(len(headers) - 1, -1, -1)}
            self._index = index
        return index

    def _fetched(self, key: str, value: Any) -> Any:
        if self.policy is compat32 and isinstance(value, str) and value.isascii():
            return value  # what compat32's header_fetch_parse returns for a value without
            # surrogates (only those become Header objects)
        return self.policy.header_fetch_parse(key, value)

    def get(self, name: str, failobj: Any = None) -> Any:
        """As Message.get (the first header of that name), through an index. (Hot: what
        _indexed and _fetched do is written out here.)"""
        index = self._index
        if index is None:
            index = self._indexed()
        at = index.get(name.lower())
        if at is None:
            return failobj
        key, value = self._headers[at]
        if self.policy is compat32 and isinstance(value, str) and value.isascii():
            return value
        return self.policy.header_fetch_parse(key, value)

    def __contains__(self, name: object) -> bool:
        """As Message.__contains__, through the index (not a list of every name lowercased)."""
        return isinstance(name, str) and name.lower() in self._indexed()

    def get_all(self, name: str, failobj: Any = None) -> Any:
        """As Message.get_all; a name not in the index is answered at once."""
        lowered = name.lower()
        if lowered not in self._indexed():
            return failobj
        return [self._fetched(k, v) for k, v in self._headers if k.lower() == lowered]

    def get_content_type(self) -> str:
        """As Message.get_content_type, remembered (its steps written out: it is asked of
        every part the parser builds)."""
        ctype = self._ctype
        if ctype is None:
            value = self.get("content-type")
            if value is None:
                ctype = self._default_type
            else:
                ctype = str(value).partition(";")[0].strip().lower()
                if ctype.count("/") != 1:
                    ctype = "text/plain"
            self._ctype = ctype
        return ctype

    def set_default_type(self, ctype: str) -> None:
        """As Message.set_default_type."""
        self._changed()
        super().set_default_type(ctype)

    def __setitem__(self, name: str, val: str) -> None:
        self._changed()
        super().__setitem__(name, val)

    def __delitem__(self, name: str) -> None:
        self._changed()
        super().__delitem__(name)

    def set_raw(self, name: str, value: str) -> None:
        """As Message.set_raw."""
        self._changed()
        super().set_raw(name, value)

    def add_header(self, _name: str, _value: str, **_params: Any) -> None:
        """As Message.add_header."""
        self._changed()
        super().add_header(_name, _value, **_params)

    def replace_header(self, _name: str, _value: str) -> None:
        """As Message.replace_header."""
        self._changed()
        super().replace_header(_name, _value)

    def set_boundary(self, boundary: str) -> None:
        """As Message.set_boundary."""
        self._changed()
        super().set_boundary(boundary)  # reads the parameters, then rewrites the headers
        self._changed()

    def leaf_bytes(self) -> bytes | None:
        """What ``get_payload(decode=True)`` returns for a leaf whose body is not read yet
        and whose transfer encoding leaves the bytes as they are (7bit, 8bit, binary):
        its bytes, without a round trip through text; None in every other case."""
        if self._lazy is None or self._kind != _LEAF:
            return None
        cte = str(self.get("content-transfer-encoding", "")).lower()
        if cte in _DECODED_CTES:  # compared as get_payload compares them
            return None
        raw, start, end, strip, _ = self._lazy
        return raw[start:_without_eol(raw, start, end) if strip else end]

    def is_multipart(self) -> bool:
        """As Message.is_multipart, without decoding a leaf's body to answer."""
        if self._lazy is not None and self._kind != _MULTIPART:
            return self._kind != _LEAF
        return isinstance(self._payload, list)


def _read_headers(part: Part, block: str) -> str | None:
    """Message headers from a header block, as the feedparser sets them; returns a
    "From " line that ends the block (it belongs to the body), else None."""
    out = part._headers  # filled as the email package fills it
    fields: list[tuple[str, str]] = _FIELD.findall(block)
    # The usual case: every line is a field or a fold, so the matches cover the block.
    if sum(len(name) + len(value) + 1 for name, value in fields) == len(block):
        out.extend((name, value.lstrip(" \t").rstrip("\r\n")) for name, value in fields)
        return None
    last: list[str] = []
    lines: list[str] = _LINE.findall(block)
    for lineno, line in enumerate(lines):
        if line[:1] in (" ", "\t"):
            if last:
                last.append(line)
            continue  # else a continuation first: ignored, as the email package does
        if last:
            name, value = "".join(last).split(":", 1)
            out.append((name, value.lstrip(" \t").rstrip("\r\n")))
            last = []
        if line.startswith("From "):
            if lineno == 0:
                part.set_unixfrom(line.rstrip("\r\n"))
            elif lineno == len(lines) - 1:
                return line
            continue
        if line.find(":") > 0:
            last = [line]
    if last:
        name, value = "".join(last).split(":", 1)
        out.append((name, value.lstrip(" \t").rstrip("\r\n")))
    return None


def _nl_fields(raw: bytes, start: int, end: int) -> re.Pattern[str] | None:
    """The field pattern for raw[start:end] when its line endings are all LF or all CRLF."""
    crs = raw.count(b"\r", start, end)
    if not crs:
        return _LF_FIELD
    if crs == raw.count(b"\r\n", start, end) == raw.count(b"\n", start, end):
        return _CRLF_FIELD
    return None


def _more_headers(raw: bytes, pos: int, limit: int) -> bool:
    """Whether the line at ``pos`` could still be read as part of a header block (a
    field, a fold, a "From " line); the usual end of a run of fields, a blank line or the
    end, is answered without the regex."""
    if pos >= limit or raw[pos] in (_CR, _LF):
        return False
    return _HEADER_START.match(raw, pos, limit) is not None


def _fill_headers(part: Part, raw: bytes, start: int, end: int) -> tuple[bytes, int, int]:
    """Read the header block at raw[start:end] into ``part``; returns where its body is,
    as (raw, start, end): a copy when a "From " line ending the block belongs to it.
    A block is read up to MAX_HEADER_BLOCK bytes; the rest of it is left to the body."""
    limit = min(end, start + MAX_HEADER_BLOCK)
    # The usual case in one pass: fields (with their folds) up to a line that is no header,
    # every line ending in LF, or every one in CRLF.
    hend = _NL_FIELDS_RUN.match(raw, start, limit).end()  # type: ignore[union-attr]
    fields = _nl_fields(raw, start, hend)
    more = _more_headers(raw, hend, limit)
    if fields is None or more:
        fields = _FIELD_STRIPPED  # any line endings
        hend = _FIELDS_RUN.match(raw, start, limit).end()  # type: ignore[union-attr]
        more = _more_headers(raw, hend, limit)
    if not more:  # a blank line, the body or the end
        # the run decoded once (ascii/surrogateescape keeps one character per byte) and
        # cut into its fields, which are the ones matched one by one from ``start``
        part._headers.extend(fields.findall(_text(raw[start:hend])))
        return raw, hend + _eol_len(raw, hend, end), end  # a blank line ends the headers
    # "From " lines, a fold or ':' starting a line: the general reader
    match = _HEADER_BLOCK.match(raw, start, limit)
    hend = match.end() if match else start
    body = hend + _eol_len(raw, hend, end)
    unread = _read_headers(part, _text(raw[start:hend]))
    if unread is not None:  # the body starts with that line: read a joined copy
        raw = unread.encode("ascii", "surrogateescape") + raw[body:end]
        return raw, 0, len(raw)
    return raw, body, end


def _part(raw: bytes, start: int, end: int, strip: bool, default: str) -> Part:
    """The message in raw[start:end] with its headers read and its body left lazy.

    ``strip``: the final line ending belongs to the boundary that follows the part.
    """
    part = Part()
    if default != "text/plain":
        part.set_default_type(default)
    raw, body, end = _fill_headers(part, raw, start, end)
    ctype = part.get_content_type()
    maintype = ctype.split("/", 1)[0]
    sep: bytes | None = None
    if ctype == "message/delivery-status":
        part._kind = _DSN
        cte = str(part.get("content-transfer-encoding", "")).strip().lower()
        if cte in ("base64", "quoted-printable"):  # against RFC 3464, but some mailers do
            raw = _transfer_decoded(raw[body:end], cte)
            body, end, strip = 0, len(raw), False
            part.replace_header("content-transfer-encoding", "7bit")
    elif maintype == "message":
        part._kind = _MESSAGE
    elif maintype == "multipart":
        part._kind = _MULTIPART
        boundary = part.get_boundary()
        if boundary is not None:
            try:
                sep = b"--" + boundary.encode("ascii", "surrogateescape")
            except UnicodeEncodeError:  # an RFC 2231 value no line can match
                sep = b"\0--\0"
    part._lazy = (raw, body, end, strip, sep)
    return part


def _transfer_decoded(body: bytes, cte: str) -> bytes:
    """A body with its base64 or quoted-printable transfer encoding undone (as it is, when
    it does not decode)."""
    try:
        return binascii.a2b_base64(body) if cte == "base64" else quopri.decodestring(body)
    except (binascii.Error, ValueError):
        return body


def _blocks(raw: bytes, start: int, end: int, strip: bool) -> list[Message]:
    """The field blocks of a message/delivery-status body, each one a message."""
    blocks: list[Message] = []
    pos = start
    while len(blocks) < MAX_BLOCKS:
        if pos < end and raw[pos] in (_CR, _LF):
            stop = pos
        else:
            m = _BLANK_AFTER.search(raw, pos, end)
            stop = m.end() if m else end
        after = stop + _eol_len(raw, stop, end)
        blocks.append(_part(raw, pos, stop, strip and after >= end, "text/plain"))
        if after >= end:
            break
        pos = after
    return blocks


def _split(part: Part, raw: bytes, start: int, end: int, strip: bool, sep: bytes) -> None:
    """Fill a multipart's payload, preamble and epilogue from raw[start:end]."""
    default = "message/rfc822" if part.get_content_type() == "multipart/digest" else "text/plain"
    found = _next_boundary(raw, sep, start, start, end)
    if found is None or found[2]:  # no start boundary: the text is the payload
        part._p = _text(raw[start:found[0] if found else end])
        part._epi = None if strip else ""
        return
    line, pos = found[0], found[1]
    part._pre = _text(raw[start:_without_eol(raw, start, line)]) if line > start else None
    children: list[Message] = []
    part._p = children
    while True:
        while (again := _boundary_at(raw, sep, pos, end)) is not None:
            pos = again[0]  # repeated boundary lines make no empty parts
        found = _next_boundary(raw, sep, pos, pos, end)
        if len(children) < MAX_CHILDREN:
            children.append(_part(raw, pos, found[0] if found else end, True, default))
        if found is None:
            return  # no close boundary: no epilogue
        _, pos, close, newline = found
        if close:  # the rest is the epilogue, less the newline of the next boundary
            stop = _without_eol(raw, pos, end) if strip else end
            empty = not newline or pos == end
            part._epi = None if strip and empty else "" if empty else _text(raw[pos:stop])
            return


def parse_headers(text: str) -> Message:
    """The headers of the message in ``text`` as ``email.message_from_string(text,
    policy=compat32)`` reads them; its body is kept as one string, never parsed."""
    part = Part()
    match = _HEADER_BLOCK_TEXT.match(text)
    hend = match.end() if match else 0
    body = hend  # a blank line ends the headers and is dropped
    if text.startswith("\r\n", hend):
        body += 2
    elif text.startswith(("\r", "\n"), hend):
        body += 1
    unread = _read_headers(part, text[:hend]) if hend else None
    part._p = (unread or "") + text[body:]
    return part


def parse_bytes(raw: bytes) -> Part:
    """The message in ``raw``: compat32's tree, with bodies read when first used."""
    return _part(raw, 0, len(raw), False, "text/plain")
