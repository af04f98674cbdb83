"""The events bounced tells the application about, and their JSON payloads. Pure."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from bounced.model import Decision, Event, Incident, bound_address

UNCONFIRMED = "address.unconfirmed"
RECONFIRMED = "address.reconfirmed"
COMPLAINT = "complaint.received"
UNRECOGNISED = "bounce.unrecognised"
BREAKER_TRIPPED = "breaker.tripped"
BREAKER_RELEASED = "breaker.released"


def new_id() -> str:
    """A stable, unique event id (receivers deduplicate on it)."""
    return f"evt_{uuid.uuid4().hex}"


EVIDENCE_KEYS = ("send_day", "received_at", "address", "address_mismatch", "status",
                 "reply_code", "reason", "hard", "diagnostic", "remote_mta", "reporting_mta",
                 "message_id", "token_id")


def evidence(items: Sequence[dict[str, Any]], fingerprint: str | None) -> list[dict[str, Any]]:
    """The evidence items as events carry them. An address is kept only when it is the one
    the token was signed for (``fingerprint``): a decision recorded before addresses were
    checked may hold another, and no event may name it."""
    result = []
    for item in items:
        entry = {k: item.get(k) for k in EVIDENCE_KEYS}
        named = entry["address"]
        entry["address"] = bound_address(named, fingerprint)
        entry["address_mismatch"] = bool(entry["address_mismatch"]) or (
            bool(named) and entry["address"] is None)
        result.append(entry)
    return result


def _event(type_: str, subject: str | None, fingerprint: str | None, now: dt.datetime,
           **fields: Any) -> Event:
    event_id = new_id()
    payload: dict[str, Any] = {
        "type": type_, "id": event_id, "subject": subject, "fingerprint": fingerprint,
        "occurred_at": now.isoformat(), **fields,
    }
    return Event(id=event_id, type=type_, subject=subject, fingerprint=fingerprint,
                 occurred_at=now, payload=payload)


def unconfirmed(decision: Decision, address: str) -> Event:
    return _event(UNCONFIRMED, decision.subject, decision.fingerprint, decision.decided_at,
                  address=bound_address(address, decision.fingerprint), rule=decision.rule,
                  evidence=evidence(decision.evidence, decision.fingerprint))


def reconfirmed(decision: Decision, address: str) -> Event:
    return _event(RECONFIRMED, decision.subject, decision.fingerprint, decision.decided_at,
                  address=bound_address(address, decision.fingerprint), rule=decision.rule,
                  evidence=[])


def complaint(incidents: Sequence[Incident], feedback_type: str | None,
              now: dt.datetime) -> Event:
    first = incidents[0]
    return _event(COMPLAINT, first.subject, first.fingerprint, now,
                  address=first.bound_address or None,
                  rule="a complaint (feedback report) was received",
                  feedback_type=feedback_type,
                  evidence=evidence([i.evidence() for i in incidents], first.fingerprint))


def unrecognised(subject: str, fingerprint: str, message_id: int, kind: str,
                 now: dt.datetime) -> Event:
    return _event(UNRECOGNISED, subject, fingerprint, now, address=None,
                  rule=f"a message for this return path was not recognised as a bounce "
                       f"(kind {kind}); see `bounced show {message_id}`",
                  message_id=message_id, evidence=[])


def breaker_tripped(domain: str, addresses: int, window_minutes: float,
                    now: dt.datetime) -> Event:
    return _event(BREAKER_TRIPPED, None, None, now, address=None, domain=domain,
                  rule=f"counting bounces for {addresses} distinct addresses at {domain} "
                       f"within {window_minutes:g} minutes: unconfirms for this domain are "
                       f"paused until an operator releases the breaker",
                  evidence=[])


def breaker_released(domain: str, now: dt.datetime) -> Event:
    return _event(BREAKER_RELEASED, None, None, now, address=None, domain=domain,
                  rule="an operator released the breaker", evidence=[])
