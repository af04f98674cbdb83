"""The worker in a process of its own ([worker] own_process, the default of `bounced serve`):
it processes, its metrics and liveness reach the daemon, it is restarted when it dies, and it
never outlives the daemon."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from .helpers import (
    DaemonProcess,
    asend,
    base_env,
    days_ago,
    dsn,
    free_port,
    running_daemon,
)
from .test_actions import until
from .test_http import ALICE, client, samples, unconfirm, with_token


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purpose (it waits only for its parent to reap it).
    stat = Path(f"/proc/{pid}/stat").read_text() if Path(f"/proc/{pid}/stat").exists() else ""
    return bool(stat) and stat.rsplit(")", 1)[1].split()[0] != "Z"


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return out


async def test_worker_process_processes_and_reports_metrics_and_health(
    tmp_path: Path, store_url: str
) -> None:
    """Bounces are processed by the worker process; /healthz says it is alive and /metrics
    counts what it did, as when the worker ran inside the daemon; it exits with the daemon."""
    settings = with_token(tmp_path, BOUNCED_STORE_URL=store_url)
    async with running_daemon(settings, own_process=True) as d, client(d) as http:
        wp = d.daemon.worker_process
        assert wp is not None and wp.pid is not None and wp.pid != os.getpid()
        pid = wp.pid
        assert alive(pid)
        await unconfirm(d, "u1")

        async def counted() -> bool:
            _, text = await http.get("/metrics")
            got = samples(text)
            return got.get(("bounced_processing_seconds_count", frozenset()), 0) == 3

        await until(counted, "the worker process's report", within=15)
        status, text = await http.get("/metrics")
        got = samples(text)
        assert got[("bounced_messages_classified_total", frozenset({("kind", "bounce")}))] == 3
        assert got[("bounced_incidents_total",
                    frozenset({("reason", "userunknown"), ("counts", "yes")}))] == 3
        assert got[("bounced_decisions_total", frozenset({("action", "unconfirm")}))] == 1
        status, body = await http.get("/healthz")
        assert status == 200 and body["worker"]["alive"], body
        assert (await d.store.address_states(subject="u1"))[0].state == "unconfirmed"
    for _ in range(100):
        if not alive(pid):
            break
        await asyncio.sleep(0.05)
    assert not alive(pid), "the worker process outlived the daemon"


async def test_worker_process_killed_is_started_again(tmp_path: Path) -> None:
    """A worker process that dies (SIGKILL) is started again by the daemon, and the messages
    that arrive meanwhile are processed."""
    settings = with_token(tmp_path)
    async with running_daemon(settings, own_process=True) as d:
        wp = d.daemon.worker_process
        assert wp is not None and wp.pid is not None
        first = wp.pid
        os.kill(first, signal.SIGKILL)
        rp = d.signer.return_path("k1", ALICE, day=days_ago(1))
        assert (await asend(d.port, [rp], dsn(ALICE, return_path=rp)))["DATA"][0] == 250

        async def done() -> bool:
            return (await d.store.queue_counts())["done"] == 1

        await until(done, "the message processed by a new worker process", within=20)
        assert wp.pid != first and wp.pid is not None and alive(wp.pid)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_worker_process_never_outlives_bounced_serve(tmp_path: Path, sig: int) -> None:
    """`bounced serve` killed (or stopped) takes its worker process with it."""
    env = base_env(tmp_path, BOUNCED_SMTP_LISTEN=f"127.0.0.1:{free_port()}")
    daemon = DaemonProcess(env, tmp_path / "daemon.log")
    daemon.start()
    try:
        assert daemon.proc is not None
        deadline = time.monotonic() + 20
        workers: list[int] = []
        while time.monotonic() < deadline and not workers:
            workers = [p for p in children(daemon.proc.pid)
                       if "bounced-worker" in Path(f"/proc/{p}/cmdline").read_bytes().decode(
                           errors="replace") or "spawn_main" in Path(
                           f"/proc/{p}/cmdline").read_bytes().decode(errors="replace")]
            time.sleep(0.05)
        assert workers, "no worker process"
        daemon.kill(sig)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(alive(p) for p in workers):
            time.sleep(0.05)
        assert not any(alive(p) for p in workers), "a worker process outlived the daemon"
    finally:
        daemon.stop()
