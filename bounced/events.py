"""The events bounced tells the application about, and their JSON payloads. Pure."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from bounced.model import Decision, Event, Incident

UNCONFIRMED = "address.unconfirmed"
RECONFIRMED = "address.reconfirmed"
COMPLAINT = "complaint.received"
UNRECOGNISED = "bounce.unrecognised"
BREAKER_TRIPPED = "breaker.tripped"
BREAKER_RELEASED = "breaker.released"


def new_id() -> str:
    """A stable, unique event id (receivers deduplicate on it)."""
    return f"evt_{uuid.uuid4().hex}"


def _evidence(items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    keys = ("send_day", "received_at", "address", "status", "reply_code", "reason", "hard",
            "diagnostic", "remote_mta", "reporting_mta", "message_id", "token_id")
    return [{k: item.get(k) for k in keys} for item in items]


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
                  address=address or None, rule=decision.rule,
                  evidence=_evidence(decision.evidence))


def reconfirmed(decision: Decision, address: str) -> Event:
    return _event(RECONFIRMED, decision.subject, decision.fingerprint, decision.decided_at,
                  address=address or None, rule=decision.rule, evidence=[])


def complaint(incidents: Sequence[Incident], feedback_type: str | None,
              now: dt.datetime) -> Event:
    first = incidents[0]
    return _event(COMPLAINT, first.subject, first.fingerprint, now, address=first.address,
                  rule="a complaint (feedback report) was received",
                  feedback_type=feedback_type,
                  evidence=_evidence([i.evidence() for i in incidents]))


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
