"""PostgreSQL outages: the daemon answers 451 while the database is down, keeps running, and
recovers by itself when it is back; nothing acknowledged is lost or counted twice.

The load test stops the PostgreSQL server for real (``pg_ctlcluster ... stop -m fast``), which
disturbs every other user of that server: it runs only with BOUNCED_TEST_PG_RESTART=1 or
CI=true. BOUNCED_TEST_PG_CLUSTER ("15 main" by default) names the cluster behind
BOUNCED_TEST_PG, so it can also be pointed at a private cluster.
"""

from __future__ import annotations

import asyncio
import json
import os
import smtplib
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

from bounced.config import load_settings
from bounced.exceptions import StoreUnavailable
from bounced.model import DONE
from bounced.store import open_ready_store, open_store

from .cmdline import wait_for
from .conftest import PG_ADMIN_DSN
from .helpers import DaemonProcess, base_env, days_ago, dsn, free_port, make_settings, signer

CLUSTER = os.environ.get("BOUNCED_TEST_PG_CLUSTER", "15 main").split()
CLIENTS = 4
LOAD_BEFORE = 1.5  # seconds of load before the server is stopped
DOWN_FOR = 4.0  # seconds the server stays down
LOAD_AFTER = 2.0  # seconds of load after it is back
SEND_DEADLINE = 60.0
DRAIN_DEADLINE = 45.0


def restart_skip_reason() -> str | None:
    if os.environ.get("BOUNCED_TEST_PG_RESTART") == "1" or os.environ.get("CI") == "true":
        return None
    return ("stops the shared PostgreSQL server; set BOUNCED_TEST_PG_RESTART=1 (or CI=true) "
            "to run it")


def pg_ctl(action: str) -> None:
    extra = ["-m", "fast"] if action == "stop" else []
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", *CLUSTER, action, *extra],
                   check=True, timeout=60, capture_output=True)


def pg_ready() -> bool:
    async def probe() -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=2)
        await conn.close()

    try:
        asyncio.run(probe())
    except Exception:
        return False
    return True


def ensure_pg_running(timeout: float = 60.0) -> None:
    """Start the server if it is not accepting connections; wait until it does."""
    deadline = time.monotonic() + timeout
    if not pg_ready():
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", *CLUSTER, "start"],
                       timeout=60, capture_output=True, check=False)
    while not pg_ready():
        assert time.monotonic() < deadline, "PostgreSQL did not come back"
        time.sleep(0.2)


@dataclass
class Attempt:
    started: float
    ended: float
    reply: str  # "250", "451", ..., or the exception's name


class Client(threading.Thread):
    """Sends DSNs, each for a token of its own, retrying every one until it gets a 250."""

    def __init__(self, n: int, port: int, sign: Callable[..., str], stop: threading.Event,
                 deadline: float) -> None:
        super().__init__(name=f"outage-client-{n}", daemon=True)
        self.n, self.port, self.sign, self.stop_sending = n, port, sign, stop
        self.deadline = deadline
        self.acked: list[str] = []
        self.attempts: list[Attempt] = []

    def run(self) -> None:
        i = 0
        while not self.stop_sending.is_set() and time.monotonic() < self.deadline:
            address = f"user{self.n}-{i}@example.net"
            rp = self.sign(f"o{self.n}-{i}", address, day=days_ago(3))
            data = dsn(address, return_path=rp)
            while time.monotonic() < self.deadline:
                started = time.monotonic()
                reply = self.send(rp, data)
                self.attempts.append(Attempt(started, time.monotonic(), reply))
                if reply == "250":
                    self.acked.append(rp.split("@")[0].removeprefix("bounce-"))
                    break
                time.sleep(0.1)
            i += 1

    def send(self, rp: str, data: bytes) -> str:
        try:
            with smtplib.SMTP("127.0.0.1", self.port, timeout=15) as client:
                client.ehlo("outage.test")
                for call in (lambda: client.mail(""), lambda: client.rcpt(rp),
                             lambda: client.data(data)):
                    code, _ = call()
                    if code != 250:
                        return str(code)
            return "250"
        except (OSError, smtplib.SMTPException) as exc:
            return type(exc).__name__


async def stored(url: str) -> tuple[dict[str, int], list, Counter[str], Counter[str]]:
    """Queue counts, messages, and per token: incidents and counting incidents."""
    store = open_store(url)
    await store.open()
    try:
        counts = await store.queue_counts()
        messages = await store.messages(None, limit=100_000)
        incidents, counting = Counter[str](), Counter[str]()
        for key in {(m.subject, m.fingerprint) for m in messages}:
            for i in await store.incidents(*key, limit=1000):
                incidents[i.token_id] += 1
                counting[i.token_id] += i.counts
        return counts, messages, incidents, counting
    finally:
        await store.close()


