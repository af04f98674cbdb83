"""RFC 3464 delivery status notifications and RFC 6533 global (UTF-8) ones.

The per-recipient fields come from a message/delivery-status or
message/global-delivery-status part; some mail systems put the same fields in a text
part instead, so a text body with Final-Recipient/Status blocks is read the same way.
"""

from __future__ import annotations

import itertools
import re
from email.message import Message
from email.policy import compat32

from bounced.classify.detectors.base import (
    MAX_RECIPIENTS,
    Detection,
    Found,
    action_for,
    field_address,
    kind_of,
    normalise,
    reply_code_of,
    status_of,
)
from bounced.classify.parse import Mail, decode_part
from bounced.classify.reasons import smtp_command

DSN_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
_FIELD = re.compile(r"^([A-Za-z][A-Za-z0-9-]{0,40})[ \t]*:[ \t]*(.*)$")
_TEXT_DSN = re.compile(r"(?im)^(?:final|original)-recipient[ \t]*:")
_VALID_ACTIONS = ("failed", "delayed", "delivered", "relayed", "expanded")
# Actions some systems write outside RFC 3464's five: "expired" (SendGrid, given up after
# retries), "failure", "bounced", "deferred", "delay"...
_ACTION_ALIASES = {"expired": "failed", "failure": "failed", "fail": "failed",
                   "bounced": "failed", "bounce": "failed", "undeliverable": "failed",
                   "deferred": "delayed", "delay": "delayed", "retry": "delayed",
                   "success": "delivered", "sent": "delivered"}
MAX_FIELDS = 100  # fields read per block (RFC 3464 defines a dozen per recipient)

Block = dict[str, str]
# A recipient field seen twice in one block starts the next recipient's block (some mail
# systems leave out the blank line between per-recipient blocks).
_RECIPIENT_FIELDS = ("final-recipient", "original-recipient")


def _splits(block: Block, name: str) -> bool:
    return name in _RECIPIENT_FIELDS and name in block


def blocks_from_text(text: str, limit: int = MAX_RECIPIENTS + 1) -> list[Block]:
    """Field blocks separated by blank lines; continuation lines unfolded."""
    blocks: list[Block] = []
    current: Block = {}
    last = ""
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
                if len(blocks) >= limit:
                    return blocks
                current, last = {}, ""
            continue
        if line[0] in " \t" and last:
            current[last] += " " + line.strip()
            continue
        match = _FIELD.match(line)
        if match:
            last = match.group(1).lower()
            if _splits(current, last):
                blocks.append(current)
                current = {}
            current.setdefault(last, match.group(2).strip())
    if current:
        blocks.append(current)
    return blocks


def _items(msg: Message) -> list[tuple[str, object]]:
    """As ``msg.items()`` up to MAX_FIELDS; a compat32 message's ASCII str values are taken
    as they are (what compat32's header_fetch_parse returns for them), without a call per
    field."""
    if msg.policy is not compat32:
        return [(k, v) for k, v in itertools.islice(msg.items(), MAX_FIELDS)]
    fetch = compat32.header_fetch_parse
    return [(k, v if isinstance(v, str) and v.isascii() else fetch(k, v))
            for k, v in itertools.islice(msg.raw_items(), MAX_FIELDS)]


def _blocks(part: Message) -> list[Block]:
    payload = part.get_payload()
    if isinstance(payload, list):  # compat32 parses message/delivery-status into blocks
        blocks = []
        for sub in payload[: MAX_RECIPIENTS + 1]:
            if isinstance(sub, Message):
                block: Block = {}
                for k, v in _items(sub):
                    if _splits(block, k.lower()):
                        blocks.append(block)
                        block = {}
                    block.setdefault(k.lower(), str(v))
                blocks.append(block)
        if any(b for b in blocks):
            return blocks
        payload = part.as_string() if not blocks else ""
    if isinstance(payload, str) and payload:
        if str(part.get("content-transfer-encoding", "")).lower() in ("base64", "quoted-printable"):
            return blocks_from_text(decode_part(part))
        return blocks_from_text(payload)
    return []


