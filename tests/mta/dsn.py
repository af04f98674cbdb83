"""Read the machine part of an RFC 3464 delivery status notification, for assertions.

Deliberately small and independent of bounced's classifier: the harness tests check what
the MTA sent, not how bounced reads it.
"""

from __future__ import annotations

import email
from dataclasses import dataclass
from email.message import Message
from email.policy import compat32


@dataclass(frozen=True)
class RecipientStatus:
    """One per-recipient block of a message/delivery-status part."""

    final_recipient: str
    action: str
    status: str
    diagnostic: str


def _fields(block: str) -> dict[str, str]:
    """Header-style ``Name: value`` lines (with folded continuations) to a lowercase dict."""
    fields: dict[str, str] = {}
    name = ""
    for line in block.splitlines():
        if line[:1] in (" ", "\t") and name:
            fields[name] += " " + line.strip()
        elif ":" in line:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            fields[name] = value.strip()
    return fields


def _status_text(part: Message) -> str:
    """The text of a message/delivery-status part, however the parser stored it."""
    payload = part.get_payload()
    if isinstance(payload, list):  # compat32 parses the blocks as sub-messages
        blocks = []
        for sub in payload:
            if isinstance(sub, Message):
                blocks.append("\n".join(f"{k}: {v}" for k, v in sub.items()))
        return "\n\n".join(blocks)
    raw = part.get_payload(decode=True)
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(payload)


def delivery_status(data: bytes) -> list[RecipientStatus]:
    """Per-recipient status blocks of a DSN; an empty list when there is no status part."""
    msg = email.message_from_bytes(data, policy=compat32)
    for part in msg.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        blocks = _status_text(part).replace("\r\n", "\n").split("\n\n")
        result = []
        for block in blocks[1:]:  # the first block is per-message
            fields = _fields(block)
            if "action" not in fields:
                continue
            recipient = fields.get("final-recipient", "")
            result.append(RecipientStatus(
                final_recipient=recipient.split(";", 1)[-1].strip(),
                action=fields["action"].lower(),
                status=fields.get("status", ""),
                diagnostic=" ".join(fields.get("diagnostic-code", "").split()),
            ))
        return result
    return []