def wait_drained(url: str, deadline: float) -> None:
    while True:
        counts = asyncio.run(stored(url))[0]
        if counts["pending"] == 0 and counts["processing"] == 0:
            return
        assert time.monotonic() < deadline, f"queue not drained in time: {counts}"
        time.sleep(0.3)


@pytest.mark.slow
@pytest.mark.skipif(restart_skip_reason() is not None, reason=str(restart_skip_reason()))
def test_server_stopped_under_load_451_then_recovers(tmp_path: Path, pg_database: str) -> None:
    """While PostgreSQL is down DATA gets 451; after it is back every 250'd bounce is processed."""
    env = base_env(tmp_path, BOUNCED_STORE_URL=pg_database, BOUNCED_LOG_FORMAT="json",
                   BOUNCED_SMTP_LISTEN=f"127.0.0.1:{free_port()}",
                   BOUNCED_WORKER_LEASE_SECONDS="3",
                   BOUNCED_WORKER_CLASSIFY_BUDGET_SECONDS="1")  # shorter than the lease
    sign = signer(load_settings(env=env)).return_path
    daemon = DaemonProcess(env, tmp_path / "daemon.log")
    stop = threading.Event()
    clients: list[Client] = []
    daemon.start()
    try:
        t0 = time.monotonic()
        clients = [Client(n, daemon.port, sign, stop, t0 + SEND_DEADLINE) for n in range(CLIENTS)]
        for c in clients:
            c.start()
        time.sleep(LOAD_BEFORE)
        pg_ctl("stop")
        down_from = time.monotonic()
        time.sleep(DOWN_FOR)
        assert daemon.proc is not None and daemon.proc.poll() is None, "daemon died"
        down_until = time.monotonic()
        pg_ctl("start")
        up_at = time.monotonic()
        time.sleep(LOAD_AFTER)
        stop.set()
        for c in clients:
            c.join(SEND_DEADLINE)
        assert not any(c.is_alive() for c in clients), "clients did not finish"
        wait_drained(pg_database, time.monotonic() + DRAIN_DEADLINE)
        assert daemon.proc.poll() is None, "daemon died"
    finally:
        stop.set()
        ensure_pg_running()
        daemon.stop()

    attempts = [a for c in clients for a in c.attempts]
    during = [a for a in attempts if a.started > down_from and a.ended < down_until]
    after = [a for a in attempts if a.started > up_at]
    replies = Counter(a.reply for a in attempts)
    acked = [t for c in clients for t in c.acked]
    counts, messages, incidents, counting = asyncio.run(stored(pg_database))
    recovered = min((a.ended - up_at for a in after if a.reply == "250"), default=None)
    print(f"\nattempts {len(attempts)}: {dict(replies)}; while down: "
          f"{dict(Counter(a.reply for a in during))}; acked {len(acked)}, stored "
          f"{len(messages)}, queue {counts}; first 250 {recovered and round(recovered, 2)} s "
          "after the server was back")

    assert not [r for r in replies if r[0] == "5"], f"permanent failures: {replies}"
    assert during and {a.reply for a in during} == {"451"}, Counter(a.reply for a in during)
    assert recovered is not None, "no 250 after the server came back"
    stored_tokens = Counter(m.token_id for m in messages)
    assert len(set(acked)) == len(acked)
    missing = [t for t in acked if t not in stored_tokens]
    assert not missing, f"{len(missing)} acknowledged bounces lost"
    assert all(m.state == DONE for m in messages), Counter(m.state for m in messages)
    assert all(incidents[t] >= 1 for t in acked), "an acknowledged bounce was not processed"
    assert set(counting.values()) == {1}, "a bounce counted twice (or not at all)"


async def test_unreachable_server_is_store_unavailable(tmp_path: Path) -> None:
    """Opening a store whose server refuses connections raises StoreUnavailable, quickly."""
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/bounced"
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        await open_store(url).open()
    with pytest.raises(StoreUnavailable):
        await open_ready_store(make_settings(tmp_path, url), wait=1.0)
    assert 1.0 <= time.monotonic() - started < 10


