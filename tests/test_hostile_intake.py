"""Hostile intake: ``bounced serve`` as a real process, attacked over SMTP, HTTP and the pipe.

Every attack here is one a sender (or a careless relay) can make; each test asserts what the
honest traffic around it still gets, and what ends up in the store.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bounced.config import load_settings

from .helpers import BOUNCED, DaemonProcess, base_env, days_ago, dsn, free_port, signer

ALICE = "alice@example.net"
HTTP_TOKEN = "hostile-intake-test-token-0123456789"
# An envelope sender in Latin-1, as an old relay passes it on: not UTF-8.
LATIN1_SENDER = b"j\xe9r\xf4me@example.net"
LATIN1_STORED = "j\\xe9r\\xf4me@example.net"  # how the store keeps it: escaped, losslessly


class SMTPConn:
    """A raw SMTP client on a socket: sends exactly the bytes given, reads whole replies."""

    def __init__(self, port: int, timeout: float = 20.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.banner = self.reply()

    def reply(self) -> tuple[int, str]:
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError(f"closed after {lines!r}")
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line.decode("utf-8", "replace"))
            if line[3:4] != b"-":
                return int(line[:3]), "\n".join(lines)

    def cmd(self, line: bytes) -> tuple[int, str]:
        self.sock.sendall(line + b"\r\n")
        return self.reply()

    def send_data(self, body: bytes) -> None:
        """The message after DATA's 354, dot-stuffed, without the final dot."""
        lines = body.split(b"\r\n")
        if lines and lines[-1] == b"":
            lines.pop()
        self.sock.sendall(b"".join((b"." + ln if ln.startswith(b".") else ln) + b"\r\n"
                                   for ln in lines))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def http_raw(port: int, request: bytes, timeout: float = 20.0) -> tuple[int, bytes]:
    """One HTTP/1.1 request sent as these exact bytes; the status and the body."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def ingest_request(recipient: str, body: bytes, *, sender: bytes | None = None,
                   auth: bytes = b"Bearer " + HTTP_TOKEN.encode()) -> bytes:
    headers = [b"POST /v1/bounces?recipient=" + recipient.encode() + b" HTTP/1.1",
               b"Host: 127.0.0.1", b"Authorization: " + auth, b"Connection: close",
               b"Content-Type: message/rfc822", b"Content-Length: " + str(len(body)).encode()]
    if sender is not None:
        headers.append(b"X-Envelope-Sender: " + sender)
    return b"\r\n".join(headers) + b"\r\n\r\n" + body


class Served:
    """A running ``bounced serve`` with its ports, its settings and its database."""

    def __init__(self, tmp: Path, store_url: str | None = None, **env: str) -> None:
        self.smtp_port, self.http_port = free_port(), free_port()
        extra = {"BOUNCED_SMTP_LISTEN": f"127.0.0.1:{self.smtp_port}",
                 "BOUNCED_HTTP_LISTEN": f"127.0.0.1:{self.http_port}",
                 "BOUNCED_HTTP_TOKEN": HTTP_TOKEN, "BOUNCED_WORKER_ENABLED": "false"}
        if store_url is not None:
            extra["BOUNCED_STORE_URL"] = store_url
        self.env = base_env(tmp, **{**extra, **env})
        self.settings = load_settings(env=self.env)
        self.sign = signer(self.settings)
        self.log = tmp / "daemon.log"
        self.proc = DaemonProcess(self.env, self.log)

    def token(self, subject: str) -> str:
        return self.sign.return_path(subject, ALICE, day=days_ago(1))

    def rows(self, sql: str, *params: object) -> list[tuple[object, ...]]:
        """Rows of a query on the daemon's store (SQLite or PostgreSQL)."""
        url = self.settings.store_url
        if url.startswith("sqlite:"):
            db = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30)
            try:
                return db.execute(sql.replace("$1", "?").replace("$2", "?"), params).fetchall()
            finally:
                db.close()
        import asyncio

        import asyncpg

        async def fetch() -> list[tuple[object, ...]]:
            conn = await asyncpg.connect(url)
            try:
                return [tuple(r) for r in await conn.fetch(sql, *params)]
            finally:
                await conn.close()

        return asyncio.run(fetch())


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """``bounced serve`` on SQLite, the worker off (what is stored stays as stored)."""
    daemon = Served(tmp_path)
    daemon.proc.start()
    try:
        yield daemon
    finally:
        daemon.proc.stop()


