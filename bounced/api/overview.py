"""Lists and summaries for operators, shared by the CLI, the HTTP API and the dashboard:
parsing what they are asked (``--since 7d``, filters, cursors) and the JSON they answer.

Every input here comes from a user or from the network: a bad one raises ``BadQuery`` with
one line that names the parameter.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from bounced.config import EVENT_TYPES
from bounced.model import CONFIRMED, JOB_STATES, UNCONFIRMED, Event, bound_address
from bounced.store import DELIVERY_STATES, Store
from bounced.store.reports import AddressQuery, AddressSummary, EventQuery, Summary

STATES = (CONFIRMED, UNCONFIRMED)
MAX_LIMIT = 500
DEFAULT_SINCE = "7d"
# Summaries are per UTC day; more than a year of days helps nobody read a chart.
MAX_SUMMARY_DAYS = 400

_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d{1,6})([mhdw])")
_DOMAIN = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,251}[a-z0-9])?")


class BadQuery(ValueError):
    """A list or summary asked for with a value that means nothing: one line, the parameter
    first."""


def parse_since(text: str, now: dt.datetime, name: str = "since") -> dt.datetime:
    """``7d``, ``24h``, ``90m``, ``2w`` before ``now``; or a day ``YYYY-MM-DD`` (its start,
    UTC); or a moment ``YYYY-MM-DDTHH:MM[:SS][+HH:MM]`` (UTC when no offset is given)."""
    value = text.strip()
    if m := _DURATION.fullmatch(value.lower()):
        try:
            return now - dt.timedelta(seconds=int(m[1]) * _UNITS[m[2]])
        except OverflowError:  # before the year 1
            raise BadQuery(f"{name}: too far back: {_show(text)}") from None
    try:
        if len(value) == 10:
            day = dt.date.fromisoformat(value)
            return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
        if "T" in value or " " in value:
            moment = dt.datetime.fromisoformat(value)
            return (moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None
                    else moment.astimezone(dt.UTC))
    except ValueError:
        pass
    except OverflowError:  # an offset that takes it before the year 1
        raise BadQuery(f"{name}: too far back: {_show(text)}") from None
    raise BadQuery(f"{name}: not a duration (90m, 24h, 7d, 2w), a day (YYYY-MM-DD) or a "
                   f"moment (YYYY-MM-DDTHH:MM): {_show(text)}")


def parse_state(text: str | None) -> str | None:
    if text is None or text == "any":
        return None
    if text not in STATES:
        raise BadQuery(f"state: one of {', '.join(STATES)}, any: {_show(text)}")
    return text


def parse_domain(text: str | None) -> str | None:
    if text is None:
        return None
    domain = text.strip().lower().removeprefix("@").rstrip(".")
    if not _DOMAIN.fullmatch(domain):
        raise BadQuery(f"domain: not a domain name: {_show(text)}")
    return domain


def parse_types(values: Iterable[str]) -> tuple[str, ...]:
    """Event types, each given alone or comma-separated."""
    types = [t.strip() for v in values for t in v.split(",") if t.strip()]
    for t in types:
        if t not in EVENT_TYPES:
            raise BadQuery(f"type: one of {', '.join(EVENT_TYPES)}: {_show(t)}")
    return tuple(dict.fromkeys(types))


def parse_limit(text: str | None, default: int = 50) -> int:
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise BadQuery(f"limit: a whole number from 1 to {MAX_LIMIT}: {_show(text)}") from None
    if not 1 <= value <= MAX_LIMIT:
        raise BadQuery(f"limit: a whole number from 1 to {MAX_LIMIT}: {value}")
    return value


def _show(text: str) -> str:
    """Hostile text shown in an error line: printable, bounded."""
    shown = text if len(text) <= 80 else text[:77] + "..."
    return repr(shown)


# --- cursors -------------------------------------------------------------------------------
# A cursor is the key of the last item of a page (opaque to clients: base64url of JSON), so
# the next page starts strictly after it whatever was added meanwhile.

def _encode(kind: str, values: Sequence[Any]) -> str:
    raw = json.dumps([kind, *values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(kind: str, cursor: str, arity: int) -> list[Any]:
    bad = BadQuery(f"cursor: not a cursor of this list: {_show(cursor)}")
    if len(cursor) > 2048:
        raise bad
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError):
        raise bad from None
    if not (isinstance(data, list) and len(data) == arity + 1 and data[0] == kind):
        raise bad
    return data[1:]


def _moment(value: Any, cursor: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise BadQuery(f"cursor: not a cursor of this list: {_show(cursor)}") from None
    if moment.tzinfo is None:
        raise BadQuery(f"cursor: not a cursor of this list: {_show(cursor)}")
    return moment


def address_cursor(item: AddressSummary) -> str:
    changed, subject, fp = item.key()
    return _encode("a", [changed.isoformat() if changed else None, subject, fp])


def parse_address_cursor(cursor: str | None) -> tuple[dt.datetime | None, str, str] | None:
    if not cursor:
        return None
    changed, subject, fp = _decode("a", cursor, 3)
    if not (isinstance(subject, str) and isinstance(fp, str)):
        raise BadQuery(f"cursor: not a cursor of this list: {_show(cursor)}")
    return (None if changed is None else _moment(changed, cursor)), subject, fp


def event_cursor(event: Event) -> str:
    return _encode("e", [event.occurred_at.isoformat(), event.id])


def parse_event_cursor(cursor: str | None) -> tuple[dt.datetime, str] | None:
    if not cursor:
        return None
    occurred, event_id = _decode("e", cursor, 2)
    if not isinstance(event_id, str):
        raise BadQuery(f"cursor: not a cursor of this list: {_show(cursor)}")
    return _moment(occurred, cursor), event_id


# --- the lists -----------------------------------------------------------------------------

def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def address_json(a: AddressSummary) -> dict[str, Any]:
    # Only the address the token binds (rows recorded before that was checked may hold
    # another one a report named).
    address = bound_address(a.address, a.fingerprint) or ""
    return {"subject": a.subject, "address": address,
            "domain": address.rpartition("@")[2].lower(),
            "fingerprint": a.fingerprint, "state": a.state, "changed_at": _iso(a.changed_at),
            "reconfirmed_at": _iso(a.reconfirmed_at), "incidents": a.incidents,
            "last_incident_at": _iso(a.last_incident_at), "last_reason": a.last_reason,
            "rule": a.rule}


def event_json(event: Event, deliveries: dict[str, str]) -> dict[str, Any]:
    return {**event.payload, "deliveries": deliveries}


async def address_page(store: Store, query: AddressQuery
                       ) -> tuple[list[AddressSummary], str | None]:
    """One page of addresses and the cursor of the next (None: this was the last)."""
    items = await store.address_list(_one_more(query))
    more = len(items) > query.limit
    items = items[:query.limit]
    return items, address_cursor(items[-1]) if more and items else None


async def event_page(store: Store, query: EventQuery
                     ) -> tuple[list[tuple[Event, dict[str, str]]], str | None]:
    items = await store.event_list(_one_more(query))
    more = len(items) > query.limit
    items = items[:query.limit]
    return items, event_cursor(items[-1][0]) if more and items else None


def _one_more(query: Any) -> Any:
    """The query for one item more than asked: whether it comes says if a next page exists."""
    import dataclasses

    return dataclasses.replace(query, limit=query.limit + 1)


# --- the summary ---------------------------------------------------------------------------

def summary_json(s: Summary) -> dict[str, Any]:
    """The summary as the API, ``bounced stats --json`` and the dashboard read it."""
    by_reason: dict[str, dict[str, int]] = {}
    by_kind: dict[str, int] = {}
    for (kind, reason, counts), n in sorted(s.incidents.items()):
        by_kind[kind] = by_kind.get(kind, 0) + n
        if kind == "bounce":
            row = by_reason.setdefault(reason, {"bounces": 0, "counting": 0})
            row["bounces"] += n
            row["counting"] += n if counts else 0
    last = s.now.date()
    first = max(s.since.date(), last - dt.timedelta(days=MAX_SUMMARY_DAYS - 1))
    days = [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]
    reasons = sorted({reason for _, reason in s.daily_bounces})
    actions = ("unconfirm", "reconfirm", "held")

    def series(counts: dict[tuple[dt.date, str], int], name: str) -> list[int]:
        return [counts.get((day, name), 0) for day in days]

    def age(moment: dt.datetime | None) -> float | None:
        return None if moment is None else round((s.now - moment).total_seconds(), 3)

    return {
        "since": s.since.isoformat(), "now": s.now.isoformat(),
        "messages": {("unprocessed" if k is None else k): n
                     for k, n in sorted(s.messages.items(), key=lambda kv: str(kv[0]))},
        "incidents": {"total": sum(s.incidents.values()),
                      "counting": sum(n for (_, _, c), n in s.incidents.items() if c),
                      "by_kind": by_kind},
        "bounces_by_reason": [{"reason": r, **v} for r, v in
                              sorted(by_reason.items(), key=lambda kv: (-kv[1]["bounces"], kv[0]))],
        "top_domains": [{"domain": d, "incidents": n, "addresses": a, "counting": c}
                        for d, n, a, c in s.domains],
        "decisions": {a: s.decisions.get(a, 0) for a in actions},
        "daily": {
            "days": [d.isoformat() for d in days],
            "bounces_by_reason": {r: series(s.daily_bounces, r) for r in reasons},
            "decisions": {a: series(s.daily_decisions, a) for a in actions},
        },
        "queue": {"jobs": {**dict.fromkeys(JOB_STATES, 0), **s.queue},
                  "oldest_job_at": _iso(s.oldest_job),
                  "oldest_job_age_seconds": age(s.oldest_job)},
        "outbox": {"deliveries": {**dict.fromkeys(DELIVERY_STATES, 0), **s.outbox},
                   "oldest_pending_at": _iso(s.oldest_delivery),
                   "oldest_pending_age_seconds": age(s.oldest_delivery),
                   "oldest_unfanned_at": _iso(s.oldest_unfanned)},
        "breakers": [{**b, "tripped_at": _iso(b["tripped_at"]),
                      "released_at": _iso(b["released_at"])} for b in s.breakers],
    }


async def summary(store: Store, since: dt.datetime, now: dt.datetime) -> dict[str, Any]:
    if since > now:
        raise BadQuery(f"since: {since.isoformat()} is in the future")
    return summary_json(await store.summary(since, now))
