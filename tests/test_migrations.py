"""Schema migrations on a database that already holds messages, on both backends: migration 0005
moves the raw bodies out of ``messages`` into ``message_raw``, intact; migration 0006 moves them
on into ``bodies``, shared by a transaction's recipients; ``bounced show``, ``reprocess`` and
``purge`` read and drop them there."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

from bounced.config import sqlite_path
from bounced.model import NewMessage, Plan, TokenFields
from bounced.policy import core
from bounced.policy.core import Outcome
from bounced.store import open_store
from bounced.store.migrations import migrations

from .helpers import BOUNCED, base_env

UTC = dt.UTC
NOW = dt.datetime.now(UTC).replace(microsecond=0)
# Bytes of every value (a body is binary-safe), longer than an SQLite page (overflow pages).
PENDING_RAW = bytes(range(256)) * 20 + b"\r\n"
DONE_RAW = b"Subject: done\r\n\r\n" + b"x" * 5000 + b"\r\n"
COLUMNS = ("received_at", "peer", "mail_from", "rcpt_to", "subject", "stream", "key_id",
           "send_day", "fingerprint", "token_id", "size", "raw", "state", "next_attempt_at",
           "processed_at", "raw_purged_at")


def v4_rows() -> list[tuple[Any, ...]]:
    """Three messages as version 0004 stored them: pending with its body, done and old with its
    body, done with its body already purged. Times as datetimes (converted per backend)."""
    old = NOW - dt.timedelta(days=40)
    day = dt.date(2026, 2, 20)
    rows = []
    for token, raw, state, received, purged in (
        ("t-pending", PENDING_RAW, "pending", NOW - dt.timedelta(minutes=1), None),
        ("t-done", DONE_RAW, "done", old, None),
        ("t-purged", None, "done", old, old + dt.timedelta(days=31)),
    ):
        rows.append((received, "127.0.0.1", "", f"bounce-{token}@bounces.example.test", "s1",
                     None, "k1", day, "fp1", token, len(raw or b"gone"), raw, state, received,
                     None if state == "pending" else received, purged))
    return rows


def sqlite_at(url: str, version: int) -> None:
    """An SQLite database at migrations up to ``version`` (4 or more), holding v4_rows."""
    path = sqlite_path(url)
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("CREATE TABLE schema_migrations "
                   "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)")

        def apply(first: int, last: int) -> None:
            for number, name, sql in migrations("sqlite"):
                if first <= number <= last:
                    for statement in sql.split(";\n"):
                        if statement.strip():
                            db.execute(statement)
                    db.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)",
                               (number, name, NOW.timestamp()))

        apply(1, 4)
        for row in v4_rows():
            values = [v.timestamp() if isinstance(v, dt.datetime)
                      else v.isoformat() if isinstance(v, dt.date) else v for v in row]
            db.execute(f"INSERT INTO messages ({', '.join(COLUMNS)}) VALUES "
                       f"({', '.join('?' * len(COLUMNS))})", values)
        apply(5, version)
    finally:
        db.close()


async def postgres_at(url: str, version: int) -> None:
    """A PostgreSQL database at migrations up to ``version`` (4 or more), holding v4_rows."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
                           "name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")

        async def apply(first: int, last: int) -> None:
            for number, name, sql in migrations("postgresql"):
                if first <= number <= last:
                    await conn.execute(sql)
                    await conn.execute("INSERT INTO schema_migrations (version, name) "
                                       "VALUES ($1, $2)", number, name)

        await apply(1, 4)
        await conn.executemany(
            f"INSERT INTO messages ({', '.join(COLUMNS)}) VALUES "
            f"({', '.join(f'${n + 1}' for n in range(len(COLUMNS)))})", v4_rows())
        await apply(5, version)
    finally:
        await conn.close()


async def at_version(url: str, version: int) -> None:
    """A database at migration ``version`` holding the messages of v4_rows (ids 1, 2, 3)."""
    if url.startswith("sqlite:"):
        sqlite_at(url, version)
    else:
        await postgres_at(url, version)


async def at_v4(url: str) -> None:
    await at_version(url, 4)


