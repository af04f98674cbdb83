"""The embedded store: one SQLite file in WAL mode, accessed through aiosqlite.

One connection, every transaction under one asyncio lock, every cursor closed (FIELD-NOTES.md:
a cursor left to the garbage collector under concurrency is a lost bounce).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from bounced import events
from bounced.config import sqlite_path
from bounced.exceptions import StoreError, StoreUnavailable
from bounced.model import (
    CONFIRMED,
    DONE,
    PENDING,
    PROCESSING,
    QUARANTINED,
    UNCONFIRMED,
    AddressState,
    Decision,
    DomainStats,
    Event,
    Job,
    NewMessage,
    Plan,
)
from bounced.store import Outcome, Planner
from bounced.store.migrations import migrations
from bounced.store.sqlite_admin import (
    INCIDENT_COLUMNS,
    SQLiteAdmin,
    address_from_row,
    incident_from_row,
    ts_or_none,
    utc_from_ts,
)
from bounced.store.sqlite_outbox import SQLiteOutbox

UTC = dt.UTC
# The planner sees at most this many of an address's counting incidents (as in postgres.py).
HISTORY_LIMIT = 1000
# The raw body (its own table, migration 0005) is read by a subquery of RETURNING: one statement.
CLAIM = (
    "UPDATE messages SET state = ?, claimed_by = ?, claimed_until = ?, attempts = attempts + 1 "
    "WHERE id IN (SELECT id FROM messages WHERE (state = ? AND next_attempt_at <= ?) OR "
    "(state = ? AND claimed_until < ?) ORDER BY id LIMIT ?) RETURNING id, received_at, "
    "mail_from, rcpt_to, subject, stream, key_id, send_day, fingerprint, token_id, "
    "(SELECT raw FROM message_raw WHERE message_id = messages.id), attempts"
)


class SQLiteStore(SQLiteAdmin, SQLiteOutbox):
    """Store backed by one SQLite file."""

    overlap_finish = False  # see Store.overlap_finish

    def __init__(self, url: str) -> None:
        self.path: Path = sqlite_path(url)
        self._conn: aiosqlite.Connection | None = None
        self._lock: Any = None

    async def open(self) -> None:
        import asyncio

        self._lock = asyncio.Lock()
        try:
            if self.path.parent != Path():
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = await aiosqlite.connect(self.path, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailable(f"cannot open SQLite database {self.path}: {exc}") from exc
        try:
            await self._enable_wal()
            for pragma in (
                "PRAGMA busy_timeout=10000",
                "PRAGMA synchronous=FULL",
                "PRAGMA foreign_keys=ON",
            ):
                await self._execute(pragma)
            await self._migrate()
        except BaseException:
            # aiosqlite's thread is not a daemon thread: an unclosed connection hangs exit.
            await self.close()
            raise

    async def _enable_wal(self) -> None:
        """Switch to WAL before the long busy timeout is set: processes switching one new file
        at once can lock each other out (with the 10 s timeout they waited it out); retry."""
        import asyncio

        for attempt in range(100):
            try:
                await self._execute("PRAGMA journal_mode=WAL")
                return
            except (sqlite3.OperationalError, StoreError) as exc:
                if attempt == 99:
                    raise StoreUnavailable(f"cannot open SQLite database {self.path}: {exc}") \
                        from exc
                await asyncio.sleep(0.05)

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await conn.close()

    async def _execute(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """One statement in aiosqlite's thread: executed, fetched and its cursor closed in one
        trip (aiosqlite's own cursor API costs three: execute, fetchall, close)."""
        conn = self._conn
        if conn is None:
            raise StoreUnavailable("store is not open")
        try:
            rows: list[Any] = await conn._execute(  # type: ignore[no-untyped-call]
                _q_conn, conn, sql, params)
            return rows
        except sqlite3.IntegrityError:
            raise
        except sqlite3.OperationalError as exc:
            raise _store_error(exc) from exc

    @asynccontextmanager
    async def _tx(self, immediate: bool = True) -> AsyncIterator[None]:
        """One transaction under the connection lock: committed, or rolled back on any error
        (a transaction left open would hold SQLite's write lock for good)."""
        if self._conn is None:
            raise StoreUnavailable("store is not open")
        async with self._lock:
            await self._execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
            try:
                yield
                await self._execute("COMMIT")
            except BaseException:
                if self._conn is not None and self._conn.in_transaction:
                    with contextlib.suppress(Exception):
                        await self._execute("ROLLBACK")
                raise

    async def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        if self._conn is None:
            raise StoreUnavailable("store is not open")
        async with self._lock:
            return await self._execute(sql, params)

    async def _migrate(self) -> None:
        await self._execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
        )
        done = {row[0] for row in await self._execute("SELECT version FROM schema_migrations")}
        assert self._conn is not None
        for version, name, sql in migrations("sqlite"):
            if version in done:
                continue
            async with self._tx():
                # Another process may have applied it while this one waited for the lock.
                if await self._execute(
                    "SELECT 1 FROM schema_migrations WHERE version = ?", (version,)
                ):
                    continue
                for statement in sql.split(";\n"):
                    if statement.strip():
                        await self._execute(statement)
                await self._execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                    (version, name, dt.datetime.now(UTC).timestamp()),
                )

    async def ping(self) -> None:
        try:
            await self._read("SELECT 1")
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite: {exc}") from exc

    async def add_messages(self, messages: Sequence[NewMessage]) -> list[int]:
        """The messages and their raw bodies in one transaction, in one trip to aiosqlite's
        thread: one multi-row INSERT into each table, committed (synchronous=FULL) before it
        returns.

        The ids come from the last one: the rows of one INSERT get consecutive ids, in VALUES
        order (AUTOINCREMENT: each the largest so far plus one, under the write lock). RETURNING
        would read them one step at a time, and each step waits for the GIL again."""
        if not messages:
            return []
        params: list[Any] = []
        for m in messages:
            params += (
                m.received_at.timestamp(), m.peer, m.mail_from, m.rcpt_to, m.token.subject,
                m.token.stream, m.token.key_id, m.token.day.isoformat(), m.token.fingerprint,
                m.token.token_id, len(m.raw), PENDING, m.received_at.timestamp(),
            )
        try:
            last = await self._transact(_insert_tx, params, [m.raw for m in messages])
        except sqlite3.Error as exc:  # an OperationalError arrives as StoreError already
            raise StoreError(f"SQLite insert failed: {exc}") from exc
        return list(range(last - len(messages) + 1, last + 1))

    async def claim(
        self, worker: str, now: dt.datetime, lease: dt.timedelta, limit: int
    ) -> list[Job]:
        from bounced.model import TokenFields

        t = now.timestamp()
        rows = await self._transact(
            _q, CLAIM, (PROCESSING, worker, t + lease.total_seconds(), PENDING, t, PROCESSING, t,
                        limit))
        return [
            Job(
                id=r[0], received_at=utc_from_ts(r[1]), mail_from=r[2], rcpt_to=r[3],
                token=TokenFields(
                    subject=r[4], stream=r[5], key_id=r[6], day=dt.date.fromisoformat(r[7]),
                    fingerprint=r[8], token_id=r[9],
                ),
                raw=r[10], attempts=r[11],
            )
            for r in sorted(rows, key=lambda r: r[0])
        ]

    async def finish(
        self, job: Job, worker: str, outcome: Outcome, planner: Planner, now: dt.datetime
    ) -> Plan | None:
        """The whole transaction in one trip to aiosqlite's thread (one hop per statement cost
        about 12 hops, 150-250 us each); the planner is a pure function and runs there too."""
        return await self._transact(_finish_tx, job, worker, outcome, planner, now)

    async def finish_batch(
        self, items: Sequence[tuple[Job, Outcome, Planner]], worker: str, now: dt.datetime
    ) -> list[Plan | Exception | None]:
        """``finish`` for several jobs in one transaction (one hop, one COMMIT and so one fsync
        for the batch). Each job runs under a savepoint: a job whose statements fail is rolled
        back alone and its exception returned in its place; the others commit."""
        return await self._transact(_finish_batch_tx, items, worker, now)

    async def _transact(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run ``fn(db, *args)`` as one IMMEDIATE transaction in aiosqlite's thread, under the
        connection lock: committed, or rolled back on any error."""
        if self._conn is None:
            raise StoreUnavailable("store is not open")
        conn = self._conn
        async with self._lock:
            try:
                # aiosqlite runs a callable in its thread with Connection._execute.
                result: _T = await conn._execute(  # type: ignore[no-untyped-call]
                    _in_transaction, conn, fn, args)
                return result
            except sqlite3.IntegrityError:
                raise
            except sqlite3.OperationalError as exc:
                raise _store_error(exc) from exc

    async def fail(
        self, job: Job, worker: str, error: str, now: dt.datetime, retry_at: dt.datetime | None
    ) -> None:
        state = PENDING if retry_at is not None else QUARANTINED
        await self._transact(
            _q, "UPDATE messages SET state = ?, last_error = ?, next_attempt_at = ?, "
                "claimed_by = NULL, claimed_until = NULL, processed_at = ? "
                "WHERE id = ? AND claimed_by = ?",
            (state, error[:4000], (retry_at or now).timestamp(),
             None if retry_at else now.timestamp(), job.id, worker),
        )

    async def reconfirm(self, subject: str, now: dt.datetime) -> list[Decision]:
        return await self._transact(_reconfirm_tx, subject, now)


_T = TypeVar("_T")


def _busy(exc: sqlite3.OperationalError) -> bool:
    """Whether SQLite failed because another connection holds the lock (worth retrying)."""
    text = str(exc)
    return "locked" in text or "busy" in text


def _store_error(exc: sqlite3.OperationalError, what: str = "SQLite") -> StoreError:
    """The store's exception for an SQLite error: unavailable (retry later) when locked."""
    if _busy(exc):
        return StoreUnavailable(f"SQLite: {exc}")
    return StoreError(f"{what}: {exc}")


def _in_transaction(
    conn: aiosqlite.Connection, fn: Callable[..., _T], args: tuple[Any, ...]
) -> _T:
    """In aiosqlite's thread: BEGIN IMMEDIATE, ``fn``, COMMIT; ROLLBACK on any error."""
    db = conn._conn  # the sqlite3 connection, used only in its own thread
    db.execute("BEGIN IMMEDIATE").close()
    try:
        result = fn(db, *args)
        db.execute("COMMIT").close()
    except BaseException:
        if db.in_transaction:
            with contextlib.suppress(Exception):
                db.execute("ROLLBACK").close()
        raise
    return result


def _q_conn(conn: aiosqlite.Connection, sql: str, params: Sequence[Any]) -> list[Any]:
    return _q(conn._conn, sql, params)  # in aiosqlite's thread


def _insert_tx(db: sqlite3.Connection, params: Sequence[Any], raws: Sequence[bytes]) -> int:
    """The messages (13 parameters each) and then their raw bodies; the id of the last message."""
    rows = ",".join(["(?,?,?,?,?,?,?,?,?,?,?,?,?)"] * len(raws))
    cur = db.execute(
        "INSERT INTO messages (received_at, peer, mail_from, rcpt_to, subject, stream, key_id, "
        f"send_day, fingerprint, token_id, size, state, next_attempt_at) VALUES {rows}", params)
    try:
        last = cur.lastrowid
    finally:
        cur.close()
    if last is None:
        raise StoreError("SQLite insert reported no row id")
    first = last - len(raws) + 1
    bodies: list[Any] = []
    for n, raw in enumerate(raws):
        bodies += (first + n, raw)
    db.execute("INSERT INTO message_raw (message_id, raw) VALUES "
               + ",".join(["(?,?)"] * len(raws)), bodies).close()
    return last


def _q(db: sqlite3.Connection, sql: str, params: Sequence[Any] = ()) -> list[Any]:
    """One statement, its rows fetched and its cursor closed."""
    cur = db.execute(sql, params)
    try:
        return cur.fetchall()
    finally:
        cur.close()


def _finish_tx(
    db: sqlite3.Connection, job: Job, worker: str, outcome: Outcome, planner: Planner,
    now: dt.datetime,
) -> Plan | None:
    token = job.token
    if not _q(db, "SELECT 1 FROM messages WHERE id = ? AND state = ? AND claimed_by = ?",
              (job.id, PROCESSING, worker)):
        return None
    plan = Plan(incidents=(), decision=None)
    if outcome.incidents:
        _q(db, "INSERT INTO addresses (subject, fingerprint, address, state) "
               "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
           (token.subject, token.fingerprint, outcome.incidents[0].address, CONFIRMED))
        state = address_from_row(_q(
            db, "SELECT subject, fingerprint, address, state, changed_at, reconfirmed_at "
                "FROM addresses WHERE subject = ? AND fingerprint = ?",
            (token.subject, token.fingerprint))[0])
        _q(db, "DELETE FROM incidents WHERE message_id = ?", (job.id,))
        # Bounded, and only what can matter: counting incidents since reconfirmation.
        history = [
            incident_from_row(r)
            for r in reversed(_q(
                db, f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE subject = ? AND "
                    "fingerprint = ? AND received_at > ? AND counts "
                    "ORDER BY received_at DESC, id DESC LIMIT ?",
                (token.subject, token.fingerprint, ts_or_none(state.reconfirmed_at) or 0.0,
                 HISTORY_LIMIT),
            ))
        ]
        stats = _domain_stats(db, outcome, token.fingerprint, now)
        plan = planner(state, history, outcome.incidents, stats)
        for i in plan.incidents:
            _q(db, "INSERT INTO incidents (message_id, subject, fingerprint, address, "
                   "token_id, send_day, received_at, kind, action, status, reply_code, "
                   "reason, hard, counts, diagnostic, remote_mta, domain, reporting_mta) "
                   "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
               (job.id, i.subject, i.fingerprint, i.address, i.token_id,
                i.send_day.isoformat(), i.received_at.timestamp(), i.kind, i.action,
                i.status, i.reply_code, i.reason, int(i.hard), int(i.counts),
                i.diagnostic, i.remote_mta, i.domain, i.reporting_mta))
        _apply_plan(db, plan, state, stats, outcome, now)
    for event in outcome.events:
        _add_event(db, event)
    _q(db, "UPDATE messages SET state = ?, kind = ?, classification = ?, processed_at = ?, "
           "claimed_by = NULL, claimed_until = NULL, last_error = NULL WHERE id = ?",
       (DONE, outcome.kind, json.dumps(outcome.classification), now.timestamp(), job.id))
    return plan


def _finish_batch_tx(
    db: sqlite3.Connection, items: Sequence[tuple[Job, Outcome, Planner]], worker: str,
    now: dt.datetime,
) -> list[Plan | Exception | None]:
    results: list[Plan | Exception | None] = []
    for job, outcome, planner in items:
        db.execute("SAVEPOINT job").close()
        try:
            results.append(_finish_tx(db, job, worker, outcome, planner, now))
        except sqlite3.OperationalError as exc:
            if _busy(exc):
                raise  # the whole batch waits for the store
            db.execute("ROLLBACK TO job").close()
            results.append(StoreError(f"SQLite: {exc}"))
        except Exception as exc:
            db.execute("ROLLBACK TO job").close()
            results.append(exc)
        db.execute("RELEASE job").close()
    return results


def _domain_stats(
    db: sqlite3.Connection, outcome: Outcome, fingerprint: str, now: dt.datetime
) -> DomainStats | None:
    if outcome.breaker_window is None or not outcome.incidents:
        return None
    domain = outcome.incidents[0].domain
    if not domain:
        return None
    breaker = _q(db, "SELECT state, released_at FROM breakers WHERE domain = ?", (domain,))
    since = (now - outcome.breaker_window).timestamp()
    if breaker and breaker[0][1] is not None:
        since = max(since, breaker[0][1])
    row = _q(db, "SELECT COUNT(DISTINCT fingerprint), COALESCE(MAX(fingerprint = ?), 0) "
                 "FROM incidents WHERE domain = ? AND counts = 1 AND received_at > ?",
             (fingerprint, domain, since))[0]
    return DomainStats(domain=domain, recent_addresses=row[0], includes_this=bool(row[1]),
                       tripped=bool(breaker) and breaker[0][0] == "tripped")


def _apply_plan(
    db: sqlite3.Connection, plan: Plan, state: AddressState, stats: DomainStats | None,
    outcome: Outcome, now: dt.datetime,
) -> None:
    decision = plan.decision
    if decision is not None and plan.held:
        held = dataclasses.replace(
            decision, action="held",
            rule=f"{decision.rule}; held: the breaker for {stats.domain if stats else '?'}"
                 " is tripped",
        )
        _insert_decision(db, held)
    elif decision is not None:
        _record_decision(db, decision, UNCONFIRMED)
        _add_event(db, events.unconfirmed(decision, state.address))
    if plan.trip and stats is not None:
        _q(db, "INSERT INTO breakers (domain, state, addresses, tripped_at) VALUES (?,?,?,?) "
               "ON CONFLICT (domain) DO UPDATE SET state = excluded.state, "
               "addresses = excluded.addresses, tripped_at = excluded.tripped_at",
           (stats.domain, "tripped", plan.domain_addresses, now.timestamp()))
        window = outcome.breaker_window or dt.timedelta()
        _add_event(db, events.breaker_tripped(
            stats.domain, plan.domain_addresses, window.total_seconds() / 60, now))


def _add_event(db: sqlite3.Connection, event: Event) -> None:
    _q(db, "INSERT INTO events (id, type, subject, fingerprint, payload, occurred_at) "
           "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
       (event.id, event.type, event.subject, event.fingerprint, json.dumps(event.payload),
        event.occurred_at.timestamp()))


def _insert_decision(db: sqlite3.Connection, decision: Decision) -> None:
    _q(db, "INSERT INTO decisions (subject, fingerprint, action, rule, evidence, decided_at) "
           "VALUES (?, ?, ?, ?, ?, ?)",
       (decision.subject, decision.fingerprint, decision.action, decision.rule,
        json.dumps(list(decision.evidence)), decision.decided_at.timestamp()))


def _record_decision(db: sqlite3.Connection, decision: Decision, new_state: str) -> None:
    _q(db, "UPDATE addresses SET state = ?, changed_at = ? WHERE subject = ? AND fingerprint = ?",
       (new_state, decision.decided_at.timestamp(), decision.subject, decision.fingerprint))
    _insert_decision(db, decision)


def _reconfirm_tx(db: sqlite3.Connection, subject: str, now: dt.datetime) -> list[Decision]:
    decisions: list[Decision] = []
    for row in _q(db, "SELECT subject, fingerprint, address FROM addresses WHERE subject = ?",
                  (subject,)):
        decision = Decision(
            subject=row[0], fingerprint=row[1], action="reconfirm",
            rule="the application confirmed the address again", decided_at=now,
        )
        _record_decision(db, decision, CONFIRMED)
        _add_event(db, events.reconfirmed(decision, row[2]))
        _q(db, "UPDATE addresses SET reconfirmed_at = ? WHERE subject = ? AND fingerprint = ?",
           (now.timestamp(), row[0], row[1]))
        decisions.append(decision)
    return decisions
