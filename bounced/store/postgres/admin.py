"""The operator's side of the PostgreSQL store.

What ``bounced status``, ``queue``, ``show``, ``reprocess`` and ``purge`` use; mixed into
PostgresStore, which provides the pooled connections.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from bounced.exceptions import NotFound
from bounced.model import DONE, JOB_STATES, PENDING, PROCESSING, AddressState, Decision, Incident
from bounced.store import MessageInfo, rows
from bounced.store.rows import HAS_RAW, INCIDENT_COLUMNS, MESSAGE_COLUMNS, POSTGRES

# Bodies retention may drop: every message of them done and received before the cutoff (the
# recipients of one transaction share a body and are processed one by one).
EXPIRED_BODIES = (
    "SELECT DISTINCT body_id FROM messages m WHERE state = $1 AND received_at < $2 "
    "AND body_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM messages o WHERE "
    "o.body_id = m.body_id AND (o.state != $1 OR o.received_at >= $2))"
)


class Connections(Protocol):
    """What the mixins need of the store: a pooled connection, or one in a transaction."""

    def _conn(self) -> AbstractAsyncContextManager[Any]: ...
    def _tx(self) -> AbstractAsyncContextManager[Any]: ...


async def fetch(store: Connections, sql: str, *args: Any) -> list[Any]:
    """The rows of one statement on a pooled connection."""
    async with store._conn() as conn:
        found: list[Any] = await conn.fetch(sql, *args)
    return found


async def _newest(store: Connections, select: str, moment: str, subject: str, fingerprint: str,
                  limit: int) -> list[Any]:
    """An address's rows of a table, newest first (by ``moment``, then id)."""
    return await fetch(store, f"{select} WHERE subject = $1 AND fingerprint = $2 "
                              f"ORDER BY {moment} DESC, id DESC LIMIT $3",
                       subject, fingerprint, limit)


class PostgresAdmin:
    """Address states, histories, decisions, the queue; requeue and purge."""

    async def address_states(
        self: Connections, *, subject: str | None = None, fingerprint: str | None = None
    ) -> list[AddressState]:
        async with self._conn() as conn:
            found = await conn.fetch(
                f"SELECT {rows.ADDRESS_COLUMNS} FROM addresses WHERE ($1::text IS NULL OR "
                "subject = $1) AND ($2::text IS NULL OR fingerprint = $2) "
                "ORDER BY subject, fingerprint",
                subject, fingerprint,
            )
        return [rows.address(r, POSTGRES) for r in found]

    async def incidents(self: Connections, subject: str, fingerprint: str,
                        limit: int = 100) -> list[Incident]:
        return [rows.incident(r, POSTGRES) for r in await _newest(
            self, f"SELECT {INCIDENT_COLUMNS} FROM incidents", "received_at", subject,
            fingerprint, limit)]

    async def decisions(self: Connections, subject: str, fingerprint: str,
                        limit: int = 20) -> list[Decision]:
        return [rows.decision(r, POSTGRES) for r in await _newest(
            self, f"SELECT {rows.DECISION_COLUMNS} FROM decisions", "decided_at", subject,
            fingerprint, limit)]

    async def queue_counts(self: Connections) -> dict[str, int]:
        async with self._conn() as conn:
            found = await conn.fetch("SELECT state, COUNT(*) FROM messages GROUP BY state")
        return rows.counts(found, JOB_STATES)

    async def messages(self: Connections, state: str | None, limit: int = 20) -> list[MessageInfo]:
        async with self._conn() as conn:
            found = await conn.fetch(
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE ($1::text IS NULL OR state = $1) "
                "ORDER BY id DESC LIMIT $2",
                state, limit,
            )
        return [rows.message_info(r, POSTGRES) for r in found]

    async def message(
        self: Connections, message_id: int
    ) -> tuple[MessageInfo, bytes | None, list[Incident]]:
        async with self._conn() as conn:
            row = await conn.fetchrow(
                f"SELECT {MESSAGE_COLUMNS}, "
                "(SELECT raw FROM bodies WHERE id = messages.body_id) FROM messages "
                "WHERE id = $1", message_id
            )
            if row is None:
                raise NotFound(f"no stored message with id {message_id}")
            incidents = await conn.fetch(
                f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE message_id = $1 ORDER BY id",
                message_id,
            )
        raw: bytes | None = row[-1]
        return (rows.message_info(row, POSTGRES), raw,
                [rows.incident(r, POSTGRES) for r in incidents])

    async def requeue(
        self: Connections, *, ids: Sequence[int] = (), states: Sequence[str] = ()
    ) -> int:
        now = dt.datetime.now(dt.UTC)
        async with self._tx() as conn:
            by_id = await conn.execute(
                "UPDATE messages SET state = $1, next_attempt_at = $2, attempts = 0, "
                "claimed_by = NULL, claimed_until = NULL WHERE id = ANY($3::bigint[]) "
                f"AND state != $4 AND {HAS_RAW}",
                PENDING, now, list(ids), PROCESSING,
            )
            by_state = await conn.execute(
                "UPDATE messages SET state = $1, next_attempt_at = $2, attempts = 0 "
                f"WHERE state = ANY($3::text[]) AND {HAS_RAW}",
                PENDING, now, list(states),
            )
        return _rowcount(by_id) + _rowcount(by_state)

    async def purge(
        self: Connections, *, raw_before: dt.datetime, incidents_before: dt.datetime, dry_run: bool
    ) -> dict[str, int]:
        async with self._tx() as conn:
            if dry_run:
                raw = await conn.fetchval(
                    f"SELECT COUNT(*) FROM messages WHERE body_id IN ({EXPIRED_BODIES})",
                    DONE, raw_before,
                )
                old = await conn.fetchval(
                    "SELECT COUNT(*) FROM incidents WHERE received_at < $1", incidents_before
                )
                return {"raw_messages": int(raw), "incidents": int(old)}
            # The bodies go and their messages let go of them in one statement (the foreign
            # key is checked at its end); the count is of messages, as before bodies were shared.
            raw = _rowcount(await conn.execute(
                f"WITH gone AS (DELETE FROM bodies WHERE id IN ({EXPIRED_BODIES}) RETURNING id) "
                "UPDATE messages SET raw_purged_at = now(), body_id = NULL FROM gone "
                "WHERE messages.body_id = gone.id",
                DONE, raw_before,
            ))
            old = _rowcount(await conn.execute(
                "DELETE FROM incidents WHERE received_at < $1", incidents_before
            ))
        return {"raw_messages": raw, "incidents": old}


def _rowcount(status: str) -> int:
    """The row count of a command status such as ``UPDATE 12``."""
    return int(status.rsplit(" ", 1)[-1])