@pytest.fixture
def served_any(tmp_path: Path, store_url: str) -> Iterator[Served]:
    """``bounced serve`` on each backend, the worker off."""
    daemon = Served(tmp_path, store_url)
    daemon.proc.start()
    try:
        yield daemon
    finally:
        daemon.proc.stop()


def open_transaction(port: int, mail_from: bytes, rcpts: list[str], body: bytes) -> SMTPConn:
    """A session up to the end of DATA's content: only the final dot is left to send."""
    conn = SMTPConn(port)
    assert conn.cmd(b"EHLO mta.example.net")[0] == 250
    code, text = conn.cmd(b"MAIL FROM:<" + mail_from + b">" +
                          (b" SMTPUTF8" if not mail_from.isascii() else b""))
    assert code == 250, text
    for rcpt in rcpts:
        code, text = conn.cmd(b"RCPT TO:<" + rcpt.encode() + b">")
        assert code == 250, text
    assert conn.cmd(b"DATA")[0] == 354
    conn.send_data(body)
    return conn


# -- Item 3: a sender that is not UTF-8 is stored, and never fails anyone else's commit -------

def test_latin1_sender_shares_group_commits_and_honest_sessions_get_250(
    served_any: Served,
) -> None:
    """Hostile sessions (a Latin-1 MAIL FROM, with and without SMTPUTF8) end DATA at the same
    instant as 20 honest ones, in one group commit window, in several trials: every honest
    session gets 250, and so does every hostile one; each is stored once, the sender escaped."""
    d = served_any
    replies: dict[str, tuple[int, str]] = {}
    for trial in range(4):
        conns: list[tuple[str, SMTPConn]] = []
        for n in range(26):
            hostile = n % 5 == 0
            subject = f"t{trial}-{'hostile' if hostile else 'honest'}-{n}"
            rp = d.token(subject)
            conn = SMTPConn(d.smtp_port)
            assert conn.cmd(b"EHLO mta.example.net")[0] == 250
            if hostile:
                utf8 = b" SMTPUTF8" if n % 10 == 0 else b""
                code, text = conn.cmd(b"MAIL FROM:<" + LATIN1_SENDER + b">" + utf8)
            else:
                code, text = conn.cmd(b"MAIL FROM:<>")
            assert code == 250, text
            assert conn.cmd(b"RCPT TO:<" + rp.encode() + b">")[0] == 250
            assert conn.cmd(b"DATA")[0] == 354
            conn.send_data(dsn(ALICE, return_path=rp))
            conns.append((subject, conn))
        for _, conn in conns:  # every final dot at once: they share the commits
            conn.sock.sendall(b".\r\n")
        for subject, conn in conns:
            replies[subject] = conn.reply()
            conn.close()
    refused = {s: r for s, r in replies.items() if r[0] != 250}
    assert not refused, refused
    stored = d.rows("SELECT subject, mail_from FROM messages")
    assert sorted(s for s, _ in stored) == sorted(replies)
    assert {m for s, m in stored if "hostile" in str(s)} == {LATIN1_STORED}
    assert {m for s, m in stored if "honest" in str(s)} == {"<>"}


def test_unstorable_message_fails_alone_in_its_group_commit(
    tmp_path: Path, pg_database: str,
) -> None:
    """A message the store cannot take (a validly signed subject with a NUL, which PostgreSQL
    text refuses) ends DATA together with 20 honest ones: it alone gets 451, every honest
    session gets 250 and is stored once (the failed group is committed again session by
    session)."""
    d = Served(tmp_path, pg_database)
    d.proc.start()
    try:
        for trial in range(3):
            conns = []
            for n in range(21):
                subject = f"t{trial}-honest-{n}" if n % 7 else f"t{trial}-nul\x00-{n}"
                rp = d.token(subject)
                conns.append((subject, open_transaction(d.smtp_port, b"", [rp],
                                                        dsn(ALICE, return_path=rp))))
            for _, conn in conns:
                conn.sock.sendall(b".\r\n")
            replies = {subject: conn.reply()[0] for subject, conn in conns}
            for _, conn in conns:
                conn.close()
            assert {s: c for s, c in replies.items() if "honest" in s and c != 250} == {}
            assert {c for s, c in replies.items() if "nul" in s} == {451}
        stored = [s for (s,) in d.rows("SELECT subject FROM messages")]
        assert sorted(stored) == sorted(f"t{t}-honest-{n}" for t in range(3)
                                        for n in range(21) if n % 7)
    finally:
        d.proc.stop()


