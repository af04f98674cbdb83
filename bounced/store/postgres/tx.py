"""The data operations of one PostgreSQL transaction (``bounced.store.Tx``), and the claim.

Each operation is one round trip, whatever the size of the batch it serves (arrays through
``unnest``). Rows a decision depends on are locked (``FOR UPDATE``; the breakers' domains by
advisory locks): concurrent transactions of any number of daemons decide one after the other,
each seeing what the previous one committed (READ COMMITTED).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

from bounced import model
from bounced.model import AddressState, Decision, DomainStats, Event, Incident, Job, TokenFields
from bounced.store import rows
from bounced.store.rows import POSTGRES

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
BREAKER_LOCK = 0x626F  # with hashtext(domain): one advisory lock per receiving domain

INSERT_INCIDENT = (
    f"INSERT INTO incidents ({rows.INCIDENT_INSERT_COLUMNS}) "
    "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19) "
    "ON CONFLICT (message_id, address) DO NOTHING"
)
INSERT_EVENT = (
    f"INSERT INTO events ({rows.EVENT_INSERT_COLUMNS}) "
    "VALUES ($1, $2, $3, $4, $5::json, $6) ON CONFLICT (id) DO NOTHING"
)
# Expired leases first (a dead worker's jobs), then due pending jobs, each read in index order;
# with each its body (its own table, shared by a transaction's recipients since migration
# 0006; NULL once purged), sent once per claim: on the first row that has it.
CLAIM = f"""
WITH expired AS (
    SELECT id FROM messages WHERE state = '{model.PROCESSING}' AND claimed_until < $1
    ORDER BY claimed_until LIMIT $4 FOR UPDATE SKIP LOCKED
), due AS (
    SELECT id FROM messages WHERE state = '{model.PENDING}' AND next_attempt_at <= $1
    ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED
), chosen AS (
    SELECT id FROM expired UNION ALL SELECT id FROM due LIMIT $4
), claimed AS (
    UPDATE messages m SET state = '{model.PROCESSING}', claimed_by = $2, claimed_until = $3,
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
HISTORY = (
    f"SELECT {rows.INCIDENT_COLUMNS} FROM incidents WHERE subject = $1 AND fingerprint = $2 "
    "AND received_at > $3 AND counts ORDER BY received_at DESC, id DESC LIMIT $4"
)
# The history with the domain's figures as extra columns of every row (alone in one row, its
# incident columns NULL, when there is no history): one statement, one round trip.
HISTORY_AND_DOMAIN = (
    "WITH b AS (SELECT state, released_at FROM breakers WHERE domain = $5), "
    "d AS (SELECT (SELECT state FROM b) AS breaker, COUNT(DISTINCT fingerprint) AS n, "
    "COALESCE(bool_or(fingerprint = $2), FALSE) AS mine FROM incidents "
    "WHERE domain = $5 AND counts "
    "AND received_at > GREATEST($6::timestamptz, (SELECT released_at FROM b))) "
    f"SELECT h.*, d.breaker, d.n, d.mine FROM d LEFT JOIN LATERAL ({HISTORY}) h ON TRUE"
)


def jobs(found: Sequence[Any]) -> list[Job]:
    """The claimed jobs in id order, the jobs of one body sharing its one bytes object."""
    bodies = {r[12]: r[10] for r in found if r[10] is not None}
    return sorted((Job(
        id=r[0], received_at=r[1], mail_from=r[2], rcpt_to=r[3],
        token=TokenFields(subject=r[4], stream=r[5], key_id=r[6], day=r[7], fingerprint=r[8],
                          token_id=r[9]),
        raw=bodies.get(r[12]), attempts=r[11], body_id=r[12],
    ) for r in found), key=lambda j: j.id)


class PostgresTx:
    """``bounced.store.Tx`` on one connection in a transaction; each operation a coroutine."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def owned_jobs(self, ids: Sequence[int], worker: str) -> set[int]:
        return {r[0] for r in await self.conn.fetch(
            "SELECT id FROM messages WHERE id = ANY($1::bigint[]) AND state = $2 "
            "AND claimed_by = $3 ORDER BY id FOR UPDATE", list(ids), model.PROCESSING, worker)}

    async def addresses(self, first: Mapping[tuple[str, str], str]
                        ) -> dict[tuple[str, str], AddressState]:
        keys = list(first)
        subjects, fingerprints = [k[0] for k in keys], [k[1] for k in keys]
        await self.conn.execute(
            "INSERT INTO addresses (subject, fingerprint, address, state) "
            "SELECT s, f, a, $4 FROM unnest($1::text[], $2::text[], $3::text[]) AS u(s, f, a) "
            "ON CONFLICT (subject, fingerprint) DO UPDATE SET address = excluded.address "
            "WHERE addresses.address = '' AND excluded.address <> ''",
            subjects, fingerprints, [first[k] for k in keys], model.CONFIRMED,
        )
        # Locked in one order (bytewise) by every transaction: no deadlock between daemons.
        return {(r[0], r[1]): rows.address(r, POSTGRES) for r in await self.conn.fetch(
            f"SELECT {rows.ADDRESS_COLUMNS} FROM addresses WHERE (subject, fingerprint) IN "
            "(SELECT * FROM unnest($1::text[], $2::text[])) "
            'ORDER BY subject COLLATE "C", fingerprint COLLATE "C" FOR UPDATE',
            subjects, fingerprints)}

    async def lock_domains(self, domains: Sequence[str]) -> None:
        await self.conn.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext(d)) FROM unnest($2::text[]) AS u(d)",
            BREAKER_LOCK, list(domains))

    async def delete_incidents(self, message_ids: Sequence[int]) -> None:
        await self.conn.execute("DELETE FROM incidents WHERE message_id = ANY($1::bigint[])",
                                list(message_ids))

    async def history(self, subject: str, fingerprint: str, after: dt.datetime | None,
                      limit: int, domain: str, since: dt.datetime | None
                      ) -> tuple[list[Incident], DomainStats | None]:
        """Only counting incidents can affect a decision or a later incident's counting; the
        scan runs backwards on (subject, fingerprint, received_at) and stops at the limit."""
        args = [subject, fingerprint, after or EPOCH, limit]
        if since is None or not domain:
            found = await self.conn.fetch(HISTORY, *args)
            return [rows.incident(r, POSTGRES) for r in reversed(found)], None
        found = await self.conn.fetch(HISTORY_AND_DOMAIN, *args, domain, since)
        last = found[0]
        stats = DomainStats(domain=domain, recent_addresses=int(last["n"]),
                            includes_this=last["mine"],
                            tripped=last["breaker"] == model.BREAKER_TRIPPED)
        if last[0] is None:  # no history: the one row carries the figures alone
            return [], stats
        return [rows.incident(r, POSTGRES) for r in reversed(found)], stats

    async def add_incidents(self, message_id: int, incidents: Sequence[Incident]) -> None:
        if incidents:
            await self.conn.executemany(INSERT_INCIDENT, [
                rows.incident_params(message_id, i, POSTGRES) for i in incidents])

    async def incident_ids(self, message_id: int) -> list[int]:
        return [r[0] for r in await self.conn.fetch(
            "SELECT id FROM incidents WHERE message_id = $1 ORDER BY id", message_id)]

    async def add_decision(self, decision: Decision) -> None:
        await self.conn.execute(
            f"INSERT INTO decisions ({rows.DECISION_INSERT_COLUMNS}) "
            "VALUES ($1, $2, $3, $4, $5::jsonb, $6)", *rows.decision_params(decision, POSTGRES))

    async def update_address(self, subject: str, fingerprint: str, state: str,
                             changed_at: dt.datetime, reconfirmed_at: dt.datetime | None
                             ) -> None:
        await self.conn.execute(
            "UPDATE addresses SET state = $1, changed_at = $2, "
            "reconfirmed_at = COALESCE($3, reconfirmed_at) WHERE subject = $4 "
            "AND fingerprint = $5", state, changed_at, reconfirmed_at, subject, fingerprint)

    async def subject_addresses(self, subject: str) -> list[AddressState]:
        return [rows.address(r, POSTGRES) for r in await self.conn.fetch(
            f"SELECT {rows.ADDRESS_COLUMNS} FROM addresses WHERE subject = $1 "
            "ORDER BY fingerprint FOR UPDATE", subject)]

    async def save_breaker(self, domain: str, state: str, addresses: int,
                           at: dt.datetime) -> None:
        await self.conn.execute(
            "INSERT INTO breakers (domain, state, addresses, tripped_at) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT (domain) DO UPDATE SET "
            "state = excluded.state, addresses = excluded.addresses, "
            "tripped_at = excluded.tripped_at", domain, state, addresses, at)

    async def release_breaker(self, domain: str, at: dt.datetime) -> bool:
        released = await self.conn.fetchval(
            "UPDATE breakers SET state = $1, released_at = $2 WHERE domain = $3 "
            "AND state = $4 RETURNING domain",
            model.BREAKER_RELEASED, at, domain, model.BREAKER_TRIPPED)
        return released is not None

    async def add_events(self, events: Sequence[Event]) -> None:
        await self.conn.executemany(INSERT_EVENT, [rows.event_params(e, POSTGRES)
                                                   for e in events])

    async def mark_done(self, done: Sequence[tuple[int, str, dict[str, Any]]],
                        at: dt.datetime) -> None:
        await self.conn.execute(
            "UPDATE messages SET state = $1, kind = u.kind, classification = u.c::jsonb, "
            "processed_at = $2, claimed_by = NULL, claimed_until = NULL, last_error = NULL "
            "FROM unnest($3::bigint[], $4::text[], $5::text[]) AS u(id, kind, c) "
            "WHERE messages.id = u.id",
            model.DONE, at, [d[0] for d in done], [d[1] for d in done],
            [json.dumps(d[2]) for d in done],
        )

    async def claim(self, worker: str, now: dt.datetime, lease: dt.timedelta,
                    limit: int) -> list[Job]:
        return jobs(await self.conn.fetch(CLAIM, now, worker, now + lease, limit))
