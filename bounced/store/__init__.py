"""One store interface, backends chosen by URL scheme and imported lazily.

``sqlite:///path`` (embedded default) and ``postgresql://...`` (several daemons, one database).
No SQL leaves this package, and no rule enters it: what recording an outcome means (decisions,
breakers, events) is ``bounced.policy.core``'s, which hands a backend plain data operations
(``Tx``) to carry out in one transaction of its own (``Store.run``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import structlog

from bounced.config import Settings, redact
from bounced.exceptions import StoreUnavailable
from bounced.loop import Outage, backoff
from bounced.model import AddressState, Decision, DomainStats, Event, Incident, Job, NewMessage
from bounced.store.reports import AddressQuery, AddressSummary, EventQuery, Summary

log = structlog.get_logger("bounced.store")

DELIVERY_STATES = ("pending", "delivered", "dead", "skipped")
RETRY_FIRST = 0.25  # seconds before trying an unreachable store again, doubling
RETRY_MAX = 5.0

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Op:
    """One data operation: the name of a ``Tx`` method and its arguments."""

    name: str
    args: tuple[Any, ...]


# Work for one transaction: a generator that yields data operations, is sent the result of
# each, and returns its own result. It does no I/O itself, so one piece of work runs on every
# backend: inside aiosqlite's thread as plain calls (SQLite, one trip to that thread), or as
# awaited round trips (PostgreSQL).
Work = Generator[Op, Any, T]


def drive(work: Work[T], tx: Any) -> T:
    """Carry out ``work`` with a backend's synchronous ``tx`` (in the transaction's thread)."""
    result: Any = None
    try:
        while True:
            op = work.send(result)
            result = getattr(tx, op.name)(*op.args)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


async def drive_async(work: Work[T], tx: Any) -> T:
    """Carry out ``work`` with a backend's ``tx`` whose operations are coroutines."""
    result: Any = None
    try:
        while True:
            op = work.send(result)
            result = await getattr(tx, op.name)(*op.args)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


class Tx(Protocol):
    """The data operations of one transaction, as ``Work`` asks for them (synchronous form;
    PostgreSQL's are coroutines of the same names). Each is meaningful without any rule: rows
    read, written or locked; values go in and out verbatim."""

    def owned_jobs(self, ids: Sequence[int], worker: str) -> set[int]:
        """The jobs among ``ids`` still claimed by ``worker`` (locked for this transaction)."""

    def addresses(self, first: Mapping[tuple[str, str], str]
                  ) -> dict[tuple[str, str], AddressState]:
        """The address rows of the (subject, fingerprint) keys, locked, each created (state
        confirmed, the address given) if missing; a row whose address is empty takes the one
        given, if any."""

    def lock_domains(self, domains: Sequence[str]) -> None:
        """Serialise work on these receiving domains with other transactions (sorted)."""

    def delete_incidents(self, message_ids: Sequence[int]) -> None:
        """Delete the incidents recorded for these messages."""

    def history(self, subject: str, fingerprint: str, after: dt.datetime | None, limit: int,
                domain: str, since: dt.datetime | None) -> tuple[list[Incident],
                                                                  DomainStats | None]:
        """The address's newest ``limit`` counting incidents received after ``after``, oldest
        first; and, when ``since`` is given, the domain's figures: its breaker, and the
        distinct fingerprints with counting incidents received after ``since`` and after the
        breaker's release."""

    def add_incidents(self, message_id: int, incidents: Sequence[Incident]) -> None:
        """Insert incidents (one per message and address at most)."""

    def incident_ids(self, message_id: int) -> list[int]:
        """The ids of the message's incidents, in insertion order."""

    def add_decision(self, decision: Decision) -> None:
        """Insert a decision, verbatim."""

    def update_address(self, subject: str, fingerprint: str, state: str,
                       changed_at: dt.datetime, reconfirmed_at: dt.datetime | None) -> None:
        """Set an address's state and when it changed (and, if given, reconfirmed_at)."""

    def subject_addresses(self, subject: str) -> list[AddressState]:
        """The address rows of a subject, by fingerprint, locked."""

    def save_breaker(self, domain: str, state: str, addresses: int, at: dt.datetime) -> None:
        """Insert or overwrite a domain's breaker row (state, addresses, tripped_at)."""

    def release_breaker(self, domain: str, at: dt.datetime) -> bool:
        """Mark a tripped breaker released at ``at``; whether there was one."""

    def add_events(self, events: Sequence[Event]) -> None:
        """Insert events (an id is written once)."""

    def mark_done(self, done: Sequence[tuple[int, str, dict[str, Any]]],
                  at: dt.datetime) -> None:
        """Mark jobs done with their kind and classification: (id, kind, classification)."""

    def claim(self, worker: str, now: dt.datetime, lease: dt.timedelta,
              limit: int) -> list[Job]:
        """Claim runnable jobs (see ``Store.claim``)."""


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
        """Connect, and with ``create`` (``serve``, ``migrate``) create the store if missing
        and apply pending schema migrations. Without it the store must exist already
        (StoreNotFound otherwise: no other command creates one where a mistyped path or
        another working directory points) and be at this bounced's schema (SchemaMismatch
        otherwise: no other command changes one). A schema newer than this bounced knows is
        refused either way (SchemaMismatch), before anything is changed."""

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

    async def run(self, work: Work[T]) -> T:
        """Carry out ``work`` in one transaction of this store: committed when it returns,
        rolled back when it raises (StoreUnavailable when the store cannot be reached)."""

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


async def open_ready_store(settings: Settings, wait: float = 0.0, *,
                           create: bool = False) -> Store:
    """Open the configured store, retrying for up to ``wait`` seconds while it cannot be
    reached.

    The daemon, started together with its database server, waits for it instead of failing;
    command-line tools (wait 0) say at once that it is unreachable. Only ``create`` (serve,
    migrate) makes a new store; otherwise one must exist where the configuration points.
    """
    import asyncio

    url = settings.store_url
    if url.startswith("sqlite:"):
        wait = 0.0  # an embedded file that cannot be opened will not come up by itself
    deadline = asyncio.get_running_loop().time() + wait
    failures = 0
    outage = Outage("startup")  # a line per kind of failure while waiting, not per attempt
    while True:
        store = open_store(url)
        try:
            await store.open(create=create)
        except StoreUnavailable as exc:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise
            failures += 1
            delay = min(backoff(failures, RETRY_FIRST, RETRY_MAX), left)
            outage.failed(exc, store=redact(url), waiting_up_to=round(left, 1))
            await asyncio.sleep(delay)
            continue
        outage.recovered()
        return store


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


__all__ = ["DELIVERY_STATES", "Delivery", "MessageInfo", "Op", "Store", "Tx", "Work", "drive",
           "drive_async", "open_ready_store", "open_store", "shared_bodies"]
