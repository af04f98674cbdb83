"""The shared store: PostgreSQL through an asyncpg pool, for several daemons on one database.

Same behaviour as the SQLite store. Workers claim with ``FOR UPDATE SKIP LOCKED``; ``finish``
locks the address row (``SELECT ... FOR UPDATE``) before reading its history, so concurrent
bounces for one address, in any number of processes, are decided one after the other.
Every connection-level failure is StoreUnavailable; the pool reconnects by itself.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from bounced import events
from bounced.app_support import redact
from bounced.exceptions import StoreError, StoreNotFound, StoreUnavailable
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
    Incident,
    Job,
    NewMessage,
    Plan,
    TokenFields,
)
from bounced.policy import with_incident_ids
from bounced.store import Outcome, Planner, shared_bodies
from bounced.store.migrations import migrations
from bounced.store.postgres_admin import (
    ADDRESS_COLUMNS,
    INCIDENT_COLUMNS,
    PostgresAdmin,
    address_row,
    incident_row,
)
from bounced.store.postgres_outbox import PostgresOutbox, add_event
from bounced.store.postgres_reports import PostgresReports

UTC = dt.UTC
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
# The planner sees at most this many of an address's counting incidents (newest first).
HISTORY_LIMIT = 1000
MIGRATION_LOCK = 0x626F756E636564  # "bounced": one advisory lock for every schema change
BREAKER_LOCK = 0x626F  # with hashtext(domain): one advisory lock per receiving domain
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

INSERT_INCIDENT = (
    "INSERT INTO incidents (message_id, subject, fingerprint, address, token_id, send_day, "
    "received_at, kind, action, status, reply_code, reason, hard, counts, diagnostic, remote_mta, "
    "domain, reporting_mta, address_mismatch) "
    "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19) "
    "ON CONFLICT (message_id, address) DO NOTHING"
)
INSERT_EVENT = (
    "INSERT INTO events (id, type, subject, fingerprint, payload, occurred_at) "
    "VALUES ($1, $2, $3, $4, $5::json, $6) ON CONFLICT (id) DO NOTHING"
)
# Expired leases first (a dead worker's jobs), then due pending jobs, each read in index order;
# with each its body (its own table, shared by a transaction's recipients since migration
# 0006; NULL once purged), sent once per claim: on the first row that has it.
CLAIM = f"""
WITH expired AS (
    SELECT id FROM messages WHERE state = '{PROCESSING}' AND claimed_until < $1
    ORDER BY claimed_until LIMIT $4 FOR UPDATE SKIP LOCKED
), due AS (
    SELECT id FROM messages WHERE state = '{PENDING}' AND next_attempt_at <= $1
    ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED
), chosen AS (
    SELECT id FROM expired UNION ALL SELECT id FROM due LIMIT $4
), claimed AS (
    UPDATE messages m SET state = '{PROCESSING}', claimed_by = $2, claimed_until = $3,
        attempts = m.attempts + 1
    FROM chosen WHERE m.id = chosen.id
    RETURNING m.id, m.received_at, m.mail_from, m.rcpt_to, m.subject, m.stream, m.key_id,
        m.send_day, m.fingerprint, m.token_id, m.attempts, m.body_id
)
SELECT c.id, c.received_at, c.mail_from, c.rcpt_to, c.subject, c.stream, c.key_id, c.send_day,
    c.fingerprint, c.token_id,
    CASE WHEN row_number() OVER (PARTITION BY c.body_id ORDER BY c.id) = 1 THEN b.raw END,
    c.attempts, c.body_id
