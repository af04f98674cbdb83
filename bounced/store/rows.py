"""Column lists and row -> value mappers, one definition each for every backend.

The backends differ only in how a value is kept: SQLite stores a timestamp as REAL epoch
seconds and a day as ISO text, PostgreSQL as timestamptz and date (asyncpg hands back datetime
and date). A ``Conv`` says which; the SQL text stays with each backend (placeholders differ).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bounced.model import AddressState, Decision, Event, Incident
from bounced.store import MessageInfo
from bounced.store.reports import (
    AddressSummary,
    Summary,
    daily_bounces,
    day_of,
    incident_counts,
)

Rows = Sequence[Sequence[Any]]


@dataclass(frozen=True)
class Conv:
    """How one backend keeps timestamps and days, both ways."""

    ts: Callable[[Any], dt.datetime]  # a stored timestamp (not NULL) as an aware datetime
    day: Callable[[Any], dt.date]
    db_ts: Callable[[dt.datetime], Any]
    db_day: Callable[[dt.date], Any]

    def ts_or_none(self, value: Any) -> dt.datetime | None:
        return None if value is None else self.ts(value)


def _epoch(value: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(value, dt.UTC)


def _same(value: Any) -> Any:
    return value


SQLITE = Conv(ts=_epoch, day=dt.date.fromisoformat, db_ts=dt.datetime.timestamp,
              db_day=dt.date.isoformat)
POSTGRES = Conv(ts=_same, day=_same, db_ts=_same, db_day=_same)

INCIDENT_COLUMNS = (
    "id, message_id, subject, fingerprint, address, token_id, send_day, received_at, kind, action, "
    "status, reply_code, reason, hard, counts, diagnostic, remote_mta, reporting_mta, "
    "address_mismatch"
)
# What an incident's INSERT names, in the order of ``incident_params``.
INCIDENT_INSERT_COLUMNS = (
    "message_id, subject, fingerprint, address, token_id, send_day, received_at, kind, action, "
    "status, reply_code, reason, hard, counts, diagnostic, remote_mta, domain, reporting_mta, "
    "address_mismatch"
)
MESSAGE_COLUMNS = (
    "id, received_at, peer, mail_from, rcpt_to, subject, stream, key_id, send_day, fingerprint, "
    "token_id, size, state, attempts, last_error, kind, classification, processed_at, "
    "body_id IS NOT NULL"
)
ADDRESS_COLUMNS = "subject, fingerprint, address, state, changed_at, reconfirmed_at"
DECISION_COLUMNS = "id, subject, fingerprint, action, rule, evidence, decided_at"
DECISION_INSERT_COLUMNS = "subject, fingerprint, action, rule, evidence, decided_at"
EVENT_COLUMNS = "e.id, e.type, e.subject, e.fingerprint, e.payload, e.occurred_at"
EVENT_INSERT_COLUMNS = "id, type, subject, fingerprint, payload, occurred_at"
BREAKER_COLUMNS = "domain, state, addresses, tripped_at, released_at"
# Messages whose raw body is kept (done ones lose it to retention).
HAS_RAW = "body_id IS NOT NULL"


def incident(r: Sequence[Any], c: Conv) -> Incident:
    return Incident(
        id=r[0], message_id=r[1], subject=r[2], fingerprint=r[3], address=r[4], token_id=r[5],
        send_day=c.day(r[6]), received_at=c.ts(r[7]), kind=r[8], action=r[9], status=r[10],
        reply_code=r[11], reason=r[12], hard=bool(r[13]), counts=bool(r[14]),
        diagnostic=r[15], remote_mta=r[16], reporting_mta=r[17], address_mismatch=bool(r[18]),
    )


def incident_params(message_id: int, i: Incident, c: Conv) -> tuple[Any, ...]:
    """An incident's values in the order of INCIDENT_INSERT_COLUMNS."""
    return (message_id, i.subject, i.fingerprint, i.address, i.token_id, c.db_day(i.send_day),
            c.db_ts(i.received_at), i.kind, i.action, i.status, i.reply_code, i.reason, i.hard,
            i.counts, i.diagnostic, i.remote_mta, i.domain, i.reporting_mta, i.address_mismatch)


