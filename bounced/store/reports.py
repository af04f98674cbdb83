"""What the operator's lists and summaries read from a store: the values, and the keys that
page through them. Backend-neutral; the SQL is in ``sqlite_reports`` and ``postgres_reports``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

# How many receiving domains the summary names (the rest are summed up in the totals).
TOP_DOMAINS = 10


@dataclass(frozen=True)
class AddressSummary:
    """One address of a list: where it stands, and the latest of its history."""

    subject: str
    fingerprint: str
    address: str
    state: str
    changed_at: dt.datetime | None
    reconfirmed_at: dt.datetime | None
    incidents: int
    last_incident_at: dt.datetime | None
    last_reason: str | None
    rule: str | None  # of the latest decision about the address

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2].lower()

    def key(self) -> tuple[dt.datetime | None, str, str]:
        """Where the list stands after this address (see ``AddressQuery.after``)."""
        return self.changed_at, self.subject, self.fingerprint


@dataclass(frozen=True)
class AddressQuery:
    """Which addresses, newest change first (never changed last), and from where."""

    state: str | None = None
    since: dt.datetime | None = None  # changed at or after
    domain: str | None = None  # lower case
    limit: int = 50
    # The key of the last address of the previous page: the list goes on strictly after it,
    # so a page is never shifted by addresses that changed meanwhile.
    after: tuple[dt.datetime | None, str, str] | None = None


@dataclass(frozen=True)
class EventQuery:
    """Which events, newest first, and from where."""

    types: tuple[str, ...] = ()
    since: dt.datetime | None = None
    limit: int = 50
    after: tuple[dt.datetime, str] | None = None  # (occurred_at, id) of the last one seen


@dataclass(frozen=True)
class Summary:
    """What happened since a moment, and how the queues stand now."""

    since: dt.datetime
    now: dt.datetime
    # Messages received since, by what they turned out to be (None: not processed yet).
    messages: dict[str | None, int] = field(default_factory=dict)
    # Incidents received since: (kind, reason, counts) -> number.
    incidents: dict[tuple[str, str, bool], int] = field(default_factory=dict)
    # The receiving domains with the most incidents: (domain, incidents, addresses, counting).
    domains: list[tuple[str, int, int, int]] = field(default_factory=list)
    decisions: dict[str, int] = field(default_factory=dict)
    # Per UTC day: bounces by reason, decisions by action.
    daily_bounces: dict[tuple[dt.date, str], int] = field(default_factory=dict)
    daily_decisions: dict[tuple[dt.date, str], int] = field(default_factory=dict)
    queue: dict[str, int] = field(default_factory=dict)
    oldest_job: dt.datetime | None = None  # received_at of the oldest pending or processing
    outbox: dict[str, int] = field(default_factory=dict)
    oldest_delivery: dt.datetime | None = None  # created_at of the oldest pending delivery
    oldest_unfanned: dt.datetime | None = None  # occurred_at of the oldest event not fanned out
    breakers: list[dict[str, Any]] = field(default_factory=list)


def day_of(epoch_day: int) -> dt.date:
    return dt.date(1970, 1, 1) + dt.timedelta(days=int(epoch_day))


# The summary reads the period's incidents once, grouped by (UTC day, kind, reason, counts);
# these two fold those rows into the summary's figures.

def incident_counts(rows: Sequence[Sequence[Any]]) -> dict[tuple[str, str, bool], int]:
    counts: dict[tuple[str, str, bool], int] = {}
    for _, kind, reason, counting, n in rows:
        key = (kind, reason, bool(counting))
        counts[key] = counts.get(key, 0) + int(n)
    return counts


def daily_bounces(rows: Sequence[Sequence[Any]]) -> dict[tuple[dt.date, str], int]:
    days: dict[tuple[dt.date, str], int] = {}
    for day, kind, reason, _, n in rows:
        if kind == "bounce":
            key = (day_of(day), reason)
            days[key] = days.get(key, 0) + int(n)
    return days
