"""One slow part holds nothing else back: a hanging action delays no other action's
deliveries, and a message over its classification budget is quarantined while the others
are processed."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import pytest

from bounced.config import ActionSettings
from bounced.model import Event, utcnow
from bounced.outbox.actions import LogAction
from bounced.outbox.dispatch import Dispatcher

from .cmdline import run, sign, wait_for
from .helpers import (
    DaemonProcess,
    asend,
    base_env,
    days_ago,
    dsn,
    free_port,
    make_settings,
    running_daemon,
    smtp_send,
)

# --- one hanging action holds back no other ---------------------------------------


class Hanging:
    """An action that never answers (its own timeout does not work)."""

    def __init__(self) -> None:
        self.name, self.events, self.timeout = "hanging", ("bounce.unrecognised",), 1.0

    async def deliver(self, event: Event, body: bytes) -> None:
        await asyncio.sleep(3600)


async def test_hanging_action_delays_no_other(tmp_path: Path, store_url: str) -> None:
    """With one action that never answers, another action's deliveries of 30 events are all
    made at once (main waited for the slowest delivery of each round of 20), and the hanging
    one's attempts are cut after their time-out and retried later."""
    from bounced.store import open_store

    settings = make_settings(tmp_path, store_url)
    store = open_store(store_url)
    await store.open()
    try:
        await seed_events(store, 30)
        fast = LogAction(ActionSettings(name="fast", type="log",
                                        events=("bounce.unrecognised",)))
        dispatcher = Dispatcher(store, dataclasses.replace(settings.outbox, poll_interval=0.1),
                                [Hanging(), fast], utcnow)
        task = asyncio.create_task(dispatcher.run())
        try:
            started = time.monotonic()
            while time.monotonic() - started < 10:
                states = [s for _, s in await store.events(100)]
                if sum(s.get("fast") == "delivered" for s in states) == 30:
                    break
                await asyncio.sleep(0.05)
            took = time.monotonic() - started
            assert sum(s.get("fast") == "delivered" for s in states) == 30
            assert took < 3, took
            assert all(s.get("hanging") == "pending" for s in states)
            await asyncio.sleep(1.5)  # past the hanging one's time limit (1 s + margin)
        finally:
            dispatcher.stop()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        outbox = await store.outbox_counts()
        assert outbox["pending"] == 30 and outbox["delivered"] == 30
    finally:
        await store.close()


async def seed_events(store: Any, n: int) -> None:
    """``n`` bounce.unrecognised events in the outbox, written as the worker writes them."""
    from bounced.model import NewMessage, TokenFields
    from bounced.policy import core

    now = utcnow()
    token = TokenFields(subject="s", stream=None, key_id="k1", day=now.date(),
                        fingerprint="fp", token_id="s.t")
    await store.add_messages([NewMessage(now, "test", "", "rcpt", token, b"x")] * n)
    jobs = await store.claim("seed", now, dt.timedelta(minutes=5), n)
    outcomes = [(job, core.Outcome(kind="unknown", classification={}, incidents=()), None)
                for job in jobs]
    await core.finish_batch(store, outcomes, "seed", now)  # type: ignore[arg-type]


# --- a hard time budget per classification ------------------------------------------


SLOW_CLASSIFIER = '''\
import re, time
import bounced.queue.worker as worker

real = worker.classify


def slow(raw):
    """Slow by construction for a marked message: a pattern that backtracks exponentially,
    again and again (bounded, so that a worker without a budget still ends one day)."""
    if b"X-Test-Slow: yes" in raw:
        started = time.monotonic()
        while time.monotonic() - started < 60:
            re.fullmatch(r"(x+x+)+y", "x" * 26)
    return real(raw)


worker.classify = slow
'''


def slow_message(return_path: str) -> bytes:
    return b"X-Test-Slow: yes\r\n" + dsn("slow@example.net", return_path=return_path)


def test_worker_process_quarantines_a_message_over_its_budget(tmp_path: Path) -> None:
    """`bounced serve` (worker in its own process): a message whose classification runs past
    [worker] classify_budget_seconds is quarantined with that reason after one attempt, the
    regex stopped in the middle, and the other messages are processed meanwhile."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SLOW_CLASSIFIER)  # loaded by every process
    env = base_env(tmp_path, BOUNCED_SMTP_LISTEN=f"127.0.0.1:{free_port()}",
                   BOUNCED_LOG_FORMAT="json", BOUNCED_WORKER_CLASSIFY_BUDGET_SECONDS="1",
                   PYTHONPATH=str(site))
    daemon = DaemonProcess(env, tmp_path / "daemon.log")
    daemon.start()
    try:
        slow = sign(env, "1", "slow@example.net", 1)
        assert smtp_send(daemon.port, [slow], slow_message(slow))["DATA"][0] == 250
        for n in range(3):
            rp = sign(env, f"ok{n}", "ok@example.net", 1)
            assert smtp_send(daemon.port, [rp], dsn("ok@example.net", return_path=rp))[
                "DATA"][0] == 250

        def settled() -> Any:
            queue = json.loads(run(env, "queue", "--json").stdout)
            return queue if queue["counts"]["done"] == 3 and \
                queue["counts"]["quarantined"] == 1 else None

        queue = wait_for(settled, "the queue to settle", within=20)
    finally:
        daemon.stop()
    [job] = queue["latest"]["quarantined"]
    assert job["subject"] == "1" and job["attempts"] == 1
    assert job["error"] == "classification exceeded 1 s"


async def test_in_process_worker_quarantines_a_message_over_its_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the worker in the daemon's process ([worker] own_process = false) the budget
    holds too: the slow message is quarantined, the next one processed."""
    namespace: dict[str, Any] = {}
    exec(SLOW_CLASSIFIER, namespace)
    monkeypatch.setattr("bounced.queue.worker.classify", namespace["slow"])
    settings = make_settings(tmp_path, BOUNCED_WORKER_CLASSIFY_BUDGET_SECONDS="0.5")
    async with running_daemon(settings) as d:
        slow = d.signer.return_path("1", "slow@example.net", day=days_ago(1))
        assert (await asend(d.port, [slow], slow_message(slow)))["DATA"][0] == 250
        ok = d.signer.return_path("2", "ok@example.net", day=days_ago(1))
        assert (await asend(d.port, [ok], dsn("ok@example.net", return_path=ok)))[
            "DATA"][0] == 250
        for _ in range(200):
            counts = await d.store.queue_counts()
            if counts["done"] + counts["quarantined"] == 2:
                break
            await asyncio.sleep(0.05)
        [quarantined] = await d.store.messages("quarantined")
    assert counts["done"] == 1 and quarantined.subject == "1"
    assert quarantined.last_error == "classification exceeded 0.5 s"
