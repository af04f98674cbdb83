"""The worker's transactions on SQLite: claim jobs, and finish them (incidents, the address's
decision, the domain breaker, events), a batch at a time.

Each function here runs whole in aiosqlite's thread, inside the transaction that
``SQLiteStore._transact`` opens (BEGIN IMMEDIATE ... COMMIT): one trip to that thread and one
commit per call. A statement costs about 10 us of that thread's CPU here whatever it does, so
what can be done once per batch is done once per batch.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from bounced import events
from bounced.exceptions import StoreError
from bounced.model import (
    CONFIRMED,
    DONE,
    PENDING,
    PROCESSING,
    UNCONFIRMED,
    AddressState,
    Decision,
    DomainStats,
    Event,
    Job,
    Plan,
    TokenFields,
)
from bounced.policy import with_incident_ids
from bounced.store import Outcome, Planner
from bounced.store.sqlite_admin import (
    INCIDENT_COLUMNS,
    address_from_row,
    incident_from_row,
    ts_or_none,
    utc_from_ts,
)

# The planner sees at most this many of an address's counting incidents (as in postgres.py).
HISTORY_LIMIT = 1000
# The bodies (their own table, shared by a transaction's recipients: migration 0006) are read
# after the claim, each once, however many of the claimed jobs share it.
CLAIM = (
    "UPDATE messages SET state = ?, claimed_by = ?, claimed_until = ?, attempts = attempts + 1 "
    "WHERE id IN (SELECT id FROM messages WHERE (state = ? AND next_attempt_at <= ?) OR "
    "(state = ? AND claimed_until < ?) ORDER BY id LIMIT ?) RETURNING id, received_at, "
    "mail_from, rcpt_to, subject, stream, key_id, send_day, fingerprint, token_id, body_id, "
    "attempts"
)
ADDRESS_COLUMNS = "subject, fingerprint, address, state, changed_at, reconfirmed_at"
INSERT_INCIDENT = (
    "INSERT INTO incidents (message_id, subject, fingerprint, address, token_id, send_day, "
    "received_at, kind, action, status, reply_code, reason, hard, counts, diagnostic, remote_mta, "
    "domain, reporting_mta, address_mismatch) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
    "ON CONFLICT DO NOTHING"
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


def claim_tx(
    db: sqlite3.Connection, worker: str, now: dt.datetime, lease: dt.timedelta, limit: int
) -> list[Job]:
    """Claim up to ``limit`` runnable jobs (due pending ones, or expired leases), oldest first."""
    t = now.timestamp()
    rows = q(db, CLAIM, (PROCESSING, worker, t + lease.total_seconds(), PENDING, t, PROCESSING, t,
                         limit))
    wanted = sorted({r[10] for r in rows if r[10] is not None})
    bodies: dict[int, bytes] = dict(q(
        db, f"SELECT id, raw FROM bodies WHERE id IN ({','.join('?' * len(wanted))})", wanted,
    )) if wanted else {}
    return [
        Job(
            id=r[0], received_at=utc_from_ts(r[1]), mail_from=r[2], rcpt_to=r[3],
            token=TokenFields(
                subject=r[4], stream=r[5], key_id=r[6], day=dt.date.fromisoformat(r[7]),
                fingerprint=r[8], token_id=r[9],
            ),
            raw=bodies.get(r[10]), attempts=r[11],
        )
        for r in sorted(rows, key=lambda r: r[0])
    ]


def finish_batch_tx(
    db: sqlite3.Connection, items: Sequence[tuple[Job, Outcome, Planner]], worker: str,
    now: dt.datetime,
) -> list[Plan | Exception | None]:
    """Record the jobs in order (each sees what the ones before it recorded) and mark them done.

    Once per batch: the claims checked, a savepoint, the incidents of earlier attempts deleted,
    the jobs marked done. Should a job's statements fail, the batch is rolled back to the
    savepoint and recorded again job by job, each under a savepoint of its own, so that job
    alone is left out (its exception returned in its place). A busy database raises: the caller
    rolls the whole transaction back."""
    ids = [job.id for job, _, _ in items]
    owned = {r[0] for r in q(
        db, f"SELECT id FROM messages WHERE id IN ({','.join('?' * len(ids))}) AND state = ? "
            "AND claimed_by = ?", (*ids, PROCESSING, worker))}
    results: list[Plan | Exception | None]
    db.execute("SAVEPOINT batch").close()
    try:
        # What earlier attempts at these jobs recorded is replaced (reprocessing counts nothing
        # twice), and no job of the batch is shown it.
        replaced = [job.id for job, outcome, _ in items if job.id in owned and outcome.incidents]
        db.execute(f"DELETE FROM incidents WHERE message_id IN ({','.join('?' * len(replaced))})",
                   replaced).close()
        results = [_record(db, job, outcome, planner, now) if job.id in owned else None
                   for job, outcome, planner in items]
    except Exception as exc:
        if isinstance(exc, sqlite3.OperationalError) and busy(exc):
            raise  # the caller rolls the whole transaction back and waits for the store
        db.execute("ROLLBACK TO batch").close()
        results = _one_by_one(db, items, owned, now)
    db.execute("RELEASE batch").close()
    stamp = now.timestamp()
    db.executemany(MARK_DONE, [
        (DONE, outcome.kind, json.dumps(outcome.classification), stamp, job.id)
        for (job, outcome, _), result in zip(items, results, strict=True)
        if isinstance(result, Plan)
    ]).close()
    return results


def finish_and_claim_tx(
    db: sqlite3.Connection, items: Sequence[tuple[Job, Outcome, Planner]], worker: str,
    now: dt.datetime, lease: dt.timedelta, limit: int,
) -> tuple[list[Plan | Exception | None], list[Job]]:
    """``finish_batch_tx``, then claim the next jobs in the same transaction (one commit)."""
    return finish_batch_tx(db, items, worker, now), claim_tx(db, worker, now, lease, limit)


def _one_by_one(
    db: sqlite3.Connection, items: Sequence[tuple[Job, Outcome, Planner]], owned: set[int],
    now: dt.datetime,
) -> list[Plan | Exception | None]:
    results: list[Plan | Exception | None] = []
    for job, outcome, planner in items:
        if job.id not in owned:
            results.append(None)
            continue
        db.execute("SAVEPOINT job").close()
        try:
            if outcome.incidents:
                db.execute("DELETE FROM incidents WHERE message_id = ?", (job.id,)).close()
            results.append(_record(db, job, outcome, planner, now))
        except sqlite3.OperationalError as exc:
            if busy(exc):
                raise  # the whole batch waits for the store
            db.execute("ROLLBACK TO job").close()
            results.append(StoreError(f"SQLite: {exc}"))
        except Exception as exc:
            db.execute("ROLLBACK TO job").close()
            results.append(exc)
        db.execute("RELEASE job").close()
    return results


def _record(
    db: sqlite3.Connection, job: Job, outcome: Outcome, planner: Planner, now: dt.datetime
) -> Plan:
    """One claimed job's incidents, decision, breaker and events (not yet marked done; what an
    earlier attempt recorded is deleted already)."""
    plan = Plan(incidents=(), decision=None)
    if outcome.incidents:
        token = job.token
        state = _address(db, token, _first_address(outcome))
        # Bounded, and only what can matter: counting incidents since reconfirmation.
        history = [
            incident_from_row(r)
            for r in reversed(q(
                db, f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE subject = ? AND "
                    "fingerprint = ? AND received_at > ? AND counts "
                    "ORDER BY received_at DESC, id DESC LIMIT ?",
                (token.subject, token.fingerprint, ts_or_none(state.reconfirmed_at) or 0.0,
                 HISTORY_LIMIT),
            ))
        ]
        stats = _domain_stats(db, outcome, token.fingerprint, now)
        plan = planner(state, history, outcome.incidents, stats)
        db.executemany(INSERT_INCIDENT, [
            (job.id, i.subject, i.fingerprint, i.address, i.token_id, i.send_day.isoformat(),
             i.received_at.timestamp(), i.kind, i.action, i.status, i.reply_code, i.reason,
             int(i.hard), int(i.counts), i.diagnostic, i.remote_mta, i.domain, i.reporting_mta,
             int(i.address_mismatch))
            for i in plan.incidents
        ]).close()
        if plan.decision is not None:  # its evidence names the incidents just stored
            plan = with_incident_ids(plan, [r[0] for r in q(
                db, "SELECT id FROM incidents WHERE message_id = ? ORDER BY id", (job.id,))])
        _apply_plan(db, plan, state, stats, outcome, now)
    for event in outcome.events:
        _add_event(db, event)
    return plan


def _first_address(outcome: Outcome) -> str:
    """The address the outcome's incidents name (only ever the token's own), or ''."""
    return next((i.address for i in outcome.incidents if i.address), "")


def _address(db: sqlite3.Connection, token: TokenFields, address: str) -> AddressState:
    """The address's state, the row created (confirmed) if it had none: one statement when new.
    A row that does not know its address yet learns it from the first report naming it."""
    rows = q(db, "INSERT INTO addresses (subject, fingerprint, address, state) VALUES (?,?,?,?) "
                 "ON CONFLICT (subject, fingerprint) DO UPDATE SET address = excluded.address "
                 "WHERE addresses.address = '' AND excluded.address != '' "
                 f"RETURNING {ADDRESS_COLUMNS}",
             (token.subject, token.fingerprint, address, CONFIRMED))
    if not rows:
        rows = q(db, f"SELECT {ADDRESS_COLUMNS} FROM addresses WHERE subject = ? "
                     "AND fingerprint = ?", (token.subject, token.fingerprint))
    return address_from_row(rows[0])


def _domain_stats(
    db: sqlite3.Connection, outcome: Outcome, fingerprint: str, now: dt.datetime
) -> DomainStats | None:
    """The receiving domain's breaker and its recent counting bounces, in one statement (the
    window starts at the breaker's release if that is later)."""
    if outcome.breaker_window is None or not outcome.incidents:
        return None
    domain = outcome.incidents[0].domain
    if not domain:
        return None
    since = (now - outcome.breaker_window).timestamp()
    row = q(db, "SELECT (SELECT state FROM breakers WHERE domain = ?1), "
                "COUNT(DISTINCT fingerprint), COALESCE(MAX(fingerprint = ?2), 0) "
                "FROM incidents WHERE domain = ?1 AND counts = 1 AND received_at > "
                "MAX(?3, COALESCE((SELECT released_at FROM breakers WHERE domain = ?1), ?3))",
            (domain, fingerprint, since))[0]
    return DomainStats(domain=domain, recent_addresses=row[1], includes_this=bool(row[2]),
                       tripped=row[0] == "tripped")


