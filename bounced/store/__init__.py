"""One store interface, backends chosen by URL scheme and imported lazily.

``sqlite:///path`` (embedded default) and ``postgresql://...`` (several daemons, one database).
No SQL leaves this package.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bounced.model import AddressState, Decision, Incident, Job, NewMessage, Plan

# Given the address's state and recorded history, and the new incidents, say what to record.
Planner = Callable[[AddressState | None, Sequence[Incident], Sequence[Incident]], Plan]


@dataclass(frozen=True)
class Outcome:
    """What processing one job produced, before the policy has had its say."""

    kind: str
    classification: dict[str, Any]
    incidents: tuple[Incident, ...]


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

    async def open(self) -> None:
        """Connect and apply pending schema migrations."""

    async def close(self) -> None:
        """Release connections; safe to call twice."""

    async def ping(self) -> None:
        """Raise StoreUnavailable if the store cannot be reached."""

    async def add_messages(self, messages: Sequence[NewMessage]) -> list[int]:
        """Store messages as pending jobs; return their ids once committed durably."""

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


__all__ = ["MessageInfo", "Outcome", "Planner", "Store", "open_store"]