async def columns_of_messages(url: str) -> set[str]:
    if url.startswith("sqlite:"):
        db = sqlite3.connect(sqlite_path(url))
        try:
            return {r[1] for r in db.execute("PRAGMA table_info(messages)")}
        finally:
            db.close()
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return {r[0] for r in await conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'messages'")}
    finally:
        await conn.close()


async def test_migration_0005_moves_raw_bodies_intact(store_url: str) -> None:
    """A version-0004 database with messages opens at 0005: every kept body is byte for byte the
    same in message_raw, a purged one stays purged, the pending job is claimed with its body,
    and opening again changes nothing."""
    await at_v4(store_url)
    store = open_store(store_url)
    await store.open()
    try:
        assert "raw" not in await columns_of_messages(store_url)
        by_token = {m.token_id: m for m in await store.messages(None)}
        assert [by_token[t].has_raw for t in ("t-pending", "t-done", "t-purged")] == [
            True, True, False]
        assert (await store.message(by_token["t-pending"].id))[1] == PENDING_RAW
        assert (await store.message(by_token["t-done"].id))[1] == DONE_RAW
        assert (await store.message(by_token["t-purged"].id))[1] is None
        [job] = await store.claim("w", NOW, dt.timedelta(seconds=60), 10)
        assert (job.token.token_id, job.raw) == ("t-pending", PENDING_RAW)
    finally:
        await store.close()
    again = open_store(store_url)
    await again.open()  # 0005 is recorded: not applied twice
    try:
        assert (await again.message(by_token["t-done"].id))[1] == DONE_RAW
    finally:
        await again.close()


def bounced(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run([BOUNCED, *args], env={**os.environ, **env}, capture_output=True,
                          timeout=60, check=False)
    assert b"Traceback" not in proc.stderr, proc.stderr
    return proc


async def test_show_reprocess_and_purge_read_the_raw_table(
    store_url: str, tmp_path: Path
) -> None:
    """On a migrated database, `bounced show --raw` prints a body from message_raw, `reprocess`
    queues a message whose body is kept (not a purged one), `purge` drops old bodies there."""
    await at_v4(store_url)
    env = base_env(tmp_path, BOUNCED_STORE_URL=store_url)
    assert bounced(env, "migrate").returncode == 0  # only serve and migrate change a schema
    shown = bounced(env, "show", "2", "--raw")
    assert shown.returncode == 0 and b"raw          kept" in shown.stdout
    assert shown.stdout.endswith(DONE_RAW)
    purged = bounced(env, "show", "3", "--raw")
    assert b"raw          purged" in purged.stdout and b"raw message:" not in purged.stdout
    assert bounced(env, "reprocess", "3").returncode == 1  # its body is gone
    assert bounced(env, "purge", "--raw-days", "30", "--dry-run").stdout.startswith(
        b"would purge 1 raw message(s)")
    assert bounced(env, "purge", "--raw-days", "30").stdout.startswith(b"purged 1 raw message(s)")
    shown = bounced(env, "show", "2", "--raw")
    assert b"raw          purged" in shown.stdout and b"raw message:" not in shown.stdout
    assert bounced(env, "reprocess", "2").returncode == 1
    assert bounced(env, "purge", "--raw-days", "30").stdout.startswith(b"purged 0 raw message(s)")
    # The pending message (recent) keeps its body, and reprocessing it queues it again.
    assert bounced(env, "show", "1", "--raw").stdout.endswith(PENDING_RAW)
    done = bounced(env, "reprocess", "1")
    assert done.returncode == 0 and done.stdout.startswith(b"queued 1 message(s)")
    store = open_store(store_url)
    await store.open()
    try:
        info, raw, _ = await store.message(2)
        assert info.state == "done" and raw is None and not info.has_raw
    finally:
        await store.close()


async def test_migration_0006_shares_bodies_and_keeps_them_intact(store_url: str) -> None:
    """A version-0005 database with messages opens at 0006: each kept body is byte for byte the
    same in ``bodies``, a purged one stays purged, the pending job is claimed with its body, and
    a transaction stored afterwards gets a body of its own, shared by its recipients."""
    await at_version(store_url, 5)
    store = open_store(store_url)
    await store.open()
    try:
        by_token = {m.token_id: m for m in await store.messages(None)}
        assert [by_token[t].has_raw for t in ("t-pending", "t-done", "t-purged")] == [
            True, True, False]
        assert (await store.message(by_token["t-pending"].id))[1] == PENDING_RAW
        assert (await store.message(by_token["t-done"].id))[1] == DONE_RAW
        assert (await store.message(by_token["t-purged"].id))[1] is None
        [job] = await store.claim("w", NOW, dt.timedelta(seconds=60), 10)
        assert (job.token.token_id, job.raw) == ("t-pending", PENDING_RAW)
        fresh = b"Subject: after the migration\r\n\r\n" + bytes(range(256)) * 8
        token = TokenFields(subject="s2", stream=None, key_id="k1", day=NOW.date(),
                            fingerprint="fp2", token_id="t-new")
        ids = await store.add_messages([
            NewMessage(received_at=NOW, peer="127.0.0.1", mail_from="<>",
                       rcpt_to=f"bounce-{n}@bounces.example.test",
                       token=dataclasses.replace(token, subject=f"s{n}"), raw=fresh)
            for n in range(3)])
        assert [(await store.message(i))[1] for i in ids] == [fresh] * 3
        assert await stored_bodies(store_url) == 3  # two migrated, one shared by three
        assert (await store.message(by_token["t-done"].id))[1] == DONE_RAW
    finally:
        await store.close()


def no_plan(*_: object) -> Plan:
    return Plan(incidents=(), decision=None)


async def stored_bodies(url: str) -> int:
    if url.startswith("sqlite:"):
        db = sqlite3.connect(sqlite_path(url))
        try:
            return int(db.execute("SELECT COUNT(*) FROM bodies").fetchone()[0])
        finally:
            db.close()
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT COUNT(*) FROM bodies"))
    finally:
        await conn.close()


async def test_purge_keeps_a_shared_body_until_every_recipient_is_done(store_url: str) -> None:
    """Retention drops a body shared by a transaction's recipients only once every one of them
    is processed and old; then each shows it purged, and the count is of messages."""
    store = open_store(store_url)
    await store.open()
    try:
        old = NOW - dt.timedelta(days=40)
        raw = b"Subject: shared\r\n\r\nbody\r\n"
        token = TokenFields(subject="s", stream=None, key_id="k1", day=old.date(),
                            fingerprint="fp", token_id="t")
        ids = await store.add_messages([
            NewMessage(received_at=old, peer="127.0.0.1", mail_from="<>",
                       rcpt_to=f"bounce-{n}@bounces.example.test",
                       token=dataclasses.replace(token, subject=f"s{n}", token_id=f"t{n}"),
                       raw=raw) for n in range(2)])
        jobs = await store.claim("w", NOW, dt.timedelta(seconds=60), 10)
        assert [j.raw for j in jobs] == [raw, raw] and jobs[0].raw is jobs[1].raw
        outcome = Outcome(kind="unknown", classification={}, incidents=())
        await core.finish_batch(store, [(jobs[0], outcome, no_plan)], "w", NOW)
        cutoff = {"raw_before": NOW - dt.timedelta(days=30), "incidents_before": old}
        assert (await store.purge(**cutoff, dry_run=False))["raw_messages"] == 0
        assert [(await store.message(i))[1] for i in ids] == [raw, raw]
        await core.finish_batch(store, [(jobs[1], outcome, no_plan)], "w", NOW)
        assert (await store.purge(**cutoff, dry_run=True))["raw_messages"] == 2
        assert (await store.purge(**cutoff, dry_run=False))["raw_messages"] == 2
        assert [(await store.message(i))[0].has_raw for i in ids] == [False, False]
        assert await stored_bodies(store_url) == 0
        assert await store.requeue(ids=ids) == 0  # nothing to process them from
    finally:
        await store.close()


def test_every_backend_has_the_same_migrations() -> None:
    """Both backends have the same migrations, numbered 1, 2, 3... without a gap."""
    sqlite = [(v, n) for v, n, _ in migrations("sqlite")]
    assert sqlite == [(v, n) for v, n, _ in migrations("postgresql")]
    assert [v for v, _ in sqlite] == list(range(1, len(sqlite) + 1))
    assert sqlite[:6] == [
        (1, "initial"), (2, "outbox"), (3, "reporting_mta"), (4, "domain_counting_index"),
        (5, "message_raw"), (6, "shared_bodies")]
