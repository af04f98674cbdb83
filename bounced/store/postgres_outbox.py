"""The outbox half of the PostgreSQL store: events, their deliveries, domain breakers.

Several daemons may fan out and deliver at once: events and deliveries are claimed with
``FOR UPDATE SKIP LOCKED``, so each delivery attempt is made by one worker at a time.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

from bounced import events
from bounced.model import Event
from bounced.store import DELIVERY_STATES, Delivery
from bounced.store.postgres_admin import Connections

EVENT_COLUMNS = "e.id, e.type, e.subject, e.fingerprint, e.payload, e.occurred_at"
FAN_OUT_BATCH = 500


def _event(r: Any) -> Event:
    return Event(id=r[0], type=r[1], subject=r[2], fingerprint=r[3], payload=json.loads(r[4]),
                 occurred_at=r[5])


async def add_event(conn: Any, event: Event) -> None:
    """Write an event in the caller's transaction (an event id is written once)."""
    await conn.execute(
        "INSERT INTO events (id, type, subject, fingerprint, payload, occurred_at) "
        "VALUES ($1, $2, $3, $4, $5::json, $6) ON CONFLICT (id) DO NOTHING",
        event.id, event.type, event.subject, event.fingerprint, json.dumps(event.payload),
        event.occurred_at,
    )


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
            rows = await conn.fetch(
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
        return [Delivery(event=_event(r), action=r[6], attempts=r[7]) for r in rows]

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
            rows = await conn.fetch("SELECT state, COUNT(*) FROM deliveries GROUP BY state")
            unfanned = await conn.fetchval("SELECT COUNT(*) FROM events WHERE NOT fanned_out")
        counts = dict.fromkeys(DELIVERY_STATES, 0)
        counts.update({r[0]: int(r[1]) for r in rows})
        counts["unfanned"] = int(unfanned)
        return counts

    async def events(self: Connections, limit: int = 50) -> list[tuple[Event, dict[str, str]]]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                f"SELECT {EVENT_COLUMNS}, COALESCE((SELECT jsonb_object_agg(d.action, d.state) "
                "FROM deliveries d WHERE d.event_id = e.id), '{}'::jsonb) "
                "FROM events e ORDER BY e.occurred_at DESC LIMIT $1",
                limit,
            )
        return [(_event(r), json.loads(r[6])) for r in rows]

    async def breakers(self: Connections) -> list[dict[str, Any]]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT domain, state, addresses, tripped_at, released_at FROM breakers "
                "ORDER BY domain"
            )
        return [{"domain": r[0], "state": r[1], "addresses": r[2], "tripped_at": r[3],
                 "released_at": r[4]} for r in rows]

    async def release_breaker(self: Connections, domain: str, now: dt.datetime) -> bool:
        async with self._tx() as conn:
            released = await conn.fetchval(
                "UPDATE breakers SET state = 'released', released_at = $1 WHERE domain = $2 "
                "AND state = 'tripped' RETURNING domain",
                now, domain,
            )
            if released is not None:
                await add_event(conn, events.breaker_released(domain, now))
        return released is not None


__all__ = ["PostgresOutbox", "add_event"]