def test_latin1_sender_over_http_is_stored(served_any: Served) -> None:
    """HTTP ingest with a Latin-1 X-Envelope-Sender stores the message (202), sender escaped."""
    d = served_any
    rp = d.token("http-latin1")
    status, body = http_raw(d.http_port, ingest_request(rp, dsn(ALICE, return_path=rp),
                                                         sender=LATIN1_SENDER))
    assert status == 202, body
    assert d.rows("SELECT mail_from FROM messages WHERE subject = $1", "http-latin1") == [
        (LATIN1_STORED,)]


def test_latin1_sender_through_the_pipe_is_stored(tmp_path: Path) -> None:
    """``bounced deliver`` with a Latin-1 sender (argument or $SENDER) stores the message and
    exits 0, where it exited 75 (and the mail server retried it for days)."""
    env = base_env(tmp_path)
    subprocess.run([BOUNCED, "migrate"], env={**os.environ, **env}, check=True,
                   capture_output=True)  # `deliver` stores into an existing store only
    sign = signer(load_settings(env=env))
    for n, (args, sender_env) in enumerate([
        ([b"--sender", LATIN1_SENDER], None), ([], LATIN1_SENDER),
    ]):
        rp = sign.return_path(f"pipe-{n}", ALICE, day=days_ago(1))
        penv = {k.encode(): v.encode() for k, v in {**os.environ, **env}.items()}
        if sender_env is not None:
            penv[b"SENDER"] = sender_env
        proc = subprocess.run([BOUNCED.encode(), b"deliver", *args, rp.encode()], env=penv,
                              input=dsn(ALICE, return_path=rp), capture_output=True,
                              timeout=60, check=False)
        assert proc.returncode == 0, proc.stderr
    db = sqlite3.connect(tmp_path / "bounced.db")
    try:
        assert db.execute("SELECT subject, mail_from FROM messages ORDER BY id").fetchall() == [
            ("pipe-0", LATIN1_STORED), ("pipe-1", LATIN1_STORED)]
    finally:
        db.close()


def test_authorization_header_not_utf8_gets_401(served: Served) -> None:
    """A write request whose Authorization header is not UTF-8 gets 401, not 500."""
    rp = served.token("auth")
    status, body = http_raw(served.http_port, ingest_request(
        rp, dsn(ALICE, return_path=rp), auth=b"Bearer \xff\xfe" + HTTP_TOKEN.encode()))
    assert status == 401, body
    assert served.rows("SELECT COUNT(*) FROM messages") == [(0,)]


