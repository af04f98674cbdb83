"""The embedded store: one SQLite file in WAL mode, accessed through aiosqlite.

One connection, every transaction under one asyncio lock, every cursor closed: a cursor left
to the garbage collector while other statements run on the connection once lost a bounce (its
finalisation reset a statement of another transaction).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import os
import sqlite3
import urllib.parse
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import structlog

from bounced.compat import run_in_thread, sqlite_connection
from bounced.config import sqlite_path
from bounced.exceptions import StoreError, StoreNotFound, StoreUnavailable
from bounced.model import PENDING, QUARANTINED, Job, NewMessage
from bounced.store import Work, drive, shared_bodies
from bounced.store.migrations import check_schema, migrations
from bounced.store.sqlite.admin import SQLiteAdmin
from bounced.store.sqlite.outbox import SQLiteOutbox
from bounced.store.sqlite.reports import SQLiteReports
from bounced.store.sqlite.tx import SQLiteTx, busy, q

UTC = dt.UTC
log = structlog.get_logger("bounced.store")


MIN_SQLITE = (3, 35, 0)  # RETURNING and ALTER TABLE ... DROP COLUMN (migration 0005)


class SQLiteStore(SQLiteAdmin, SQLiteOutbox, SQLiteReports):
    """Store backed by one SQLite file."""

    overlap_finish = False  # see Store.overlap_finish

    def __init__(self, url: str) -> None:
        self.path: Path = sqlite_path(url)
        self._conn: aiosqlite.Connection | None = None
        self._lock: Any = None

    async def open(self, *, create: bool = True) -> None:
        import asyncio

        if sqlite3.sqlite_version_info < MIN_SQLITE:
            raise StoreError(
                f"SQLite {'.'.join(map(str, MIN_SQLITE))} or newer is needed (RETURNING, DROP "
                f"COLUMN); this Python uses SQLite {sqlite3.sqlite_version}. Use a Python built "
                "with a newer SQLite, or a PostgreSQL store (store.url = postgresql://...)")
        self._lock = asyncio.Lock()
        if not create and not self.path.exists():
            raise StoreNotFound(f"no bounced store at {self.path.absolute()}")
        try:
            _check_path(self.path, create)
            if create:
                self._conn = await aiosqlite.connect(self.path, isolation_level=None)
            else:  # mode=rw: never creates the file, even if it went away meanwhile
                uri = f"file:{urllib.parse.quote(str(self.path.absolute()))}?mode=rw"
                self._conn = await aiosqlite.connect(uri, uri=True, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailable(
                f"cannot open SQLite database {self.path}: {_reason(exc, self.path)}") from exc
        try:
            if not create and not await self._execute(
                    "SELECT 1 FROM sqlite_master WHERE name = 'schema_migrations'"):
                raise StoreNotFound(f"{self.path.absolute()} is not a bounced store "
                                    "(no schema in it)")
            await self._enable_wal()
            for pragma in (
                "PRAGMA busy_timeout=10000",
                "PRAGMA synchronous=FULL",
                "PRAGMA foreign_keys=ON",
            ):
                await self._execute(pragma)
            if create:
                await self._migrate()
            else:
                check_schema(await self._applied(), "sqlite", str(self.path.absolute()),
                             migrating=False)
        except sqlite3.DatabaseError as exc:  # "file is not a database", a damaged file
            await self.close()
            raise StoreError(f"cannot open SQLite database {self.path}: {exc}") from exc
        except StoreError as exc:
            await self.close()
            why = _unwritable(self.path) if "unable to open database file" in str(exc) \
                or "readonly database" in str(exc) else None
            if why is None:
                raise
            # "unable to open database file" alone named neither the file nor the cause.
            raise StoreError(f"cannot open SQLite database {self.path}: {why} (SQLite writes "
                             f"{self.path.name}-wal and {self.path.name}-shm beside it, even "
                             "to read)") from exc
        except BaseException:
            # aiosqlite's thread is not a daemon thread: an unclosed connection hangs exit.
            await self.close()
            raise

    async def _enable_wal(self) -> None:
        """Switch to WAL before the long busy timeout is set: processes switching one new file
        at once can lock each other out (with the 10 s timeout they waited it out); retry."""
        import asyncio

        for attempt in range(100):
            try:
                await self._execute("PRAGMA journal_mode=WAL")
                return
            except (sqlite3.OperationalError, StoreError) as exc:
                if attempt == 99:
                    raise StoreUnavailable(f"cannot open SQLite database {self.path}: {exc}") \
                        from exc
                await asyncio.sleep(0.05)

    async def close(self) -> None:
        await self._close_reader()
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await conn.close()

    async def _execute(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """One statement in aiosqlite's thread: executed, fetched and its cursor closed in one
        trip (aiosqlite's own cursor API costs three: execute, fetchall, close)."""
        conn = self._conn
        if conn is None:
            raise StoreUnavailable("store is not open")
        try:
            rows: list[Any] = await run_in_thread(conn, _q_conn, conn, sql, params)
            return rows
        except sqlite3.IntegrityError:
            raise
        except sqlite3.OperationalError as exc:
            raise _store_error(exc) from exc

    @asynccontextmanager
    async def _tx(self, immediate: bool = True) -> AsyncIterator[None]:
        """One transaction under the connection lock: committed, or rolled back on any error
        (a transaction left open would hold SQLite's write lock for good)."""
        if self._conn is None:
            raise StoreUnavailable("store is not open")
        async with self._lock:
            await self._execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
            try:
                yield
                await self._execute("COMMIT")
            except BaseException:
                if self._conn is not None and self._conn.in_transaction:
                    with contextlib.suppress(Exception):
                        await self._execute("ROLLBACK")
                raise

    async def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        if self._conn is None:
            raise StoreUnavailable("store is not open")
        async with self._lock:
            return await self._execute(sql, params)

    async def _migrate(self) -> None:
        await self._execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
        )
        done = await self._applied()
        # A newer bounced's schema is refused before anything is applied to it.
        check_schema(done, "sqlite", str(self.path.absolute()), migrating=True)
        assert self._conn is not None
        for version, name, sql in migrations("sqlite"):
            if version in done:
                continue
            async with self._tx():
                # Another process may have applied it while this one waited for the lock.
                if await self._execute(
                    "SELECT 1 FROM schema_migrations WHERE version = ?", (version,)
                ):
                    continue
                for statement in sql.split(";\n"):
                    if statement.strip():
                        await self._execute(statement)
                await self._execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                    (version, name, dt.datetime.now(UTC).timestamp()),
                )

    async def _applied(self) -> set[int]:
        return {row[0] for row in await self._execute("SELECT version FROM schema_migrations")}

    async def ping(self) -> None:
        try:
            await self._read("SELECT 1")
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite: {exc}") from exc

    async def add_messages(self, messages: Sequence[NewMessage]) -> list[int]:
        """The messages and their bodies (each distinct body once: the recipients of one DATA
        transaction share it) in one transaction, in one trip to aiosqlite's thread: one
        multi-row INSERT into each table, committed (synchronous=FULL) before it returns.

        The ids come from the last one: the rows of one INSERT get consecutive ids, in VALUES
        order (AUTOINCREMENT: each the largest so far plus one, under the write lock). RETURNING
        would read them one step at a time, and each step waits for the GIL again."""
        if not messages:
            return []
        bodies, which = shared_bodies(messages)
        params: list[Any] = []
        for m, body in zip(messages, which, strict=True):
            params += (
                m.received_at.timestamp(), m.peer, m.mail_from, m.rcpt_to, m.token.subject,
                m.token.stream, m.token.key_id, m.token.day.isoformat(), m.token.fingerprint,
                m.token.token_id, len(m.raw), PENDING, m.received_at.timestamp(), body,
            )
        try:
            last = await self._transact(_insert_tx, params, bodies, len(messages))
        except sqlite3.Error as exc:  # an OperationalError arrives as StoreError already
            raise StoreError(f"SQLite insert failed: {exc}") from exc
        return list(range(last - len(messages) + 1, last + 1))

    async def probe_write(self, now: dt.datetime) -> None:
        await self._transact(q, "UPDATE write_probe SET probed_at = ? WHERE id = 1",
                             (now.timestamp(),))

    async def claim(
        self, worker: str, now: dt.datetime, lease: dt.timedelta, limit: int
    ) -> list[Job]:
        return await self._transact(_claim, worker, now, lease, limit)

    async def run(self, work: Work[_T]) -> _T:
        """The whole transaction in one trip to aiosqlite's thread (a trip per statement cost
        about 12 trips per job, 150-250 us each); the work is pure and runs there too."""
        return await self._transact(_drive, work)

    async def _transact(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run ``fn(db, *args)`` as one IMMEDIATE transaction in aiosqlite's thread, under the
        connection lock: committed, or rolled back on any error."""
        if self._conn is None:
            raise StoreUnavailable("store is not open")
        conn = self._conn
        async with self._lock:
            try:
                result: _T = await run_in_thread(conn, _in_transaction, conn, fn, args)
                return result
            except sqlite3.IntegrityError:
                raise
            except sqlite3.OperationalError as exc:
                raise _store_error(exc) from exc

    async def fail(
        self, job: Job, worker: str, error: str, now: dt.datetime, retry_at: dt.datetime | None
    ) -> None:
        state = PENDING if retry_at is not None else QUARANTINED
        await self._transact(
            q, "UPDATE messages SET state = ?, last_error = ?, next_attempt_at = ?, "
                "claimed_by = NULL, claimed_until = NULL, processed_at = ? "
                "WHERE id = ? AND claimed_by = ?",
            (state, error[:4000], (retry_at or now).timestamp(),
             None if retry_at else now.timestamp(), job.id, worker),
        )


_T = TypeVar("_T")


def _check_path(path: Path, create: bool) -> None:
    """Raise OSError, with its reason, for a path SQLite could not open (before aiosqlite
    starts a thread, which outlived the event loop and printed a traceback at exit); with
    ``create``, create the database file readable by its owner only, unless it exists: SQLite
    creates it with the umask's mode (0644 under the usual 022: every local user could read
    the bounces), and its -wal and -shm files take the mode of the database file."""
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "a directory, not a database file", str(path))
    parent = path.parent
    if parent.exists() and not parent.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(parent))
    if not create:
        return
    parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        if path.stat().st_mode & 0o007:
            log.warning("store.readable_by_others", path=str(path),
                        mode=oct(path.stat().st_mode & 0o777), fix=f"chmod 600 {path}*")


def _reason(exc: BaseException, path: Path) -> str:
    """An open error in an operator's words: the system's for a file error, naming the file
    only when it is another than the database (a parent directory)."""
    if isinstance(exc, OSError) and exc.strerror:
        other = exc.filename is not None and str(exc.filename) not in (str(path),
                                                                       str(path.absolute()))
        return exc.strerror + (f": {exc.filename}" if other else "")
    return str(exc)


def _unwritable(path: Path) -> str | None:
    """Why SQLite cannot write beside ``path``, when the file system is the reason: its
    directory is read-only, or not writable by this user, or the file is not."""
    parent = path.absolute().parent
    with contextlib.suppress(OSError):
        if os.statvfs(parent).f_flag & os.ST_RDONLY:
            return f"{parent} is on a read-only file system"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"its directory {parent} is not writable by this user (uid {os.getuid()})"
    if not os.access(path, os.R_OK | os.W_OK):
        return f"it is not readable and writable by this user (uid {os.getuid()})"
    return None


def _store_error(exc: sqlite3.OperationalError, what: str = "SQLite") -> StoreError:
    """The store's exception for an SQLite error: unavailable (retry later) when locked, or
    when the disk is full or failing (no message's fault: none fails alone, none is
    quarantined for it)."""
    text = str(exc)
    if busy(exc) or "disk is full" in text or "disk I/O error" in text:
        return StoreUnavailable(f"SQLite: {exc}")
    return StoreError(f"{what}: {exc}")


def _in_transaction(
    conn: aiosqlite.Connection, fn: Callable[..., _T], args: tuple[Any, ...]
) -> _T:
    """In aiosqlite's thread: BEGIN IMMEDIATE, ``fn``, COMMIT; ROLLBACK on any error."""
    db = sqlite_connection(conn)  # used only in its own thread
    db.execute("BEGIN IMMEDIATE").close()
    try:
        result = fn(db, *args)
        db.execute("COMMIT").close()
    except BaseException:
        if db.in_transaction:
            with contextlib.suppress(Exception):
                db.execute("ROLLBACK").close()
        raise
    return result


