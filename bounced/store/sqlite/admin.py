"""The operator half of the SQLite store: status and queue queries, re-queueing and retention."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from bounced.exceptions import NotFound
from bounced.model import DONE, JOB_STATES, PENDING, PROCESSING, AddressState, Decision, Incident
from bounced.store import MessageInfo, rows
from bounced.store.rows import HAS_RAW, INCIDENT_COLUMNS, MESSAGE_COLUMNS, SQLITE

UTC = dt.UTC
# Bodies retention may drop: every message of them done and received before the cutoff (the
# recipients of one transaction share a body and are processed one by one).
EXPIRED_BODIES = (
    "SELECT DISTINCT body_id FROM messages m WHERE state = ?1 AND received_at < ?2 "
    "AND body_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM messages o WHERE "
    "o.body_id = m.body_id AND (o.state != ?1 OR o.received_at >= ?2))"
)


class SQLiteAdmin:
    """Mixed into SQLiteStore, which provides the connection helpers."""

    _execute: Any
    _tx: Any
    _read: Any

    async def address_states(
        self, *, subject: str | None = None, fingerprint: str | None = None
    ) -> list[AddressState]:
        where, params = _address_filter(subject, fingerprint)
        found = await self._read(
            f"SELECT {rows.ADDRESS_COLUMNS} FROM addresses WHERE {where} "
            "ORDER BY subject, fingerprint", params)
        return [rows.address(r, SQLITE) for r in found]

    async def incidents(self, subject: str, fingerprint: str, limit: int = 100) -> list[Incident]:
        return [rows.incident(r, SQLITE) for r in await self._read(
            f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE subject = ? AND fingerprint = ? "
            "ORDER BY received_at DESC, id DESC LIMIT ?", (subject, fingerprint, limit))]

    async def decisions(self, subject: str, fingerprint: str, limit: int = 20) -> list[Decision]:
        return [rows.decision(r, SQLITE) for r in await self._read(
            f"SELECT {rows.DECISION_COLUMNS} FROM decisions WHERE subject = ? AND "
            "fingerprint = ? ORDER BY decided_at DESC, id DESC LIMIT ?",
            (subject, fingerprint, limit))]

    async def queue_counts(self) -> dict[str, int]:
        return rows.counts(
            await self._read("SELECT state, COUNT(*) FROM messages GROUP BY state"), JOB_STATES)

    async def messages(self, state: str | None, limit: int = 20) -> list[MessageInfo]:
        where, params = ("state = ?", [state]) if state else ("1 = 1", [])
        found = await self._read(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE {where} ORDER BY id DESC LIMIT ?",
            [*params, limit],
        )
        return [rows.message_info(r, SQLITE) for r in found]

    async def message(self, message_id: int) -> tuple[MessageInfo, bytes | None, list[Incident]]:
        found = await self._read(
            f"SELECT {MESSAGE_COLUMNS}, (SELECT raw FROM bodies "
            "WHERE id = messages.body_id) FROM messages WHERE id = ?",
            (message_id,),
        )
        if not found:
            raise NotFound(f"no stored message with id {message_id}")
        incidents = await self._read(
            f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE message_id = ? ORDER BY id",
            (message_id,),
        )
        return (rows.message_info(found[0], SQLITE), found[0][-1],
                [rows.incident(r, SQLITE) for r in incidents])

    async def requeue(self, *, ids: Sequence[int] = (), states: Sequence[str] = ()) -> int:
        now = dt.datetime.now(UTC).timestamp()
        async with self._tx():
            total = 0
            for message_id in ids:
                total += len(await self._execute(
                    "UPDATE messages SET state = ?, next_attempt_at = ?, attempts = 0, "
                    "claimed_by = NULL, claimed_until = NULL WHERE id = ? AND state != ? "
                    f"AND {HAS_RAW} RETURNING id",
                    (PENDING, now, message_id, PROCESSING),
                ))
            for state in states:
                total += len(await self._execute(
                    "UPDATE messages SET state = ?, next_attempt_at = ?, attempts = 0 "
                    f"WHERE state = ? AND {HAS_RAW} RETURNING id",
                    (PENDING, now, state),
                ))
        return total

    async def purge(
        self, *, raw_before: dt.datetime, incidents_before: dt.datetime, dry_run: bool
    ) -> dict[str, int]:
        cutoff = (DONE, raw_before.timestamp())
        async with self._tx():
            # The messages whose (shared) body goes: a temporary table of its ids, read thrice.
            await self._execute("CREATE TEMP TABLE IF NOT EXISTS purge_bodies "
                                "(id INTEGER PRIMARY KEY)")
            await self._execute("DELETE FROM temp.purge_bodies")
            await self._execute(f"INSERT INTO temp.purge_bodies {EXPIRED_BODIES}", cutoff)
            raw = await self._execute(
                "SELECT COUNT(*) FROM messages WHERE body_id IN (SELECT id FROM "
                "temp.purge_bodies)")
            old = await self._execute(
                "SELECT COUNT(*) FROM incidents WHERE received_at < ?",
                (incidents_before.timestamp(),),
            )
            if not dry_run:
                await self._execute(
                    "UPDATE messages SET raw_purged_at = ?, body_id = NULL "
                    "WHERE body_id IN (SELECT id FROM temp.purge_bodies)",
                    (dt.datetime.now(UTC).timestamp(),),
                )
                await self._execute(
                    "DELETE FROM bodies WHERE id IN (SELECT id FROM temp.purge_bodies)")
                await self._execute(
                    "DELETE FROM incidents WHERE received_at < ?",
                    (incidents_before.timestamp(),),
                )
            await self._execute("DELETE FROM temp.purge_bodies")
        return {"raw_messages": raw[0][0], "incidents": old[0][0]}


def _address_filter(subject: str | None, fingerprint: str | None) -> tuple[str, list[str]]:
    clauses, params = [], []
    if subject is not None:
        clauses.append("subject = ?")
        params.append(subject)
    if fingerprint is not None:
        clauses.append("fingerprint = ?")
        params.append(fingerprint)
    return (" AND ".join(clauses) or "1 = 1"), params