def _apply_plan(
    db: sqlite3.Connection, plan: Plan, state: AddressState, stats: DomainStats | None,
    outcome: Outcome, now: dt.datetime,
) -> None:
    decision = plan.decision
    if decision is not None and plan.held:
        held = dataclasses.replace(
            decision, action="held",
            rule=f"{decision.rule}; held: the breaker for {stats.domain if stats else '?'}"
                 " is tripped",
        )
        _insert_decision(db, held)
    elif decision is not None:
        _record_decision(db, decision, UNCONFIRMED)
        _add_event(db, events.unconfirmed(decision, state.address))
    if plan.trip and stats is not None:
        q(db, "INSERT INTO breakers (domain, state, addresses, tripped_at) VALUES (?,?,?,?) "
              "ON CONFLICT (domain) DO UPDATE SET state = excluded.state, "
              "addresses = excluded.addresses, tripped_at = excluded.tripped_at",
          (stats.domain, "tripped", plan.domain_addresses, now.timestamp()))
        window = outcome.breaker_window or dt.timedelta()
        _add_event(db, events.breaker_tripped(
            stats.domain, plan.domain_addresses, window.total_seconds() / 60, now))


def _add_event(db: sqlite3.Connection, event: Event) -> None:
    q(db, "INSERT INTO events (id, type, subject, fingerprint, payload, occurred_at) "
          "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
      (event.id, event.type, event.subject, event.fingerprint, json.dumps(event.payload),
       event.occurred_at.timestamp()))


