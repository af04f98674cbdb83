"""The operator's lists and summaries from the PostgreSQL store: read-only queries.

The summary's statements run in one REPEATABLE READ READ ONLY transaction, so its figures
are of one moment although other daemons write meanwhile.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from bounced.model import Event
from bounced.store import rows
from bounced.store.postgres.admin import Connections
from bounced.store.reports import TOP_DOMAINS, AddressQuery, AddressSummary, EventQuery, Summary
from bounced.store.rows import BREAKER_COLUMNS, EVENT_COLUMNS, POSTGRES, like_domain

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)  # never-changed addresses sort as the epoch

# The page's addresses are chosen first, then each one's latest incident and decision looked
# up: only for the page, not for every address that matches.
ADDRESS_SUMMARY = (
    "SELECT a.subject, a.fingerprint, a.address, a.state, a.changed_at, a.reconfirmed_at, "
    "(SELECT COUNT(*) FROM incidents i WHERE i.subject = a.subject "
    " AND i.fingerprint = a.fingerprint), "
    "l.received_at, l.reason, "
    "(SELECT d.rule FROM decisions d WHERE d.subject = a.subject "
    " AND d.fingerprint = a.fingerprint ORDER BY d.decided_at DESC, d.id DESC LIMIT 1) "
    "FROM (SELECT * FROM addresses a WHERE {where} ORDER BY {order} LIMIT {limit}) a "
    "LEFT JOIN LATERAL (SELECT i.received_at, i.reason FROM incidents i "
    " WHERE i.subject = a.subject AND i.fingerprint = a.fingerprint "
    " ORDER BY i.received_at DESC, i.id DESC LIMIT 1) l ON TRUE ORDER BY {order}"
)
ORDER = (f"COALESCE(a.changed_at, '{EPOCH.isoformat()}'::timestamptz) DESC, a.subject DESC, "
         "a.fingerprint DESC")


class PostgresReports:
    """Mixed into PostgresStore, which provides ``_conn`` and ``_tx``."""

    async def address_list(self: Connections, query: AddressQuery) -> list[AddressSummary]:
        clauses: list[str] = []
        params: list[Any] = []

        def arg(value: Any) -> str:
            params.append(value)
            return f"${len(params)}"

        if query.state is not None:
            clauses.append(f"a.state = {arg(query.state)}")
        if query.since is not None:
            clauses.append(f"a.changed_at >= {arg(query.since)}")
        if query.domain is not None:
            clauses.append(f"lower(a.address) LIKE {arg(like_domain(query.domain))} ESCAPE '\\'")
        if query.after is not None:
            changed, subject, fp = query.after
            clauses.append(
                f"(COALESCE(a.changed_at, '{EPOCH.isoformat()}'::timestamptz), a.subject, "
                f"a.fingerprint) < ({arg(changed or EPOCH)}, {arg(subject)}, {arg(fp)})")
        where = " AND ".join(clauses) or "TRUE"
        sql = ADDRESS_SUMMARY.format(where=where, order=ORDER, limit=arg(query.limit))
        async with self._conn() as conn:
            found = await conn.fetch(sql, *params)
        return [rows.address_summary(r, POSTGRES) for r in found]

    async def event_list(
        self: Connections, query: EventQuery
    ) -> list[tuple[Event, dict[str, str]]]:
        clauses: list[str] = []
        params: list[Any] = []

        def arg(value: Any) -> str:
            params.append(value)
            return f"${len(params)}"

        if query.types:
            clauses.append(f"e.type = ANY({arg(list(query.types))}::text[])")
        if query.since is not None:
            clauses.append(f"e.occurred_at >= {arg(query.since)}")
        if query.after is not None:
            clauses.append(
                f"(e.occurred_at, e.id) < ({arg(query.after[0])}, {arg(query.after[1])})")
        where = " AND ".join(clauses) or "TRUE"
        async with self._conn() as conn:
            found = await conn.fetch(
                f"SELECT {EVENT_COLUMNS}, COALESCE((SELECT jsonb_object_agg(d.action, d.state) "
                "FROM deliveries d WHERE d.event_id = e.id), '{}'::jsonb) "
                f"FROM events e WHERE {where} "
                f"ORDER BY e.occurred_at DESC, e.id DESC LIMIT {arg(query.limit)}",
                *params)
        return [(rows.event(r, POSTGRES), json.loads(r[6])) for r in found]

    async def summary(self: Connections, since: dt.datetime, now: dt.datetime) -> Summary:
        async with self._conn() as conn, conn.transaction(
                isolation="repeatable_read", readonly=True):
            messages = await conn.fetch(
                "SELECT kind, COUNT(*) FROM messages WHERE received_at >= $1 GROUP BY kind",
                since)
            # One pass over the period's incidents for the reasons and the days, one for the
            # domains; both read the index alone where vacuumed (migration 0007).
            incidents = await conn.fetch(
                "SELECT floor(extract(epoch FROM received_at) / 86400)::int AS day, kind, "
                "reason, counts, COUNT(*) FROM incidents WHERE received_at >= $1 "
                "GROUP BY day, kind, reason, counts", since)
            # Distinct addresses by grouping on (domain, fingerprint) first: a hash aggregate,
            # about twice as fast as COUNT(DISTINCT), which sorts every domain's rows.
            domains = await conn.fetch(
                "SELECT domain, SUM(n)::bigint AS total, COUNT(*), SUM(c)::bigint FROM ("
                "SELECT domain, fingerprint, COUNT(*) AS n, COUNT(*) FILTER (WHERE counts) AS c "
                "FROM incidents WHERE received_at >= $1 AND domain <> '' "
                "GROUP BY domain, fingerprint) AS f "
                "GROUP BY domain ORDER BY total DESC, domain LIMIT $2", since, TOP_DOMAINS)
            decisions = await conn.fetch(
                "SELECT action, COUNT(*) FROM decisions WHERE decided_at >= $1 GROUP BY action",
                since)
            daily_decisions = await conn.fetch(
                "SELECT floor(extract(epoch FROM decided_at) / 86400)::int AS day, action, "
                "COUNT(*) FROM decisions WHERE decided_at >= $1 GROUP BY day, action", since)
            queue = await conn.fetch("SELECT state, COUNT(*) FROM messages GROUP BY state")
            oldest_job = await conn.fetchval(
                "SELECT MIN(received_at) FROM messages WHERE state IN ('pending', 'processing')")
            outbox = await conn.fetch("SELECT state, COUNT(*) FROM deliveries GROUP BY state")
            oldest_delivery = await conn.fetchval(
                "SELECT MIN(created_at) FROM deliveries WHERE state = 'pending'")
            unfanned = await conn.fetchrow(
                "SELECT COUNT(*), MIN(occurred_at) FROM events WHERE NOT fanned_out")
            breakers = await conn.fetch(
                f"SELECT {BREAKER_COLUMNS} FROM breakers ORDER BY domain")
        return rows.summary(
            since, now, POSTGRES, messages=messages, incidents=incidents, domains=domains,
            decisions=decisions, daily_decisions=daily_decisions, queue=queue,
            oldest_job=oldest_job, outbox=outbox, oldest_delivery=oldest_delivery,
            unfanned=unfanned, breakers=breakers)
