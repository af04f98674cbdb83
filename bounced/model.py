"""Values that travel between the SMTP intake, the store, the worker and the policy."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from bounced.verp import fingerprint

CONFIRMED = "confirmed"
UNCONFIRMED = "unconfirmed"

# States of a receiving domain's breaker.
BREAKER_TRIPPED = "tripped"
BREAKER_RELEASED = "released"

# Job states of a stored message.
PENDING = "pending"
PROCESSING = "processing"
DONE = "done"
FAILED = "failed"
QUARANTINED = "quarantined"
JOB_STATES = (PENDING, PROCESSING, DONE, FAILED, QUARANTINED)


def utcnow() -> dt.datetime:
    """The clock every part reads (tests give the daemon another)."""
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class TokenFields:
    """What a verified return-path token carries."""

    subject: str
    stream: str | None
    key_id: str
    day: dt.date
    fingerprint: str
    token_id: str


def envelope_text(value: str) -> str:
    """An envelope field as the store keeps it: valid UTF-8 text, losslessly.

    SMTP, HTTP headers and the command line hand over undecodable bytes as lone surrogates
    (Python's surrogateescape), which neither SQLite nor PostgreSQL can store (the old
    ``UnicodeEncodeError`` that failed the whole group commit); PostgreSQL refuses NUL in
    text too. Each undecodable byte, control character and DEL is written ``\\xNN`` and a
    backslash ``\\\\``, so the text names the bytes received exactly and unambiguously."""
    if value.isprintable() and "\\" not in value:
        return value  # the common case: nothing to escape
    out = []
    for ch in value:
        code = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif 0xDC80 <= code <= 0xDCFF:  # an undecodable byte, as surrogateescape carries it
            out.append(f"\\x{code - 0xDC00:02x}")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif 0xD800 <= code <= 0xDFFF:  # any other lone surrogate: not a byte, not storable
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


@dataclass(frozen=True)
class NewMessage:
    """A message accepted at DATA for one verified recipient, about to be stored.

    The envelope fields are stored as ``envelope_text`` gives them (escaped where they are not
    printable UTF-8), so no sender can make a message unstorable. Messages of one DATA
    transaction carry the same ``raw`` body, which the store keeps once."""

    received_at: dt.datetime
    peer: str
    mail_from: str
    rcpt_to: str
    token: TokenFields
    raw: bytes

    def __post_init__(self) -> None:
        for name in ("peer", "mail_from", "rcpt_to"):
            value = getattr(self, name)
            escaped = envelope_text(value)
            if escaped is not value:
                object.__setattr__(self, name, escaped)


@dataclass(frozen=True)
class Job:
    """A stored message claimed for processing."""

    id: int
    received_at: dt.datetime
    mail_from: str
    rcpt_to: str
    token: TokenFields
    raw: bytes | None
    attempts: int
    # The stored body's id (shared by the recipients of one DATA transaction; never reused),
    # None from a store that does not say.
    body_id: int | None = None


@dataclass(frozen=True)
class Incident:
    """A finding recorded against a subject and address fingerprint."""

    id: int | None
    message_id: int
    subject: str
    fingerprint: str
    address: str
    token_id: str
    send_day: dt.date
    received_at: dt.datetime
    kind: str
    action: str
    status: str
    reply_code: str
    reason: str
    hard: bool
    counts: bool
    diagnostic: str
    remote_mta: str
    reporting_mta: str = ""
    # The report named an address whose fingerprint is not the token's: the address is left
    # out (``address`` empty) and this records why. What the report said stays in the stored
    # message's classification (`bounced show`).
    address_mismatch: bool = False

    @property
    def bound_address(self) -> str:
        """The address, only when it is the one the token was signed for (its fingerprint
        matches); else empty. Rows recorded before addresses were checked may hold another."""
        return bound_address(self.address, self.fingerprint) or ""

    @property
    def mismatch(self) -> bool:
        """Whether the report named another address than the token's."""
        return self.address_mismatch or (bool(self.address) and not self.bound_address)

    @property
    def domain(self) -> str:
        """The receiving domain of the failed address (the breaker's unit); empty when the
        address is not the token's (an unchecked domain feeds no breaker)."""
        return self.bound_address.rpartition("@")[2].lower()

    def evidence(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "message_id": self.message_id,
            "address": self.bound_address or None,
            "address_mismatch": self.mismatch,
            "token_id": self.token_id,
            "send_day": self.send_day.isoformat(),
            "received_at": self.received_at.isoformat(),
            "kind": self.kind,
            "status": self.status,
            "reply_code": self.reply_code,
            "reason": self.reason,
            "hard": self.hard,
            "counts": self.counts,
            "diagnostic": self.diagnostic,
            "remote_mta": self.remote_mta,
            "reporting_mta": self.reporting_mta,
        }


def bound_address(address: str | None, fp: str | None) -> str | None:
    """``address`` when its fingerprint is ``fp`` (the address the token was signed for),
    else None: nothing bounced shows, stores or sends names an address the token does not
    bind."""
    if not address or not fp:
        return None
    return address if fingerprint(address) == fp else None


@dataclass(frozen=True)
class AddressState:
    """Where one (subject, address fingerprint) stands."""

    subject: str
    fingerprint: str
    address: str
    state: str = CONFIRMED
    changed_at: dt.datetime | None = None
    reconfirmed_at: dt.datetime | None = None


@dataclass(frozen=True)
class Decision:
    """A change of an address's state, with the rule that fired and its evidence."""

    subject: str
    fingerprint: str
    action: str  # "unconfirm" | "reconfirm"
    rule: str
    decided_at: dt.datetime
    evidence: tuple[dict[str, Any], ...] = field(default=())
    id: int | None = None


@dataclass(frozen=True)
class DomainStats:
    """What the store knows about recent counting bounces for one receiving domain."""

    domain: str
    # Distinct addresses (fingerprints) with counting incidents in the breaker window,
    # received after the breaker's last release; whether this address is among them.
    recent_addresses: int
    includes_this: bool
    tripped: bool


@dataclass(frozen=True)
class Plan:
    """What processing one message decided: the incidents to record and an optional decision."""

    incidents: tuple[Incident, ...]
    decision: Decision | None
    # The decision is held back because the domain's breaker is (or just got) tripped.
    held: bool = False
    # The domain's breaker trips now (an alert event is sent instead of unconfirms).
    trip: bool = False
    domain_addresses: int = 0


@dataclass(frozen=True)
class Event:
    """An entry of the outbox: delivered at least once to every configured action."""

    id: str
    type: str
    subject: str | None
    fingerprint: str | None
    occurred_at: dt.datetime
    payload: dict[str, Any]
