"""RFC 5965 abuse reports (ARF), and the few complaint formats that predate it.

For a complaint the complained-about recipient is the point, so it may come from the
report's Original-Rcpt-To / Removal-Recipient or, failing that, from the reported
message's own recipient headers.
"""

from __future__ import annotations

import re
from email.message import Message

from bounced.classify.detectors.base import Detection, Found, clean_address
from bounced.classify.detectors.dsn import blocks_from_text
from bounced.classify.parse import Mail, decode_part, header

FEEDBACK_TYPES = ("abuse", "fraud", "virus", "other", "not-spam", "auth-failure", "opt-out",
                  "dmarc")
MAX_TEXT_FIELDS = 20_000  # characters of a text report part searched for its fields
# Headers some providers add to the reported message to name its recipient.
RECIPIENT_HEADERS = ("x-hmxmroriginalrecipient", "x-original-to", "original-rcpt-to", "to")


def report_fields(part: Message) -> dict[str, str]:
    """The fields of a report part (feedback report, disposition notification), lowercased."""
    payload = part.get_payload()
    if isinstance(payload, list):
        fields: dict[str, str] = {}
        for sub in payload:
            if isinstance(sub, Message):
                for k, v in sub.items():
                    fields.setdefault(k.lower(), str(v))
        return fields
    blocks = blocks_from_text(decode_part(part) if isinstance(payload, str) else "")
    return blocks[0] if blocks else {}


_RCPT_FIELD = re.compile(r"(?im)^(?:original-rcpt-to|removal-recipient)[ \t]*:[ \t]*(\S[^\r\n]*)")
MAX_COMPLAINED = 100  # recipients read from one report


def complained_recipients(part: Message) -> list[str]:
    """Every Original-Rcpt-To (RFC 5965 allows one per recipient the reported message was
    sent to) and Removal-Recipient of a feedback report, in order, each once."""
    payload = part.get_payload()
    values: list[str] = []
    if isinstance(payload, list):
        for sub in payload:
            if isinstance(sub, Message):
                for name in ("original-rcpt-to", "removal-recipient"):
                    values += [str(v) for v in sub.get_all(name, [])]
    elif isinstance(payload, str):
        values = _RCPT_FIELD.findall(decode_part(part)[:MAX_TEXT_FIELDS])
    out: list[str] = []
    for value in values[:MAX_COMPLAINED]:
        address = clean_address(value)
        if address and address not in out:
            out.append(address)
    return out


def _reported_recipient(mail: Mail) -> str:
    for part in mail.originals:
        payload = part.get_payload()
        inner = payload[0] if isinstance(payload, list) and payload else None
        if isinstance(inner, Message):
            for name in RECIPIENT_HEADERS:
                address = clean_address(header(inner, name))
                if address:
                    return address
        elif isinstance(payload, str):
            for block in blocks_from_text(decode_part(part))[:1]:
                for name in RECIPIENT_HEADERS:
                    address = clean_address(block.get(name, ""))
                    if address:
                        return address
    return ""


def _complaint(mail: Mail, feedback_type: str, *addresses: str) -> Detection:
    recipients = [Found(address=a, reason="feedback") for a in addresses if a]
    return Detection("arf", "complaint", recipients, feedback_type=feedback_type)


class ARFDetector:
    """A message/feedback-report part, a Hotmail-style forwarded complaint, or an
    unsubscribe sent by a mail client (e.g. Apple Mail's X-Apple-Unsubscribe)."""

    name = "arf"

    def detect(self, mail: Mail) -> Detection | None:
        """A complaint with its feedback type and complained-about recipient, or None."""
        for part in mail.parts:
            if part.get_content_type() == "message/feedback-report":
                fields = report_fields(part)
                ftype = fields.get("feedback-type", "abuse").strip().lower() or "abuse"
                addresses = complained_recipients(part) or [_reported_recipient(mail)]
                return _complaint(mail, ftype, *addresses)
        msg = mail.msg
        if str(msg.get("x-apple-unsubscribe", "")).strip().lower() == "true":
            return _complaint(mail, "opt-out", clean_address(header(msg, "from")))
        for part in mail.originals:
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(inner, Message) and inner.get("x-hmxmroriginalrecipient"):
                return _complaint(mail, "abuse",
                                  clean_address(header(inner, "x-hmxmroriginalrecipient")))
        return None
