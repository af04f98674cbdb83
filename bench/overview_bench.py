"""Benchmark: the operator's lists and summaries (``bounced addresses``, ``events``, ``stats``
and their HTTP endpoints) on a large store, without and with candidate indexes.

    .venv/bin/python bench/overview_bench.py [--incidents 1000000] [--backends sqlite,postgresql]
                                             [--rounds 5]

A fresh store of each backend is pre-filled as ``growth_bench.py`` does (N incidents and their
messages over 58 days, N*2/7 addresses, one in seven unconfirmed), plus what that bench leaves
out: the unconfirmed addresses' changes spread over the 58 days, one decision and one
``address.unconfirmed`` event each, and one other event per ten. Each query is then timed
through the Store API (median of ``--rounds``) with the schema before migration 0007 (the
plain received_at index on incidents), with 0007's, and with further candidate indexes;
printed: the medians of each phase and 0007's gain, so the figures of one run compare like
with like. An index is worth a migration when it turns a scan that grows with
the store into a lookup, for a query an operator or a dashboard runs often.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import growth_bench
from common import pg_database, pg_reason

SPAN = growth_bench.SPAN

# Applied one after the other; each list is timed once it is in place. The store starts with
# every migration applied, so the first phase puts back the index migration 0007 replaced.
PHASES = {
    "sqlite": [
        ("before 0007", ["DROP INDEX incidents_received", "DROP INDEX events_type",
                         "DROP INDEX events_occurred",
                         "CREATE INDEX incidents_received ON incidents (received_at)"]),
        ("0007", ["DROP INDEX incidents_received",
                  "CREATE INDEX incidents_received ON incidents (received_at, kind, reason, "
                  "counts, domain, fingerprint)",
                  "CREATE INDEX events_type ON events (type, occurred_at)",
                  "CREATE INDEX events_occurred ON events (occurred_at)"]),
        ("0007 + candidates", [
            "CREATE INDEX bench_addresses_changed ON addresses (state, changed_at)",
            "CREATE INDEX bench_decisions_decided ON decisions (decided_at)",
            "CREATE INDEX bench_messages_received ON messages (received_at, kind)"]),
    ],
    "postgresql": [
        ("before 0007", ["DROP INDEX incidents_received", "DROP INDEX events_type",
                         "CREATE INDEX incidents_received ON incidents (received_at)"]),
        ("0007", ["DROP INDEX incidents_received",
                  "CREATE INDEX incidents_received ON incidents (received_at) "
                  "INCLUDE (kind, reason, counts, domain, fingerprint)",
                  "CREATE INDEX events_type ON events (type, occurred_at)"]),
        ("0007 + candidates", [
            "CREATE INDEX bench_addresses_changed ON addresses (state, changed_at)",
            "CREATE INDEX bench_decisions_decided ON decisions (decided_at)",
            "CREATE INDEX bench_messages_received ON messages (received_at) INCLUDE (kind)"]),
    ],
}


def extras_sql(pg: bool, end: int) -> list[str]:
    """Spread the changes, then one decision and one event per unconfirmed address."""
    ts = (lambda e: f"to_timestamp({e})") if pg else (lambda e: e)
    changed = f"{end} - (CAST(subject AS BIGINT) * 40503 + 17) % {SPAN}"
    json_payload = ("json_build_object('type', 'address.unconfirmed', 'subject', subject)"
                    if pg else "json_object('type', 'address.unconfirmed', 'subject', subject)")
    return [
        f"UPDATE addresses SET changed_at = {ts(changed)} WHERE state = 'unconfirmed'",
        "INSERT INTO decisions (subject, fingerprint, action, rule, evidence, decided_at) "
        "SELECT subject, fingerprint, 'unconfirm', '3 counting bounces within 60 days', "
        "'[]', changed_at FROM addresses WHERE state = 'unconfirmed'",
        "INSERT INTO events (id, type, subject, fingerprint, payload, occurred_at, fanned_out) "
        f"SELECT 'evt_' || subject, 'address.unconfirmed', subject, fingerprint, {json_payload}, "
        f"changed_at, {'TRUE' if pg else 1} FROM addresses WHERE state = 'unconfirmed'",
        "INSERT INTO events (id, type, subject, fingerprint, payload, occurred_at, fanned_out) "
        "SELECT 'evt_c' || subject, 'complaint.received', subject, fingerprint, '{}', "
        f"{ts(changed)}, {'TRUE' if pg else 1} FROM addresses "
        "WHERE CAST(subject AS BIGINT) % 10 = 3",
    ]


async def prefill(backend: str, url: str, n: int, end: int) -> None:
    await growth_bench.migrate(url)
    if backend == "sqlite":
        path = Path(url.removeprefix("sqlite:///"))
        await asyncio.to_thread(growth_bench.sqlite_prefill, path, n, end)
        conn = sqlite3.connect(path, isolation_level=None)
        for sql in extras_sql(False, end):
            conn.execute(sql)
        conn.execute("ANALYZE")
        conn.close()
    else:
        import asyncpg

        await growth_bench.pg_prefill(url, n, end)
        conn = await asyncpg.connect(url)
        try:
            for sql in extras_sql(True, end):
                await conn.execute(sql)
            await conn.execute("VACUUM ANALYZE")
        finally:
            await conn.close()


async def apply(backend: str, url: str, statements: list[str]) -> None:
    if backend == "sqlite":
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        for sql in statements:
            conn.execute(sql)
        conn.execute("ANALYZE")
        conn.close()
        return
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        for sql in statements:
            await conn.execute(sql)
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


def queries(now: dt.datetime) -> dict[str, Callable[[Any], Awaitable[Any]]]:
    from bounced.store.reports import AddressQuery, EventQuery

    week = now - dt.timedelta(days=7)
    return {
        "addresses --state unconfirmed --since 7d": lambda s: s.address_list(
            AddressQuery(state="unconfirmed", since=week, limit=51)),
        "addresses --state unconfirmed --since 7d --domain gmail.com": lambda s: s.address_list(
            AddressQuery(state="unconfirmed", since=week, domain="gmail.com", limit=51)),
        "addresses --state unconfirmed (first page)": lambda s: s.address_list(
            AddressQuery(state="unconfirmed", limit=51)),
        "addresses (first page, any state)": lambda s: s.address_list(AddressQuery(limit=51)),
        "events --type address.unconfirmed --since 7d": lambda s: s.event_list(
            EventQuery(types=("address.unconfirmed",), since=week, limit=21)),
        "events --type complaint.received": lambda s: s.event_list(
            EventQuery(types=("complaint.received",), limit=21)),
        "events (latest)": lambda s: s.event_list(EventQuery(limit=21)),
        "stats --since 1d": lambda s: s.summary(now - dt.timedelta(days=1), now),
        "stats --since 7d": lambda s: s.summary(week, now),
        "stats --since 30d": lambda s: s.summary(now - dt.timedelta(days=30), now),
    }


async def timings(url: str, rounds: int, now: dt.datetime) -> dict[str, float]:
    from bounced.store import open_store

    store = open_store(url)
    await store.open()
    result = {}
    try:
        for name, query in queries(now).items():
            await query(store)  # warm the cache: an operator's second look
            times = []
            for _ in range(rounds):
                t0 = time.perf_counter()
                await query(store)
                times.append(time.perf_counter() - t0)
            result[name] = statistics.median(times)
    finally:
        await store.close()
    return result


async def run_backend(backend: str, url: str, n: int, rounds: int) -> None:
    now = dt.datetime.now(dt.UTC)
    end = int(now.timestamp()) - growth_bench.GAP
    t0 = time.perf_counter()
    await prefill(backend, url, n, end)
    print(f"\n{backend}: {n:,} incidents, {n * 2 // 7 + 1:,} addresses "
          f"({(n * 2 // 7 + 1) // 7 + 1:,} unconfirmed); pre-fill {time.perf_counter() - t0:.0f} s")
    results = []
    for name, statements in PHASES[backend]:
        await apply(backend, url, statements)
        results.append((name, await timings(url, rounds, now)))
    first = results[0][1]
    print(f"{'query (median ms)':<60}" + "".join(f"{n:>19}" for n, _ in results)
          + f"{'0007 gain':>10}")
    for query in first:
        print(f"{query:<60}" + "".join(f"{r[query] * 1000:>19.1f}" for _, r in results)
              + f"{first[query] / results[1][1][query]:>9.1f}x")
    total = {n: sum(r[q] for q in r if q.startswith("stats")) for n, r in results}
    print(f"{'stats, the three periods together':<60}"
          + "".join(f"{t * 1000:>19.1f}" for t in total.values()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--incidents", type=int, default=1_000_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    for backend, phases in PHASES.items():
        for name, sqls in phases:
            for sql in sqls:
                print(f"  {backend} {name}: {sql}")
    for backend in args.backends.split(","):
        if backend == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                asyncio.run(run_backend(backend, f"sqlite:///{tmp}/bench.db", args.incidents,
                                        args.rounds))
        else:
            reason = pg_reason()
            if reason:
                print(f"\npostgresql: skipped ({reason})")
                continue
            with pg_database("bounced_overview_bench") as url:
                asyncio.run(run_backend(backend, url, args.incidents, args.rounds))


if __name__ == "__main__":
    main()
