"""Shared helpers of the intake and growth benchmarks.

Besides the helpers, this file is the load generator and the bare baseline server, each run as
a process of its own so it never shares an interpreter (or a GIL) with what it measures:

    python bench/common.py loadgen --port P --connections N --count M --seconds T ...
    python bench/common.py bare --port P

The load generator speaks plain SMTP over asyncio streams (uvloop when installed), one
transaction after another on each connection, without pipelining (as Postfix's smtp-source
does), with a distinct signed return path per message, and prints one JSON object: messages
sent and acknowledged, elapsed time, and the latency from the end of DATA (the final
``.``) to the reply.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOMAIN = "bounces.example.test"
KEY_LINE = "k1 c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS0zMmJ5dGVzISE="
PG_ADMIN_DSN = os.environ.get("BOUNCED_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


# --------------------------------------------------------------------------- corpus, keys, env


def corpus_dir() -> Path:
    """tests/corpus/emails: the labelled corpus in this repository."""
    folder = ROOT / "tests" / "corpus" / "emails"
    if not folder.is_dir():
        raise SystemExit(f"no corpus found at {folder}")
    return folder


def load_corpus(folder: Path | None = None) -> list[bytes]:
    return [p.read_bytes() for p in sorted((folder or corpus_dir()).glob("*.eml"))]


def write_keys(folder: Path) -> Path:
    path = folder / "keys"
    path.write_text(KEY_LINE + "\n")
    path.chmod(0o600)
    return path


def daemon_env(folder: Path, store_url: str, port: int, **extra: str) -> dict[str, str]:
    """The environment of a ``bounced serve`` under test (production defaults otherwise)."""
    env = {
        **os.environ,
        "BOUNCED_STORE_URL": store_url,
        "BOUNCED_STORE_STATE_DIR": str(folder / "state"),
        "BOUNCED_VERP_KEYS_FILE": str(write_keys(folder)),
        "BOUNCED_VERP_DOMAIN": DOMAIN,
        "BOUNCED_SMTP_LISTEN": f"127.0.0.1:{port}",
        "BOUNCED_HTTP_LISTEN": "127.0.0.1:0",  # the HTTP API runs, on a port of its own
        "BOUNCED_LOG_FORMAT": "json",
    }
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def dsn(recipient: str, return_path: str, status: str = "5.1.1") -> bytes:
    """A Postfix-style RFC 3464 DSN for one failed recipient."""
    diagnostic = f"550 {status} <{recipient}>: Recipient address rejected: User unknown"
    text = f"""\
Return-Path: <>
From: MAILER-DAEMON@mx.example.net (Mail Delivery System)
To: {return_path}
Subject: Undelivered Mail Returned to Sender
Message-ID: <{random.getrandbits(64):x}@mx.example.net>
Date: Mon, 02 Nov 2026 10:00:00 +0000
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b0"

--b0
Content-Type: text/plain; charset=us-ascii

<{recipient}>: host mx.example.net said: {diagnostic}

--b0
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; {recipient}
Action: failed
Status: {status}
Remote-MTA: dns; mx.example.net
Diagnostic-Code: smtp; {diagnostic}

--b0
Content-Type: text/rfc822-headers

From: app@example.org
To: {recipient}
Subject: Your weekly digest

--b0--
"""
    return text.replace("\n", "\r\n").encode()


# --------------------------------------------------------------------------- numbers


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank; nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


# --------------------------------------------------------------------------- processes


def proc_status(pid: int) -> dict[str, int]:
    """VmHWM (peak RSS) and VmRSS in KiB, and CPU seconds x100 (utime+stime) of a live process."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                out[key] = int(value.split()[0])
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        out["cpu_ticks"] = int(fields[11]) + int(fields[12])
    return out