def _insert_decision(db: sqlite3.Connection, decision: Decision) -> None:
    q(db, "INSERT INTO decisions (subject, fingerprint, action, rule, evidence, decided_at) "
          "VALUES (?, ?, ?, ?, ?, ?)",
      (decision.subject, decision.fingerprint, decision.action, decision.rule,
       json.dumps(list(decision.evidence)), decision.decided_at.timestamp()))


def _record_decision(db: sqlite3.Connection, decision: Decision, new_state: str) -> None:
    q(db, "UPDATE addresses SET state = ?, changed_at = ? WHERE subject = ? AND fingerprint = ?",
      (new_state, decision.decided_at.timestamp(), decision.subject, decision.fingerprint))
    _insert_decision(db, decision)


def reconfirm_tx(db: sqlite3.Connection, subject: str, now: dt.datetime) -> list[Decision]:
    """Every address of the subject confirmed again, each with its decision and event."""
    decisions: list[Decision] = []
    for row in q(db, "SELECT subject, fingerprint, address FROM addresses WHERE subject = ?",
                 (subject,)):
        decision = Decision(
            subject=row[0], fingerprint=row[1], action="reconfirm",
            rule="the application confirmed the address again", decided_at=now,
        )
        _record_decision(db, decision, CONFIRMED)
        _add_event(db, events.reconfirmed(decision, row[2]))
        q(db, "UPDATE addresses SET reconfirmed_at = ? WHERE subject = ? AND fingerprint = ?",
          (now.timestamp(), row[0], row[1]))
        decisions.append(decision)
    return decisions
