"""The outbox dispatcher over a real SQLite file: backoff with jitter, dead letters, leases,
event filters, several dispatchers on one store."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from bounced.config import EVENT_TYPES, ActionSettings, Settings
from bounced.config.keys import make_verifier
from bounced.intake.smtp import token_fields
from bounced.metrics import Metrics
from bounced.model import NewMessage, utcnow
from bounced.outbox.actions import Action, CommandAction
from bounced.outbox.dispatch import Dispatcher
from bounced.queue.worker import Worker
from bounced.store import Store, open_store

from .helpers import days_ago, make_settings, signer

ALICE = "alice@example.net"


class Clock:
    """The dispatcher's injected time, moved by the test."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> dt.datetime:
        return self.now

    def set(self, timestamp: float) -> None:
        self.now = dt.datetime.fromtimestamp(timestamp, dt.UTC)

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@contextlib.asynccontextmanager
async def store_with_events(settings: Settings, clock: Clock, count: int
                            ) -> AsyncIterator[Store]:
    """A store in which ``count`` messages that are not bounces were processed: one
    bounce.unrecognised event each, not yet fanned out."""
    store = open_store(settings.store_url)
    await store.open()
    try:
        verifier, _ = make_verifier(settings)
        sign = signer(settings)
        messages = []
        for n in range(count):
            rp = sign.return_path(f"s{n}", ALICE, day=days_ago(1))
            token = verifier.verify(rp, today=clock().date())
            raw = f"From: someone@example.org\r\nTo: {rp}\r\n\r\nhello\r\n".encode()
            messages.append(NewMessage(received_at=clock(), peer="test", mail_from="<>",
                                       rcpt_to=rp, token=token_fields(token), raw=raw))
        await store.add_messages(messages)
        assert await Worker(store, settings, clock).drain() == count
        yield store
    finally:
        await store.close()


def command(name: str, code: str, events: tuple[str, ...] | None = None) -> CommandAction:
    extra = {"events": events} if events is not None else {}
    return CommandAction(ActionSettings(name=name, type="command",
                                        command=(sys.executable, "-c", code), timeout=10,
                                        **extra))


def failing(name: str = "app") -> CommandAction:
    return command(name, "import sys; sys.exit(1)")


def logging_to(path: Path, name: str = "app", events: tuple[str, ...] | None = None
               ) -> CommandAction:
    code = (f"import json, sys; open({str(path)!r}, 'a').write("
            "json.load(sys.stdin)['id'] + '\\n')")
    return command(name, code, events)


def rows(settings: Settings) -> list[tuple[str, str, str, int, float, str | None]]:
    """(event id, action, state, attempts, next attempt, last error) of every delivery."""
    db = settings.store_url.removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
        return conn.execute(
            "SELECT event_id, action, state, attempts, next_attempt_at, last_error "
            "FROM deliveries ORDER BY event_id, action").fetchall()


async def test_failed_deliveries_back_off_exponentially_with_jitter(tmp_path: Path) -> None:
    """Each failed delivery waits about twice as long as the last, with jitter, up to the cap."""
    settings = make_settings(tmp_path, BOUNCED_OUTBOX_RETRY_BASE_SECONDS="10",
                             BOUNCED_OUTBOX_RETRY_MAX_SECONDS="100")
    clock = Clock()
    async with store_with_events(settings, clock, 4) as store:
        dispatcher = Dispatcher(store, settings.outbox, [failing()], clock)
        for base in (10, 20, 40, 80, 100, 100):
            await dispatcher.run_once()
            now = clock().timestamp()
            delays = [r[4] - now for r in rows(settings)]
            assert all(r[2] == "pending" and "exited 1" in (r[5] or "") for r in rows(settings))
            assert all(0.5 * base <= d <= 1.5 * base for d in delays), (base, delays)
            assert len(set(delays)) > 1, "no jitter"
            clock.set(max(r[4] for r in rows(settings)))
        assert {r[3] for r in rows(settings)} == {6}


