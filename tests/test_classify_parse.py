"""The byte-level MIME parser: the same tree as the email package's compat32 parser,
bodies read lazily, and its own caps."""

from __future__ import annotations

import email
import time
from email.header import Header
from email.message import Message
from email.policy import compat32
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bounced.classify.detectors.base import MAX_RECIPIENTS
from bounced.classify.mime import MAX_BLOCKS, MAX_CHILDREN, Part, parse_bytes, parse_headers
from bounced.classify.parse import MAX_PARTS, bound, header, parse, walk

CORPUS = Path(__file__).resolve().parent / "corpus" / "emails"
FILES = sorted(CORPUS.iterdir())


def tree(msg: Message, path: str = "0") -> list[tuple[str, str, Any]]:
    """Everything the classifier can read of a message, part by part."""
    out: list[tuple[str, str, Any]] = [
        (path, "headers", list(msg.items())), (path, "raw", list(msg.raw_items())),
        (path, "unixfrom", msg.get_unixfrom()), (path, "type", msg.get_content_type()),
        (path, "preamble", msg.preamble), (path, "epilogue", msg.epilogue),
        (path, "multipart", msg.is_multipart()),
        (path, "params", msg.get_params()), (path, "boundary", msg.get_boundary()),
        (path, "charset", msg.get_content_charset()),
        (path, "disposition", msg.get_params(header="content-disposition"))]
    payload = msg.get_payload()
    if isinstance(payload, list):
        for i, sub in enumerate(payload):
            out += tree(sub, f"{path}.{i}")
    else:
        out.append((path, "payload", payload))
    return out


def decoded(msg: Message) -> list[Any]:
    """Every leaf's body as the classifier decodes it (``Part.leaf_bytes`` where it
    answers, before anything has read the body; else ``get_payload(decode=True)``)."""
    if msg.is_multipart():
        return [d for sub in msg.get_payload() for d in decoded(sub)]
    fast = msg.leaf_bytes() if isinstance(msg, Part) else None
    return [fast if fast is not None else msg.get_payload(decode=True)]


def same_as_compat32(raw: bytes) -> None:
    assert tree(parse_bytes(raw)) == tree(email.message_from_bytes(raw, policy=compat32))
    assert decoded(parse_bytes(raw)) == decoded(email.message_from_bytes(raw, policy=compat32))


def multipart(boundary: str, parts: list[str], close: bool = True, ctype: str = "mixed",
              nl: str = "\n") -> str:
    body = "".join(f"--{boundary}{nl}{p}{nl}" for p in parts)
    return (f'Content-Type: multipart/{ctype}; boundary="{boundary}"{nl}{nl}preamble{nl}'
            + body + (f"--{boundary}--{nl}epilogue{nl}" if close else ""))