CLK_TCK = os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    """The live child processes of ``pid``, and theirs (from /proc/*/stat)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def tree_status(pid: int) -> dict[str, int]:
    """proc_status of a process with its descendants (a daemon with a worker process): CPU
    ticks summed; VmHWM and VmRSS summed over the processes (each one's own peak, so the sum
    bounds the peak of the whole from above); ``processes`` counts them."""
    out = proc_status(pid)
    out["cpu_ticks_main"] = out.get("cpu_ticks", 0)
    children = descendants(pid)
    for child in children:
        for key, value in proc_status(child).items():
            out[key] = out.get(key, 0) + value
    out["processes"] = 1 + len(children)
    return out


class Server:
    """A server under test as a subprocess: started, waited for (220 banner), measured, stopped."""

    def __init__(self, argv: list[str], env: dict[str, str], port: int, log_path: Path) -> None:
        self.argv, self.env, self.port, self.log_path = argv, env, port, log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=log, cwd=ROOT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.argv} exited: {self.log_path.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(100).startswith(b"220"):
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.argv} did not start within {timeout} s")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def status(self) -> dict[str, int]:
        """Peak RSS and CPU time of the server, its child processes included."""
        return tree_status(self.pid)

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)


def bounced_server(folder: Path, store_url: str, **extra: str) -> Server:
    port = free_port()
    env = daemon_env(folder, store_url, port, **extra)
    return Server([sys.executable, "-m", "bounced.cli", "serve"], env, port, folder / "daemon.log")


def bare_server(folder: Path) -> Server:
    port = free_port()
    return Server([sys.executable, __file__, "bare", "--port", str(port)], dict(os.environ), port,
                  folder / "bare.log")


@dataclass
class LoadResult:
    sent: int
    ok: int
    failed: int
    errors: int
    elapsed: float
    first_send: float  # wall clock (time.time()) of the first command
    last_reply: float
    p50_ms: float
    p99_ms: float
    replies: dict[str, int]

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed if self.elapsed > 0 else 0.0


def run_loadgen(port: int, *, connections: int, count: int, seconds: float,
                keys: Path | None = None, messages: str = "corpus", tokens: str = "signed",
                seed: int = 1) -> LoadResult:
    """Run the load generator in its own process and return what it measured."""
    argv = [sys.executable, __file__, "loadgen", "--port", str(port),
            "--connections", str(connections), "--count", str(count),
            "--seconds", str(seconds), "--messages", messages, "--tokens", tokens,
            "--seed", str(seed)]
    if keys is not None:
        argv += ["--keys", str(keys)]
    done = subprocess.run(argv, capture_output=True, timeout=seconds + 120, check=False, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed: {done.stderr.decode()[-2000:]}")
    return LoadResult(**json.loads(done.stdout))


# --------------------------------------------------------------------------- PostgreSQL


def pg_reason() -> str | None:
    """None when a PostgreSQL server is reachable and the store exists, else why not."""
    try:
        import asyncpg

        import bounced.store.postgres  # noqa: F401
    except ImportError as exc:
        return f"not available: {exc}"

    async def probe() -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=3)
        await conn.close()

    try:
        asyncio.run(probe())
    except Exception as exc:
        return f"no PostgreSQL at {PG_ADMIN_DSN} ({exc.__class__.__name__}: {exc})"
    return None


async def pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def pg_url(name: str) -> str:
    return f"{PG_ADMIN_DSN.rpartition('/')[0]}/{name}"


@contextlib.contextmanager
def pg_database(name: str, keep: bool = False) -> Iterator[str]:
    """A fresh database (dropped first if it exists, and afterwards unless ``keep``)."""
    asyncio.run(pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    asyncio.run(pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield pg_url(name)
    finally:
        if not keep:
            asyncio.run(pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def queue_drained_at(
    store_url: str, expected: int, deadline: float
) -> tuple[float, dict[str, int]]:
    """Wait until ``expected`` jobs are finished; return when the last one finished (wall clock)."""
    from bounced.store import open_store

    store = open_store(store_url)
    await store.open()
    try:
        while True:
            counts = await store.queue_counts()
            finished = counts["done"] + counts["quarantined"] + counts.get("failed", 0)
            if finished >= expected or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        latest = [m.processed_at for m in await store.messages(None, limit=max(expected, 1) * 2)
                  if m.processed_at is not None]
        last = max(latest).timestamp() if latest else float("nan")
        return last, counts
    finally:
        await store.close()


def runner(coro_factory: Any) -> Any:
    """Run a coroutine on uvloop when installed (as the daemon does)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro_factory())
    return uvloop.run(coro_factory())


# --------------------------------------------------------------------------- bare server


def serve_bare(port: int) -> None:
    """aiosmtpd that accepts every recipient and discards every message, configured as bounced's
    SMTP protocol is (hostname given, bytes not decoded, SMTPUTF8 on), on the same event loop."""
    from aiosmtpd.smtp import SMTP

    class Discard:
        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
            envelope.rcpt_tos.append(address)
            return "250 2.1.5 Recipient OK"

        async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
            return "250 2.0.0 Message discarded"

    async def main() -> None:
        handler = Discard()
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(handler, hostname="bare.localhost", ident="bare",
                         data_size_limit=10 * 1024 * 1024, timeout=300,
                         enable_SMTPUTF8=True, decode_data=False),
            "127.0.0.1", port,
        )
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        server.close()
        await server.wait_closed()

    import logging

    logging.getLogger("mail.log").setLevel(logging.WARNING)
    runner(main)


# --------------------------------------------------------------------------- load generator


MAX_LINE = 990  # RFC 5321 allows 998 octets; a few corpus messages have longer lines


