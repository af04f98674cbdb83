"""The detector contract and the helpers detectors share."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Protocol

from bounced.classify.parse import Mail

MAX_RECIPIENTS = 500  # recipients reported per message; more are dropped

# An address starts where a run of local-part characters starts (the lookbehind): a search
# from every character of a long run would read up to 64 characters from each.
# A local part is a dot-atom or, as RFC 5321 allows, a quoted string ("first..last").
ADDRESS = re.compile(
    r"(?<![\w.!#$%&'*+/=?^`{|}~-])(?:\"[^\"\\\r\n]{1,64}\"|[\w.!#$%&'*+/=?^`{|}~-]{1,64})"
    r"@(?:[\w-]{1,63}\.)*[\w-]{1,63}",
    re.UNICODE,
)
# (Each starts with its first digit and looks behind it afterwards: a pattern that starts
# with a class is searched by skipping to that class's characters, one that starts with
# \b or a lookbehind is tried at every position. "(?<!\w.)" after the digit is \b before it.)
STATUS = re.compile(r"([245])(?<!\w.)\.(\d{1,3})\.(\d{1,3})\b")
REPLY_CODE = re.compile(r"([245][0-5]\d)(?<![\d.#-]...)(?=[ :-]|$)(?![\d.]*\.\d)")
# "+XX" in an address: xtext encoding of RFC 3461 (ORCPT), "+40" for "@"...
_XTEXT = re.compile(r"\+([0-9A-F]{2})")
# "\x{5F20}" in an address: RFC 6533's utf-8-addr-xtext (a global DSN's Original-Recipient)
_UNITEXT = re.compile(r"\\x\{([0-9A-Fa-f]{1,6})\}")


@dataclass
class Found:
    """One recipient as a detector saw it, before the reason is worked out."""

    address: str
    action: str = ""
    status: str = ""
    reply_code: str = ""
    diagnostic: str = ""
    remote_mta: str = ""
    reason: str = ""  # set only when the format itself names the reason
    command: str = ""  # the SMTP command that failed, when the format says (RCPT, DATA...)


@dataclass
class Detection:
    """What a detector recognised in a message."""

    detector: str
    kind: str
    recipients: list[Found] = field(default_factory=list)
    feedback_type: str | None = None
    reporting_mta: str = ""  # the host that wrote the report, when the format names it


class Detector(Protocol):
    """Recognises one family of formats; returns None for a message it does not know."""

    name: str

    def detect(self, mail: Mail) -> Detection | None:
        """The recipients and kind of ``mail``, or None when the format is not this one."""
        ...


def normalise(text: str) -> str:
    """Whitespace collapsed to single spaces (compat32 keeps folding)."""
    return " ".join(text.split())


def _unwrapped(value: str) -> str:
    """``value`` without its type prefix ("rfc822;"), the brackets, quotes or "mailto:"
    around it and trailing punctuation (a quoted local part keeps its quotes)."""
    value = value.strip()
    if ";" in value[:20]:
        value = value.split(";", 1)[1]
    value = value.strip().strip("<>' ").rstrip(".,:;>)")
    if value[:7].lower() == "mailto:":
        value = value[7:].lstrip("<")
    if value.startswith('"') and value.count('"') == 2 and value.endswith('"'):
        value = value[1:-1].strip()  # the whole address quoted: "addr"
    if "+" in value and _XTEXT.search(value):
        value = _XTEXT.sub(lambda m: chr(int(m.group(1), 16)), value)
    if "\\x{" in value:
        value = _UNITEXT.sub(_unichr, value)
    return value


def _unichr(m: re.Match[str]) -> str:
    code = int(m.group(1), 16)
    return chr(code) if code <= 0x10FFFF else m.group(0)


def clean_address(value: str) -> str:
    """An address from a DSN field or a text line: type prefix, brackets, quotes removed."""
    value = _unwrapped(value)
    match = ADDRESS.search(value)
    if not match or "..." in match.group(0).rpartition("@")[0]:
        return ""  # an ellipsis marks an address cut short or masked ("david...@gmail.com")
    return match.group(0).lower()


_FIELD_ADDRESS = re.compile(r"[^\s@<>()\[\],;:\"]{1,64}@[^\s@<>()\[\],;:\"]{1,255}")


def field_address(value: str) -> str:
    """The address a DSN recipient field names. As ``clean_address``, but an address whose
    domain is not valid syntax ("user@#example.net", "user@host_name") is still the
    address the message was sent to: the field says so, and it failed."""
    address = clean_address(value)
    if address:
        return address
    value = _unwrapped(value)
    if _FIELD_ADDRESS.fullmatch(value) and "..." not in value.partition("@")[0]:
        return value.lower()
    return ""


def status_of(text: str) -> str:
    """The first failure (4/5) RFC 3463 status code in ``text``, else the first one."""
    first = ""
    for match in STATUS.finditer(text[:4000]):
        if match.group(1) != "2":
            return ".".join(match.groups())
        first = first or ".".join(match.groups())
    return first


def reply_code_of(text: str) -> str:
    """The first failure (4xx/5xx) SMTP reply code in ``text``, else the first one."""
    first = ""
    for match in REPLY_CODE.finditer(text[:4000]):
        if match.group(1)[0] != "2":
            return match.group(1)
        first = first or match.group(1)
    return first


def action_for(status: str, reply_code: str) -> str:
    """The DSN action a status or reply code implies when the format gives none."""
    first = (status or reply_code or "5")[0]
    return {"2": "delivered", "4": "delayed"}.get(first, "failed")


def kind_of(recipients: list[Found]) -> str:
    """The message kind implied by its recipients' actions."""
    actions = {r.action for r in recipients}
    if "failed" in actions:
        return "bounce"
    if "delayed" in actions:
        return "delay"
    if actions & {"delivered", "relayed", "expanded"}:
        return "delivered"
    return "bounce"
