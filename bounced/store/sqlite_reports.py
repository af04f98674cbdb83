"""The operator's lists and summaries from the SQLite store: read-only queries."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from bounced.model import Event
from bounced.store.reports import (
    TOP_DOMAINS,
    AddressQuery,
    AddressSummary,
    EventQuery,
    Summary,
    day_of,
)

UTC = dt.UTC
DAY = 86400


def _dt(value: float | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromtimestamp(value, UTC)


def _ts(value: dt.datetime | None) -> float:
    # Never-changed addresses sort as the epoch: after every real change.
    return 0.0 if value is None else value.timestamp()


def like_domain(domain: str) -> str:
    """A LIKE pattern for addresses at ``domain`` (its wildcards escaped with '\\')."""
    escaped = domain.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%@{escaped}"


ADDRESS_SUMMARY = (
    "SELECT a.subject, a.fingerprint, a.address, a.state, a.changed_at, a.reconfirmed_at, "
    "(SELECT COUNT(*) FROM incidents i WHERE i.subject = a.subject "
    " AND i.fingerprint = a.fingerprint), "
    "(SELECT i.received_at FROM incidents i WHERE i.subject = a.subject "
    " AND i.fingerprint = a.fingerprint ORDER BY i.received_at DESC, i.id DESC LIMIT 1), "
    "(SELECT i.reason FROM incidents i WHERE i.subject = a.subject "
    " AND i.fingerprint = a.fingerprint ORDER BY i.received_at DESC, i.id DESC LIMIT 1), "
    "(SELECT d.rule FROM decisions d WHERE d.subject = a.subject "
    " AND d.fingerprint = a.fingerprint ORDER BY d.decided_at DESC, d.id DESC LIMIT 1) "
    "FROM addresses a"
)


def address_summary(r: Sequence[Any]) -> AddressSummary:
    return AddressSummary(
        subject=r[0], fingerprint=r[1], address=r[2], state=r[3], changed_at=_dt(r[4]),
        reconfirmed_at=_dt(r[5]), incidents=r[6], last_incident_at=_dt(r[7]), last_reason=r[8],
        rule=r[9])


class SQLiteReports:
    """Mixed into SQLiteStore, which provides ``_read``."""

    _read: Any

    async def address_list(self, query: AddressQuery) -> list[AddressSummary]:
        clauses: list[str] = []
        params: list[Any] = []
        if query.state is not None:
            clauses.append("a.state = ?")
            params.append(query.state)
        if query.since is not None:
            clauses.append("a.changed_at >= ?")
            params.append(query.since.timestamp())
        if query.domain is not None:
            # SQLite's LIKE ignores ASCII case, as domains do.
            clauses.append("a.address LIKE ? ESCAPE '\\'")
            params.append(like_domain(query.domain))
        if query.after is not None:
            changed, subject, fp = query.after
            clauses.append("(COALESCE(a.changed_at, 0), a.subject, a.fingerprint) < (?, ?, ?)")
            params += [_ts(changed), subject, fp]
        where = " AND ".join(clauses) or "1 = 1"
        rows = await self._read(
            f"{ADDRESS_SUMMARY} WHERE {where} ORDER BY COALESCE(a.changed_at, 0) DESC, "
            "a.subject DESC, a.fingerprint DESC LIMIT ?", [*params, query.limit])
        return [address_summary(r) for r in rows]

    async def event_list(self, query: EventQuery) -> list[tuple[Event, dict[str, str]]]:
        clauses: list[str] = []
        params: list[Any] = []
        if query.types:
            clauses.append(f"e.type IN ({','.join('?' * len(query.types))})")
            params += query.types
        if query.since is not None:
            clauses.append("e.occurred_at >= ?")
            params.append(query.since.timestamp())
        if query.after is not None:
            clauses.append("(e.occurred_at, e.id) < (?, ?)")
            params += [query.after[0].timestamp(), query.after[1]]
        where = " AND ".join(clauses) or "1 = 1"
        rows = await self._read(
            "SELECT e.id, e.type, e.subject, e.fingerprint, e.payload, e.occurred_at, "
            "(SELECT json_group_object(d.action, d.state) FROM deliveries d "
            " WHERE d.event_id = e.id) "
            f"FROM events e WHERE {where} ORDER BY e.occurred_at DESC, e.id DESC LIMIT ?",
            [*params, query.limit])
        return [(Event(id=r[0], type=r[1], subject=r[2], fingerprint=r[3],
                       payload=json.loads(r[4]), occurred_at=dt.datetime.fromtimestamp(r[5], UTC)),
                 json.loads(r[6]) if r[6] else {}) for r in rows]

    async def summary(self, since: dt.datetime, now: dt.datetime) -> Summary:
        t = since.timestamp()
        messages = await self._read(
            "SELECT kind, COUNT(*) FROM messages WHERE received_at >= ? GROUP BY kind", (t,))
        incidents = await self._read(
            "SELECT kind, reason, counts, COUNT(*) FROM incidents WHERE received_at >= ? "
            "GROUP BY kind, reason, counts", (t,))
        domains = await self._read(
            "SELECT domain, COUNT(*) AS n, COUNT(DISTINCT fingerprint), SUM(counts) "
            "FROM incidents WHERE received_at >= ? GROUP BY domain "
            "ORDER BY n DESC, domain LIMIT ?", (t, TOP_DOMAINS))
        decisions = await self._read(
            "SELECT action, COUNT(*) FROM decisions WHERE decided_at >= ? GROUP BY action", (t,))
        daily_bounces = await self._read(
            f"SELECT CAST(received_at / {DAY} AS INTEGER) AS day, reason, COUNT(*) "
            "FROM incidents WHERE received_at >= ? AND kind = 'bounce' GROUP BY day, reason",
            (t,))
        daily_decisions = await self._read(
            f"SELECT CAST(decided_at / {DAY} AS INTEGER) AS day, action, COUNT(*) "
            "FROM decisions WHERE decided_at >= ? GROUP BY day, action", (t,))
        queue = await self._read("SELECT state, COUNT(*) FROM messages GROUP BY state")
        oldest_job = await self._read(
            "SELECT MIN(received_at) FROM messages WHERE state IN ('pending', 'processing')")
        outbox = await self._read("SELECT state, COUNT(*) FROM deliveries GROUP BY state")
        oldest_delivery = await self._read(
            "SELECT MIN(created_at) FROM deliveries WHERE state = 'pending'")
        unfanned = await self._read(
            "SELECT COUNT(*), MIN(occurred_at) FROM events WHERE fanned_out = 0")
        breakers = await self._read(
            "SELECT domain, state, addresses, tripped_at, released_at FROM breakers "
            "ORDER BY domain")
        return Summary(
            since=since, now=now,
            messages={r[0]: r[1] for r in messages},
            incidents={(r[0], r[1], bool(r[2])): r[3] for r in incidents},
            domains=[(r[0], r[1], r[2], r[3]) for r in domains],
            decisions={r[0]: r[1] for r in decisions},
            daily_bounces={(day_of(r[0]), r[1]): r[2] for r in daily_bounces},
            daily_decisions={(day_of(r[0]), r[1]): r[2] for r in daily_decisions},
            queue={r[0]: r[1] for r in queue}, oldest_job=_dt(oldest_job[0][0]),
            outbox={**{r[0]: r[1] for r in outbox}, "unfanned": unfanned[0][0]},
            oldest_delivery=_dt(oldest_delivery[0][0]), oldest_unfanned=_dt(unfanned[0][1]),
            breakers=[{"domain": r[0], "state": r[1], "addresses": r[2],
                       "tripped_at": _dt(r[3]), "released_at": _dt(r[4])} for r in breakers],
        )
