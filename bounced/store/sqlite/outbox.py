"""The outbox half of the SQLite store: events, their deliveries, domain breakers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from bounced.model import Event
from bounced.store import DELIVERY_STATES, Delivery, rows
from bounced.store.rows import BREAKER_COLUMNS, EVENT_COLUMNS, SQLITE


class SQLiteOutbox:
    """Mixed into SQLiteStore, which provides the connection helpers."""

    _execute: Any
    _tx: Any
    _read: Any

    async def fan_out(
        self, actions: Mapping[str, Sequence[str]], now: dt.datetime, dry_run: bool
    ) -> int:
        state = "skipped" if dry_run else "pending"
        async with self._tx():
            rows = await self._execute(
                "SELECT id, type FROM events WHERE fanned_out = 0 ORDER BY occurred_at LIMIT 500")
            for event_id, event_type in rows:
                for action in (name for name, types in actions.items() if event_type in types):
                    await self._execute(
                        "INSERT INTO deliveries (event_id, action, state, next_attempt_at, "
                        "created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                        (event_id, action, state, now.timestamp(), now.timestamp()),
                    )
                await self._execute("UPDATE events SET fanned_out = 1 WHERE id = ?", (event_id,))
        return len(rows)

    async def claim_deliveries(
        self, worker: str, now: dt.datetime, lease: dt.timedelta, limit: int, *,
        only: str | None = None, skip: Sequence[str] = (),
    ) -> list[Delivery]:
        t = now.timestamp()
        skipped = ",".join("?" * len(skip))
        async with self._tx():
            keys = await self._execute(
                "UPDATE deliveries SET claimed_by = ?, claimed_until = ?, attempts = attempts + 1 "
                "WHERE rowid IN (SELECT rowid FROM deliveries WHERE state = 'pending' AND "
                "next_attempt_at <= ? AND (claimed_until IS NULL OR claimed_until < ?) "
                "AND (? IS NULL OR action = ?) "
                + (f"AND action NOT IN ({skipped}) " if skip else "")
                + "ORDER BY next_attempt_at LIMIT ?) RETURNING event_id, action, attempts",
                (worker, t + lease.total_seconds(), t, t, only, only, *skip, limit),
            )
            result = []
            for event_id, action, attempts in keys:
                row = (await self._execute(
                    f"SELECT {EVENT_COLUMNS} FROM events e WHERE e.id = ?", (event_id,)))[0]
                result.append(Delivery(event=rows.event(row, SQLITE), action=action,
                                       attempts=attempts))
        return result

    async def delivery_done(self, delivery: Delivery, worker: str, now: dt.datetime) -> None:
        async with self._tx():
            await self._execute(
                "UPDATE deliveries SET state = 'delivered', delivered_at = ?, claimed_by = NULL, "
                "claimed_until = NULL, last_error = NULL WHERE event_id = ? AND action = ?",
                (now.timestamp(), delivery.event.id, delivery.action),
            )

    async def delivery_failed(
        self, delivery: Delivery, worker: str, error: str, now: dt.datetime,
        retry_at: dt.datetime | None,
    ) -> None:
        state = "pending" if retry_at is not None else "dead"
        async with self._tx():
            await self._execute(
                "UPDATE deliveries SET state = ?, last_error = ?, next_attempt_at = ?, "
                "claimed_by = NULL, claimed_until = NULL WHERE event_id = ? AND action = ?",
                (state, error[:2000], (retry_at or now).timestamp(), delivery.event.id,
                 delivery.action),
            )

    async def outbox_counts(self) -> dict[str, int]:
        counts = rows.counts(
            await self._read("SELECT state, COUNT(*) FROM deliveries GROUP BY state"),
            DELIVERY_STATES)
        unfanned = await self._read("SELECT COUNT(*) FROM events WHERE fanned_out = 0")
        counts["unfanned"] = unfanned[0][0]
        return counts

    async def events(self, limit: int = 50) -> list[tuple[Event, dict[str, str]]]:
        found = await self._read(
            f"SELECT {EVENT_COLUMNS} FROM events e ORDER BY e.occurred_at DESC LIMIT ?", (limit,))
        result = []
        for row in found:
            states = await self._read(
                "SELECT action, state FROM deliveries WHERE event_id = ?", (row[0],))
            result.append((rows.event(row, SQLITE), {a: st for a, st in states}))
        return result

    async def breakers(self) -> list[dict[str, Any]]:
        found = await self._read(f"SELECT {BREAKER_COLUMNS} FROM breakers ORDER BY domain")
        return [rows.breaker(r, SQLITE) for r in found]
