"""Fixtures shared by the suite: the store backends every store and daemon test runs against."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bounced.store import Store, open_store

from .helpers import BOUNCED

# Every bounced command reads /etc/bounced/bounced.toml when it exists (a machine with the
# package installed has one); set but empty, $BOUNCED_CONFIG means the built-in defaults. The
# commands the tests run see only the settings the tests give them.
os.environ["BOUNCED_CONFIG"] = ""
# `bounced` by name, in a test or in a program a test starts, is the interpreter's command
# (this checkout's code), never a /usr/bin/bounced a package installed (CI runs the suite
# with the package installed: tests/test_package.py).
os.environ["PATH"] = os.pathsep.join([os.path.dirname(BOUNCED), os.environ.get("PATH", "")])

PG_ADMIN_DSN = os.environ.get("BOUNCED_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_reason() -> str | None:
    """None when a PostgreSQL server is reachable, else why not."""
    try:
        import asyncio

        import asyncpg
    except ImportError:
        return "asyncpg is not installed"

    async def probe() -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=3)
        await conn.close()

    try:
        asyncio.run(probe())
    except Exception as exc:
        return f"no PostgreSQL reachable at {PG_ADMIN_DSN} ({exc.__class__.__name__}: {exc})"
    return None


_PG_SKIP: list[str | None] = []


def pg_skip_reason() -> str | None:
    if not _PG_SKIP:
        _PG_SKIP.append(_pg_reason())
    return _PG_SKIP[0]


def _pg_admin(sql: str) -> None:
    import asyncio

    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


def _pg_url(name: str) -> str:
    base, _, _ = PG_ADMIN_DSN.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards; skips when none is reachable."""
    reason = pg_skip_reason()
    if reason is not None:
        pytest.skip(reason)
    name = f"bounced_test_{uuid.uuid4().hex[:12]}"
    _pg_admin(f'CREATE DATABASE "{name}"')
    try:
        yield _pg_url(name)
    finally:
        _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store and daemon test runs once per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'bounced.db'}"
    url: str = request.getfixturevalue("pg_database")
    return url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    """An open store of each backend, closed after the test."""
    s = open_store(store_url)
    await s.open()
    try:
        yield s
    finally:
        await s.close()
