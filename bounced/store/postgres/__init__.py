"""The shared store: PostgreSQL through an asyncpg pool, for several daemons on one database.

Same behaviour as the SQLite store. Workers claim with ``FOR UPDATE SKIP LOCKED``; recording
a job locks the address row (``SELECT ... FOR UPDATE``) before reading its history, so
concurrent bounces for one address, in any number of processes, are decided one after the
other (``tx.py``).
Every connection-level failure is StoreUnavailable; the pool reconnects by itself.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import asyncpg

from bounced.config import redact
from bounced.exceptions import StoreError, StoreNotFound, StoreUnavailable
from bounced.model import PENDING, QUARANTINED, Job, NewMessage
from bounced.store import Work, drive_async, shared_bodies
from bounced.store.migrations import check_schema, migrations
from bounced.store.postgres.admin import PostgresAdmin
from bounced.store.postgres.outbox import PostgresOutbox
from bounced.store.postgres.reports import PostgresReports
from bounced.store.postgres.tx import PostgresTx

T = TypeVar("T")
MIGRATION_LOCK = 0x626F756E636564  # "bounced": one advisory lock for every schema change
POOL_MAX = 10
CONNECT_TIMEOUT = 10.0
COMMAND_TIMEOUT = 60.0

# Errors that mean "the database cannot be reached now" rather than "this request is wrong".
UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # shutting down, starting up
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
    asyncpg.exceptions.ReadOnlySQLTransactionError,  # a standby after a failover
    asyncpg.InterfaceError,  # connection closed under us
)

class PostgresStore(PostgresAdmin, PostgresOutbox, PostgresReports):
    """Store backed by one PostgreSQL database, shared by any number of daemons."""

    overlap_finish = True  # see Store.overlap_finish

    def __init__(self, url: str) -> None:
        self.url = url
        self._pool: Any = None

    async def open(self, *, create: bool = True) -> None:
        try:
            await self._connect()
            if create:
                await self._migrate()
            else:
                async with self._conn() as conn:
                    if await conn.fetchval("SELECT to_regclass('schema_migrations')") is None:
                        raise StoreNotFound(
                            f"{redact(self.url)} is not a bounced store (no schema in it)")
                    applied = {r[0] for r in await conn.fetch(
                        "SELECT version FROM schema_migrations")}
                check_schema(applied, "postgresql", redact(self.url), migrating=False)
        except BaseException:
            await self.close()
            raise

    async def _connect(self) -> None:
        try:
            # min_size 0: no connection floor kept by the pool itself. asyncpg 0.30 and later
            # restore a floor in the background, logging a traceback at every attempt while
            # the server is down; connections are opened when the daemon asks for one, and a
            # failure reaches the part that asked (which says so once per outage).
            self._pool = await asyncpg.create_pool(
                self.url, min_size=0, max_size=POOL_MAX, timeout=CONNECT_TIMEOUT,
                command_timeout=COMMAND_TIMEOUT,
                # No JIT: the store's statements are short, and asyncpg before 0.28 (Debian
                # 12 has 0.27) leaves it on for its type introspection, which then took
                # 0.6 s per array type and connection (the first bounces after a start
                # waited 3 s).
                server_settings={"jit": "off"},
            )
            async with self._pool.acquire():
                pass  # connect now: a wrong URL or an unreachable server is open()'s error
        except (asyncpg.ClientConfigurationError, ValueError, OverflowError) as exc:
            # A mistake in the URL (sslmode=bogus, a port out of range): it will not go away by
            # waiting for the server, unlike the unreachable ones below.
            raise StoreError(f"store {redact(self.url)}: {_describe(exc)}") from exc
        except UNAVAILABLE as exc:
            raise StoreUnavailable(
                f"cannot connect to the store {redact(self.url)}: {_describe(exc)}") from exc
        except asyncpg.PostgresError as exc:  # e.g. no such database, authentication
            raise StoreError(f"cannot open the store {redact(self.url)}: {_describe(exc)}") \
                from exc

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), 10)
            except (TimeoutError, *UNAVAILABLE):
                pool.terminate()

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[Any]:
        """A pooled connection; connection failures become StoreUnavailable."""
        if self._pool is None:
            raise StoreUnavailable("store is not open")
        try:
            async with self._pool.acquire() as conn:
                yield conn
        except UNAVAILABLE as exc:
            raise StoreUnavailable(f"PostgreSQL: {_describe(exc)}") from exc
        except asyncpg.PostgresError as exc:
            raise StoreError(f"PostgreSQL: {_describe(exc)}") from exc

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[Any]:
        """One transaction (READ COMMITTED; row locks where a decision depends on a read)."""
        async with self._conn() as conn, conn.transaction():
            yield conn

    async def _migrate(self) -> None:
        # Daemons starting together queue on the advisory lock; the first applies, the others
        # then find nothing left to do. DDL is transactional: a failed migration leaves nothing.
        async with self._tx() as conn:
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                "name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            done = {r[0] for r in await conn.fetch("SELECT version FROM schema_migrations")}
            # A newer bounced's schema is refused before anything is applied to it.
            check_schema(done, "postgresql", redact(self.url), migrating=True)
            for version, name, sql in migrations("postgresql"):
                if version not in done:
                    await conn.execute(sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                        version, name,
                    )

    async def ping(self) -> None:
        async with self._conn() as conn:
            await conn.fetchval("SELECT 1")

    async def add_messages(self, messages: Sequence[NewMessage]) -> list[int]:
        """One statement for the whole group (one round trip, atomic on its own): each distinct
        body (the recipients of one DATA transaction share theirs) and then each message take
        their ids from the sequences first, so a message's row names its body's; the ids are
        returned in the messages' order."""
        if not messages:
            return []
        bodies, which = shared_bodies(messages)
        async with self._conn() as conn:
            rows = await conn.fetch(
                "WITH b AS MATERIALIZED (SELECT nextval(pg_get_serial_sequence('bodies', 'id')) "
                "AS id, b.w, b.n FROM unnest($12::bytea[]) WITH ORDINALITY AS b(w, n)), "
                "bi AS (INSERT INTO bodies (id, raw) OVERRIDING SYSTEM VALUE SELECT id, w FROM b), "
                "u AS MATERIALIZED (SELECT nextval(pg_get_serial_sequence('messages', 'id')) AS "
                "id, u.* FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], "
                "$5::text[], $6::text[], $7::text[], $8::date[], $9::text[], $10::text[], "
                "$11::int[], $14::int[]) WITH ORDINALITY AS u(r, p, f, t, s, st, k, d, fp, ti, "
                "z, bn, n)), "
                "m AS (INSERT INTO messages (id, received_at, peer, mail_from, rcpt_to, subject, "
                "stream, key_id, send_day, fingerprint, token_id, size, state, next_attempt_at, "
                "body_id) OVERRIDING SYSTEM VALUE SELECT u.id, r, p, f, t, s, st, k, d, fp, ti, "
                "z, $13, r, b.id FROM u JOIN b ON b.n = u.bn) "
                "SELECT id FROM u ORDER BY n",
                [m.received_at for m in messages], [m.peer for m in messages],
                [m.mail_from for m in messages], [m.rcpt_to for m in messages],
                [m.token.subject for m in messages], [m.token.stream for m in messages],
                [m.token.key_id for m in messages], [m.token.day for m in messages],
                [m.token.fingerprint for m in messages], [m.token.token_id for m in messages],
                [len(m.raw) for m in messages], bodies, PENDING, [n + 1 for n in which],
            )
        return [int(r[0]) for r in rows]

    async def probe_write(self, now: dt.datetime) -> None:
        async with self._conn() as conn:
            await conn.execute("UPDATE write_probe SET probed_at = $1 WHERE id = 1", now)

    async def claim(
        self, worker: str, now: dt.datetime, lease: dt.timedelta, limit: int
    ) -> list[Job]:
        async with self._tx() as conn:
            return await PostgresTx(conn).claim(worker, now, lease, limit)

    async def run(self, work: Work[T]) -> T:
        async with self._tx() as conn:
            return await drive_async(work, PostgresTx(conn))

    async def fail(
        self, job: Job, worker: str, error: str, now: dt.datetime, retry_at: dt.datetime | None
    ) -> None:
        state = PENDING if retry_at is not None else QUARANTINED
        async with self._tx() as conn:
            await conn.execute(
                "UPDATE messages SET state = $1, last_error = $2, next_attempt_at = $3, "
                "claimed_by = NULL, claimed_until = NULL, processed_at = $4 "
                "WHERE id = $5 AND claimed_by = $6",
                state, error[:4000], retry_at or now, None if retry_at else now, job.id, worker,
            )


def _describe(exc: BaseException) -> str:
    """What went wrong, in the words an operator looks up: the system's for a socket error
    ("Connection refused", "Name or service not known"), the server's for an error it sent
    ('database "x" does not exist'), the class and message otherwise."""
    if isinstance(exc, TimeoutError):
        return f"no answer within {CONNECT_TIMEOUT:g} s (TimeoutError)"
    if isinstance(exc, OSError) and exc.strerror:
        text = os.strerror(exc.errno) if exc.errno is not None and exc.errno > 0 \
            else exc.strerror
        return f"{text} ({exc.__class__.__name__})"
    if isinstance(exc, asyncpg.PostgresError):
        return f"{exc} ({exc.__class__.__name__})"
    return f"{exc.__class__.__name__}: {exc}".rstrip(": ")