def dot_stuff(raw: bytes) -> bytes:
    """The DATA payload of a message: CRLF line ends, lines longer than the SMTP limit folded
    as Postfix's SMTP client folds them (CRLF SPACE), leading dots doubled, final CRLF . CRLF."""
    lines = []
    for line in raw.replace(b"\r\n", b"\n").split(b"\n"):
        lines.append(line[:MAX_LINE])
        lines.extend(b" " + line[i : i + MAX_LINE] for i in range(MAX_LINE, len(line), MAX_LINE))
    if lines and lines[-1] == b"":
        lines.pop()
    return b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n"
                    for line in lines) + b".\r\n"


def build_transactions(count: int, keys: Path | None, messages: str, tokens: str,
                       seed: int) -> list[tuple[bytes, bytes]]:
    """(RCPT command, DATA payload) per message; each message its own signed return path."""
    rng = random.Random(seed)
    corpus = load_corpus() if messages == "corpus" else []
    sign = None
    if tokens == "signed":
        assert keys is not None, "--keys is needed for signed return paths"
        from bounced.verp import Keyring, Signer

        sign = Signer(Keyring.load(keys), domain=DOMAIN).return_path
    today = dt.datetime.now(dt.UTC).date()
    out = []
    for i in range(count):
        address = f"user{seed}-{i}@example.net"
        if sign is not None:
            rp = sign(f"u{seed}-{i}", address, day=today - dt.timedelta(days=rng.randint(0, 14)))
        else:
            rp = f"bounce-{i}@{DOMAIN}"
        raw = corpus[i % len(corpus)] if corpus else dsn(address, rp)
        out.append((f"RCPT TO:<{rp}>\r\n".encode(), dot_stuff(raw)))
    return out


async def loadgen(args: argparse.Namespace) -> dict[str, Any]:
    transactions = build_transactions(args.count, args.keys, args.messages, args.tokens, args.seed)
    latencies: list[float] = []
    replies: dict[str, int] = {}
    state = {"next": 0, "sent": 0, "ok": 0, "failed": 0, "errors": 0}
    first_send = time.time()
    start = time.perf_counter()
    deadline = start + args.seconds

    async def reply(reader: asyncio.StreamReader) -> bytes:
        while True:
            line = await reader.readline()
            if not line:
                raise ConnectionResetError("server closed the connection")
            if line[3:4] != b"-":
                return line

    async def connection() -> None:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
        except OSError:
            state["errors"] += 1
            return
        try:
            await reply(reader)
            writer.write(b"EHLO loadgen.test\r\n")
            await reply(reader)
            while state["next"] < len(transactions) and time.perf_counter() < deadline:
                rcpt, payload = transactions[state["next"]]
                state["next"] += 1
                state["sent"] += 1
                writer.write(b"MAIL FROM:<>\r\n")
                line = await reply(reader)
                writer.write(rcpt)
                line = await reply(reader)
                if line.startswith(b"250"):
                    writer.write(b"DATA\r\n")
                    line = await reply(reader)
                    if line.startswith(b"354"):
                        writer.write(payload)
                        t0 = time.perf_counter()
                        line = await reply(reader)
                        latencies.append(time.perf_counter() - t0)
                code = line[:3].decode(errors="replace")
                replies[code] = replies.get(code, 0) + 1
                if code == "250":
                    state["ok"] += 1
                else:
                    state["failed"] += 1
                    writer.write(b"RSET\r\n")
                    await reply(reader)
            writer.write(b"QUIT\r\n")
            with contextlib.suppress(OSError, ConnectionError):
                await reply(reader)
        except (OSError, ConnectionError):
            state["errors"] += 1
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(args.connections)))
    elapsed = time.perf_counter() - start
    ms = [x * 1000 for x in latencies]
    return {
        "sent": state["sent"], "ok": state["ok"], "failed": state["failed"],
        "errors": state["errors"], "elapsed": elapsed, "first_send": first_send,
        "last_reply": first_send + elapsed, "p50_ms": percentile(ms, 0.5),
        "p99_ms": percentile(ms, 0.99), "replies": replies,
    }


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("bare", help="a bare aiosmtpd server that accepts and discards")
    b.add_argument("--port", type=int, required=True)
    g = sub.add_parser("loadgen", help="SMTP load generator")
    g.add_argument("--port", type=int, required=True)
    g.add_argument("--connections", type=int, default=20)
    g.add_argument("--count", type=int, default=5000)
    g.add_argument("--seconds", type=float, default=30.0)
    g.add_argument("--keys", type=Path)
    g.add_argument("--messages", choices=("corpus", "dsn"), default="corpus")
    g.add_argument("--tokens", choices=("signed", "plain"), default="signed")
    g.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    if args.cmd == "bare":
        serve_bare(args.port)
    else:
        print(json.dumps(runner(lambda: loadgen(args))))


if __name__ == "__main__":
    main()
