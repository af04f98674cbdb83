"""A store in memory, for the store contract tests: the proof that a backend is the data
operations and nothing more (no rule lives here: bounced.policy.core decides, this keeps rows;
tests/test_store.py runs the same contract on it as on SQLite and PostgreSQL).

``memory://NAME`` opens the store NAME of this process (created empty on first use), so that
several store objects share one, as several connections share a database. A transaction is an
asyncio lock held while the work runs; a failed one leaves nothing behind (the rows are copied
before and put back). The operators' lists and summaries (address_list, event_list, summary)
are not offered: no contract test needs them, and they are read-only SQL.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import datetime as dt
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bounced.exceptions import NotFound
from bounced.model import (
    BREAKER_RELEASED,
    BREAKER_TRIPPED,
    CONFIRMED,
    DONE,
    JOB_STATES,
    PENDING,
    PROCESSING,
    QUARANTINED,
    AddressState,
    Decision,
    DomainStats,
    Event,
    Incident,
    Job,
    NewMessage,
)
from bounced.store import DELIVERY_STATES, Delivery, MessageInfo, Work, drive, shared_bodies

T = TypeVar("T")
Key = tuple[str, str]


@dataclass
class _Rows:
    """One database: every table as a dict or list."""

    messages: dict[int, dict[str, Any]] = field(default_factory=dict)
    bodies: dict[int, bytes] = field(default_factory=dict)
    incidents: list[Incident] = field(default_factory=list)
    addresses: dict[Key, AddressState] = field(default_factory=dict)
    decisions: list[Decision] = field(default_factory=list)
    breakers: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: dict[str, tuple[Event, bool]] = field(default_factory=dict)  # id -> (event, fanned)
    deliveries: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    ids: Any = field(default_factory=lambda: itertools.count(1))


_DATABASES: dict[str, tuple[_Rows, asyncio.Lock]] = {}


class MemoryTx:
    """``bounced.store.Tx`` on the rows (the caller holds the lock)."""

    def __init__(self, db: _Rows) -> None:
        self.db = db

    def owned_jobs(self, ids: Sequence[int], worker: str) -> set[int]:
        return {i for i in ids if (m := self.db.messages.get(i)) is not None
                and m["state"] == PROCESSING and m["claimed_by"] == worker}

    def addresses(self, first: Mapping[Key, str]) -> dict[Key, AddressState]:
        for key, address in first.items():
            row = self.db.addresses.get(key)
            if row is None:
                self.db.addresses[key] = AddressState(*key, address=address, state=CONFIRMED)
            elif not row.address and address:
                self.db.addresses[key] = dataclasses.replace(row, address=address)
        return {key: self.db.addresses[key] for key in first}

    def lock_domains(self, domains: Sequence[str]) -> None:
        """Nothing to do: the transaction holds the one lock."""

    def delete_incidents(self, message_ids: Sequence[int]) -> None:
        gone = set(message_ids)
        self.db.incidents = [i for i in self.db.incidents if i.message_id not in gone]

    def history(self, subject: str, fingerprint: str, after: dt.datetime | None, limit: int,
                domain: str, since: dt.datetime | None) -> tuple[list[Incident],
                                                                  DomainStats | None]:
        mine = sorted((i for i in self.db.incidents if i.subject == subject
                       and i.fingerprint == fingerprint and i.counts
                       and (after is None or i.received_at > after)),
                      key=lambda i: (i.received_at, i.id or 0))
        history = mine[-limit:] if limit else []
        if since is None or not domain:
            return history, None
        breaker = self.db.breakers.get(domain, {})
        start = max(since, breaker.get("released_at") or since)
        recent = {i.fingerprint for i in self.db.incidents
                  if i.domain == domain and i.counts and i.received_at > start}
        return history, DomainStats(domain=domain, recent_addresses=len(recent),
                                    includes_this=fingerprint in recent,
                                    tripped=breaker.get("state") == BREAKER_TRIPPED)

    def add_incidents(self, message_id: int, incidents: Sequence[Incident]) -> None:
        for i in incidents:
            if not any(o.message_id == message_id and o.address == i.address
                       for o in self.db.incidents):
                self.db.incidents.append(dataclasses.replace(
                    i, id=next(self.db.ids), message_id=message_id))

    def incident_ids(self, message_id: int) -> list[int]:
        return [i.id for i in self.db.incidents if i.message_id == message_id and i.id]

    def add_decision(self, decision: Decision) -> None:
        self.db.decisions.append(dataclasses.replace(decision, id=next(self.db.ids)))

    def update_address(self, subject: str, fingerprint: str, state: str,
                       changed_at: dt.datetime, reconfirmed_at: dt.datetime | None) -> None:
        row = self.db.addresses[subject, fingerprint]
        self.db.addresses[subject, fingerprint] = dataclasses.replace(
            row, state=state, changed_at=changed_at,
            reconfirmed_at=reconfirmed_at or row.reconfirmed_at)

    def subject_addresses(self, subject: str) -> list[AddressState]:
        return sorted((a for a in self.db.addresses.values() if a.subject == subject),
                      key=lambda a: a.fingerprint)

    def save_breaker(self, domain: str, state: str, addresses: int, at: dt.datetime) -> None:
        old = self.db.breakers.get(domain, {})
        self.db.breakers[domain] = {"domain": domain, "state": state, "addresses": addresses,
                                    "tripped_at": at, "released_at": old.get("released_at")}

    def release_breaker(self, domain: str, at: dt.datetime) -> bool:
        row = self.db.breakers.get(domain)
        if row is None or row["state"] != BREAKER_TRIPPED:
            return False
        row.update(state=BREAKER_RELEASED, released_at=at)
        return True

    def add_events(self, events: Sequence[Event]) -> None:
        for e in events:
            self.db.events.setdefault(e.id, (e, False))

    def mark_done(self, done: Sequence[tuple[int, str, dict[str, Any]]],
                  at: dt.datetime) -> None:
        for job_id, kind, classification in done:
            self.db.messages[job_id].update(
                state=DONE, kind=kind, classification=classification, processed_at=at,
                claimed_by=None, claimed_until=None, last_error=None)

    def claim(self, worker: str, now: dt.datetime, lease: dt.timedelta,
              limit: int) -> list[Job]:
        due = [m for m in self.db.messages.values()
               if (m["state"] == PENDING and m["next_attempt_at"] <= now)
               or (m["state"] == PROCESSING and m["claimed_until"] < now)][:limit]
        for m in due:
            m.update(state=PROCESSING, claimed_by=worker, claimed_until=now + lease,
                     attempts=m["attempts"] + 1)
        return [Job(id=m["id"], received_at=m["received_at"], mail_from=m["mail_from"],
                    rcpt_to=m["rcpt_to"], token=m["token"], raw=self.db.bodies.get(m["body"]),
                    attempts=m["attempts"]) for m in due]


class MemoryStore:
    """``bounced.store.Store`` in this process's memory (``memory://NAME``)."""

    overlap_finish = False

    def __init__(self, url: str) -> None:
        self.name = url.removeprefix("memory://")

    async def open(self, *, create: bool = True) -> None:
        if self.name not in _DATABASES:
            _DATABASES[self.name] = (_Rows(), asyncio.Lock())
        self.db, self._lock = _DATABASES[self.name]

    async def close(self) -> None:
        """Nothing to release: the rows stay for the next store of this name."""

    async def ping(self) -> None:
        """Always reachable."""

    async def run(self, work: Work[T]) -> T:
        async with self._lock:
            saved = copy.copy(self.db.__dict__)
            saved = {k: copy.deepcopy(v) if k != "ids" else v for k, v in saved.items()}
            try:
                return drive(work, MemoryTx(self.db))
            except BaseException:
                self.db.__dict__.update(saved)
                raise

    async def _tx(self, op: str, *args: Any) -> Any:
        async with self._lock:
            return getattr(MemoryTx(self.db), op)(*args)

    async def add_messages(self, messages: Sequence[NewMessage]) -> list[int]:
        bodies, which = shared_bodies(messages)
        async with self._lock:
            body_ids = [next(self.db.ids) for _ in bodies]
            self.db.bodies.update(zip(body_ids, bodies, strict=True))
            ids = []
            for m, body in zip(messages, which, strict=True):
                ids.append(next(self.db.ids))
                self.db.messages[ids[-1]] = {
                    "id": ids[-1], "received_at": m.received_at, "peer": m.peer,
                    "mail_from": m.mail_from, "rcpt_to": m.rcpt_to, "token": m.token,
                    "size": len(m.raw), "state": PENDING, "next_attempt_at": m.received_at,
                    "attempts": 0, "claimed_by": None, "claimed_until": None,
                    "last_error": None, "kind": None, "classification": None,
                    "processed_at": None, "body": body_ids[body]}
        return ids

    async def claim(self, worker: str, now: dt.datetime, lease: dt.timedelta,
                    limit: int) -> list[Job]:
        jobs: list[Job] = await self._tx("claim", worker, now, lease, limit)
        return jobs

    async def fail(self, job: Job, worker: str, error: str, now: dt.datetime,
                   retry_at: dt.datetime | None) -> None:
        async with self._lock:
            m = self.db.messages[job.id]
            if m["claimed_by"] == worker:
                m.update(state=PENDING if retry_at else QUARANTINED, last_error=error[:4000],
                         next_attempt_at=retry_at or now, claimed_by=None, claimed_until=None,
                         processed_at=None if retry_at else now)

    async def address_states(self, *, subject: str | None = None,
                             fingerprint: str | None = None) -> list[AddressState]:
        return sorted((a for a in self.db.addresses.values()
                       if subject in (None, a.subject) and fingerprint in (None, a.fingerprint)),
                      key=lambda a: (a.subject, a.fingerprint))

    async def incidents(self, subject: str, fingerprint: str, limit: int = 100) -> list[Incident]:
        return sorted((i for i in self.db.incidents if (i.subject, i.fingerprint)
                       == (subject, fingerprint)),
                      key=lambda i: (i.received_at, i.id or 0), reverse=True)[:limit]

    async def decisions(self, subject: str, fingerprint: str, limit: int = 20) -> list[Decision]:
        return sorted((d for d in self.db.decisions if (d.subject, d.fingerprint)
                       == (subject, fingerprint)),
                      key=lambda d: (d.decided_at, d.id or 0), reverse=True)[:limit]

    async def queue_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(JOB_STATES, 0)
        for m in self.db.messages.values():
            counts[m["state"]] += 1
        return counts

    def _info(self, m: dict[str, Any]) -> MessageInfo:
        t = m["token"]
        return MessageInfo(
            id=m["id"], received_at=m["received_at"], peer=m["peer"], mail_from=m["mail_from"],
            rcpt_to=m["rcpt_to"], subject=t.subject, stream=t.stream, key_id=t.key_id,
            send_day=t.day, fingerprint=t.fingerprint, token_id=t.token_id, size=m["size"],
            state=m["state"], attempts=m["attempts"], last_error=m["last_error"],
            kind=m["kind"], classification=m["classification"],
            processed_at=m["processed_at"], has_raw=m["body"] is not None)

    async def messages(self, state: str | None, limit: int = 20) -> list[MessageInfo]:
        return [self._info(m) for m in sorted(self.db.messages.values(), key=lambda m: -m["id"])
                if state in (None, m["state"])][:limit]

    async def message(self, message_id: int) -> tuple[MessageInfo, bytes | None, list[Incident]]:
        m = self.db.messages.get(message_id)
        if m is None:
            raise NotFound(f"no stored message with id {message_id}")
        return (self._info(m), self.db.bodies.get(m["body"]),
                sorted((i for i in self.db.incidents if i.message_id == message_id),
                       key=lambda i: i.id or 0))

    async def requeue(self, *, ids: Sequence[int] = (), states: Sequence[str] = ()) -> int:
        now = dt.datetime.now(dt.UTC)
        chosen = [m for m in self.db.messages.values() if m["body"] is not None and (
            (m["id"] in ids and m["state"] != PROCESSING) or m["state"] in states)]
        for m in chosen:
            m.update(state=PENDING, next_attempt_at=now, attempts=0, claimed_by=None,
                     claimed_until=None)
        return len(chosen)

    async def purge(self, *, raw_before: dt.datetime, incidents_before: dt.datetime,
                    dry_run: bool) -> dict[str, int]:
        async with self._lock:
            by_body: dict[int, list[dict[str, Any]]] = {}
            for m in self.db.messages.values():
                if m["body"] is not None:
                    by_body.setdefault(m["body"], []).append(m)
            expired = [ms for ms in by_body.values() if all(
                m["state"] == DONE and m["received_at"] < raw_before for m in ms)]
            old = [i for i in self.db.incidents if i.received_at < incidents_before]
            if not dry_run:
                for ms in expired:
                    self.db.bodies.pop(ms[0]["body"], None)
                    for m in ms:
                        m["body"] = None
                self.db.incidents = [i for i in self.db.incidents if i not in old]
        return {"raw_messages": sum(map(len, expired)), "incidents": len(old)}

    async def fan_out(self, actions: Mapping[str, Sequence[str]], now: dt.datetime,
                      dry_run: bool) -> int:
        async with self._lock:
            new = [e for e, fanned in self.db.events.values() if not fanned]
            for e in new:
                for name in (n for n, types in actions.items() if e.type in types):
                    self.db.deliveries.setdefault((e.id, name), {
                        "state": "skipped" if dry_run else "pending", "attempts": 0,
                        "next_attempt_at": now, "claimed_until": None})
                self.db.events[e.id] = (e, True)
        return len(new)

    async def claim_deliveries(self, worker: str, now: dt.datetime, lease: dt.timedelta,
                               limit: int, *, only: str | None = None,
                               skip: Sequence[str] = ()) -> list[Delivery]:
        async with self._lock:
            due = [(key, d) for key, d in self.db.deliveries.items() if d["state"] == "pending"
                   and d["next_attempt_at"] <= now
                   and (d["claimed_until"] is None or d["claimed_until"] < now)
                   and only in (None, key[1]) and key[1] not in skip][:limit]
            for _, d in due:
                d.update(claimed_until=now + lease, attempts=d["attempts"] + 1)
            return [Delivery(self.db.events[e][0], action, d["attempts"])
                    for (e, action), d in due]

    async def delivery_done(self, delivery: Delivery, worker: str, now: dt.datetime) -> None:
        self.db.deliveries[delivery.event.id, delivery.action].update(
            state="delivered", claimed_until=None)

    async def delivery_failed(self, delivery: Delivery, worker: str, error: str,
                              now: dt.datetime, retry_at: dt.datetime | None) -> None:
        self.db.deliveries[delivery.event.id, delivery.action].update(
            state="pending" if retry_at else "dead", next_attempt_at=retry_at or now,
            claimed_until=None)

    async def outbox_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(DELIVERY_STATES, 0)
        for d in self.db.deliveries.values():
            counts[d["state"]] += 1
        counts["unfanned"] = sum(not fanned for _, fanned in self.db.events.values())
        return counts

    async def events(self, limit: int = 50) -> list[tuple[Event, dict[str, str]]]:
        latest = sorted((e for e, _ in self.db.events.values()), key=lambda e: e.occurred_at,
                        reverse=True)[:limit]
        return [(e, {a: d["state"] for (i, a), d in self.db.deliveries.items() if i == e.id})
                for e in latest]

    async def breakers(self) -> list[dict[str, Any]]:
        return [dict(b) for _, b in sorted(self.db.breakers.items())]