def wait_for(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


# -- Item 2: storage bounded by the wire -------------------------------------------------------

def case_variants(address: str, n: int) -> list[str]:
    """``n`` spellings of one return path that differ only in letter case."""
    local, _, domain = address.partition("@")
    variants = []
    for k in range(n):
        spelled = "".join(c.upper() if c.isalpha() and (k >> (i % 12)) & 1 else c
                          for i, c in enumerate(local))
        variants.append(f"{spelled}@{domain.upper() if k % 2 else domain}")
    return variants


def body_of(size: int, rp: str) -> bytes:
    """A DSN padded to ``size`` bytes with incompressible lines (PostgreSQL compresses)."""
    head = dsn(ALICE, return_path=rp)
    pad = size - len(head)
    lines = []
    while pad > 0:
        line = os.urandom(57).hex()[:max(0, min(76, pad - 2))].encode() + b"\r\n"
        lines.append(line)
        pad -= len(line)
    return head + b"".join(lines)


def store_bytes(d: Served) -> int:
    """What the store takes on disk: the SQLite file after a checkpoint, or the database."""
    url = d.settings.store_url
    if url.startswith("sqlite:"):
        path = Path(url.removeprefix("sqlite:///"))
        db = sqlite3.connect(path, timeout=30)
        try:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        finally:
            db.close()
        return path.stat().st_size
    [(size,)] = d.rows("SELECT pg_database_size(current_database())")
    return int(size)  # type: ignore[call-overload]


def test_repeated_rcpt_stores_the_body_once(served_any: Served) -> None:
    """One DATA with one token in 40 letter-case variants and 9 other tokens: every RCPT gets
    250, each token is stored once, and the store grows by at most 1.1x the DATA bytes (it grew
    by one copy per RCPT)."""
    d = served_any
    warm = d.token("warm-up")  # the tables' first pages exist before measuring
    conn = open_transaction(d.smtp_port, b"", [warm], body_of(4000, warm))
    assert conn.cmd(b".")[0] == 250
    conn.close()
    rp = d.token("repeated")
    others = [d.token(f"other-{n}") for n in range(9)]
    body = body_of(2_000_000, rp)
    before = store_bytes(d)
    conn = open_transaction(d.smtp_port, b"", case_variants(rp, 40) + others, body)
    code, text = conn.cmd(b".")
    conn.close()
    assert code == 250, text
    grown = store_bytes(d) - before
    assert grown <= 1.1 * len(body), (grown, len(body))
    subjects = [s for (s,) in d.rows("SELECT subject FROM messages")]
    assert sorted(subjects) == sorted(["warm-up", "repeated", *(f"other-{n}" for n in range(9))])


def peak_rss(pid: int) -> int:
    """The process's peak resident memory (VmHWM), bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_daemon_memory_does_not_grow_with_rcpt_count(served: Served) -> None:
    """4 MB messages to one token (twice: the allocator's arenas settle), then the same size to
    50 tokens: the daemon's peak memory grows by less than two bodies (it grew by about 200 MB,
    a copy of the body per recipient, and kept it)."""
    assert served.proc.proc is not None
    pid = served.proc.proc.pid
    for n in range(2):
        one = served.token(f"one-{n}")
        conn = open_transaction(served.smtp_port, b"", [one], body_of(4_000_000, one))
        assert conn.cmd(b".")[0] == 250
        conn.close()
    after_one = peak_rss(pid)
    many = [served.token(f"many-{n}") for n in range(50)]
    body = body_of(4_000_000, many[0])
    conn = open_transaction(served.smtp_port, b"", many, body)
    assert conn.cmd(b".")[0] == 250
    conn.close()
    assert peak_rss(pid) - after_one < 2 * len(body), (peak_rss(pid), after_one)


# -- Item 9: long lines, and one size limit for every way in ------------------------------------

def test_long_data_lines_are_accepted_and_stored_as_sent(served: Served) -> None:
    """Lines of 5,000 and 200,000 octets (real MTAs quote such lines in bounces) get 250, not
    aiosmtpd's permanent 500, and are stored byte for byte, dot-unstuffed."""
    rp = served.token("long-lines")
    body = (dsn(ALICE, return_path=rp) + b"X-Long: " + b"a" * 5000 + b"\r\n"
            + b"." * 3 + b"b" * 200_000 + b"\r\n" + b".\r\n".join([b"", b"end"]) + b"\r\n")
    conn = open_transaction(served.smtp_port, b"", [rp], body)
    code, text = conn.cmd(b".")
    conn.close()
    assert code == 250, text
    [(raw,)] = served.rows("SELECT b.raw FROM messages m JOIN bodies b ON b.id = m.body_id")
    assert raw == body


def test_one_size_limit_for_smtp_http_and_the_pipe(tmp_path: Path) -> None:
    """With max_message_size N, a message of N bytes is stored by SMTP (250), HTTP (202) and
    the pipe (0); N+1 bytes are refused by each (552, 413, 65). HTTP took 64 KiB more."""
    limit = 60_000
    d = Served(tmp_path, BOUNCED_SMTP_MAX_MESSAGE_SIZE=str(limit))
    d.proc.start()
    try:
        results = {}
        for size in (limit, limit + 1):
            rp = d.token(f"smtp-{size}")
            conn = open_transaction(d.smtp_port, b"", [rp], body_of(size, rp))
            results["smtp", size] = conn.cmd(b".")[0]
            conn.close()
            rp = d.token(f"http-{size}")
            results["http", size] = http_raw(d.http_port, ingest_request(
                rp, body_of(size, rp)))[0]
            rp = d.token(f"pipe-{size}")
            results["pipe", size] = subprocess.run(
                [BOUNCED, "deliver", rp], env={**os.environ, **d.env},
                input=body_of(size, rp), capture_output=True, timeout=60, check=False,
            ).returncode
    finally:
        d.proc.stop()
    assert results == {("smtp", limit): 250, ("http", limit): 202, ("pipe", limit): 0,
                       ("smtp", limit + 1): 552, ("http", limit + 1): 413,
                       ("pipe", limit + 1): 65}
    db = sqlite3.connect(tmp_path / "bounced.db")
    try:
        assert sorted(r[0] for r in db.execute("SELECT subject FROM messages")) == [
            f"http-{limit}", f"pipe-{limit}", f"smtp-{limit}"]
    finally:
        db.close()


# -- Item 2: per-client and total limits on the bytes stored per minute -----------------------

def send_one(d: Served, subject: str, size: int, announce: bool = False) -> tuple[str, int, str]:
    """One message of ``size`` bytes over SMTP (its SIZE announced at MAIL FROM if
    ``announce``): ("MAIL", reply) if MAIL FROM is refused, else ("DATA", reply to its end)."""
    rp = d.token(subject)
    conn = SMTPConn(d.smtp_port)
    try:
        assert conn.cmd(b"EHLO mta.example.net")[0] == 250
        code, text = conn.cmd(b"MAIL FROM:<>" + (b" SIZE=%d" % size if announce else b""))
        if code != 250:
            return "MAIL", code, text
        assert conn.cmd(b"RCPT TO:<" + rp.encode() + b">")[0] == 250
        assert conn.cmd(b"DATA")[0] == 354
        conn.send_data(body_of(size, rp))
        return ("DATA", *conn.cmd(b"."))
    finally:
        conn.close()


def test_per_client_storage_limit_answers_452_then_429(tmp_path: Path) -> None:
    """With 250 kB a minute per client, 80 kB messages from one address: three are stored, the
    fourth gets 452 4.3.1 at the end of DATA (temporary: the MTA retries later), one that
    announces its SIZE is refused at MAIL FROM already, and HTTP ingest from the same address
    gets 429. Nothing refused is stored, and the refusals are logged once, not each."""
    d = Served(tmp_path, BOUNCED_SMTP_MAX_MESSAGE_SIZE="100000",
               BOUNCED_LIMITS_PEER_BYTES_PER_MINUTE="250000")
    d.proc.start()
    try:
        replies = [send_one(d, f"peer-{n}", 80_000, announce=n == 4) for n in range(5)]
        rp = d.token("peer-http")
        status, body = http_raw(d.http_port, ingest_request(rp, body_of(80_000, rp)))
    finally:
        d.proc.stop()
    assert [(stage, code) for stage, code, _ in replies] == [
        ("DATA", 250), ("DATA", 250), ("DATA", 250), ("DATA", 452), ("MAIL", 452)], replies
    assert replies[3][2].startswith("452 4.3.1")
    assert (status, b"rate_limit_peer" in body) == (429, True)
    db = sqlite3.connect(tmp_path / "bounced.db")
    try:
        assert sorted(r[0] for r in db.execute("SELECT subject FROM messages")) == [
            "peer-0", "peer-1", "peer-2"]
    finally:
        db.close()
    assert d.log.read_text().count("limits.storage_rate_exceeded") == 1


def test_total_storage_limit_answers_451_and_503(tmp_path: Path) -> None:
    """With no per-client limit and 250 kB a minute in all: the fourth 80 kB message gets
    451 4.3.2 and HTTP ingest 503 with a Retry-After."""
    d = Served(tmp_path, BOUNCED_SMTP_MAX_MESSAGE_SIZE="100000",
               BOUNCED_LIMITS_PEER_BYTES_PER_MINUTE="0",
               BOUNCED_LIMITS_TOTAL_BYTES_PER_MINUTE="250000")
    d.proc.start()
    try:
        replies = [send_one(d, f"total-{n}", 80_000) for n in range(4)]
        rp = d.token("total-http")
        raw = http_raw(d.http_port, ingest_request(rp, body_of(80_000, rp)))
    finally:
        d.proc.stop()
    assert [code for _, code, _ in replies] == [250, 250, 250, 451], replies
    assert replies[3][2].startswith("451 4.3.2")
    assert raw[0] == 503 and b"rate_limit_total" in raw[1]