def test_waiting_for_the_server_is_logged_once(tmp_path: Path) -> None:
    """While a starting daemon waits for an unreachable server, it logs the wait once (main:
    a warning per attempt, about one a second), and gives up with StoreUnavailable."""
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/bounced"
    script = (
        "import asyncio, sys\n"
        "from bounced.exceptions import StoreUnavailable\n"
        "from bounced.logs import configure\n"
        "from bounced.store import open_ready_store\n"
        "from pathlib import Path\n"
        "from tests.helpers import make_settings\n"
        "configure('info', 'json')\n"
        "try:\n"
        f"    asyncio.run(open_ready_store(make_settings(Path({str(tmp_path)!r}), {url!r}), 4.0))\n"
        "except StoreUnavailable:\n"
        "    sys.exit(3)\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parent.parent,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 3, proc.stderr
    lines = [json.loads(line) for line in proc.stderr.splitlines()]
    assert [(e["event"], e["error_class"]) for e in lines] == [
        ("startup.store_unavailable", "ConnectionRefusedError")], lines
    assert "***" not in url and lines[0]["store"] == url


async def test_store_waits_for_server_coming_up(tmp_path: Path, pg_database: str) -> None:
    """open_ready_store retries while the server is unreachable and opens once it is there; a
    store whose connections are cut answers StoreUnavailable, then reconnects by itself."""
    proxy = TCPProxy(pg_database)
    asyncio.get_running_loop().call_later(1.0, lambda: asyncio.ensure_future(proxy.listen()))
    started = time.monotonic()
    store = await open_ready_store(make_settings(tmp_path, proxy.url), wait=20.0, create=True)
    try:
        assert time.monotonic() - started >= 1.0
        await store.ping()
        await proxy.cut()
        with pytest.raises(StoreUnavailable):
            await store.queue_counts()  # the pooled connection was cut under it
        with pytest.raises(StoreUnavailable):
            await store.ping()  # and new connections are refused
        await proxy.listen()
        assert (await store.queue_counts())["pending"] == 0
    finally:
        await store.close()
        await proxy.cut()


class TCPProxy:
    """A 127.0.0.1 TCP relay to the test server that can refuse and cut connections."""

    def __init__(self, target_url: str) -> None:
        parts = urlsplit(target_url)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self.port = free_port()
        user = f"{parts.username}@" if parts.username else ""
        self.url = parts._replace(netloc=f"{user}127.0.0.1:{self.port}").geturl()
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def listen(self) -> None:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def cut(self) -> None:
        """Stop listening and drop every relayed connection."""
        server, self.server = self.server, None
        if server is not None:
            server.close()
        for w in list(self.writers):
            w.transport.abort()
        self.writers.clear()
        if server is not None:
            await server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.writers.update((writer, up_writer))

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except OSError:
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))


class ThreadedProxy:
    """A TCPProxy run by an event loop in a thread of its own, for a daemon in another
    process: ``listen`` and ``cut`` from the test's (synchronous) code."""

    def __init__(self, target_url: str) -> None:
        self.proxy = TCPProxy(target_url)
        self.url = self.proxy.url
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="pg-proxy",
                                       daemon=True)
        self.thread.start()

    def _call(self, coro: Any) -> None:
        asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def listen(self) -> None:
        self._call(self.proxy.listen())

    def cut(self) -> None:
        self._call(self.proxy.cut())

    def close(self) -> None:
        self.cut()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def http_get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


READS = ("/v1/addresses?subject=s1", "/v1/addresses", "/v1/events", "/v1/stats",
         "/v1/breakers")


def test_http_reads_answer_503_during_an_outage_and_log_it_once(
        tmp_path: Path, pg_database: str) -> None:
    """With the database unreachable (a proxy in front of it closed), every read endpoint
    answers 503 with the API's JSON error and a Retry-After (main: 500, and a traceback per
    request in the log), the daemon logs the outage as one structured line per kind of
    failure and place, without a traceback, and answers again once it is back."""
    proxy = ThreadedProxy(pg_database)
    proxy.listen()
    http_port = free_port()
    env = base_env(tmp_path, BOUNCED_STORE_URL=proxy.url, BOUNCED_LOG_FORMAT="json",
                   BOUNCED_SMTP_LISTEN=f"127.0.0.1:{free_port()}",
                   BOUNCED_HTTP_LISTEN=f"127.0.0.1:{http_port}")
    log_path = tmp_path / "daemon.log"
    daemon = DaemonProcess(env, log_path)
    daemon.start()
    try:
        for path in READS:
            assert http_get(http_port, path)[0] == 200, path
        proxy.cut()
        time.sleep(1.0)  # the worker and the dispatcher find it gone too
        for _ in range(3):
            for path in READS:
                status, headers, body = http_get(http_port, path)
                assert status == 503, (path, status, body)
                assert "error" in json.loads(body), body
                assert int(headers["Retry-After"]) > 0
        time.sleep(2.0)
        proxy.listen()
        wait_for(lambda: all(http_get(http_port, path)[0] == 200 for path in READS),
                 "the API to answer again", within=30)
        assert daemon.proc is not None and daemon.proc.poll() is None
    finally:
        daemon.stop()
        proxy.close()
    lines = [json.loads(line) for line in log_path.read_text().splitlines()
             if line.startswith("{")]
    text = log_path.read_text()
    assert "Traceback" not in text, text[-3000:]
    http_lines = [e for e in lines if e["event"] == "http.store_unavailable"]
    assert len(http_lines) == 1, http_lines
    assert http_lines[0]["level"] == "warning" and http_lines[0]["error_class"]
    assert any(e["event"] == "http.store_available" for e in lines), lines[-10:]
    # Every other loop says so once per outage too, not once per attempt.
    kinds = Counter((e["event"], e.get("error_class")) for e in lines
                    if e["event"].endswith("store_unavailable"))
    assert all(n == 1 for n in kinds.values()), kinds
