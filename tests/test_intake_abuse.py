"""Hostile intake: ``bounced serve`` as a real process, attacked over SMTP, HTTP and the pipe.

Every attack here is one a sender (or a careless relay) can make; each test asserts what the
honest traffic around it still gets, and what ends up in the store.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bounced.api.guard import LINGER_MAX
from bounced.config import load_settings

from .helpers import (
    BOUNCED,
    ROOT,
    DaemonProcess,
    base_env,
    days_ago,
    dsn,
    free_port,
    signer,
)
from .support.smtp_client import SMTPConn

ALICE = "alice@example.net"
HTTP_TOKEN = "hostile-intake-test-token-0123456789"
# An envelope sender in Latin-1, as an old relay passes it on: not UTF-8.
LATIN1_SENDER = b"j\xe9r\xf4me@example.net"
LATIN1_STORED = "j\\xe9r\\xf4me@example.net"  # how the store keeps it: escaped, losslessly


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

    def start(self) -> None:
        """Start the daemon; with other ports should another process have taken one since
        free_port() found it (the machine is shared)."""
        for attempt in range(3):
            try:
                self.proc.start()
                break
            except RuntimeError as exc:
                if "Address already in use" not in str(exc) or attempt == 2:
                    raise
            self.new_ports()
        self.wait_for_http()

    def wait_for_http(self) -> None:
        """The HTTP port listens a moment after the SMTP banner: wait for it too."""
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.http_port), timeout=1).close()
                return
            except OSError:
                assert time.monotonic() < deadline, "the HTTP port did not open"
                time.sleep(0.05)

    def new_ports(self) -> None:
        self.smtp_port, self.http_port = free_port(), free_port()
        self.env.update(BOUNCED_SMTP_LISTEN=f"127.0.0.1:{self.smtp_port}",
                        BOUNCED_HTTP_LISTEN=f"127.0.0.1:{self.http_port}")
        self.settings = load_settings(env=self.env)
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
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.proc.stop()


@pytest.fixture
def served_any(tmp_path: Path, store_url: str) -> Iterator[Served]:
    """``bounced serve`` on each backend, the worker off."""
    daemon = Served(tmp_path, store_url)
    daemon.start()
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
    d.start()
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
    d.start()
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
    d.start()
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
    d.start()
    try:
        replies = [send_one(d, f"total-{n}", 80_000) for n in range(4)]
        rp = d.token("total-http")
        raw = http_raw(d.http_port, ingest_request(rp, body_of(80_000, rp)))
    finally:
        d.proc.stop()
    assert [code for _, code, _ in replies] == [250, 250, 250, 451], replies
    assert replies[3][2].startswith("451 4.3.2")
    assert raw[0] == 503 and b"rate_limit_total" in raw[1]


def in_flight_bytes(d: Served) -> float:
    """The daemon's gauge of bytes being received and not yet stored."""
    _, body = http_raw(d.http_port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n"
                       b"Connection: close\r\n\r\n")
    [line] = [ln for ln in body.decode().splitlines()
              if ln.startswith("bounced_intake_in_flight_bytes ")]
    return float(line.split()[1])


