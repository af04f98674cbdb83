"""The data operations of one SQLite transaction (``bounced.store.Tx``), and the claim.

Everything here runs in aiosqlite's thread, inside the transaction that ``SQLiteStore._transact``
opens (BEGIN IMMEDIATE ... COMMIT): one trip to that thread and one commit per piece of work.
A statement costs about 10 us of that thread's CPU here whatever it does, so what can be done
once per batch is one statement per batch.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from bounced import model
from bounced.model import AddressState, Decision, DomainStats, Event, Incident, Job, TokenFields
from bounced.store import rows
from bounced.store.rows import SQLITE

# The bodies (their own table, shared by a transaction's recipients: migration 0006) are read
# after the claim, each once, however many of the claimed jobs share it.
CLAIM = (
    "UPDATE messages SET state = ?, claimed_by = ?, claimed_until = ?, attempts = attempts + 1 "
    "WHERE id IN (SELECT id FROM messages WHERE (state = ? AND next_attempt_at <= ?) OR "
    "(state = ? AND claimed_until < ?) ORDER BY id LIMIT ?) RETURNING id, received_at, "
    "mail_from, rcpt_to, subject, stream, key_id, send_day, fingerprint, token_id, body_id, "
    "attempts"
)
INSERT_INCIDENT = (
    f"INSERT INTO incidents ({rows.INCIDENT_INSERT_COLUMNS}) "
    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING"
)
MARK_DONE = (
    "UPDATE messages SET state = ?, kind = ?, classification = ?, processed_at = ?, "
    "claimed_by = NULL, claimed_until = NULL, last_error = NULL WHERE id = ?"
)


def q(db: sqlite3.Connection, sql: str, params: Sequence[Any] = ()) -> list[Any]:
    """One statement, its rows fetched and its cursor closed."""
    cur = db.execute(sql, params)
    try:
        return cur.fetchall()
    finally:
        cur.close()


def busy(exc: sqlite3.OperationalError) -> bool:
    """Whether SQLite failed because another connection holds the lock (worth retrying)."""
    text = str(exc)
    return "locked" in text or "busy" in text


def _in(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


class SQLiteTx:
    """``bounced.store.Tx`` on one SQLite connection, in its own thread. SQLite has one writer
    at a time (BEGIN IMMEDIATE): rows need no locks of their own."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def owned_jobs(self, ids: Sequence[int], worker: str) -> set[int]:
        return {r[0] for r in q(
            self.db, f"SELECT id FROM messages WHERE id IN ({_in(ids)}) AND state = ? "
                     "AND claimed_by = ?", (*ids, model.PROCESSING, worker))}

    def addresses(self, first: Mapping[tuple[str, str], str]
                  ) -> dict[tuple[str, str], AddressState]:
        self.db.executemany(
            "INSERT INTO addresses (subject, fingerprint, address, state) VALUES (?,?,?,?) "
            "ON CONFLICT (subject, fingerprint) DO UPDATE SET address = excluded.address "
            "WHERE addresses.address = '' AND excluded.address != ''",
            [(s, f, a, model.CONFIRMED) for (s, f), a in first.items()]).close()
        found = q(self.db, addresses_of(len(first)), [v for key in first for v in key])
        return {(r[0], r[1]): rows.address(r, SQLITE) for r in found}

    def lock_domains(self, domains: Sequence[str]) -> None:
        """Nothing to do: the transaction holds the database's one write lock."""

    def delete_incidents(self, message_ids: Sequence[int]) -> None:
        self.db.execute(f"DELETE FROM incidents WHERE message_id IN ({_in(message_ids)})",
                        message_ids).close()

    def history(self, subject: str, fingerprint: str, after: dt.datetime | None, limit: int,
                domain: str, since: dt.datetime | None) -> tuple[list[Incident],
                                                                  DomainStats | None]:
        history = [rows.incident(r, SQLITE) for r in reversed(q(
            self.db, f"SELECT {rows.INCIDENT_COLUMNS} FROM incidents WHERE subject = ? AND "
                     "fingerprint = ? AND received_at > ? AND counts "
                     "ORDER BY received_at DESC, id DESC LIMIT ?",
            (subject, fingerprint, after.timestamp() if after else 0.0, limit)))]
        if since is None or not domain:
            return history, None
        row = q(self.db,
                "SELECT (SELECT state FROM breakers WHERE domain = ?1), "
                "COUNT(DISTINCT fingerprint), COALESCE(MAX(fingerprint = ?2), 0) "
                "FROM incidents WHERE domain = ?1 AND counts = 1 AND received_at > "
                "MAX(?3, COALESCE((SELECT released_at FROM breakers WHERE domain = ?1), ?3))",
                (domain, fingerprint, since.timestamp()))[0]
        return history, DomainStats(domain=domain, recent_addresses=row[1],
                                    includes_this=bool(row[2]),
                                    tripped=row[0] == model.BREAKER_TRIPPED)

    def add_incidents(self, message_id: int, incidents: Sequence[Incident]) -> None:
        self.db.executemany(INSERT_INCIDENT, [rows.incident_params(message_id, i, SQLITE)
                                              for i in incidents]).close()

    def incident_ids(self, message_id: int) -> list[int]:
        return [r[0] for r in q(self.db, "SELECT id FROM incidents WHERE message_id = ? "
                                         "ORDER BY id", (message_id,))]

    def add_decision(self, decision: Decision) -> None:
        q(self.db, f"INSERT INTO decisions ({rows.DECISION_INSERT_COLUMNS}) "
                   "VALUES (?, ?, ?, ?, ?, ?)", rows.decision_params(decision, SQLITE))

    def update_address(self, subject: str, fingerprint: str, state: str,
                       changed_at: dt.datetime, reconfirmed_at: dt.datetime | None) -> None:
        q(self.db, "UPDATE addresses SET state = ?, changed_at = ?, "
                   "reconfirmed_at = COALESCE(?, reconfirmed_at) "
                   "WHERE subject = ? AND fingerprint = ?",
          (state, changed_at.timestamp(), reconfirmed_at.timestamp() if reconfirmed_at else None,
           subject, fingerprint))

    def subject_addresses(self, subject: str) -> list[AddressState]:
        return [rows.address(r, SQLITE) for r in q(
            self.db, f"SELECT {rows.ADDRESS_COLUMNS} FROM addresses WHERE subject = ? "
                     "ORDER BY fingerprint", (subject,))]

    def save_breaker(self, domain: str, state: str, addresses: int, at: dt.datetime) -> None:
        q(self.db, "INSERT INTO breakers (domain, state, addresses, tripped_at) VALUES (?,?,?,?) "
                   "ON CONFLICT (domain) DO UPDATE SET state = excluded.state, "
                   "addresses = excluded.addresses, tripped_at = excluded.tripped_at",
          (domain, state, addresses, at.timestamp()))

    def release_breaker(self, domain: str, at: dt.datetime) -> bool:
        return bool(q(self.db, "UPDATE breakers SET state = ?, released_at = ? WHERE domain = ? "
                               "AND state = ? RETURNING domain",
                      (model.BREAKER_RELEASED, at.timestamp(), domain, model.BREAKER_TRIPPED)))

    def add_events(self, events: Sequence[Event]) -> None:
        self.db.executemany(
            f"INSERT INTO events ({rows.EVENT_INSERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING", [rows.event_params(e, SQLITE) for e in events]).close()

    def mark_done(self, done: Sequence[tuple[int, str, dict[str, Any]]],
                  at: dt.datetime) -> None:
        stamp = at.timestamp()
        self.db.executemany(MARK_DONE, [(model.DONE, kind, json.dumps(c), stamp, job_id)
                                        for job_id, kind, c in done]).close()

    def claim(self, worker: str, now: dt.datetime, lease: dt.timedelta,
              limit: int) -> list[Job]:
        """Claim up to ``limit`` runnable jobs (due pending ones, or expired leases), oldest
        first."""
        t = now.timestamp()
        claimed = q(self.db, CLAIM, (model.PROCESSING, worker, t + lease.total_seconds(),
                                     model.PENDING, t, model.PROCESSING, t, limit))
        wanted = sorted({r[10] for r in claimed if r[10] is not None})
        bodies: dict[int, bytes] = dict(q(
            self.db, f"SELECT id, raw FROM bodies WHERE id IN ({_in(wanted)})", wanted,
        )) if wanted else {}
        return [
            Job(
                id=r[0], received_at=SQLITE.ts(r[1]), mail_from=r[2], rcpt_to=r[3],
                token=TokenFields(
                    subject=r[4], stream=r[5], key_id=r[6], day=SQLITE.day(r[7]),
                    fingerprint=r[8], token_id=r[9],
                ),
                raw=bodies.get(r[10]), attempts=r[11], body_id=r[10],
            )
            for r in sorted(claimed, key=lambda r: r[0])
        ]


def addresses_of(n: int) -> str:
    """The address rows of ``n`` (subject, fingerprint) keys, each looked up by the primary
    key. (A row-value ``IN (VALUES ...)`` would scan the whole table: 7 ms per batch with
    100,000 addresses, against 4 us.)"""
    columns = ", ".join(f"a.{c.strip()}" for c in rows.ADDRESS_COLUMNS.split(","))
    return (f"SELECT {columns} FROM (VALUES {','.join(['(?,?)'] * n)}) AS v "
            "JOIN addresses a ON a.subject = v.column1 AND a.fingerprint = v.column2")
