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
from bounced.store import rows
from bounced.store.reports import TOP_DOMAINS, AddressQuery, AddressSummary, EventQuery, Summary
from bounced.store.rows import BREAKER_COLUMNS, EVENT_COLUMNS, SQLITE, like_domain

UTC = dt.UTC
DAY = 86400


def _ts(value: dt.datetime | None) -> float:
    # Never-changed addresses sort as the epoch: after every real change.
    return 0.0 if value is None else value.timestamp()


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


def _pragmas(conn: aiosqlite.Connection) -> None:
    """In aiosqlite's thread: the reader's settings, each statement's cursor closed."""
    db = sqlite_connection(conn)
    for pragma in ("PRAGMA busy_timeout=10000", "PRAGMA query_only=ON"):
        db.execute(pragma).close()


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
                    # Each cursor closed (aiosqlite's execute() leaves its cursor open).
                    await run_in_thread(self._reader, _pragmas, self._reader)
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
        found = await self._report_one(ADDRESS_SUMMARY.format(where=where),
                                       [*params, query.limit])
        return [rows.address_summary(r, SQLITE) for r in found]

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
        found = await self._report_one(
            f"SELECT {EVENT_COLUMNS}, "
            "(SELECT json_group_object(d.action, d.state) FROM deliveries d "
            " WHERE d.event_id = e.id) "
            f"FROM events e WHERE {where} ORDER BY e.occurred_at DESC, e.id DESC LIMIT ?",
            [*params, query.limit])
        return [(rows.event(r, SQLITE), json.loads(r[6]) if r[6] else {}) for r in found]

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
            # An incident whose report named no address of the token's has no receiving
            # domain: it is left out of the domains (it is in the totals and the reasons).
            ("SELECT domain, COUNT(*) AS n, COUNT(DISTINCT fingerprint), SUM(counts) "
             "FROM incidents WHERE received_at >= ? AND domain != '' GROUP BY domain "
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
            (f"SELECT {BREAKER_COLUMNS} FROM breakers ORDER BY domain", ()),
        ])
        return rows.summary(
            since, now, SQLITE, messages=messages, incidents=incidents, domains=domains,
            decisions=decisions, daily_decisions=daily_decisions, queue=queue,
            oldest_job=oldest_job[0][0], outbox=outbox, oldest_delivery=oldest_delivery[0][0],
            unfanned=unfanned[0], breakers=breakers)