def test_in_flight_budget_refuses_for_now_and_loses_nothing(tmp_path: Path) -> None:
    """With 250 kB in flight at most and two 90 kB DATAs being received (their final dot not
    sent yet): a third session whose message outgrows the budget gets 452 4.3.1 after its
    data, one announcing SIZE=90000 gets 452 4.3.1 at DATA, HTTP ingest gets 503 (JSON, with
    Retry-After); the two held sessions then get 250, and every refused message, sent again,
    is stored. Nothing refused is stored, nothing is stored twice, and the daemon holds no
    byte once the sessions are done (they held size x sessions without a limit)."""
    d = Served(tmp_path, BOUNCED_SMTP_MAX_MESSAGE_SIZE="100000",
               BOUNCED_LIMITS_IN_FLIGHT_BYTES="250000")
    d.start()
    try:
        held = {}
        for name in ("held-a", "held-b"):
            rp = d.token(name)
            body = body_of(90_000, rp)
            held[name] = (open_transaction(d.smtp_port, b"", [rp], body), len(body))
        total = sum(size for _, size in held.values())
        wait_for(lambda: in_flight_bytes(d) == total)

        rp = d.token("outgrown")
        late = open_transaction(d.smtp_port, b"", [rp], body_of(90_000, rp))
        code, text = late.cmd(b".")
        late.close()
        assert (code, text[:9]) == (452, "452 4.3.1"), text

        announced = SMTPConn(d.smtp_port)
        assert announced.cmd(b"EHLO mta.example.net")[0] == 250
        assert announced.cmd(b"MAIL FROM:<> SIZE=90000")[0] == 250
        assert announced.cmd(b"RCPT TO:<" + d.token("announced").encode() + b">")[0] == 250
        code, text = announced.cmd(b"DATA")
        announced.close()
        assert (code, text[:9]) == (452, "452 4.3.1"), text

        rp = d.token("over-http")
        status, body = http_raw(d.http_port, ingest_request(rp, body_of(90_000, rp)))
        assert status == 503 and json.loads(body)["reason"] == "in_flight", body
        assert in_flight_bytes(d) == total  # the refused ones took nothing

        for conn, _ in held.values():
            assert conn.cmd(b".")[0] == 250
            conn.close()
        wait_for(lambda: in_flight_bytes(d) == 0)
        # The MTAs retry: everything refused is stored now.
        assert send_one(d, "outgrown", 90_000)[:2] == ("DATA", 250)
        assert send_one(d, "announced", 90_000, announce=True)[:2] == ("DATA", 250)
        rp = d.token("over-http")
        assert http_raw(d.http_port, ingest_request(rp, body_of(90_000, rp)))[0] == 202
        assert in_flight_bytes(d) == 0
    finally:
        d.proc.stop()
    subjects = sorted(s for (s,) in d.rows("SELECT subject FROM messages"))
    assert subjects == ["announced", "held-a", "held-b", "outgrown", "over-http"]
    assert d.log.read_text().count("limits.in_flight_exceeded") == 1  # once a minute


# -- Item 4 and 9: the HTTP port's limits, file descriptors, the SQLite file, health --------------

