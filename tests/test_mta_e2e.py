"""End to end with real mail servers: an application sends signed mail through Postfix (and
Exim), the "remote" domain rejects some of it, the MTA's own DSNs reach bounced (over SMTP
with config/postfix and config/exim, or piped into ``bounced deliver``), bounced records
them, unconfirms the dead address and tells the application by webhook.

Tests taking ``mta_factory`` run once with Postfix and once with Exim and skip with the
reason when that MTA cannot run here.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import re
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from bounced.config import ActionSettings, Settings
from bounced.model import Incident
from bounced.verp import fingerprint

from .helpers import DOMAIN, KEY_LINE, Daemon, days_ago, make_settings, running_daemon
from .mta.base import MTAInstance
from .mta.factory import pipe_user
from .mta.fixtures import (  # noqa: F401 - registers the fixtures
    MTAFactory,
    mta_factory_fixture,
    mta_remote_fixture,
)
from .mta.net import wait_until
from .mta.pipe import PipeSetup, PipeUnavailable
from .mta.remote import RemoteServer
from .mta.webhook import WebhookCall, WebhookReceiver

pytestmark = pytest.mark.postfix

REMOTE = "remote.test"
HOOK_SECRET = "whsec_" + base64.b64encode(b"bounced-e2e-webhook-secret-32-by").decode()


@dataclass(frozen=True)
class Recipient:
    """One user of the application: their id, address, and the days mail was sent to them."""

    subject: str
    address: str
    sent_days_ago: tuple[int, ...]

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.address)


# Mailed on days spread over 9 days (>= 7), rejected 550 5.1.1: unconfirmed.
DEAD = Recipient("1001", f"unknown1@{REMOTE}", (9, 4, 0))
# Rejected 550 5.1.1 on three recent days (span 2 < 7): counted, still confirmed.
RECENT = Recipient("1002", f"unknown2@{REMOTE}", (2, 1, 0))
# Rejected 550 5.7.1 (our problem, not the address's): recorded, never counted.
BLOCKED = Recipient("1003", f"blocked1@{REMOTE}", (9, 4, 0))
# Delivered: nothing comes back.
ALICE = Recipient("1004", f"alice@{REMOTE}", (9, 0))
USERS = (DEAD, RECENT, BLOCKED, ALICE)
BOUNCES = sum(len(u.sent_days_ago) for u in (DEAD, RECENT, BLOCKED))


def settings_with_webhook(settings: Settings, url: str) -> Settings:
    """The daemon's settings plus one webhook action, ``[actions.app]``."""
    action = ActionSettings(name="app", type="webhook", url=url, timeout=5.0)
    return dataclasses.replace(settings, actions=(action,))


@asynccontextmanager
async def daemon_and_hook(
    settings: Settings, monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[Daemon, WebhookReceiver]]:
    """bounced in this event loop with a webhook to a receiver of the application's."""
    monkeypatch.setenv("BOUNCED_ACTION_APP_SECRET", HOOK_SECRET)
    async with WebhookReceiver(HOOK_SECRET) as hook, \
            running_daemon(settings_with_webhook(settings, hook.url)) as d:
        yield d, hook


def send_as_application(mta: MTAInstance, d: Daemon, users: Sequence[Recipient]) -> None:
    """Each message with its own signed return path, dated on the day it was 'sent'."""
    for user in users:
        for n in user.sent_days_ago:
            return_path = d.signer.return_path(user.subject, user.address, day=days_ago(n))
            submitted = mta.send(return_path, [user.address])
            assert submitted.queue_id and not submitted.refused, submitted


async def wait_processed(d: Daemon, count: int, within: float, mta: MTAInstance) -> None:
    """Wait (bounded) until ``count`` stored messages are processed and nothing is queued."""
    deadline = time.monotonic() + within
    while True:
        counts = await d.store.queue_counts()
        busy = counts["pending"] + counts["processing"] + counts["failed"]
        if counts["done"] + counts["quarantined"] >= count and not busy:
            assert counts["quarantined"] == 0, counts
            assert counts["done"] == count, counts
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"bounced processed {counts} in {within}s, wanted {count} done"
                               f"\n{mta.log_tail()}")
        await asyncio.sleep(0.1)


async def wait_outbox_idle(d: Daemon, within: float) -> dict[str, int]:
    """Wait (bounded) until every event is fanned out and no delivery is pending."""
    deadline = time.monotonic() + within
    while True:
        counts = await d.store.outbox_counts()
        if counts["pending"] == 0 and counts["unfanned"] == 0:
            return counts
        if time.monotonic() > deadline:
            raise TimeoutError(f"outbox still busy after {within}s: {counts}")
        await asyncio.sleep(0.1)


