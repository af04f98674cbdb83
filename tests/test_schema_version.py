"""Only `serve` and `migrate` change a store's schema, and no command touches one that a newer
bounced migrated: every other command, on a store one upgrade behind, says so in one line and
leaves it as it was (the pipe exits 75, the mail server keeps the bounce); a store ahead of
this bounced is refused by every command, on both backends."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bounced.config import sqlite_path
from bounced.store.migrations import migrations

from .cmdline import run
from .helpers import base_env
from .test_migrations import at_version

LATEST = migrations("sqlite")[-1][0]
# Every command that opens the store, with arguments that would succeed on a current one.
READERS = (["status", "--subject", "s1"], ["queue"], ["show", "1"], ["addresses"], ["events"],
           ["stats"], ["breaker", "list"], ["reconfirm", "--subject", "s1"], ["reprocess", "1"],
           ["process"], ["purge", "--dry-run"])


async def store_at(url: str, version: int) -> None:
    """A store at migration ``version`` holding three messages, private as serve makes one (a
    database readable by others gets a warning of its own)."""
    await at_version(url, version)
    if url.startswith("sqlite:"):
        sqlite_path(url).chmod(0o600)


async def schema_state(url: str) -> tuple[list[int], list[str], int]:
    """The applied migrations, the tables, and the number of stored messages."""
    if url.startswith("sqlite:"):
        db = sqlite3.connect(sqlite_path(url))
        try:
            return ([r[0] for r in db.execute("SELECT version FROM schema_migrations "
                                              "ORDER BY version")],
                    [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = "
                                              "'table' ORDER BY name")],
                    db.execute("SELECT COUNT(*) FROM messages").fetchone()[0])
        finally:
            db.close()
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return ([r[0] for r in await conn.fetch("SELECT version FROM schema_migrations "
                                                "ORDER BY version")],
                [r[0] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE "
                                                "schemaname = 'public' ORDER BY tablename")],
                await conn.fetchval("SELECT COUNT(*) FROM messages"))
    finally:
        await conn.close()


async def record_version(url: str, version: int) -> None:
    """Mark a migration applied that this bounced does not have (as a newer one would)."""
    if url.startswith("sqlite:"):
        db = sqlite3.connect(sqlite_path(url))
        try:
            db.execute("INSERT INTO schema_migrations VALUES (?, 'from_the_future', 0)",
                       (version,))
            db.commit()
        finally:
            db.close()
        return
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute("INSERT INTO schema_migrations (version, name) VALUES "
                           "($1, 'from_the_future')", version)
    finally:
        await conn.close()


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def return_path(env: dict[str, str]) -> str:
    proc = run(env, "sign", "--subject", "s9", "--address", "someone@example.net")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


async def test_older_schema_is_left_alone_until_migrate(store_url: str, tmp_path: Path) -> None:
    """On a store one migration behind, every command but serve and migrate exits non-zero
    with one line naming both versions and `bounced migrate`, and changes nothing (main
    migrated it from whichever command ran first); `deliver` exits 75 and stores nothing;
    `check-config` passes and says what serve will do; `migrate` brings it up, after which
    the same commands work."""
    await store_at(store_url, LATEST - 1)
    before = await schema_state(store_url)
    env = base_env(tmp_path, BOUNCED_STORE_URL=store_url)
    for args in READERS:
        proc = run(env, *args)
        assert proc.returncode == 1, (args, proc.stdout, proc.stderr)
        line = one_line(proc.stderr)
        assert f"store schema is at {LATEST - 1}, this bounced needs {LATEST}" in line, line
        assert "bounced migrate" in line
    piped = run(env, "deliver", return_path(env), data=b"Subject: a bounce\r\n\r\nbody\r\n")
    assert piped.returncode == 75, piped.stderr
    assert f"store schema is at {LATEST - 1}" in one_line(piped.stderr.decode())
    checked = run(env, "check-config")
    assert checked.returncode == 0, checked.stderr
    assert f"schema at {LATEST - 1}: `bounced serve` or `bounced migrate`" in checked.stdout
    assert await schema_state(store_url) == before

    migrated = run(env, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert (await schema_state(store_url))[0] == list(range(1, LATEST + 1))
    for args in READERS[:7]:
        proc = run(env, *args)
        assert proc.returncode == 0, (args, proc.stderr)
    piped = run(env, "deliver", return_path(env), data=b"Subject: a bounce\r\n\r\nbody\r\n")
    assert piped.returncode == 0, piped.stderr
    assert (await schema_state(store_url))[2] == before[2] + 1


async def test_newer_schema_is_refused_by_every_command(store_url: str, tmp_path: Path) -> None:
    """A store a newer bounced migrated (a downgrade) is refused by every command, serve and
    migrate included, with one line naming both versions; nothing in it changes (main served
    it, half understood)."""
    await store_at(store_url, LATEST)
    await record_version(store_url, LATEST + 1)
    before = await schema_state(store_url)
    env = base_env(tmp_path, BOUNCED_STORE_URL=store_url)
    for args in (*READERS, ["check-config"], ["migrate"], ["serve"]):
        proc = run(env, *args)
        assert proc.returncode == 1, (args, proc.stdout, proc.stderr)
        line = one_line(proc.stderr)
        assert f"store schema is at {LATEST + 1}, newer than this bounced" in line, line
        assert f"knows ({LATEST})" in line
    piped = run(env, "deliver", return_path(env), data=b"Subject: a bounce\r\n\r\nbody\r\n")
    assert piped.returncode == 75, piped.stderr
    assert "newer than this bounced" in one_line(piped.stderr.decode())
    assert await schema_state(store_url) == before
