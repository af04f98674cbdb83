"""The operator half of the SQLite store: row conversion, status and queue queries,
re-queueing and retention."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from bounced.exceptions import NotFound
from bounced.model import (
    DONE,
    FAILED,
    PENDING,
    PROCESSING,
    QUARANTINED,
    AddressState,
    Decision,
    Incident,
)
from bounced.store import MessageInfo

UTC = dt.UTC


def ts_or_none(value: dt.datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _dt(value: float | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromtimestamp(value, UTC)


def utc_from_ts(value: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(value, UTC)


INCIDENT_COLUMNS = (
    "id, message_id, subject, fingerprint, address, token_id, send_day, received_at, kind, action, "
    "status, reply_code, reason, hard, counts, diagnostic, remote_mta, reporting_mta, "
    "address_mismatch"
)
MESSAGE_COLUMNS = (
    "id, received_at, peer, mail_from, rcpt_to, subject, stream, key_id, send_day, fingerprint, "
    "token_id, size, state, attempts, last_error, kind, classification, processed_at, "
    "body_id IS NOT NULL"
)
# Messages whose raw body is kept (done ones lose it to retention).
HAS_RAW = "body_id IS NOT NULL"
# Bodies retention may drop: every message of them done and received before the cutoff (the
# recipients of one transaction share a body and are processed one by one).
EXPIRED_BODIES = (
    "SELECT DISTINCT body_id FROM messages m WHERE state = ?1 AND received_at < ?2 "
    "AND body_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM messages o WHERE "
    "o.body_id = m.body_id AND (o.state != ?1 OR o.received_at >= ?2))"
)


def incident_from_row(row: Sequence[Any]) -> Incident:
    return Incident(
        id=row[0], message_id=row[1], subject=row[2], fingerprint=row[3], address=row[4],
        token_id=row[5], send_day=dt.date.fromisoformat(row[6]), received_at=utc_from_ts(row[7]),
        kind=row[8], action=row[9], status=row[10], reply_code=row[11], reason=row[12],
        hard=bool(row[13]), counts=bool(row[14]), diagnostic=row[15], remote_mta=row[16],
        reporting_mta=row[17], address_mismatch=bool(row[18]),
    )


def _message_info(row: Sequence[Any]) -> MessageInfo:
    return MessageInfo(
        id=row[0], received_at=utc_from_ts(row[1]), peer=row[2], mail_from=row[3], rcpt_to=row[4],
        subject=row[5], stream=row[6], key_id=row[7], send_day=dt.date.fromisoformat(row[8]),
        fingerprint=row[9], token_id=row[10], size=row[11], state=row[12], attempts=row[13],
        last_error=row[14], kind=row[15],
        classification=json.loads(row[16]) if row[16] else None,
        processed_at=_dt(row[17]), has_raw=bool(row[18]),
    )


def address_from_row(row: Sequence[Any]) -> AddressState:
    return AddressState(
        subject=row[0], fingerprint=row[1], address=row[2], state=row[3],
        changed_at=_dt(row[4]), reconfirmed_at=_dt(row[5]),
    )


def _decision(row: Sequence[Any]) -> Decision:
    return Decision(
        id=row[0], subject=row[1], fingerprint=row[2], action=row[3], rule=row[4],
        evidence=tuple(json.loads(row[5])), decided_at=utc_from_ts(row[6]),
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
        rows = await self._read(
            "SELECT subject, fingerprint, address, state, changed_at, reconfirmed_at "
            f"FROM addresses WHERE {where} ORDER BY subject, fingerprint",
            params,
        )
        return [address_from_row(r) for r in rows]

    async def incidents(self, subject: str, fingerprint: str, limit: int = 100) -> list[Incident]:
        rows = await self._read(
            f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE subject = ? AND fingerprint = ? "
            "ORDER BY received_at DESC, id DESC LIMIT ?",
            (subject, fingerprint, limit),
        )
        return [incident_from_row(r) for r in rows]

    async def decisions(self, subject: str, fingerprint: str, limit: int = 20) -> list[Decision]:
        rows = await self._read(
            "SELECT id, subject, fingerprint, action, rule, evidence, decided_at FROM decisions "
            "WHERE subject = ? AND fingerprint = ? ORDER BY decided_at DESC, id DESC LIMIT ?",
            (subject, fingerprint, limit),
        )
        return [_decision(r) for r in rows]

    async def queue_counts(self) -> dict[str, int]:
        rows = await self._read("SELECT state, COUNT(*) FROM messages GROUP BY state")
        counts = dict.fromkeys((PENDING, PROCESSING, DONE, FAILED, QUARANTINED), 0)
        counts.update({r[0]: r[1] for r in rows})
        return counts

    async def messages(self, state: str | None, limit: int = 20) -> list[MessageInfo]:
        where, params = ("state = ?", [state]) if state else ("1 = 1", [])
        rows = await self._read(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE {where} ORDER BY id DESC LIMIT ?",
            [*params, limit],
        )
        return [_message_info(r) for r in rows]

    async def message(self, message_id: int) -> tuple[MessageInfo, bytes | None, list[Incident]]:
        rows = await self._read(
            f"SELECT {MESSAGE_COLUMNS}, (SELECT raw FROM bodies "
            "WHERE id = messages.body_id) FROM messages WHERE id = ?",
            (message_id,),
        )
        if not rows:
            raise NotFound(f"no stored message with id {message_id}")
        incidents = await self._read(
            f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE message_id = ? ORDER BY id",
            (message_id,),
        )
        return _message_info(rows[0]), rows[0][-1], [incident_from_row(r) for r in incidents]

    async def requeue(self, *, ids: Sequence[int] = (), states: Sequence[str] = ()) -> int:
        now = dt.datetime.now(UTC).timestamp()
        async with self._tx():
            total = 0
            for message_id in ids:
                rows = await self._execute(
                    "UPDATE messages SET state = ?, next_attempt_at = ?, attempts = 0, "
                    "claimed_by = NULL, claimed_until = NULL WHERE id = ? AND state != ? "
                    f"AND {HAS_RAW} RETURNING id",
                    (PENDING, now, message_id, PROCESSING),
                )
                total += len(rows)
            for state in states:
                rows = await self._execute(
                    "UPDATE messages SET state = ?, next_attempt_at = ?, attempts = 0 "
                    f"WHERE state = ? AND {HAS_RAW} RETURNING id",
                    (PENDING, now, state),
                )
                total += len(rows)
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