FROM claimed c LEFT JOIN bodies b ON b.id = c.body_id
"""


def _jobs(rows: Sequence[Any]) -> list[Job]:
    """The claimed jobs in id order, the jobs of one body sharing its one bytes object."""
    bodies = {r[12]: r[10] for r in rows if r[10] is not None}
    return sorted((Job(
        id=r[0], received_at=r[1], mail_from=r[2], rcpt_to=r[3],
        token=TokenFields(subject=r[4], stream=r[5], key_id=r[6], day=r[7], fingerprint=r[8],
                          token_id=r[9]),
        raw=bodies.get(r[12]), attempts=r[11],
    ) for r in rows), key=lambda j: j.id)


class PostgresStore(PostgresAdmin, PostgresOutbox, PostgresReports):
    """Store backed by one PostgreSQL database, shared by any number of daemons."""

    overlap_finish = True  # see Store.overlap_finish

    def __init__(self, url: str) -> None:
        self.url = url
        self._pool: Any = None

    async def open(self, *, create: bool = True) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self.url, min_size=1, max_size=POOL_MAX, timeout=CONNECT_TIMEOUT,
                command_timeout=COMMAND_TIMEOUT,
                # No JIT: the store's statements are short, and asyncpg before 0.28 (Debian
                # 12 has 0.27) leaves it on for its type introspection, which then took
                # 0.6 s per array type and connection (the first bounces after a start
                # waited 3 s).
                server_settings={"jit": "off"},
            )
        except UNAVAILABLE as exc:
            raise StoreUnavailable(f"cannot connect to PostgreSQL: {_describe(exc)}") from exc
        except asyncpg.PostgresError as exc:  # e.g. no such database, authentication
            raise StoreError(f"cannot open PostgreSQL store: {_describe(exc)}") from exc
        try:
            if not create:
                async with self._conn() as conn:
                    if await conn.fetchval("SELECT to_regclass('schema_migrations')") is None:
                        raise StoreNotFound(
                            f"{redact(self.url)} is not a bounced store (no schema in it)")
            await self._migrate()
        except BaseException:
            await self.close()
            raise

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
            rows = await conn.fetch(CLAIM, now, worker, now + lease, limit)
        return _jobs(rows)

    async def finish(
        self, job: Job, worker: str, outcome: Outcome, planner: Planner, now: dt.datetime
    ) -> Plan | None:
        async with self._tx() as conn:
            result = (await self._finish_all(conn, [(job, outcome, planner)], worker, now))[0]
        assert not isinstance(result, Exception)
        return result

    async def finish_batch(
        self, items: Sequence[tuple[Job, Outcome, Planner]], worker: str, now: dt.datetime
    ) -> list[Plan | Exception | None]:
        """One transaction for the batch, its statements shared where they can be (the claims
        checked, the addresses created and locked, old incidents deleted, the breakers' domain
        locks taken, the jobs marked done and the events written: one round trip each for the
        whole batch); per job two: its history with its domain's figures, and its incidents.
        PostgreSQL aborts a transaction at its first error, so when a job fails the batch is
        rolled back and its jobs are finished one by one (the failing one's error returned)."""
        if not items:
            return []
        try:
            async with self._tx() as conn:
                return list(await self._finish_all(conn, items, worker, now))
        except StoreUnavailable:
            raise
        except Exception:
            return await self._one_by_one(items, worker, now)

    async def finish_and_claim(
        self, items: Sequence[tuple[Job, Outcome, Planner]], worker: str, now: dt.datetime,
        lease: dt.timedelta, limit: int,
    ) -> tuple[list[Plan | Exception | None], list[Job]]:
        """``finish_batch``, then ``claim``: two transactions. A PostgreSQL worker does not wait
        for the finish (``overlap_finish``: it classifies the next batch meanwhile), so sharing
        a commit would save it nothing; this is the protocol's contract, for other callers."""
        return (await self.finish_batch(items, worker, now),
                await self.claim(worker, now, lease, limit))

    async def _one_by_one(
        self, items: Sequence[tuple[Job, Outcome, Planner]], worker: str, now: dt.datetime
    ) -> list[Plan | Exception | None]:
        """Each job in a transaction of its own; a job's error is returned in its place."""
        results: list[Plan | Exception | None] = []
        for job, outcome, planner in items:
            try:
                results.append(await self.finish(job, worker, outcome, planner, now))
            except StoreUnavailable:
                raise
            except Exception as exc:
                results.append(exc)
        return results

    async def _finish_all(
        self, conn: Any, items: Sequence[tuple[Job, Outcome, Planner]], worker: str,
        now: dt.datetime,
    ) -> list[Plan | None]:
        """Record the jobs in order, in the caller's transaction; raise on any error.

        Locks are taken in one order by every transaction: the jobs' rows (by id), then the
        addresses (by subject and fingerprint, bytewise), then the breakers' domains (sorted),
        so concurrent batches of several daemons wait for each other and never deadlock. The
        address lock serialises every decision about an address; the statements after it see
        what the previous holder committed (READ COMMITTED)."""
        owned = {r[0] for r in await conn.fetch(
            "SELECT id FROM messages WHERE id = ANY($1::bigint[]) AND state = $2 "
            "AND claimed_by = $3 ORDER BY id FOR UPDATE",
            sorted(job.id for job, _, _ in items), PROCESSING, worker,
        )}
        recording = [(job, outcome) for job, outcome, _ in items
                     if job.id in owned and outcome.incidents]
        states: dict[tuple[str, str], AddressState] = {}
        if recording:
            first: dict[tuple[str, str], str] = {}
            for job, outcome in recording:
                key = (job.token.subject, job.token.fingerprint)
                if not first.get(key):  # the address the incidents name (only the token's)
                    first[key] = next((i.address for i in outcome.incidents if i.address), "")
            keys = sorted(first)
            subjects, fingerprints = [k[0] for k in keys], [k[1] for k in keys]
            await conn.execute(
                "INSERT INTO addresses (subject, fingerprint, address, state) "
                "SELECT s, f, a, $4 FROM unnest($1::text[], $2::text[], $3::text[]) AS u(s, f, a) "
                # A row that does not know its address yet learns it from the first report
                # naming it (row locks taken in key order, as below).
                "ON CONFLICT (subject, fingerprint) DO UPDATE SET address = excluded.address "
                "WHERE addresses.address = '' AND excluded.address <> ''",
                subjects, fingerprints, [first[k] for k in keys], CONFIRMED,
            )
            for r in await conn.fetch(
                f"SELECT {ADDRESS_COLUMNS} FROM addresses WHERE (subject, fingerprint) IN "
                "(SELECT * FROM unnest($1::text[], $2::text[])) "
                'ORDER BY subject COLLATE "C", fingerprint COLLATE "C" FOR UPDATE',
                subjects, fingerprints,
            ):
                states[r[0], r[1]] = address_row(r)
            domains = sorted({o.incidents[0].domain for _, o in recording
                              if o.breaker_window is not None and o.incidents[0].domain})
            if domains:
                # Serialise breaker arithmetic per domain across daemons: one trip, never two,
                # and none missed.
                await conn.execute(
                    "SELECT pg_advisory_xact_lock($1, hashtext(d)) FROM unnest($2::text[]) AS u(d)",
                    BREAKER_LOCK, domains,
                )
            # What earlier attempts at these jobs recorded is replaced (reprocessing counts
            # nothing twice), and no job of the batch is shown it.
            await conn.execute("DELETE FROM incidents WHERE message_id = ANY($1::bigint[])",
                               [job.id for job, _ in recording])
        results: list[Plan | None] = []
        new_events: list[Event] = []
        done: list[tuple[int, str, str]] = []
        changed: set[tuple[str, str]] = set()  # addresses a decision of this batch changed
        for job, outcome, planner in items:
            if job.id not in owned:
                results.append(None)
                continue
            plan = Plan(incidents=(), decision=None)
            if outcome.incidents:
                key = (job.token.subject, job.token.fingerprint)
                if key in changed:
                    states[key] = address_row(await conn.fetchrow(
                        f"SELECT {ADDRESS_COLUMNS} FROM addresses "
                        "WHERE subject = $1 AND fingerprint = $2", *key))
                    changed.discard(key)
                state = states[key]
                history, stats = await self._history(conn, state, outcome, now)
                plan = planner(state, history, outcome.incidents, stats)
                if plan.incidents:
                    await conn.executemany(INSERT_INCIDENT, [
                        (job.id, i.subject, i.fingerprint, i.address, i.token_id, i.send_day,
                         i.received_at, i.kind, i.action, i.status, i.reply_code, i.reason,
                         i.hard, i.counts, i.diagnostic, i.remote_mta, i.domain,
                         i.reporting_mta, i.address_mismatch)
                        for i in plan.incidents
                    ])
                if plan.decision is not None:  # its evidence names the incidents just stored
                    plan = with_incident_ids(plan, [r[0] for r in await conn.fetch(
                        "SELECT id FROM incidents WHERE message_id = $1 ORDER BY id", job.id)])
                new_events += await self._apply_plan(conn, plan, state, stats, outcome, now)
                if plan.decision is not None:
                    changed.add(key)
            new_events += outcome.events
            done.append((job.id, outcome.kind, json.dumps(outcome.classification)))
            results.append(plan)
        if new_events:
            await conn.executemany(INSERT_EVENT, [
                (e.id, e.type, e.subject, e.fingerprint, json.dumps(e.payload), e.occurred_at)
                for e in new_events
            ])
        if done:
            await conn.execute(
                "UPDATE messages SET state = $1, kind = u.kind, classification = u.c::jsonb, "
                "processed_at = $2, claimed_by = NULL, claimed_until = NULL, last_error = NULL "
                "FROM unnest($3::bigint[], $4::text[], $5::text[]) AS u(id, kind, c) "
                "WHERE messages.id = u.id",
                DONE, now, [d[0] for d in done], [d[1] for d in done], [d[2] for d in done],
            )
        return results

    async def _history(
        self, conn: Any, state: AddressState, outcome: Outcome, now: dt.datetime
    ) -> tuple[list[Incident], DomainStats | None]:
        """The address's counting incidents since its reconfirmation, oldest first, bounded,
        and the receiving domain's recent figures and breaker (the caller holds its breaker
        lock): one statement, one round trip.

        Only counting incidents can affect a decision or a later incident's counting; the
        history scan runs backwards on (subject, fingerprint, received_at) and stops at the
        limit. The domain's figures come as extra columns of every row, and alone in one row
        (its incident columns NULL) when there is no history.
        """
        history = (
            f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE subject = $1 AND fingerprint = $2 "
            "AND received_at > $3 AND counts ORDER BY received_at DESC, id DESC LIMIT $4"
        )
        args = [state.subject, state.fingerprint, state.reconfirmed_at or EPOCH, HISTORY_LIMIT]
        domain = outcome.incidents[0].domain if outcome.incidents else ""
        if outcome.breaker_window is None or not domain:
            rows = await conn.fetch(history, *args)
            return [incident_row(r) for r in reversed(rows)], None
        rows = await conn.fetch(
            "WITH b AS (SELECT state, released_at FROM breakers WHERE domain = $5), "
            "d AS (SELECT (SELECT state FROM b) AS breaker, COUNT(DISTINCT fingerprint) AS n, "
            "COALESCE(bool_or(fingerprint = $2), FALSE) AS mine FROM incidents "
            "WHERE domain = $5 AND counts "
            "AND received_at > GREATEST($6::timestamptz, (SELECT released_at FROM b))) "
            f"SELECT h.*, d.breaker, d.n, d.mine FROM d LEFT JOIN LATERAL ({history}) h ON TRUE",
            *args, domain, now - outcome.breaker_window,
        )
        last = rows[0]
        stats = DomainStats(domain=domain, recent_addresses=int(last["n"]),
                            includes_this=last["mine"], tripped=last["breaker"] == "tripped")
        if last[0] is None:  # no history: the one row carries the figures alone
            return [], stats
        return [incident_row(r) for r in reversed(rows)], stats

    async def _apply_plan(
        self, conn: Any, plan: Plan, state: AddressState, stats: DomainStats | None,
        outcome: Outcome, now: dt.datetime,
    ) -> list[Event]:
        """Record the plan's decision and breaker trip; return the events they raise (the
        caller writes them)."""
        new_events: list[Event] = []
        decision = plan.decision
        if decision is not None and plan.held:
            domain = stats.domain if stats else "?"
            await self._insertdecision_row(conn, dataclasses.replace(
                decision, action="held",
                rule=f"{decision.rule}; held: the breaker for {domain} is tripped",
            ))
        elif decision is not None:
            await self._recorddecision_row(conn, decision, UNCONFIRMED)
            new_events.append(events.unconfirmed(decision, state.address))
        if plan.trip and stats is not None:
            await conn.execute(
                "INSERT INTO breakers (domain, state, addresses, tripped_at) "
                "VALUES ($1, 'tripped', $2, $3) ON CONFLICT (domain) DO UPDATE SET "
                "state = excluded.state, addresses = excluded.addresses, "
                "tripped_at = excluded.tripped_at",
                stats.domain, plan.domain_addresses, now,
            )
            window = outcome.breaker_window or dt.timedelta()
            new_events.append(events.breaker_tripped(
                stats.domain, plan.domain_addresses, window.total_seconds() / 60, now))
        return new_events

    async def _insertdecision_row(self, conn: Any, decision: Decision) -> None:
        await conn.execute(
            "INSERT INTO decisions (subject, fingerprint, action, rule, evidence, decided_at) "
            "VALUES ($1, $2, $3, $4, $5::jsonb, $6)",
            decision.subject, decision.fingerprint, decision.action, decision.rule,
            json.dumps(list(decision.evidence)), decision.decided_at,
        )

    async def _recorddecision_row(self, conn: Any, decision: Decision, new_state: str) -> None:
        await conn.execute(
            "UPDATE addresses SET state = $1, changed_at = $2 WHERE subject = $3 "
            "AND fingerprint = $4",
            new_state, decision.decided_at, decision.subject, decision.fingerprint,
        )
        await self._insertdecision_row(conn, decision)

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

    async def reconfirm(self, subject: str, now: dt.datetime) -> list[Decision]:
        decisions: list[Decision] = []
        async with self._tx() as conn:
            rows = await conn.fetch(
                "SELECT subject, fingerprint, address FROM addresses WHERE subject = $1 "
                "ORDER BY fingerprint FOR UPDATE",
                subject,
            )
            for row in rows:
                decision = Decision(
                    subject=row[0], fingerprint=row[1], action="reconfirm",
                    rule="the application confirmed the address again", decided_at=now,
                )
                await self._recorddecision_row(conn, decision, CONFIRMED)
                await add_event(conn, events.reconfirmed(decision, row[2]))
                await conn.execute(
                    "UPDATE addresses SET reconfirmed_at = $1 WHERE subject = $2 "
                    "AND fingerprint = $3",
                    now, row[0], row[1],
                )
                decisions.append(decision)
        return decisions


def _describe(exc: BaseException) -> str:
    return f"{exc.__class__.__name__}: {exc}".rstrip(": ")