def _drive(db: sqlite3.Connection, work: Work[_T]) -> _T:
    return drive(work, SQLiteTx(db))


def _claim(db: sqlite3.Connection, worker: str, now: dt.datetime, lease: dt.timedelta,
           limit: int) -> list[Job]:
    return SQLiteTx(db).claim(worker, now, lease, limit)


def _q_conn(conn: aiosqlite.Connection, sql: str, params: Sequence[Any]) -> list[Any]:
    return q(sqlite_connection(conn), sql, params)  # in aiosqlite's thread


def _insert_tx(
    db: sqlite3.Connection, params: list[Any], bodies: Sequence[bytes], count: int
) -> int:
    """The bodies, then the messages (14 parameters each, the last the index of its body,
    replaced here by the body's id); the id of the last message."""
    last_body = _last_id(db, "INSERT INTO bodies (raw) VALUES "
                         + ",".join(["(?)"] * len(bodies)), bodies)
    first_body = last_body - len(bodies) + 1
    for n in range(13, len(params), 14):
        params[n] += first_body
    rows = ",".join(["(?,?,?,?,?,?,?,?,?,?,?,?,?,?)"] * count)
    return _last_id(
        db, "INSERT INTO messages (received_at, peer, mail_from, rcpt_to, subject, stream, "
            "key_id, send_day, fingerprint, token_id, size, state, next_attempt_at, body_id) "
            f"VALUES {rows}", params)


def _last_id(db: sqlite3.Connection, sql: str, params: Sequence[Any]) -> int:
    """Run a multi-row INSERT; the id of its last row (its cursor closed)."""
    cur = db.execute(sql, params)
    try:
        last = cur.lastrowid
    finally:
        cur.close()
    if last is None:
        raise StoreError("SQLite insert reported no row id")
    return last