async def history(d: Daemon, user: Recipient) -> tuple[str, list[Incident]]:
    """The user's address state ('' when bounced has none) and incidents, oldest first."""
    states = await d.store.address_states(subject=user.subject, fingerprint=user.fingerprint)
    incidents = await d.store.incidents(user.subject, user.fingerprint)
    return (states[0].state if states else ""), sorted(incidents, key=lambda i: i.send_day)


def sent_days(user: Recipient) -> list[str]:
    return sorted(days_ago(n).isoformat() for n in user.sent_days_ago)


async def assert_only_the_dead_address_unconfirmed(
    d: Daemon, hook: WebhookReceiver,
) -> WebhookCall:
    """The shared verdict: DEAD unconfirmed with one signed webhook, everyone else not."""
    state, incidents = await history(d, DEAD)
    assert state == "unconfirmed"
    assert [(i.kind, i.action, i.reason, i.hard, i.counts) for i in incidents] == \
        [("bounce", "failed", "userunknown", True, True)] * 3
    assert [i.send_day.isoformat() for i in incidents] == sent_days(DEAD)
    assert {i.address for i in incidents} == {DEAD.address}
    assert all("5.1.1" in i.diagnostic for i in incidents), incidents
    [decision] = await d.store.decisions(DEAD.subject, DEAD.fingerprint)
    assert decision.action == "unconfirm" and "span 9 days" in decision.rule

    state, incidents = await history(d, RECENT)
    assert state != "unconfirmed"
    assert [(i.reason, i.hard, i.counts) for i in incidents] == [("userunknown", True, True)] * 3
    assert await d.store.decisions(RECENT.subject, RECENT.fingerprint) == []

    state, incidents = await history(d, BLOCKED)
    assert state != "unconfirmed"
    assert len(incidents) == 3
    assert all(i.kind == "bounce" and not i.hard and not i.counts for i in incidents), incidents
    assert all("5.7.1" in i.diagnostic for i in incidents), incidents
    assert await d.store.decisions(BLOCKED.subject, BLOCKED.fingerprint) == []

    assert await history(d, ALICE) == ("", [])
    unconfirmed = [s for s in await d.store.address_states() if s.state == "unconfirmed"]
    assert [(s.subject, s.fingerprint) for s in unconfirmed] == [(DEAD.subject,
                                                                  DEAD.fingerprint)]

    [call] = await hook.wait_for(1, within=20)
    outbox = await wait_outbox_idle(d, within=20)
    assert outbox["dead"] == 0, outbox
    assert len(hook.calls) == 1, [c.json for c in hook.calls]
    body = call.json
    assert call.valid, call.headers
    assert body["type"] == "address.unconfirmed"
    assert call.headers["webhook-id"] == body["id"]
    assert (body["subject"], body["fingerprint"]) == (DEAD.subject, DEAD.fingerprint)
    assert body["address"] == DEAD.address
    assert sorted(e["send_day"] for e in body["evidence"]) == sent_days(DEAD)
    return call


async def test_mta_dsns_over_smtp_unconfirm_only_the_dead_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mta_remote: RemoteServer,
    mta_factory: MTAFactory,
) -> None:
    """The MTA's own DSNs reach bounced: 5.1.1 over 9 days unconfirms, 5.7.1 never counts."""
    async with daemon_and_hook(make_settings(tmp_path), monkeypatch) as (d, hook):
        mta = await asyncio.to_thread(mta_factory, remote_port=mta_remote.port,
                                      bounce_port=d.port)
        await asyncio.to_thread(send_as_application, mta, d, USERS)
        await wait_processed(d, BOUNCES, within=30, mta=mta)
        await asyncio.to_thread(mta.wait_queue_empty, 20)
        assert sorted(m.rcpt_tos for m in mta_remote.messages) == [(ALICE.address,)] * 2
        await assert_only_the_dead_address_unconfirmed(d, hook)


async def test_full_mailbox_is_a_delay_then_a_counting_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mta_remote: RemoteServer,
    mta_factory: MTAFactory,
) -> None:
    """452 4.2.2 until the queue lifetime ends: a delay (never counts), then one failure."""
    full = Recipient("2001", f"full1@{REMOTE}", (0,))
    async with daemon_and_hook(make_settings(tmp_path), monkeypatch) as (d, hook):
        mta = await asyncio.to_thread(mta_factory, remote_port=mta_remote.port,
                                      bounce_port=d.port, delay_warning=3, lifetime=10)
        await asyncio.to_thread(send_as_application, mta, d, [full])
        await wait_processed(d, 2, within=45, mta=mta)
        await asyncio.to_thread(mta.wait_queue_empty, 20)
        state, incidents = await history(d, full)
        assert state != "unconfirmed"
        delay, failure = sorted(incidents, key=lambda i: i.received_at)
        assert (delay.kind, delay.action, delay.counts) == ("delay", "delayed", False)
        assert "452 4.2.2" in delay.diagnostic
        assert (failure.kind, failure.action, failure.reason) == ("bounce", "failed",
                                                                  "mailboxfull")
        assert failure.counts and not failure.hard
        assert "452 4.2.2" in failure.diagnostic
        assert await wait_outbox_idle(d, within=10) == {
            "pending": 0, "delivered": 0, "dead": 0, "skipped": 0, "unfanned": 0}
        assert hook.calls == []