@pytest.mark.parametrize("path", FILES, ids=[f.name for f in FILES])
def test_corpus_trees_equal_compat32(path: Path) -> None:
    """Every corpus message, and its LF, CRLF, CR and cut variants, parses as compat32 does."""
    raw = bound(path.read_bytes())
    for variant in (raw, raw.replace(b"\r\n", b"\n"), raw.replace(b"\n", b"\r\n"),
                    raw.replace(b"\n", b"\r"), raw[: len(raw) // 2], raw[: len(raw) // 5]):
        same_as_compat32(variant)


@pytest.mark.parametrize("text", [
    # parameters: case, spacing, quotes, angle brackets, RFC 2231, a quoted ";"
    "Content-Type: TEXT/Plain; Charset=<UTF-8> ; Format = flowed\n\nx",
    'Content-Type: multipart/mixed; Boundary="a;b"; x=""\n\n--a;b\n\nx\n--a;b--\n',
    "Content-Type: text/plain; name*0*=utf-8''a%20; name*1=b; charset=\"x\\\"y\"\n\nx",
    # boundary lines: trailing blanks, close with blanks, text after the boundary
    multipart("b", ["Content-Type: text/plain\n\nx"]).replace("--b\n", "--b \t\n", 1),
    multipart("b", ["\nx"]).replace("--b--", "--b--  "),
    multipart("b", ["\nx", "\ny"]).replace("--b\n\ny", "--bc\n\ny"),
    # repeated boundary lines make no empty part; a close line right after a separator
    multipart("b", ["\nx"]).replace("--b\n", "--b\n--b\n--b\n", 1),
    multipart("b", ["\nx"]).replace("--b\n", "--b\n--b--\n", 1),
    # nested multiparts: the outer boundary ends inner parts; same boundary inside
    multipart("out", [multipart("in", ["\na", "\nb"], close=False), "\nc"]),
    multipart("out", [multipart("in", ["\na"]), multipart("out", ["\nz"])]),
    multipart("out", [multipart("in", [multipart("deep", ["\na"], close=False)],
                                close=False)]),
    # missing close boundary, missing start boundary, close boundary only, empty parts
    multipart("b", ["\nx", "\ny"], close=False),
    multipart("b", ["\nx"]).replace("--b\n", "-- b\n"),
    'Content-Type: multipart/mixed; boundary="b"\n\nno parts\n--b--\nafter\n',
    multipart("b", ["", "", "\n"]),
    multipart("b", ["\nx"]).rstrip("\n") + "--b--",
    # bad boundary declarations: none, empty, RFC 2231, non-ASCII, unbalanced quotes
    "Content-Type: multipart/mixed\n\n--b\n\nx\n--b--\n",
    'Content-Type: multipart/mixed; boundary=""\n\n--\n\nx\n----\n',
    "Content-Type: multipart/mixed; boundary*=utf-8''%C3%A9\n\n--\u00e9\n\nx\n",
    multipart("b\u00e9", ["\nx"]),
    'Content-Type: multipart/mixed; boundary="b\n\n--b\n\nx\n',
    # message/* parts, digest defaults, delivery-status blocks and their blank lines
    multipart("b", ["Content-Type: message/rfc822\n\nFrom: a@b\nSubject: s\n\nbody\n"]),
    multipart("b", ["\nFrom: a@b\n\none", "\nFrom: c@d\n\ntwo"], ctype="digest"),
    multipart("b", ["Content-Type: message/delivery-status\n\nReporting-MTA: x\n\n\n"
                    "Final-Recipient: rfc822; a@b\nStatus: 5.1.1\nnot a field\n\n"]),
    multipart("b", ["Content-Type: message/delivery-status\n\nA: 1\n\nB: 2"]),
    "Content-Type: message/delivery-status\n\n\n\nA: 1\n",
    "Content-Type: message/rfc822\n\n",
    # header oddities: unix From, a misplaced From, a From ending the block, a fold first,
    # a line starting with ':', a line with no colon, no blank line before the body
    "From sender Mon Jan 1\nSubject: x\nFrom misplaced\nTo: y\n\nbody",
    "Subject: x\nFrom last line\n\nbody\n",
    "Subject: x\nFrom last line\nnot a header\nbody\n",
    " folded first\nSubject: x\n  folded\n\tagain\n:no name\nTo: y\n\nbody",
    "Subject: x\nthis is body\nmore\n",
    "Subject: x",
    "",
    "\n\nbody only",
    # line endings: CRLF, lone CR, mixed
    multipart("b", ["Content-Type: text/plain\r\n\r\nx"], nl="\r\n"),
    multipart("b", ["\rx"], nl="\r"),
    multipart("b", ["\nx"]).replace("\n", "\r\n", 3),
])
def test_edge_cases_equal_compat32(text: str) -> None:
    """Boundary, nesting, header and line-ending edge cases parse as compat32 does."""
    same_as_compat32(text.encode("utf-8", "surrogateescape"))


def _mime(depth: int) -> st.SearchStrategy[str]:
    nl = st.sampled_from(["\n", "\r\n", "\r"])
    line = st.one_of(
        st.sampled_from(["Content-Type: text/plain", "Content-Type: message/delivery-status",
                         "Content-Type: message/rfc822", "Content-Type: multipart/mixed",
                         "Content-Type: multipart/digest; boundary=b0", "X-A: 1", " fold",
                         "From x", "--b0", "--b1--", "--b2  ", "", "Status: 5.1.1", ":",
                         "Subject: =?utf-8?q?caf=C3=A9?=",
                         'Content-Type: text/plain; charset="UTF-8"; format=flowed;',
                         'Content-Type: multipart/mixed; boundary="b0;x"',
                         "Content-Type: text/plain; name*=utf-8''caf%C3%A9; Charset=<x>",
                         'Content-Disposition: attachment; filename="a\\"b"; size',
                         'Content-Type: text/plain; =x; a="b"c"; ;',
                         "Content-Type: TEXT/Plain; Charset=<UTF-8> ; Format = flowed"]),
        st.text(alphabet=st.characters(max_codepoint=0x7f, blacklist_characters="\r\n"),
                max_size=12))
    leaf = st.builds(lambda ls, n: n.join(ls), st.lists(line, max_size=8), nl)
    if depth == 0:
        return leaf
    multi = st.builds(
        lambda sub, parts, close, n, head: (
            f"Content-Type: multipart/{sub}; boundary=b{depth}{n}{head}{n}"
            + "".join(f"--b{depth}{n}{p}{n}" for p in parts)
            + (f"--b{depth}--{n}" if close else "")),
        st.sampled_from(["mixed", "report", "digest"]), st.lists(_mime(depth - 1), max_size=4),
        st.booleans(), nl, st.sampled_from(["", "X: y"]))
    wrapped = st.builds(lambda inner, ct: f"Content-Type: {ct}\n\n{inner}", _mime(depth - 1),
                        st.sampled_from(["message/rfc822", "message/delivery-status"]))
    return st.one_of(leaf, multi, wrapped)


@settings(max_examples=300, deadline=None)
@given(_mime(3))
def test_generated_mime_equals_compat32(text: str) -> None:
    """Generated MIME trees (odd boundaries, line endings, headers) parse as compat32 does."""
    same_as_compat32(text.encode("ascii"))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_equal_compat32(raw: bytes) -> None:
    """Arbitrary bytes parse as compat32 does."""
    same_as_compat32(raw)


def test_attached_original_is_not_parsed_until_read() -> None:
    """A message/rfc822 part's inner message is built only when its payload is read."""
    raw = multipart("b", ["\nreport", "Content-Type: message/rfc822\n\nFrom: a@b\n"
                          + multipart("in", ["\nbig body"] * 50)]).encode()
    mail = walk(parse(raw))
    original = mail.originals[0]
    assert isinstance(original, Part) and original._lazy is not None
    payload = original.get_payload()
    assert isinstance(payload, list)
    inner = payload[0]
    assert isinstance(inner, Part)
    assert inner["from"] == "a@b" and inner._lazy is not None  # its body still unread
    assert len(inner.get_payload()) == 50


def test_header_text_is_remembered_until_the_headers_change() -> None:
    """header() on a parsed part answers as on the email package's message, asked once or
    many times, and again after a header is set, replaced or deleted."""
    raw = ("From: =?utf-8?Q?courier=2Etest?= <@>\nTo: a@b.example,\n  c@d.example\n"
           "Subject: =?utf-8?b?w6k=?= x\nX-Raw: caf\u00e9\n\nbody\n").encode()
    part, ref = parse(raw), email.message_from_bytes(raw, policy=compat32)
    for _ in range(2):
        for name in ("from", "to", "subject", "x-raw", "cc"):
            assert header(part, name) == header(ref, name), name
    for msg in (part, ref):
        msg.replace_header("Subject", "=?utf-8?q?caf=C3=A9?=")
        msg["Cc"] = "e@f.example"
        del msg["To"]
    for name in ("subject", "cc", "to"):
        assert header(part, name) == header(ref, name), name
    assert (header(part, "subject"), header(part, "cc"), header(part, "to")) == (
        "caf\u00e9", "e@f.example", "")


def test_encoded_headers_decode() -> None:
    """RFC 2047 words are decoded by header(); 8-bit bytes survive as in compat32."""
    raw = ("Subject: =?utf-8?q?caf=C3=A9?= =?iso-8859-1?b?6Q==?=\nX-Raw: caf\u00e9\n\n"
           ).encode()
    msg = parse(raw)
    assert header(msg, "subject") == "caf\u00e9\u00e9"
    assert str(msg["x-raw"]) == str(email.message_from_bytes(raw, policy=compat32)["x-raw"])


def test_children_and_blocks_are_capped() -> None:
    """At most MAX_CHILDREN parts per multipart and MAX_BLOCKS DSN blocks are built."""
    assert MAX_CHILDREN >= MAX_PARTS and MAX_BLOCKS > MAX_RECIPIENTS
    many = multipart("b", ["\nx"] * (MAX_CHILDREN + 50)).encode()
    assert len(parse_bytes(many).get_payload()) == MAX_CHILDREN
    dsn = ("Content-Type: message/delivery-status\n\n"
           + "Final-Recipient: rfc822; a@b\n\n" * (MAX_BLOCKS + 50)).encode()
    assert len(parse_bytes(dsn).get_payload()) == MAX_BLOCKS


def test_hostile_nesting_is_fast() -> None:
    """Deep nesting and many boundary lookalikes in 1 MB parse in well under a second."""
    deep = "".join(f'Content-Type: multipart/mixed; boundary="b{i}"\n\n--b{i}\n'
                   for i in range(5_000)).encode()
    lookalikes = (b'Content-Type: multipart/mixed; boundary="b"\n\n'
                  + b"x--b y--b\n--bb\n" * 60_000)
    start = time.perf_counter()
    for raw in (deep, lookalikes):
        mail = walk(parse(raw))
        assert len(mail.parts) <= MAX_PARTS
    assert time.perf_counter() - start < 2.0


def test_cached_type_and_index_follow_changes() -> None:
    """The remembered content type and header index follow every header change."""
    msg = parse_bytes(b"Content-Type: text/html\nX-A: 1\n\nbody")
    assert msg.get_content_type() == "text/html" and msg["x-a"] == "1"
    msg.replace_header("Content-Type", "text/plain")
    assert msg.get_content_type() == "text/plain"
    del msg["content-type"]
    msg.set_default_type("message/rfc822")
    assert msg.get_content_type() == "message/rfc822"
    msg["Content-Type"] = "multipart/mixed"
    msg.set_boundary("zz")
    assert msg.get_content_type() == "multipart/mixed" and msg.get_boundary() == "zz"
    msg.add_header("X-B", "2")
    msg.set_raw("X-C", "3")
    assert (msg["x-b"], msg["x-c"], msg.get("x-none", "d")) == ("2", "3", "d")
    del msg["x-a"]
    assert msg["x-a"] is None


def test_payload_setters_and_serialisation() -> None:
    """A lazy part can be set, attached to and serialised like any compat32 message."""
    raw = multipart("b", ["\nx", "Content-Type: message/rfc822\n\nSubject: s\n\nin"]).encode()
    assert parse_bytes(raw).as_string() == email.message_from_bytes(
        raw, policy=compat32).as_string()
    msg = parse_bytes(raw)
    msg.attach(Message())
    assert len(msg.get_payload()) == 3
    leaf = parse_bytes(b"Subject: x\n\nold")
    leaf.set_payload("new")
    leaf.epilogue = "e"
    assert (leaf.get_payload(), leaf.epilogue, leaf.is_multipart()) == ("new", "e", False)


@pytest.mark.parametrize("text", [
    "From: a@b\nSubject: s\n\nbody", "From x\nA: b\nFrom y\n\nbody",
    " lead\nA: b\n:x\nB: c\n\tfold\nFrom y\n", "A: \u00e9\r\nB: c\rC: d\n\nx", "", "body only",
    "Content-Type: multipart/mixed; boundary=b\n\n--b\n\nx\n--b--\n",
    "Subject: caf\u00e9\nX:  \n  fold\n\nbody\n", "Subject: s\r\nX: a\r\n b\r\n\r\nbody",
    "Subject: s\r\nX: y\n\nbody", "A: b\nC: d", "A: b\n\r\nbody", "A: b\r\n",
])
def test_parse_headers_equals_message_from_string(text: str) -> None:
    """parse_headers reads the headers message_from_string does, from text, and keeps
    the rest as the body."""
    same_headers_as_compat32(text)


def same_headers_as_compat32(text: str) -> None:
    ours, theirs = parse_headers(text), email.message_from_string(text, policy=compat32)
    assert ours.items() == theirs.items() and ours.get_unixfrom() == theirs.get_unixfrom()
    if theirs.get_content_maintype() not in ("multipart", "message"):  # they parse those
        assert ours.get_payload() == theirs.get_payload()


@settings(max_examples=300, deadline=None)
@given(_mime(1))
def test_generated_headers_equal_compat32(text: str) -> None:
    """Generated header blocks (LF, CRLF, CR, folds, "From " lines) read as compat32 reads
    them, as parse_headers reads a text/rfc822-headers part or a quoted original."""
    same_headers_as_compat32(text)


def test_get_returns_what_compat32_returns() -> None:
    """Part.get's shortcut for ASCII values gives what Message.get gives, including a
    Header object for a value with undecodable bytes and one stored as a Header."""
    raw = b"Subject: plain\nX-Bytes: caf\xe9\n\nbody"
    msg = parse_bytes(raw)
    ref = email.message_from_bytes(raw, policy=compat32)
    assert msg.get("subject") == ref.get("subject") == "plain"
    got: object = msg.get("x-bytes")
    assert isinstance(got, Header) and isinstance(ref.get("x-bytes"), Header)
    assert str(msg.get("x-bytes")) == str(ref.get("x-bytes"))
    msg["X-Header"] = Header("h\u00e9")  # type: ignore[assignment]  # compat32 allows it
    assert isinstance(msg.get("x-header"), Header)
    assert Message.get(msg, "x-header") is msg.get("x-header")


def test_remembered_params_follow_changes() -> None:
    """Content-Type parameters are read once and follow every header change."""
    msg = parse_bytes(b'Content-Type: text/plain; charset="ISO-8859-1"; format=flowed\n\nbody')
    assert msg.get_content_charset() == "iso-8859-1" and msg.get_param("format") == "flowed"
    params = msg.get_params()
    assert params is not None
    params.append(("x", "y"))  # the caller's copy: the remembered list is not changed
    assert msg.get_param("x") is None
    msg.set_param("charset", "utf-8")
    assert msg.get_content_charset() == "utf-8"
    del msg["content-type"]
    assert msg.get_params() is None and msg.get_content_charset() is None
    msg["Content-Type"] = 'multipart/mixed; boundary="b1"'
    assert msg.get_boundary() == "b1"
    msg.set_boundary("b2")
    assert msg.get_boundary() == "b2"


def test_part_starts_as_a_compat32_message() -> None:
    """Part's written-out Message.__init__ sets what Message.__init__ sets."""
    from bounced.classify.mime import Part

    reference, part = Message(policy=compat32), Part()
    for name, value in vars(reference).items():
        assert getattr(part, name) == value, name
    assert part.policy is compat32


@pytest.mark.parametrize("block", [
    b"X:   \r\n\tcont\r\n", b"X: \r\n \r\n", b"X:   \t  \r\n  \t ", b"X: a\r\n\t\r\n",
    b"X: abc\r\r\nY: z\n", b"X:\r\n", b"X: v", b"X:\tv\r Y\n", b"A: 1\nB:  2 \n\n",
])
def test_header_values_as_compat32(block: bytes) -> None:
    raw = block + b"\r\nbody"
    ref = email.message_from_bytes(raw, policy=compat32)
    assert list(parse_bytes(raw).raw_items()) == list(ref.raw_items())
