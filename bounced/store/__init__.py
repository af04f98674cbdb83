"""One store interface, backends chosen by URL scheme and imported lazily.

``sqlite:///path`` (embedded default) and ``postgresql://...`` (several daemons, one database).
No SQL leaves this package.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bounced.model import (
    AddressState,
    Decision,
    DomainStats,
    Event,
    Incident,
    Job,
    NewMessage,
    Plan,
)
from bounced.store.reports import AddressQuery, AddressSummary, EventQuery, Summary

# Given the address's state, its recorded history, the new incidents and the recent figures
# of the receiving domain (for the breaker), say what to record.
Planner = Callable[
    [AddressState | None, Sequence[Incident], Sequence[Incident], DomainStats | None], Plan
]

DELIVERY_STATES = ("pending", "delivered", "dead", "skipped")


@dataclass(frozen=True)
class Outcome:
    """What processing one job produced, before the policy has had its say."""

    kind: str
    classification: dict[str, Any]
    incidents: tuple[Incident, ...]
    # Events that do not depend on the address's state (complaint, unrecognised message).
    events: tuple[Event, ...] = ()
    # The breaker's window; None when the breaker is off.
    breaker_window: dt.timedelta | None = None


@dataclass(frozen=True)
class Delivery:
    """One event to be delivered to one action."""

    event: Event
    action: str
    attempts: int


@dataclass(frozen=True)
class MessageInfo:
    """A stored message as operators see it (``bounced show``, ``bounced queue``)."""

    id: int
    received_at: dt.datetime
    peer: str
    mail_from: str
    rcpt_to: str
    subject: str
    stream: str | None
    key_id: str
    send_day: dt.date
    fingerprint: str
    token_id: str
    size: int
    state: str
    attempts: int
    last_error: str | None
    kind: str | None
    classification: dict[str, Any] | None
    processed_at: dt.datetime | None
    has_raw: bool


class Store(Protocol):
    """Durable storage of messages (as jobs), incidents, address states and decisions."""

    # Whether the worker should finish a batch while it classifies the next one. Yes where the
    # finish waits on the network (PostgreSQL's round trips); no where it holds the database's
    # one write lock in a thread that would compete with classification for the GIL (SQLite:
    # the daemon's intake commits would wait all that longer).
    overlap_finish: bool

    async def open(self, *, create: bool = True) -> None:
        """Connect and apply pending schema migrations. With ``create`` false the store must
        exist already (StoreNotFound otherwise): commands other than ``serve`` and ``migrate``
        never create one where a mistyped path or another working directory points."""

    async def close(self) -> None:
        """Release connections; safe to call twice."""

    async def ping(self) -> None:
        """Raise StoreUnavailable if the store cannot be reached."""

    async def add_messages(self, messages: Sequence[NewMessage]) -> list[int]:
        """Store messages as pending jobs; return their ids once committed durably. Messages
        with equal bodies (the recipients of one DATA transaction) share one stored body."""

    async def probe_write(self, now: dt.datetime) -> None:
        """Commit a one-row write durably; raise (StoreError) if the store cannot be written."""

    async def claim(
        self, worker: str, now: dt.datetime, lease: dt.timedelta, limit: int
    ) -> list[Job]:
        """Claim runnable jobs (pending and due, or processing with an expired lease)."""

    async def finish(
        self, job: Job, worker: str, outcome: Outcome, planner: Planner, now: dt.datetime
    ) -> Plan | None:
        """Record a job's incidents and decision atomically and mark it done.

        Returns None (recording nothing) when the claim was lost to another worker.
        """

    async def finish_batch(
        self, items: Sequence[tuple[Job, Outcome, Planner]], worker: str, now: dt.datetime
    ) -> list[Plan | Exception | None]:
        """``finish`` for several jobs in one transaction (one commit for all), in order: each
        job sees what the jobs before it recorded. Returns one result per job: its plan, None
        (claim lost), or the exception that kept that job alone from being recorded (the others
        are committed). StoreUnavailable is raised: nothing is committed then.
        """

    async def finish_and_claim(
        self, items: Sequence[tuple[Job, Outcome, Planner]], worker: str, now: dt.datetime,
        lease: dt.timedelta, limit: int,
    ) -> tuple[list[Plan | Exception | None], list[Job]]:
        """``finish_batch``, then ``claim`` (``limit`` jobs, ``lease``); one commit for both where
        that saves the worker a wait (SQLite: a store without ``overlap_finish``, whose worker
        finishes a batch before it claims the next)."""

    async def fail(
        self,
        job: Job,
        worker: str,
        error: str,
        now: dt.datetime,
        retry_at: dt.datetime | None,
    ) -> None:
        """Record an error: back to pending until ``retry_at``, or quarantined when None."""

    async def address_states(
        self, *, subject: str | None = None, fingerprint: str | None = None
    ) -> list[AddressState]:
        """The states of the addresses of a subject, or of one fingerprint."""

    async def incidents(self, subject: str, fingerprint: str, limit: int = 100) -> list[Incident]:
        """Recorded incidents of one address, newest first."""

    async def decisions(self, subject: str, fingerprint: str, limit: int = 20) -> list[Decision]:
        """Decisions about one address, newest first."""

    async def reconfirm(self, subject: str, now: dt.datetime) -> list[Decision]:
        """Mark every address of the subject confirmed again; history before now stops counting."""

    async def queue_counts(self) -> dict[str, int]:
        """Number of jobs in each state."""

    async def messages(self, state: str | None, limit: int = 20) -> list[MessageInfo]:
        """The latest stored messages, optionally of one state."""

    async def message(self, message_id: int) -> tuple[MessageInfo, bytes | None, list[Incident]]:
        """One stored message with its raw bytes and incidents; NotFound if absent."""

    async def requeue(self, *, ids: Sequence[int] = (), states: Sequence[str] = ()) -> int:
        """Put jobs back to pending for processing again; return how many."""

    async def purge(
        self, *, raw_before: dt.datetime, incidents_before: dt.datetime, dry_run: bool
    ) -> dict[str, int]:
        """Drop raw bodies of processed messages and old incidents; return the counts."""

    async def fan_out(
        self, actions: Mapping[str, Sequence[str]], now: dt.datetime, dry_run: bool
    ) -> int:
        """Create one delivery per action that takes the event's type ('skipped' in dry run).

        ``actions`` maps each configured action's name to the event types it takes."""

    async def claim_deliveries(
        self, worker: str, now: dt.datetime, lease: dt.timedelta, limit: int, *,
        only: str | None = None, skip: Sequence[str] = (),
    ) -> list[Delivery]:
        """Claim due deliveries (pending and due, or claimed with an expired lease): of the
        action ``only`` when given, of no action in ``skip``."""

    async def delivery_done(self, delivery: Delivery, worker: str, now: dt.datetime) -> None:
        """Mark a delivery delivered."""

    async def delivery_failed(
        self, delivery: Delivery, worker: str, error: str, now: dt.datetime,
        retry_at: dt.datetime | None,
    ) -> None:
        """Retry at ``retry_at``, or move to the dead-letter state when None."""

    async def outbox_counts(self) -> dict[str, int]:
        """Number of deliveries in each state, plus events not yet fanned out."""

    async def events(self, limit: int = 50) -> list[tuple[Event, dict[str, str]]]:
        """The latest events, newest first, each with its deliveries' states by action."""

    async def breakers(self) -> list[dict[str, Any]]:
        """Every domain breaker with its state."""

    async def release_breaker(self, domain: str, now: dt.datetime) -> bool:
        """Release a tripped breaker (an event says so); False if it was not tripped."""

    # The operator's lists and summaries (read-only).

    async def address_list(self, query: AddressQuery) -> list[AddressSummary]:
        """Addresses matching the query, latest change first (never changed last)."""

    async def event_list(self, query: EventQuery) -> list[tuple[Event, dict[str, str]]]:
        """Events matching the query, newest first, each with its deliveries' states."""

    async def summary(self, since: dt.datetime, now: dt.datetime) -> Summary:
        """What happened since ``since``, and how the queue and the outbox stand now."""


def shared_bodies(messages: Sequence[NewMessage]) -> tuple[list[bytes], list[int]]:
    """The distinct bodies of ``messages`` and, per message, the index of its body: what a
    group commit stores once (its bytes are bound and written once, whatever the RCPT count).
    Hashing a 10 MB body to find its equals takes about 2 ms."""
    index: dict[bytes, int] = {}
    which = [index.setdefault(m.raw, len(index)) for m in messages]
    return list(index), which


def open_store(url: str) -> Store:
    """The backend for ``url`` (not yet opened)."""
    if url.startswith("sqlite:///"):
        from bounced.store.sqlite import SQLiteStore

        return SQLiteStore(url)
    if url.startswith(("postgresql://", "postgres://")):
        from bounced.store.postgres import PostgresStore  # type: ignore[import-not-found,unused-ignore]

        store: Store = PostgresStore(url)
        return store
    from bounced.exceptions import ConfigError

    raise ConfigError(f"[store] url: unsupported scheme in {url!r}")


__all__ = ["Delivery", "MessageInfo", "Outcome", "Planner", "Store", "open_store",
           "shared_bodies"]
