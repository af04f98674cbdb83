"""Schema migrations on a database that already holds messages, on both backends: migration 0005
moves the raw bodies out of ``messages`` into ``message_raw``, intact; ``bounced show``,
``reprocess`` and ``purge`` read and drop them there."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bounced.config import sqlite_path
from bounced.store import open_store
from bounced.store.migrations import migrations

from .helpers import ROOT, base_env

UTC = dt.UTC
NOW = dt.datetime.now(UTC).replace(microsecond=0)
BOUNCED = str(ROOT / ".venv" / "bin" / "bounced")
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


def sqlite_at_v4(url: str) -> None:
    path = sqlite_path(url)
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("CREATE TABLE schema_migrations "
                   "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)")
        for version, name, sql in migrations("sqlite"):
            if version <= 4:
                for statement in sql.split(";\n"):
                    if statement.strip():
                        db.execute(statement)
                db.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)",
                           (version, name, NOW.timestamp()))
        for row in v4_rows():
            values = [v.timestamp() if isinstance(v, dt.datetime)
                      else v.isoformat() if isinstance(v, dt.date) else v for v in row]
            db.execute(f"INSERT INTO messages ({', '.join(COLUMNS)}) VALUES "
                       f"({', '.join('?' * len(COLUMNS))})", values)
    finally:
        db.close()


async def postgres_at_v4(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
                           "name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        for version, name, sql in migrations("postgresql"):
            if version <= 4:
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (version, name) "
                                   "VALUES ($1, $2)", version, name)
        await conn.executemany(
            f"INSERT INTO messages ({', '.join(COLUMNS)}) VALUES "
            f"({', '.join(f'${n + 1}' for n in range(len(COLUMNS)))})", v4_rows())
    finally:
        await conn.close()


async def at_v4(url: str) -> None:
    """A database at migration 0004 holding the messages of v4_rows (ids 1, 2, 3)."""
    if url.startswith("sqlite:"):
        sqlite_at_v4(url)
    else:
        await postgres_at_v4(url)


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


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_every_backend_has_the_same_migrations(backend: str) -> None:
    """Both backends have migrations 1 to 5 with the same names."""
    assert [(v, n) for v, n, _ in migrations(backend)] == [
        (1, "initial"), (2, "outbox"), (3, "reporting_mta"), (4, "domain_counting_index"),
        (5, "message_raw")]