def message_info(r: Sequence[Any], c: Conv) -> MessageInfo:
    return MessageInfo(
        id=r[0], received_at=c.ts(r[1]), peer=r[2], mail_from=r[3], rcpt_to=r[4], subject=r[5],
        stream=r[6], key_id=r[7], send_day=c.day(r[8]), fingerprint=r[9], token_id=r[10],
        size=r[11], state=r[12], attempts=r[13], last_error=r[14], kind=r[15],
        classification=json.loads(r[16]) if r[16] else None, processed_at=c.ts_or_none(r[17]),
        has_raw=bool(r[18]),
    )


def address(r: Sequence[Any], c: Conv) -> AddressState:
    return AddressState(subject=r[0], fingerprint=r[1], address=r[2], state=r[3],
                        changed_at=c.ts_or_none(r[4]), reconfirmed_at=c.ts_or_none(r[5]))


def decision(r: Sequence[Any], c: Conv) -> Decision:
    return Decision(id=r[0], subject=r[1], fingerprint=r[2], action=r[3], rule=r[4],
                    evidence=tuple(json.loads(r[5])), decided_at=c.ts(r[6]))


def decision_params(d: Decision, c: Conv) -> tuple[Any, ...]:
    """A decision's values in the order of DECISION_INSERT_COLUMNS."""
    return (d.subject, d.fingerprint, d.action, d.rule, json.dumps(list(d.evidence)),
            c.db_ts(d.decided_at))


def event(r: Sequence[Any], c: Conv) -> Event:
    return Event(id=r[0], type=r[1], subject=r[2], fingerprint=r[3], payload=json.loads(r[4]),
                 occurred_at=c.ts(r[5]))


def event_params(e: Event, c: Conv) -> tuple[Any, ...]:
    """An event's values in the order of EVENT_INSERT_COLUMNS."""
    return (e.id, e.type, e.subject, e.fingerprint, json.dumps(e.payload), c.db_ts(e.occurred_at))


def breaker(r: Sequence[Any], c: Conv) -> dict[str, Any]:
    return {"domain": r[0], "state": r[1], "addresses": r[2], "tripped_at": c.ts_or_none(r[3]),
            "released_at": c.ts_or_none(r[4])}


def address_summary(r: Sequence[Any], c: Conv) -> AddressSummary:
    return AddressSummary(
        subject=r[0], fingerprint=r[1], address=r[2], state=r[3], changed_at=c.ts_or_none(r[4]),
        reconfirmed_at=c.ts_or_none(r[5]), incidents=int(r[6]),
        last_incident_at=c.ts_or_none(r[7]), last_reason=r[8], rule=r[9])


def counts(rows: Sequence[Sequence[Any]], states: Sequence[str]) -> dict[str, int]:
    """``SELECT state, COUNT(*) ... GROUP BY state`` as a dict with every state present."""
    result = dict.fromkeys(states, 0)
    result.update({r[0]: int(r[1]) for r in rows})
    return result


def like_domain(domain: str) -> str:
    """A LIKE pattern for addresses at ``domain`` (its wildcards escaped with '\\')."""
    escaped = domain.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%@{escaped}"


def summary(since: dt.datetime, now: dt.datetime, c: Conv, *, messages: Rows,
            incidents: Rows, domains: Rows, decisions: Rows, daily_decisions: Rows, queue: Rows,
            oldest_job: Any, outbox: Rows, oldest_delivery: Any, unfanned: Sequence[Any],
            breakers: Rows) -> Summary:
    """The summary from its statements' rows (``unfanned``: the count and the oldest's time;
    the oldest job and delivery: a timestamp or NULL)."""
    def by_first(found: Rows) -> dict[Any, int]:
        return {r[0]: int(r[1]) for r in found}

    return Summary(
        since=since, now=now, messages=by_first(messages),
        incidents=incident_counts(incidents),
        domains=[(r[0], int(r[1]), int(r[2]), int(r[3])) for r in domains],
        decisions=by_first(decisions), daily_bounces=daily_bounces(incidents),
        daily_decisions={(day_of(r[0]), r[1]): int(r[2]) for r in daily_decisions},
        queue=by_first(queue), oldest_job=c.ts_or_none(oldest_job),
        outbox={**by_first(outbox), "unfanned": int(unfanned[0])},
        oldest_delivery=c.ts_or_none(oldest_delivery), oldest_unfanned=c.ts_or_none(unfanned[1]),
        breakers=[breaker(r, c) for r in breakers],
    )
