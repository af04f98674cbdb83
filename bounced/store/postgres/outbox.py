"""The outbox half of the PostgreSQL store: events, their deliveries, domain breakers.

Several daemons may fan out and deliver at once: events and deliveries are claimed with
``FOR UPDATE SKIP LOCKED``, so each delivery attempt is made by one worker at a time.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

from bounced.model import Event
from bounced.store import DELIVERY_STATES, Delivery, rows
from bounced.store.postgres.admin import Connections
from bounced.store.rows import BREAKER_COLUMNS, EVENT_COLUMNS, POSTGRES

FAN_OUT_BATCH = 500


class PostgresOutbox:
    """Mixed into PostgresStore, which provides ``_conn`` and ``_tx``."""

    async def fan_out(
        self: Connections, actions: Mapping[str, Sequence[str]], now: dt.datetime,
        dry_run: bool,
    ) -> int:
        state = "skipped" if dry_run else "pending"
        async with self._tx() as conn:
            rows = await conn.fetch(
                "SELECT id, type FROM events WHERE NOT fanned_out ORDER BY occurred_at LIMIT $1 "
                "FOR UPDATE SKIP LOCKED",
                FAN_OUT_BATCH,
            )
            ids = [r[0] for r in rows]
            pairs = [(r[0], name) for r in rows for name, types in actions.items()
                     if r[1] in types]
            if pairs:
                await conn.execute(
                    "INSERT INTO deliveries (event_id, action, state, next_attempt_at, "
                    "created_at) SELECT e, a, $3, $4, $4 FROM unnest($1::text[], $2::text[]) "
                    "AS p(e, a) ON CONFLICT DO NOTHING",
                    [p[0] for p in pairs], [p[1] for p in pairs], state, now,
                )
            if ids:
                await conn.execute(
                    "UPDATE events SET fanned_out = TRUE WHERE id = ANY($1::text[])", ids
                )
        return len(ids)

    async def claim_deliveries(
        self: Connections, worker: str, now: dt.datetime, lease: dt.timedelta, limit: int, *,
        only: str | None = None, skip: Sequence[str] = (),
    ) -> list[Delivery]:
        async with self._tx() as conn:
            found = await conn.fetch(
                "WITH due AS (SELECT event_id, action FROM deliveries WHERE state = 'pending' "
                "AND next_attempt_at <= $3 AND (claimed_until IS NULL OR claimed_until < $3) "
                "AND ($5::text IS NULL OR action = $5) AND NOT (action = ANY($6::text[])) "
                "ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED), "
                "claimed AS (UPDATE deliveries d SET claimed_by = $1, claimed_until = $2, "
                "attempts = d.attempts + 1 FROM due WHERE d.event_id = due.event_id "
                "AND d.action = due.action RETURNING d.event_id, d.action, d.attempts, "
                "d.next_attempt_at) "
                f"SELECT {EVENT_COLUMNS}, c.action, c.attempts FROM claimed c "
                "JOIN events e ON e.id = c.event_id ORDER BY c.next_attempt_at",
                worker, now + lease, now, limit, only, list(skip),
            )
        return [Delivery(event=rows.event(r, POSTGRES), action=r[6], attempts=r[7])
                for r in found]

    async def delivery_done(
        self: Connections, delivery: Delivery, worker: str, now: dt.datetime
    ) -> None:
        async with self._tx() as conn:
            await conn.execute(
                "UPDATE deliveries SET state = 'delivered', delivered_at = $1, claimed_by = NULL, "
                "claimed_until = NULL, last_error = NULL WHERE event_id = $2 AND action = $3",
                now, delivery.event.id, delivery.action,
            )

    async def delivery_failed(
        self: Connections, delivery: Delivery, worker: str, error: str, now: dt.datetime,
        retry_at: dt.datetime | None,
    ) -> None:
        state = "pending" if retry_at is not None else "dead"
        async with self._tx() as conn:
            await conn.execute(
                "UPDATE deliveries SET state = $1, last_error = $2, next_attempt_at = $3, "
                "claimed_by = NULL, claimed_until = NULL WHERE event_id = $4 AND action = $5",
                state, error[:2000], retry_at or now, delivery.event.id, delivery.action,
            )

    async def outbox_counts(self: Connections) -> dict[str, int]:
        async with self._conn() as conn:
            found = await conn.fetch("SELECT state, COUNT(*) FROM deliveries GROUP BY state")
            unfanned = await conn.fetchval("SELECT COUNT(*) FROM events WHERE NOT fanned_out")
        counts = rows.counts(found, DELIVERY_STATES)
        counts["unfanned"] = int(unfanned)
        return counts

    async def events(self: Connections, limit: int = 50) -> list[tuple[Event, dict[str, str]]]:
        async with self._conn() as conn:
            found = await conn.fetch(
                f"SELECT {EVENT_COLUMNS}, COALESCE((SELECT jsonb_object_agg(d.action, d.state) "
                "FROM deliveries d WHERE d.event_id = e.id), '{}'::jsonb) "
                "FROM events e ORDER BY e.occurred_at DESC LIMIT $1",
                limit,
            )
        return [(rows.event(r, POSTGRES), json.loads(r[6])) for r in found]

    async def breakers(self: Connections) -> list[dict[str, Any]]:
        async with self._conn() as conn:
            found = await conn.fetch(f"SELECT {BREAKER_COLUMNS} FROM breakers ORDER BY domain")
        return [rows.breaker(r, POSTGRES) for r in found]