@pytest.fixture(name="pipe_setup")
def pipe_setup_fixture(mta_factory: MTAFactory) -> Iterator[PipeSetup]:
    """A store, keys and ``bounced`` command for the MTA's pipe user, removed after the MTA."""
    setup = PipeSetup(domain=DOMAIN, key_line=KEY_LINE, user=pipe_user(mta_factory.kind))
    try:
        setup.start()
    except PipeUnavailable as exc:
        pytest.skip(f"pipe mode cannot run here: {exc}")
    try:
        yield setup
    finally:
        try:
            mta_factory.stop_all()
        finally:
            setup.stop()


async def test_mta_pipes_dsns_into_bounced_deliver(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mta_remote: RemoteServer,
    mta_factory: MTAFactory, pipe_setup: PipeSetup,
) -> None:
    """Piped into ``bounced deliver``: same verdicts as over SMTP; a forged token exits 67."""
    settings = make_settings(tmp_path, **pipe_setup.env())
    async with daemon_and_hook(settings, monkeypatch) as (d, hook):
        mta = await asyncio.to_thread(mta_factory, remote_port=mta_remote.port,
                                      bounce_port=d.port, pipe=pipe_setup.route())
        local, _, domain = d.signer.return_path("9999", f"unknown3@{REMOTE}").partition("@")
        forged = f"{local[:-1]}{'b' if local[-1] == 'a' else 'a'}@{domain}"  # one MAC letter
        mark = mta.log_mark()
        await asyncio.to_thread(mta.send, forged, [f"unknown3@{REMOTE}"])
        refused = (rf"to=<{re.escape(forged)}>, relay=bounced, .*status=bounced"
                   if mta.name == "Postfix" else
                   rf"\*\* {re.escape(forged)} R=bounced T=bounced_pipe: .* returned 67")
        await asyncio.to_thread(mta.wait_for_log, refused, 30, mark)

        await asyncio.to_thread(send_as_application, mta, d, USERS)
        await wait_processed(d, BOUNCES, within=60, mta=mta)
        await assert_only_the_dead_address_unconfirmed(d, hook)
        assert d.handler.stats.get("accepted", 0) == 0  # nothing came over SMTP


async def test_mta_keeps_a_piped_bounce_while_bounced_cannot_store_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mta_remote: RemoteServer,
    mta_factory: MTAFactory, pipe_setup: PipeSetup,
) -> None:
    """An unwritable store makes ``bounced deliver`` exit 75: the MTA defers, then delivers."""
    user = Recipient("3001", f"unknown4@{REMOTE}", (0,))
    settings = make_settings(tmp_path, **pipe_setup.env())
    async with daemon_and_hook(settings, monkeypatch) as (d, _hook):
        mta = await asyncio.to_thread(mta_factory, remote_port=mta_remote.port,
                                      bounce_port=d.port, pipe=pipe_setup.route())
        return_path = d.signer.return_path(user.subject, user.address)
        pipe_setup.db_path.chmod(0)  # the pipe user can no longer open the SQLite file
        try:
            mark = mta.log_mark()
            await asyncio.to_thread(send_as_application, mta, d, [user])
            deferred = (rf"to=<{re.escape(return_path)}>, relay=bounced, .*status=deferred"
                        if mta.name == "Postfix" else
                        rf"== {re.escape(return_path)} R=bounced T=bounced_pipe defer .* "
                        rf"returned 75")
            await asyncio.to_thread(mta.wait_for_log, deferred, 30, mark)
            assert (await d.store.queue_counts())["pending"] == 0
            await asyncio.to_thread(wait_until, lambda: mta.queue_count() == 1, 10,
                                    "only the deferred DSN in the queue")
        finally:
            pipe_setup.db_path.chmod(0o600)
        await asyncio.to_thread(mta.flush)
        await wait_processed(d, 1, within=30, mta=mta)
        await asyncio.to_thread(mta.wait_queue_empty, 20)
        _state, [incident] = await history(d, user)
        assert (incident.reason, incident.counts) == ("userunknown", True)