class Launched:
    """``bounced serve`` started under a umask, limited to ``nofile`` open files once up (soft
    and hard, so it cannot raise them), its output read through a pipe (a file-size limit then
    never reaches the log)."""

    def __init__(self, d: Served, *, nofile: int | None = None, umask: int = 0o022) -> None:
        self.d = d
        for attempt in range(3):
            if self._start(umask) or attempt == 2:
                break
            d.new_ports()  # another process took one of the ports free_port() found
        d.wait_for_http()
        if nofile is not None:
            import resource

            resource.prlimit(self.proc.pid, resource.RLIMIT_NOFILE, (nofile, nofile))

    def _start(self, umask: int) -> bool:
        """Start and wait for the banner; False if a port was taken meanwhile."""
        self.proc = subprocess.Popen(
            ["/bin/sh", "-c", f'umask {umask:03o} && exec "$0" -m bounced.cli serve',
             sys.executable],
            env={**os.environ, **self.d.env}, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, cwd=ROOT)
        self.output: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                self._reader.join(5)
                assert "Address already in use" in self.text(), self.text()
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.d.smtp_port), timeout=1) as s:
                    if s.recv(100).startswith(b"220"):
                        return True
            except OSError:
                pass
            assert time.monotonic() < deadline, self.text()
            time.sleep(0.05)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)

    def text(self) -> str:
        return b"".join(self.output).decode("utf-8", "replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(5)


def healthz(port: int) -> tuple[int, bytes]:
    return http_raw(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")


def test_idle_http_connections_never_stop_smtp(tmp_path: Path) -> None:
    """1,100 idle HTTP connections to a daemon allowed 1,024 open files (systemd's default):
    SMTP still answers and stores (250), the extra connections are refused and logged, the
    idle ones are closed after [http] idle_timeout, and /healthz answers again (file
    descriptors ran out: SMTP connects got no banner, nothing was logged)."""
    d = Served(tmp_path, BOUNCED_HTTP_IDLE_TIMEOUT="3")
    daemon = Launched(d, nofile=1024)
    socks = []
    try:
        for _ in range(1100):
            with contextlib.suppress(OSError):
                socks.append(socket.create_connection(("127.0.0.1", d.http_port), timeout=2))
        assert len(socks) > 1024
        rp = d.token("during-idle-http")
        conn = SMTPConn(d.smtp_port, timeout=10)
        conn2 = open_transaction(d.smtp_port, b"", [rp], dsn(ALICE, return_path=rp))
        assert conn2.cmd(b".")[0] == 250
        conn.close()
        conn2.close()
        assert len(os.listdir(f"/proc/{daemon.proc.pid}/fd")) < 400
        time.sleep(4)  # the idle connections are closed by now
        assert healthz(d.http_port)[0] == 200
    finally:
        for s in socks:
            s.close()
        daemon.stop()
    assert "http.connection_limit" in daemon.text()
    assert "http.idle_timeout" in daemon.text()
    assert "Traceback" not in daemon.text()


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """A whole HTTP response read up to the server's close (a reset raises)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return int(lines[0].split(" ", 2)[1]), headers, body


def test_connections_over_the_limit_read_a_whole_json_503(tmp_path: Path) -> None:
    """With [http] max_connections 2 held by idle clients, each further client that sends a
    request (a 200 kB ingest, the bytes still arriving when it is refused, or a GET) reads a
    complete 503 with the API's JSON error and a Retry-After, then the close; never a reset
    (the 503 was written and the socket closed with the request unread: a reset that could
    destroy the 503 before the client read it, and its body was plain text). So does a
    health check while 200 refused clients hold their connections open and never read, and
    the daemon's descriptors stay bounded meanwhile."""
    d = Served(tmp_path, BOUNCED_HTTP_MAX_CONNECTIONS="2")
    daemon = Launched(d)
    idle = []
    try:
        idle = [socket.create_connection(("127.0.0.1", d.http_port), timeout=10)
                for _ in range(2)]
        time.sleep(0.2)  # both accepted
        rp = d.token("over-the-limit")
        requests = [ingest_request(rp, body_of(200_000, rp)),
                    b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"]
        for n in range(20):
            with socket.create_connection(("127.0.0.1", d.http_port), timeout=10) as s:
                with contextlib.suppress(OSError):  # refused while sending: read what came
                    s.sendall(requests[n % 2])
                status, headers, body = read_response(s)
            assert status == 503, (n, status, body)
            assert headers["content-type"].startswith("application/json"), headers
            assert headers["retry-after"] == "5" and int(headers["content-length"]) == len(body)
            assert "too many connections" in json.loads(body)["error"]
        idle += [socket.create_connection(("127.0.0.1", d.http_port), timeout=10)
                 for _ in range(200)]
        time.sleep(0.2)
        for _ in range(5):
            assert healthz(d.http_port)[0] == 503
        assert len(os.listdir(f"/proc/{daemon.proc.pid}/fd")) < 2 + LINGER_MAX + 60
        for s in idle:
            s.close()
        wait_for(lambda: healthz(d.http_port)[0] == 200)
    finally:
        for s in idle:
            s.close()
        daemon.stop()
    assert d.rows("SELECT subject FROM messages") == []
    assert daemon.text().count("http.connection_limit") == 1  # once a minute, with the count


def test_oversized_ingest_reads_a_whole_json_413(tmp_path: Path) -> None:
    """An ingest body over max_message_size, announced by Content-Length or sent chunked
    without one, gets a complete 413 with the API's JSON error, read whole before the close
    (aiohttp's plain-text 413 before), and the connection serves no more; other errors of
    aiohttp's (404, 405) are JSON too. Nothing is stored."""
    limit = 60_000
    d = Served(tmp_path, BOUNCED_SMTP_MAX_MESSAGE_SIZE=str(limit))
    daemon = Launched(d)
    try:
        rp = d.token("too-large")
        body = body_of(limit + 1, rp)
        announced = ingest_request(rp, body)
        head = announced.partition(b"\r\n\r\n")[0]
        chunked = (head.replace(b"Content-Length: %d" % len(body), b"Transfer-Encoding: chunked")
                   + b"\r\n\r\n" + b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in
                                          (body[i:i + 8192] for i in range(0, len(body), 8192)))
                   + b"0\r\n\r\n")
        for request in (announced, chunked):
            with socket.create_connection(("127.0.0.1", d.http_port), timeout=10) as s:
                s.sendall(request)
                status, headers, reply = read_response(s)
            assert status == 413, (status, reply)
            assert headers["content-type"].startswith("application/json"), headers
            assert json.loads(reply) == {
                "error": f"message larger than [smtp] max_message_size ({limit} bytes)"}
        for request, expected in (
                (b"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404),
                (b"DELETE /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 405)):
            with socket.create_connection(("127.0.0.1", d.http_port), timeout=10) as s:
                s.sendall(request)
                status, headers, reply = read_response(s)
            assert status == expected and "error" in json.loads(reply), (status, reply)
    finally:
        daemon.stop()
    assert d.rows("SELECT subject FROM messages") == []
    assert "Traceback" not in daemon.text()


def test_slow_headers_and_stalled_bodies_are_cut_off(tmp_path: Path) -> None:
    """A client that sends its headers a byte at a time, or stops half-way through a body, is
    disconnected after [http] header_timeout or body_timeout (they held a connection for as
    long as they liked)."""
    d = Served(tmp_path, BOUNCED_HTTP_HEADER_TIMEOUT="2", BOUNCED_HTTP_BODY_TIMEOUT="2",
               BOUNCED_HTTP_IDLE_TIMEOUT="30")
    daemon = Launched(d)
    try:
        slow = socket.create_connection(("127.0.0.1", d.http_port), timeout=10)
        start = time.monotonic()
        closed_after = None
        with contextlib.suppress(OSError):
            for byte in b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 20:
                slow.sendall(bytes([byte]))
                time.sleep(0.3)
        with contextlib.suppress(OSError):
            slow.recv(100)
        closed_after = time.monotonic() - start
        slow.close()
        assert closed_after < 8, closed_after
        rp = d.token("stalled")
        stalled = socket.create_connection(("127.0.0.1", d.http_port), timeout=10)
        request = ingest_request(rp, dsn(ALICE, return_path=rp))
        start = time.monotonic()
        stalled.sendall(request[:-100])  # the headers and most of the body; then nothing
        with contextlib.suppress(OSError):
            assert stalled.recv(100) == b""
        assert time.monotonic() - start < 8
        stalled.close()
    finally:
        daemon.stop()
    assert "http.headers_timeout" in daemon.text()
    assert "http.body_timeout" in daemon.text()


def test_smtp_connection_limit_is_logged_once(tmp_path: Path) -> None:
    """Connections over [smtp] max_connections get 421 and one warning is logged for the
    flood (each refusal was an info line of its own, none said a limit was hit)."""
    d = Served(tmp_path, BOUNCED_SMTP_MAX_CONNECTIONS="5")
    daemon = Launched(d)
    conns = []
    try:
        for _ in range(5):
            conns.append(SMTPConn(d.smtp_port))
        refused = []
        for _ in range(10):
            extra = SMTPConn(d.smtp_port)
            refused.append(extra.banner[0])
            extra.close()
        assert refused == [421] * 10
    finally:
        for c in conns:
            c.close()
        daemon.stop()
    assert daemon.text().count("smtp.connection_limit") == 1


def test_sqlite_database_is_created_private(tmp_path: Path) -> None:
    """Under umask 022 the SQLite database and its -wal and -shm files are created 0600 (they
    were 0644: readable by every local user)."""
    d = Served(tmp_path)
    daemon = Launched(d, umask=0o022)
    try:
        rp = d.token("private")
        conn = open_transaction(d.smtp_port, b"", [rp], dsn(ALICE, return_path=rp))
        assert conn.cmd(b".")[0] == 250
        conn.close()
        modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.glob("bounced.db*")}
    finally:
        daemon.stop()
    assert modes == {"bounced.db": 0o600, "bounced.db-wal": 0o600, "bounced.db-shm": 0o600}


@pytest.mark.parametrize("case", ["directory", "under a file", "not a database"])
def test_unopenable_sqlite_path_is_one_clear_line(tmp_path: Path, case: str) -> None:
    """`bounced serve`, `status` and `deliver` with an SQLite path that cannot be opened (a
    directory, a path under a file, a file that is not a database) exit non-zero with one line
    naming the path, no traceback (there were tracebacks)."""
    if case == "directory":
        path = tmp_path / "state"
        path.mkdir()
    elif case == "under a file":
        (tmp_path / "plain").write_text("x")
        path = tmp_path / "plain" / "bounced.db"
    else:
        path = tmp_path / "garbage.db"
        path.write_bytes(b"this is not an SQLite database file\n" * 200)
    env = {**os.environ, **base_env(tmp_path, BOUNCED_STORE_URL=f"sqlite:///{path}",
                                    BOUNCED_SMTP_LISTEN="127.0.0.1:0",
                                    BOUNCED_HTTP_LISTEN="127.0.0.1:0")}
    rp = signer(load_settings(env=env)).return_path("1", ALICE, day=days_ago(1))
    for args, expected in ((["serve"], 1), (["status", "--subject", "1"], 1),
                           (["deliver", rp], 75)):
        proc = subprocess.run([BOUNCED, *args], env=env, input=dsn(ALICE), capture_output=True,
                              timeout=60, check=False)
        errors = [line for line in proc.stderr.decode().splitlines()
                  if not line.startswith("{")]  # the JSON log lines aside
        assert proc.returncode == expected, (args, proc.stderr)
        assert b"Traceback" not in proc.stderr + proc.stdout, (args, proc.stderr)
        assert len(errors) == 1 and str(path) in errors[0], (args, proc.stderr)


def test_healthz_reflects_failing_writes(tmp_path: Path) -> None:
    """While every write fails (the daemon may not grow any file: a full disk), /healthz
    answers 503 and says so within seconds, before any message arrives, and after one got 451;
    once writes work again, messages get 250 and /healthz 200 (it said ok throughout)."""
    import resource

    d = Served(tmp_path)
    daemon = Launched(d)
    try:
        assert healthz(d.http_port)[0] == 200
        hard = resource.prlimit(daemon.proc.pid, resource.RLIMIT_FSIZE)[1]
        resource.prlimit(daemon.proc.pid, resource.RLIMIT_FSIZE, (1, hard))
        wait_for(lambda: healthz(d.http_port)[0] == 503, timeout=20)
        status, body = healthz(d.http_port)
        assert status == 503 and b"writes failing" in body, body
        rp = d.token("disk-full")
        conn = open_transaction(d.smtp_port, b"", [rp], dsn(ALICE, return_path=rp))
        assert conn.cmd(b".")[0] == 451
        conn.close()
        status, body = healthz(d.http_port)
        assert status == 503 and b"writes failing" in body, body
        resource.prlimit(daemon.proc.pid, resource.RLIMIT_FSIZE, (hard, hard))
        conn = open_transaction(d.smtp_port, b"", [rp], dsn(ALICE, return_path=rp))
        assert conn.cmd(b".")[0] == 250
        conn.close()
        wait_for(lambda: healthz(d.http_port)[0] == 200)
    finally:
        daemon.stop()
    assert "Traceback" not in daemon.text()