def recipients_from_blocks(blocks: list[Block]) -> list[Found]:
    """Recipients from DSN field blocks (the per-message block carries no recipient)."""
    found: list[Found] = []
    remote_default = ""
    for block in blocks:
        if "reporting-mta" in block and "final-recipient" not in block:
            remote_default = ""
        address = field_address(block.get("final-recipient", ""))
        original = field_address(block.get("original-recipient", ""))
        # the Original-Recipient is the address as the sender gave it (RFC 3461 ORCPT);
        # the Final-Recipient may be an alias's target or an internal mailbox name
        address = original or address
        if not address:
            continue
        diagnostic = normalise(block.get("diagnostic-code", ""))
        if ";" in diagnostic[:12]:
            diagnostic = diagnostic.split(";", 1)[1].strip()
        status_field = block.get("status", "")
        status = status_of(status_field)
        comment = status_field.split("(", 1)[1] if "(" in status_field else ""
        reply = reply_code_of(diagnostic)
        action = block.get("action", "").strip().lower().split(" ")[0].rstrip(".;,")
        action = _ACTION_ALIASES.get(action, action)
        if action not in _VALID_ACTIONS:
            action = action_for(status, reply)
        remote = block.get("remote-mta", "") or remote_default
        if ";" in remote[:8]:
            remote = remote.split(";", 1)[1]
        found.append(
            Found(address=address, action=action, status=status, reply_code=reply,
                  diagnostic=diagnostic, remote_mta=normalise(remote)[:255],
                  command=smtp_command(normalise(comment).lower()))
        )
        if len(found) >= MAX_RECIPIENTS:
            break
    return found


def reporting_mta_of(blocks: list[Block]) -> str:
    """The host of the first Reporting-MTA field: "dns; mx.example.net (comment)" gives
    "mx.example.net"."""
    for block in blocks:
        value = block.get("reporting-mta", "")
        if value:
            if ";" in value:
                value = value.split(";", 1)[1]
            words = value.split()  # a host name has no space; a comment may follow it
            return words[0].strip("<>[]\"'").rstrip(".")[:255] if words else ""
    return ""


def _following(mail: Mail, part: Message) -> list[Message]:
    """The delivery-status parts that follow ``part`` directly in its multipart (not ones
    after an attached original: those may be the original's own, cut loose by a boundary
    it shares with the report)."""
    for container in mail.parts:
        if container.get_content_maintype() != "multipart":
            continue
        siblings = container.get_payload()
        if not isinstance(siblings, list):
            continue
        at = next((i for i, p in enumerate(siblings) if p is part), -1)
        if at < 0:
            continue
        out: list[Message] = []
        for nxt in siblings[at + 1:]:
            if not (isinstance(nxt, Message) and nxt.get_content_type() in DSN_TYPES):
                break
            out.append(nxt)
        return out
    return []


class DSNDetector:
    """A message/delivery-status part (RFC 3464) or its global form (RFC 6533)."""

    name = "dsn"

    def detect(self, mail: Mail) -> Detection | None:
        """Recipients from the first delivery-status part and the ones right after it
        (some reports carry one per recipient), or DSN fields in the text."""
        for part in mail.parts:
            if part.get_content_type() in DSN_TYPES:
                blocks = _blocks(part)
                found = recipients_from_blocks(blocks)
                if found:
                    for more in _following(mail, part):
                        found += recipients_from_blocks(_blocks(more))
                    return Detection(self.name, kind_of(found), found[:MAX_RECIPIENTS],
                                     reporting_mta=reporting_mta_of(blocks))
        if _TEXT_DSN.search(mail.text):
            blocks = blocks_from_text(mail.text)
            found = recipients_from_blocks(blocks)
            found = [f for f in found if f.status or f.diagnostic]
            if found:
                return Detection(self.name + "-text", kind_of(found), found,
                                 reporting_mta=reporting_mta_of(blocks))
        return None
