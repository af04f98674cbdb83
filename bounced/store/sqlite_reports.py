"""The operator's lists and summaries from the SQLite store: read-only queries.

They run on a read-only connection of their own, never under the store's connection lock:
in WAL mode a reader does not block the writer, so a summary over a large store (or a
dashboard refreshing it) never holds up the intake's commits. A summary's statements run in
one read transaction, so its figures are of one moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from bounced.compat import run_in_thread, sqlite_connection
from bounced.exceptions import StoreError, StoreUnavailable
from bounced.model import Event
from bounced.store.reports import (
    TOP_DOMAINS,
    AddressQuery,
    AddressSummary,
    EventQuery,
    Summary,
    daily_bounces,
    day_of,
    incident_counts,
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


# The page's addresses are chosen first (the filters and the sort read the addresses table
# alone), then each one's latest incident and decision looked up: only for the page, not for
# every address that matches.
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
    "FROM (SELECT * FROM addresses a WHERE {where} ORDER BY COALESCE(a.changed_at, 0) DESC, "
    "a.subject DESC, a.fingerprint DESC LIMIT ?) a "
    "ORDER BY COALESCE(a.changed_at, 0) DESC, a.subject DESC, a.fingerprint DESC"
)


def address_summary(r: Sequence[Any]) -> AddressSummary:
    return AddressSummary(
        subject=r[0], fingerprint=r[1], address=r[2], state=r[3], changed_at=_dt(r[4]),
        reconfirmed_at=_dt(r[5]), incidents=r[6], last_incident_at=_dt(r[7]), last_reason=r[8],
        rule=r[9])


Statements = Sequence[tuple[str, Sequence[Any]]]


def _snapshot(conn: aiosqlite.Connection, statements: Statements) -> list[list[Any]]:
    """In aiosqlite's thread: the statements in one read transaction, their rows."""
    db = sqlite_connection(conn)
    db.execute("BEGIN").close()
    try:
        results = []
        for sql, params in statements:
            cur = db.execute(sql, params)
            try:
                results.append(cur.fetchall())
            finally:
                cur.close()
        return results
    finally:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK").close()


class SQLiteReports:
    """Mixed into SQLiteStore, which provides ``path`` and closes the reader
    (``_close_reader``) when it closes."""

    path: Path
    _reader: aiosqlite.Connection | None = None
    _reader_lock: asyncio.Lock | None = None

    async def _report(self, statements: Statements) -> list[list[Any]]:
        if self._reader_lock is None:
            self._reader_lock = asyncio.Lock()
        async with self._reader_lock:
            if self._reader is None:
                uri = f"{self.path.resolve().as_uri()}?mode=ro"
                try:
                    self._reader = await aiosqlite.connect(uri, uri=True, isolation_level=None)
                    await self._reader.execute("PRAGMA busy_timeout=10000")
                    await self._reader.execute("PRAGMA query_only=ON")
                except sqlite3.Error as exc:
                    await self._close_reader()
                    raise StoreUnavailable(f"cannot read SQLite database {self.path}: {exc}") \
                        from exc
            try:
                result: list[list[Any]] = await run_in_thread(
                    self._reader, _snapshot, self._reader, statements)
            except sqlite3.OperationalError as exc:
                raise StoreError(f"SQLite: {exc}") from exc
            return result

    async def _report_one(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return (await self._report([(sql, params)]))[0]

    async def _close_reader(self) -> None:
        if self._reader is not None:
            reader, self._reader = self._reader, None
            await reader.close()

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
        rows = await self._report_one(ADDRESS_SUMMARY.format(where=where), [*params, query.limit])
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
        rows = await self._report_one(
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
        (messages, incidents, domains, decisions, daily_decisions, queue, oldest_job, outbox,
         oldest_delivery, unfanned, breakers) = await self._report([
            ("SELECT kind, COUNT(*) FROM messages WHERE received_at >= ? GROUP BY kind", (t,)),
            # One pass over the period's incidents for the reasons and the days, one for the
            # domains; both read the index alone (migration 0007).
            (f"SELECT CAST(received_at / {DAY} AS INTEGER) AS day, kind, reason, counts, "
             "COUNT(*) FROM incidents WHERE received_at >= ? GROUP BY day, kind, reason, counts",
             (t,)),
            ("SELECT domain, COUNT(*) AS n, COUNT(DISTINCT fingerprint), SUM(counts) "
             "FROM incidents WHERE received_at >= ? GROUP BY domain "
             "ORDER BY n DESC, domain LIMIT ?", (t, TOP_DOMAINS)),
            ("SELECT action, COUNT(*) FROM decisions WHERE decided_at >= ? GROUP BY action",
             (t,)),
            (f"SELECT CAST(decided_at / {DAY} AS INTEGER) AS day, action, COUNT(*) "
             "FROM decisions WHERE decided_at >= ? GROUP BY day, action", (t,)),
            ("SELECT state, COUNT(*) FROM messages GROUP BY state", ()),
            # By the job-state index: the planner would otherwise walk messages_received from
            # the oldest message on, through every done one (1.5 s with 200,000 messages).
            ("SELECT MIN(received_at) FROM messages INDEXED BY messages_runnable "
             "WHERE state IN ('pending', 'processing')", ()),
            ("SELECT state, COUNT(*) FROM deliveries GROUP BY state", ()),
            ("SELECT MIN(created_at) FROM deliveries WHERE state = 'pending'", ()),
            ("SELECT COUNT(*), MIN(occurred_at) FROM events WHERE fanned_out = 0", ()),
            ("SELECT domain, state, addresses, tripped_at, released_at FROM breakers "
             "ORDER BY domain", ()),
        ])
        return Summary(
            since=since, now=now,
            messages={r[0]: r[1] for r in messages},
            incidents=incident_counts(incidents),
            domains=[(r[0], r[1], r[2], r[3]) for r in domains],
            decisions={r[0]: r[1] for r in decisions},
            daily_bounces=daily_bounces(incidents),
            daily_decisions={(day_of(r[0]), r[1]): r[2] for r in daily_decisions},
            queue={r[0]: r[1] for r in queue}, oldest_job=_dt(oldest_job[0][0]),
            outbox={**{r[0]: r[1] for r in outbox}, "unfanned": unfanned[0][0]},
            oldest_delivery=_dt(oldest_delivery[0][0]), oldest_unfanned=_dt(unfanned[0][1]),
            breakers=[{"domain": r[0], "state": r[1], "addresses": r[2],
                       "tripped_at": _dt(r[3]), "released_at": _dt(r[4])} for r in breakers],
        )