async def test_undelivered_past_max_age_goes_to_dead_letters_and_is_counted(
    tmp_path: Path,
) -> None:
    """A delivery failing past max_age_hours is dead-lettered, counted, and never tried again."""
    settings = make_settings(tmp_path, BOUNCED_OUTBOX_RETRY_BASE_SECONDS="600",
                             BOUNCED_OUTBOX_RETRY_MAX_SECONDS="3600",
                             BOUNCED_OUTBOX_MAX_AGE_HOURS="1")
    clock = Clock()
    async with store_with_events(settings, clock, 1) as store:
        occurred = clock().timestamp()
        metrics = Metrics()
        dispatcher = Dispatcher(store, settings.outbox, [failing()], clock, metrics=metrics)
        tried_at = []
        for _ in range(10):
            tried_at.append(clock().timestamp())
            await dispatcher.run_once()
            [row] = rows(settings)
            if row[2] == "dead":
                break
            assert row[4] <= occurred + 3600
            clock.set(row[4])
        assert row[2] == "dead" and row[3] == len(tried_at) >= 3
        assert abs(tried_at[-1] - (occurred + 3600)) < 0.001
        assert metrics.registry.get_sample_value(
            "bounced_action_dead_letters_total", {"action": "app"}) == 1
        assert (await store.outbox_counts())["dead"] == 1
        clock.advance(days=3)
        assert await dispatcher.run_once() == 0
        assert rows(settings)[0][3] == row[3]


async def test_action_runs_only_for_the_events_it_takes(tmp_path: Path) -> None:
    """An action limited to some event types never runs for others; the rest still do."""
    settings = make_settings(tmp_path)
    clock = Clock()
    async with store_with_events(settings, clock, 2) as store:
        narrow = logging_to(tmp_path / "narrow", "narrow", events=("address.unconfirmed",))
        wide = logging_to(tmp_path / "wide", "wide")
        dispatcher = Dispatcher(store, settings.outbox, [narrow, wide], clock)
        await dispatcher.run_once()
        assert await dispatcher.run_once() == 0
        states = {(r[1], r[2]) for r in rows(settings)}
    assert not (tmp_path / "narrow").exists()
    assert len((tmp_path / "wide").read_text().split()) == 2
    assert ("wide", "delivered") in states and ("narrow", "pending") not in states


async def test_delivery_for_an_action_no_longer_configured_is_dead_lettered(
    tmp_path: Path,
) -> None:
    """Deliveries of an action removed from the configuration are dead-lettered and counted."""
    settings = make_settings(tmp_path)
    clock = Clock()
    async with store_with_events(settings, clock, 1) as store:
        await store.fan_out(dict.fromkeys(["gone", "app"], EVENT_TYPES), clock(), False)
        metrics = Metrics()
        dispatcher = Dispatcher(store, settings.outbox, [logging_to(tmp_path / "log")], clock,
                                metrics=metrics)
        await dispatcher.run_once()
        states = {r[1]: (r[2], r[5]) for r in rows(settings)}
    assert states == {"app": ("delivered", None),
                      "gone": ("dead", "action no longer configured")}
    assert metrics.registry.get_sample_value(
        "bounced_action_dead_letters_total", {"action": "gone"}) == 1


async def test_claim_of_a_crashed_dispatcher_is_taken_over_after_its_lease(
    tmp_path: Path,
) -> None:
    """A delivery claimed by a dispatcher that died is delivered by another after the lease."""
    settings = make_settings(tmp_path, BOUNCED_OUTBOX_LEASE_SECONDS="120")
    clock = Clock()
    async with store_with_events(settings, clock, 1) as store:
        await store.fan_out(dict.fromkeys(["app"], EVENT_TYPES), clock(), False)
        [claimed] = await store.claim_deliveries("crashed", clock(), dt.timedelta(seconds=120), 5)
        dispatcher = Dispatcher(store, settings.outbox, [logging_to(tmp_path / "log")], clock)
        clock.advance(seconds=100)
        assert await dispatcher.run_once() == 0
        clock.advance(seconds=21)
        assert await dispatcher.run_once() == 1
        [row] = rows(settings)
    assert (row[2], row[3]) == ("delivered", 2)
    assert (tmp_path / "log").read_text().split() == [claimed.event.id]


async def test_two_dispatchers_on_one_store_deliver_each_event_once(tmp_path: Path) -> None:
    """Two daemons' dispatchers on one database share the work: each event runs once."""
    settings = make_settings(tmp_path)
    async with store_with_events(settings, Clock(), 12) as store:
        other = open_store(settings.store_url)
        await other.open()
        actions: list[Action] = [logging_to(tmp_path / "log")]
        dispatchers = [Dispatcher(s, settings.outbox, actions, utcnow, name=f"d{n}")
                       for n, s in enumerate((store, other))]
        tasks = [asyncio.create_task(d.run()) for d in dispatchers]
        try:
            for _ in range(300):
                if [r[2] for r in rows(settings)] == ["delivered"] * 12:
                    break
                await asyncio.sleep(0.05)
        finally:
            for d in dispatchers:
                d.stop()
            await asyncio.gather(*tasks)
            await other.close()
        ids = [e.id for e, _ in await store.events()]
    delivered = (tmp_path / "log").read_text().split()
    assert sorted(delivered) == sorted(ids) and len(ids) == 12
    assert all(r[3] == 1 for r in rows(settings))
