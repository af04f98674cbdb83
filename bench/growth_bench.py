"""Benchmark: the cost of processing one bounce with 10 thousand vs 5 million stored incidents.

    .venv/bin/python bench/growth_bench.py [--quick] [--sizes 10000,5000000]
                                           [--backends sqlite,postgresql] [--rounds 3]
                                           [--per-round 400] [--keep]

For each backend and size, a fresh store (schema by the store's own migrations) is pre-filled
in bulk with SQL: N incidents with their N messages (state done, raw body purged, a real
classification JSON), over N*2/7 subjects (3-4 incidents each, one address each, one in seven
unconfirmed), proper token ids (subject.key-id day fingerprint MAC, base32), send days and
receipt times spread over the 58 days before the last two hours (so the domain breaker's
one-hour window holds only what the bench itself adds, at every size), reasons mixed (about
half count), receiving domains skewed (40% on five big providers, the rest over 20,011).

Then, alternating between the sizes round by round, bounces for random existing subjects are
stored (untimed), claimed and processed exactly as the worker does: ``Worker.process`` (classify,
incidents, policy, ``policy.core.finish``), each timed alone, with the daemon's logging set up (to
/dev/null). Printed: median and p90 per bounce, claim cost per job, the ratio largest/smallest
(target <= 1.3x), pre-fill time, and the database size per million incidents.
--quick uses 1 million instead of 5 million.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import dsn, median, percentile, pg_database, pg_reason

B32 = "abcdefghijklmnopqrstuvwxyz234567"
TOP_DOMAINS = ("gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "aol.com")
SPAN = 58 * 86400  # receipt times spread over this many seconds ...
GAP = 2 * 3600  # ... ending this long before the bench starts
MASK40 = 1 << 40
BATCH = 20  # the worker's default batch size


# --------------------------------------------------------------------------- the synthetic data

def b32(h: int, n: int = 8) -> str:
    return "".join(B32[(h >> (5 * k)) & 31] for k in reversed(range(n)))


def sql_b32(expr: str, n: int = 8, pg: bool = False) -> str:
    """SQL for the n base32 characters of the integer ``expr`` (the same as ``b32``)."""
    cast = "::int" if pg else ""
    return " || ".join(
        f"substr('{B32}', ((({expr}) >> {5 * k}) & 31){cast} + 1, 1)" for k in reversed(range(n))
    )


def fp_hash(s: int) -> int:
    return (s * 2654435761 + 12345) % MASK40


def subject_of(s: int) -> str:
    return str(100000 + s)


def domain_of(hf: int) -> str:
    return TOP_DOMAINS[hf % 5] if hf % 10 < 4 else f"d{hf % 20011}.example"


CLASSIFICATION = (
    '{"kind": "bounce", "feedback_type": null, "recipients": [{"address": "user@example.net", '
    '"action": "failed", "status": "5.1.1", "reply_code": "550", "reason": "userunknown", '
    '"hard": true, "diagnostic": "550 5.1.1 <user@example.net>: Recipient address rejected: '
    'User unknown in virtual mailbox table", "remote_mta": "mx.example.net"}], "original": '
    '{"message_id": "<digest-1@example.org>", "from": "app@example.org", "to": '
    '"user@example.net", "subject": "Your weekly digest"}}'
)

# x % 10 -> (kind, action, status, reply code, reason, hard, counts)
OUTCOMES = (
    ("bounce", "failed", "5.1.1", "550", "userunknown", 1, 1),
    ("bounce", "failed", "5.1.1", "550", "userunknown", 1, 1),
    ("bounce", "failed", "5.1.1", "550", "userunknown", 1, 1),
    ("bounce", "failed", "5.2.2", "552", "mailboxfull", 0, 1),
    ("bounce", "failed", "5.1.2", "550", "hostunknown", 1, 1),
    ("bounce", "failed", "5.7.1", "554", "blocked", 0, 0),
    ("bounce", "failed", "5.7.1", "550", "spamdetected", 0, 0),
    ("bounce", "failed", "4.4.7", "451", "expired", 0, 0),
    ("delay", "delayed", "4.4.1", "421", "networkerror", 0, 0),
    ("bounce", "failed", "5.0.0", "550", "undefined", 0, 0),
)


def case(column: int, pg: bool) -> str:
    whens = " ".join(
        f"WHEN {i} THEN {v!r}" if isinstance(v := o[column], str)
        else f"WHEN {i} THEN {'true' if v else 'false'}" if pg else f"WHEN {i} THEN {v}"
        for i, o in enumerate(OUTCOMES)
    )
    return f"CASE x % 10 {whens} END"


def row_sql(pg: bool) -> str:
    """A SELECT of the derived columns of incident/message number x (from a series ``x``)."""
    top = " ".join(f"WHEN {i} THEN '{d}'" for i, d in enumerate(TOP_DOMAINS))
    return f"""
        SELECT x, s, subject, fp, domain, recv, sday,
               subject || '.k1' || {sql_b32('sday', 4, pg)} || fp
                 || {sql_b32('(x * 11400714819 + 7) % 1099511627776', 8, pg)}
                 || {sql_b32('(x * 6364136223 + 11) % 1099511627776', 8, pg)} AS token_id
        FROM (
            SELECT x, s, CAST(100000 + s AS TEXT) AS subject, {sql_b32('hf', 8, pg)} AS fp,
                   CASE WHEN hf % 10 < 4 THEN CASE hf % 5 {top} END
                        ELSE 'd' || (hf % 20011) || '.example' END AS domain,
                   recv, recv / 86400 - x % 3 AS sday
            FROM (
                SELECT x, s, (s * 2654435761 + 12345) % 1099511627776 AS hf,
                       :end - (x * 40503 + 17) % {SPAN} AS recv
                FROM (SELECT x, x * 2 / 7 AS s FROM series) AS a
            ) AS b
        ) AS c
    """


def sqlite_prefill(path: Path, n: int, end: int) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in ("PRAGMA synchronous=OFF", "PRAGMA cache_size=-1000000",
                   "PRAGMA foreign_keys=OFF", "PRAGMA temp_store=MEMORY"):
        conn.execute(pragma)
    # Bulk load as a restore does: secondary indexes dropped, loaded, then built in one go.
    indexes = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
        "AND tbl_name IN ('messages', 'incidents', 'addresses')").fetchall()
    for name, _ in indexes:
        conn.execute(f'DROP INDEX "{name}"')
    rows = row_sql(pg=False).replace(":end", str(end))
    series = ("WITH RECURSIVE series(x) AS (SELECT ? UNION ALL SELECT x + 1 FROM series "
              "WHERE x < ?) ")
    chunk = 250_000
    for lo in range(1, n + 1, chunk):
        hi = min(n, lo + chunk - 1)
        conn.execute("BEGIN")
        conn.execute(
            series + "INSERT INTO messages (id, received_at, peer, mail_from, rcpt_to, subject, "
            "stream, key_id, send_day, fingerprint, token_id, size, state, attempts, "
            "next_attempt_at, kind, classification, processed_at, raw_purged_at) "
            "SELECT x, recv, '192.0.2.25', '', 'bounce-' || token_id || '@bounces.example.org', "
            "subject, NULL, 'k1', date(sday * 86400, 'unixepoch'), fp, token_id, "
            "2000 + x % 6000, 'done', 1, recv, 'bounce', ?, recv + 1, recv + 30 * 86400 "
            f"FROM ({rows})", (lo, hi, CLASSIFICATION))
        conn.execute(
            series + "INSERT INTO incidents (id, message_id, subject, fingerprint, address, "
            "token_id, send_day, received_at, kind, action, status, reply_code, reason, hard, "
            "counts, diagnostic, remote_mta, domain) "
            "SELECT x, x, subject, fp, 'user' || s || '@' || domain, token_id, "
            "date(sday * 86400, 'unixepoch'), recv, "
            f"{case(0, False)}, {case(1, False)}, {case(2, False)}, {case(3, False)}, "
            f"{case(4, False)}, {case(5, False)}, {case(6, False)}, "
            f"{case(3, False)} || ' ' || {case(2, False)} || ' <user' || s || '@' || domain || "
            "'>: Recipient address rejected: User unknown in virtual mailbox table', "
            f"'mx.' || domain, domain FROM ({rows})", (lo, hi))
        conn.execute("COMMIT")
    subjects = n * 2 // 7 + 1
    conn.execute("BEGIN")
    conn.execute(
        "WITH RECURSIVE series(y) AS (SELECT ? UNION ALL SELECT y + 1 FROM series "
        "WHERE y < ?) INSERT INTO addresses (subject, fingerprint, address, state, "
        "changed_at) SELECT CAST(100000 + s AS TEXT), " + sql_b32("hf")
        + ", 'user' || s || '@' || CASE WHEN hf % 10 < 4 THEN CASE hf % 5 "
        + " ".join(f"WHEN {i} THEN '{d}'" for i, d in enumerate(TOP_DOMAINS))
        + " END ELSE 'd' || (hf % 20011) || '.example' END, "
        "CASE WHEN s % 7 = 0 THEN 'unconfirmed' ELSE 'confirmed' END, "
        f"CASE WHEN s % 7 = 0 THEN {end} END FROM (SELECT y AS s, "
        "(y * 2654435761 + 12345) % 1099511627776 AS hf FROM series)",
        (0, subjects - 1))
    conn.execute("COMMIT")
    for _, sql in indexes:
        conn.execute(sql)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def sqlite_sizes(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        tables = dict(conn.execute(
            "SELECT coalesce(tbl_name, d.name), SUM(pgsize) FROM dbstat AS d "
            "LEFT JOIN sqlite_master AS m ON m.name = d.name GROUP BY 1"))
    finally:
        conn.close()
    return {"total": path.stat().st_size, **{k: int(v) for k, v in tables.items()}}


async def pg_prefill(url: str, n: int, end: int) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SET synchronous_commit = off")
        await conn.execute("SET maintenance_work_mem = '1GB'")
        # Bulk load as a restore does: no foreign-key triggers, secondary indexes built after.
        await conn.execute("SET session_replication_role = replica")
        indexes = await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' AND "
            "tablename IN ('messages', 'incidents', 'addresses') AND indexname NOT IN "
            "(SELECT conname FROM pg_constraint)")
        for index in indexes:
            await conn.execute(f'DROP INDEX "{index[0]}"')
        chunk = 1_000_000
        for lo in range(1, n + 1, chunk):
            hi = min(n, lo + chunk - 1)
            # The derived columns once per chunk, for both tables.
            await conn.execute(
                f"CREATE TEMP TABLE generated AS WITH series AS (SELECT generate_series({lo}, "
                f"{hi})::bigint AS x) {row_sql(pg=True).replace(':end', str(end))}")
            rows = "SELECT * FROM generated"
            await conn.execute(
                "INSERT INTO messages (id, received_at, peer, mail_from, rcpt_to, "
                "subject, stream, key_id, send_day, fingerprint, token_id, size, state, "
                "attempts, next_attempt_at, kind, classification, processed_at, raw_purged_at) "
                "OVERRIDING SYSTEM VALUE "
                "SELECT x, to_timestamp(recv), '192.0.2.25', '', "
                "'bounce-' || token_id || '@bounces.example.org', subject, NULL, 'k1', "
                "date '1970-01-01' + sday::int, fp, token_id, 2000 + x % 6000, 'done', 1, "
                "to_timestamp(recv), 'bounce', $1::jsonb, to_timestamp(recv + 1), "
                f"to_timestamp(recv + 30 * 86400) FROM ({rows}) AS r", CLASSIFICATION)
            await conn.execute(
                "INSERT INTO incidents (id, message_id, subject, fingerprint, address, "
                "token_id, send_day, received_at, kind, action, status, reply_code, reason, "
                "hard, counts, diagnostic, remote_mta, domain) OVERRIDING SYSTEM VALUE "
                "SELECT x, x, subject, fp, 'user' || s || '@' || domain, token_id, "
                "date '1970-01-01' + sday::int, to_timestamp(recv), "
                f"{case(0, True)}, {case(1, True)}, {case(2, True)}, {case(3, True)}, "
                f"{case(4, True)}, {case(5, True)}, {case(6, True)}, "
                f"{case(3, True)} || ' ' || {case(2, True)} || ' <user' || s || '@' || domain "
                "|| '>: Recipient address rejected: User unknown in virtual mailbox table', "
                f"'mx.' || domain, domain FROM ({rows}) AS r")
            await conn.execute("DROP TABLE generated")
        subjects = n * 2 // 7 + 1
        await conn.execute(
            f"INSERT INTO addresses (subject, fingerprint, address, state, changed_at) "
            f"SELECT CAST(100000 + s AS TEXT), {sql_b32('hf', 8, True)}, "
            "'user' || s || '@' || CASE WHEN hf % 10 < 4 THEN CASE hf % 5 "
            + " ".join(f"WHEN {i} THEN '{d}'" for i, d in enumerate(TOP_DOMAINS))
            + " END ELSE 'd' || (hf % 20011) || '.example' END, "
            "CASE WHEN s % 7 = 0 THEN 'unconfirmed' ELSE 'confirmed' END, "
            f"CASE WHEN s % 7 = 0 THEN to_timestamp({end}) END FROM (SELECT s, "
            "(s * 2654435761 + 12345) % 1099511627776 AS hf FROM "
            f"generate_series(0, {subjects - 1}::bigint) AS s) AS a")
        for index in indexes:
            await conn.execute(index[1])
        await conn.execute("SET session_replication_role = DEFAULT")
        for table in ("messages", "incidents", "decisions"):
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT COALESCE(MAX(id), 0) + 1 FROM {table}), false)")
        # A production database has been vacuumed and analysed by autovacuum.
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def pg_sizes(url: str) -> dict[str, int]:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        total = await conn.fetchval("SELECT pg_database_size(current_database())")
        tables = await conn.fetch(
            "SELECT relname, pg_total_relation_size(oid) FROM pg_class "
            "WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace")
    finally:
        await conn.close()
    return {"total": int(total), **{r[0]: int(r[1]) for r in tables}}


# --------------------------------------------------------------------------- the measurement

async def migrate(url: str) -> None:
    from bounced.store import open_store

    store = open_store(url)
    await store.open()
    await store.close()


async def measure(url: str, n: int, count: int, seed: int) -> dict[str, list[float]]:
    """Store ``count`` bounces for existing subjects, then claim and process them, timed."""
    from bounced.config import Settings
    from bounced.model import NewMessage, TokenFields
    from bounced.queue.worker import Worker
    from bounced.store import open_store

    rng = random.Random(seed)
    subjects = n * 2 // 7 + 1
    store = open_store(url)
    await store.open()
    worker = Worker(store, Settings(), lambda: dt.datetime.now(dt.UTC), name="growth-bench")
    process: list[float] = []
    claim: list[float] = []
    try:
        for _ in range(0, count, BATCH):
            now = dt.datetime.now(dt.UTC)
            batch = []
            for _ in range(BATCH):
                s = rng.randrange(subjects)
                hf = fp_hash(s)
                address = f"user{s}@{domain_of(hf)}"
                day = now.date() - dt.timedelta(days=rng.randint(0, 14))
                day_code = b32((day - dt.date(1970, 1, 1)).days, 4)
                token_id = (f"{subject_of(s)}.k1{day_code}{b32(hf)}"
                            f"{b32(rng.getrandbits(40))}{b32(rng.getrandbits(40))}")
                rp = f"bounce-{token_id}@bounces.example.org"
                batch.append(NewMessage(
                    received_at=now, peer="127.0.0.1", mail_from="", rcpt_to=rp,
                    token=TokenFields(subject=subject_of(s), stream=None, key_id="k1", day=day,
                                      fingerprint=b32(hf), token_id=token_id),
                    raw=dsn(address, rp, rng.choice(("5.1.1", "5.1.1", "5.2.2", "5.7.1"))),
                ))
            await store.add_messages(batch)
            t0 = time.perf_counter()
            jobs = await store.claim(worker.name, dt.datetime.now(dt.UTC),
                                     dt.timedelta(seconds=300), BATCH)
            claim.append((time.perf_counter() - t0) / max(len(jobs), 1))
            for job in jobs:
                t0 = time.perf_counter()
                await worker.process(job)
                process.append(time.perf_counter() - t0)
        counts = await store.queue_counts()
        assert counts["pending"] == 0 and counts["processing"] == 0, counts
    finally:
        await store.close()
    return {"process": process, "claim": claim}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="1 million instead of 5 million")
    p.add_argument("--sizes", help="comma-separated incident counts (default 10000,5000000)")
    p.add_argument("--backends", default="sqlite,postgresql")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--per-round", type=int, default=400, help="bounces per size and round")
    p.add_argument("--keep", action="store_true", help="keep the databases")
    args = p.parse_args()
    sizes = [int(x) for x in (args.sizes or ("10000,1000000" if args.quick
                                             else "10000,5000000")).split(",")]

    from bounced.logs import configure

    devnull = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    configure(level="info", fmt="json", stream=devnull)  # the daemon's logging, discarded

    backends = [b for b in args.backends.split(",") if b]
    if "postgresql" in backends and (reason := pg_reason()) is not None:
        print(f"PostgreSQL skipped: {reason}")
        backends.remove("postgresql")
    tmp = Path(tempfile.mkdtemp(prefix="bounced-growth-", dir=os.environ.get("TMPDIR", "/tmp")))
    started = time.monotonic()
    print(f"growth bench {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC: sizes {sizes}, "
          f"{args.rounds} rounds x {args.per_round} bounces per size, files in {tmp}")
    end = int(time.time()) - GAP
    summary = []
    for backend in backends:
        import contextlib

        with contextlib.ExitStack() as stack:
            urls: dict[int, str] = {}
            info: dict[int, dict[str, Any]] = {}
            for n in sizes:
                if backend == "sqlite":
                    url = f"sqlite:///{tmp / f'growth-{n}.db'}"
                else:
                    url = stack.enter_context(pg_database(f"bounced_growth_{n}", keep=args.keep))
                t0 = time.perf_counter()
                asyncio.run(migrate(url))
                if backend == "sqlite":
                    sqlite_prefill(Path(url.removeprefix("sqlite:///")), n, end)
                else:
                    asyncio.run(pg_prefill(url, n, end))
                fill = time.perf_counter() - t0
                urls[n] = url
                sizes_now = (sqlite_sizes(Path(url.removeprefix("sqlite:///")))
                             if backend == "sqlite" else asyncio.run(pg_sizes(url)))
                info[n] = {"fill": fill, "bytes": sizes_now}
                print(f"  {backend} {n:>9,} incidents: pre-filled in {fill:6.1f} s, "
                      f"{sizes_now['total'] / 2**20:8.1f} MiB", flush=True)
            times: dict[int, dict[str, list[float]]] = {n: {"process": [], "claim": []}
                                                        for n in sizes}
            for r in range(args.rounds):
                order = sizes if r % 2 == 0 else list(reversed(sizes))
                for n in order:
                    got = asyncio.run(measure(urls[n], n, args.per_round, seed=1000 * r + n))
                    for k, v in got.items():
                        times[n][k].extend(v)
                    print(f"  round {r + 1} {backend} {n:>9,}: median "
                          f"{median(got['process']) * 1000:.3f} ms per bounce", flush=True)
            for n in sizes:
                pr, cl = times[n]["process"], times[n]["claim"]
                b = info[n]["bytes"]
                summary.append({
                    "backend": backend, "n": n, "median_ms": median(pr) * 1000,
                    "p90_ms": percentile(pr, 0.9) * 1000, "claim_ms": median(cl) * 1000,
                    "fill_s": info[n]["fill"], "mib": b["total"] / 2**20,
                    "per_million_mib": b["total"] / 2**20 / n * 1e6,
                    "tables": {k: v for k, v in b.items() if k in ("messages", "incidents",
                                                                     "addresses")},
                })
            if backend == "sqlite" and not args.keep:
                for n in sizes:
                    for suffix in ("", "-wal", "-shm"):
                        Path(urls[n].removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)

    print(f"\n{'backend':10s} {'incidents':>10s} {'median ms':>9s} {'p90 ms':>7s} "
          f"{'claim ms/job':>12s} {'x smallest':>10s} {'DB MiB':>8s} {'MiB per 1M':>10s} "
          f"{'fill s':>7s}")
    for row in summary:
        base = next(x for x in summary if x["backend"] == row["backend"])
        ratio = row["median_ms"] / base["median_ms"]
        verdict = "" if row is base else (" ok" if ratio <= 1.3 else " MISS")
        print(f"{row['backend']:10s} {row['n']:>10,} {row['median_ms']:9.3f} {row['p90_ms']:7.3f} "
              f"{row['claim_ms']:12.3f} {ratio:9.2f}{verdict:3s} {row['mib']:8.0f} "
              f"{row['per_million_mib']:10.0f} {row['fill_s']:7.1f}")
    for row in summary:
        if row is summary[-1] or row["n"] == max(sizes):
            parts = ", ".join(f"{k} {v / 2**20 / row['n'] * 1e6:.0f}"
                              for k, v in sorted(row["tables"].items()))
            print(f"{row['backend']} at {row['n']:,}: MiB per million incidents by table "
                  f"(with indexes): {parts}")
    print(f"total time {time.monotonic() - started:.0f} s (target 1.3x; raw bodies purged in "
          "the pre-fill: they cost about their size for raw_days, on top of these figures)")


if __name__ == "__main__":
    main()
