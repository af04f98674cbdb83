"""End to end on SQLite: real SMTP on 127.0.0.1, real database files, the unconfirm rule."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from bounced.model import UNCONFIRMED, utcnow
from bounced.policy import core

from .helpers import DOMAIN, asend, days_ago, dsn, make_settings, running_daemon

ALICE = "alice@example.net"


async def wait_processed(daemon, expected: int, within: float = 10.0) -> None:
    """Wait until ``expected`` messages are done (or failed for good)."""
    for _ in range(int(within / 0.05)):
        counts = await daemon.store.queue_counts()
        if counts["done"] + counts["quarantined"] >= expected:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not processed in time: {await daemon.store.queue_counts()}")


async def bounce(
    daemon,
    subject: str,
    address: str,
    sent_days_ago: int,
    status: str = "5.1.1",
    action: str = "failed",
    diagnostic: str | None = None,
) -> str:
    rp = daemon.signer.return_path(subject, address, day=days_ago(sent_days_ago))
    reply = await asend(daemon.port, [rp], dsn(address, status, action, diagnostic, rp))
    assert reply["DATA"][0] == 250, reply
    return rp


async def state_of(daemon, subject: str) -> str | None:
    states = await daemon.store.address_states(subject=subject)
    return states[0].state if states else None


async def test_unconfirmed_after_third_bounce_spread_over_span(
    tmp_path: Path, store_url: str
) -> None:
    """Three 5.1.1 bounces sent 10, 6 and 2 days ago unconfirm the address on the third only."""
    async with running_daemon(make_settings(tmp_path, store_url)) as d:
        for n, age in enumerate((10, 6), start=1):
            await bounce(d, "4711", ALICE, age)
            await wait_processed(d, n)
            assert await state_of(d, "4711") == "confirmed"
        await bounce(d, "4711", ALICE, 2)
        await wait_processed(d, 3)
        assert await state_of(d, "4711") == UNCONFIRMED
        states = await d.store.address_states(subject="4711")
        decisions = await d.store.decisions("4711", states[0].fingerprint)
        assert [x.action for x in decisions] == ["unconfirm"]
        assert len(decisions[0].evidence) == 3
        assert "span 8 days" in decisions[0].rule
        await bounce(d, "4711", ALICE, 1)
        await wait_processed(d, 4)
        assert len(await d.store.decisions("4711", states[0].fingerprint)) == 1


async def test_bounces_within_two_days_do_not_unconfirm(tmp_path: Path, store_url: str) -> None:
    """Three counting bounces whose send days span only 2 days leave the address confirmed."""
    async with running_daemon(make_settings(tmp_path, store_url)) as d:
        for n, age in enumerate((4, 3, 2), start=1):
            await bounce(d, "42", ALICE, age)
            await wait_processed(d, n)
        assert await state_of(d, "42") == "confirmed"
        incidents = await d.store.incidents(
            "42", (await d.store.address_states(subject="42"))[0].fingerprint
        )
        assert len(incidents) == 3 and all(i.counts for i in incidents)


async def test_one_token_bounced_three_times_counts_once(tmp_path: Path, store_url: str) -> None:
    """The same return path bouncing three times is recorded three times but counted once."""
    async with running_daemon(make_settings(tmp_path, store_url)) as d:
        rp = d.signer.return_path("7", ALICE, day=days_ago(10))
        for n in range(1, 4):
            assert (await asend(d.port, [rp], dsn(ALICE, return_path=rp)))["DATA"][0] == 250
            await wait_processed(d, n)
        await bounce(d, "7", ALICE, 2)
        await wait_processed(d, 4)
        fp = (await d.store.address_states(subject="7"))[0].fingerprint
        incidents = await d.store.incidents("7", fp)
        assert len(incidents) == 4
        assert sum(i.counts for i in incidents) == 2
        assert await state_of(d, "7") == "confirmed"


async def test_policy_rejections_and_delays_never_count(tmp_path: Path, store_url: str) -> None:
    """5.7.1 'blocked' rejections and 4.x.x delays are recorded and never counted."""
    async with running_daemon(make_settings(tmp_path, store_url)) as d:
        blocked = (
            "550 5.7.1 Service unavailable; client host [192.0.2.1] blocked using zen.spamhaus.org"
        )
        await bounce(d, "9", ALICE, 12, "5.7.1", diagnostic=blocked)
        await bounce(d, "9", ALICE, 8, "5.7.1", diagnostic=blocked)
        await bounce(
            d,
            "9",
            ALICE,
            4,
            "4.2.2",
            action="delayed",
            diagnostic="452 4.2.2 Mailbox full, try again later",
        )
        await bounce(
            d, "9", ALICE, 1, "4.4.1", action="delayed", diagnostic="421 4.4.1 Connection timed out"
        )
        await wait_processed(d, 4)
        fp = (await d.store.address_states(subject="9"))[0].fingerprint
        incidents = await d.store.incidents("9", fp)
        assert len(incidents) == 4
        assert not any(i.counts for i in incidents)
        assert not any(i.hard for i in incidents)
        assert sorted(i.kind for i in incidents) == ["bounce", "bounce", "delay", "delay"]
        assert {i.status for i in incidents} == {"5.7.1", "4.2.2", "4.4.1"}
        assert await state_of(d, "9") == "confirmed"


async def test_bounce_for_old_address_does_not_touch_new_one(
    tmp_path: Path, store_url: str
) -> None:
    """Bounces for a subject's old address leave the state of its new address alone."""
    async with running_daemon(make_settings(tmp_path, store_url)) as d:
        for n, age in enumerate((10, 6, 2), start=1):
            await bounce(d, "5", "old@example.net", age)
            await wait_processed(d, n)
        await bounce(d, "5", "new@example.net", 1)
        await wait_processed(d, 4)
        states = {s.address: s.state for s in await d.store.address_states(subject="5")}
        assert states == {"old@example.net": UNCONFIRMED, "new@example.net": "confirmed"}


async def test_reconfirm_clears_history(tmp_path: Path, store_url: str) -> None:
    """After a reconfirmation, earlier bounces no longer count towards a new decision."""
    async with running_daemon(make_settings(tmp_path, store_url)) as d:
        for n, age in enumerate((10, 6, 2), start=1):
            await bounce(d, "11", ALICE, age)
            await wait_processed(d, n)
        assert await state_of(d, "11") == UNCONFIRMED
        await core.reconfirm(d.store, "11", utcnow())
        assert await state_of(d, "11") == "confirmed"
        await bounce(d, "11", ALICE, 1)
        await wait_processed(d, 4)
        assert await state_of(d, "11") == "confirmed"


async def test_store_failure_answers_451_and_recovers(tmp_path: Path) -> None:
    """When the database cannot store the message the reply is 451 4.3.0, never a 5xx."""
    settings = make_settings(tmp_path)
    async with running_daemon(settings, worker=False) as d:
        rp = d.signer.return_path("1", ALICE, day=days_ago(1))

        def rename(old: str, new: str) -> None:
            # In a thread: a blocking SQLite call on the event loop would stall the daemon
            # in the middle of its own transaction.
            with sqlite3.connect(tmp_path / "bounced.db", timeout=10) as db:
                db.execute(f"ALTER TABLE {old} RENAME TO {new}")

        await asyncio.to_thread(rename, "messages", "messages_away")
        reply = await asend(d.port, [rp], dsn(ALICE, return_path=rp))
        assert reply["DATA"][0] == 451 and "4.3.0" in reply["DATA"][1]
        await asyncio.to_thread(rename, "messages_away", "messages")
        reply = await asend(d.port, [rp], dsn(ALICE, return_path=rp))
        assert reply["DATA"][0] == 250
        assert (await d.store.queue_counts())["pending"] == 1


async def test_message_stored_with_envelope_and_token(tmp_path: Path, store_url: str) -> None:
    """An accepted message is stored with its raw bytes, envelope and the token's fields."""
    async with running_daemon(make_settings(tmp_path, store_url), worker=False) as d:
        rp = d.signer.return_path("user-9", ALICE, stream="digest", day=days_ago(3))
        raw = dsn(ALICE, return_path=rp)
        assert (await asend(d.port, [rp], raw))["DATA"][0] == 250
        [info] = await d.store.messages(None)
        info, stored_raw, _ = await d.store.message(info.id)
        assert stored_raw is not None and stored_raw.replace(b"\r\n", b"\n") == raw.replace(
            b"\r\n", b"\n"
        )
        assert (info.subject, info.stream, info.send_day, info.rcpt_to) == (
            "user-9",
            "digest",
            days_ago(3),
            rp,
        )
        assert info.state == "pending"


@pytest.mark.parametrize("uppercase", [False, True])
async def test_valid_token_accepted_in_any_case(
    tmp_path: Path, store_url: str, uppercase: bool
) -> None:
    """A valid return path is accepted in lower and in upper case."""
    async with running_daemon(make_settings(tmp_path, store_url), worker=False) as d:
        rp = d.signer.return_path("4711", ALICE, day=days_ago(1))
        rp = rp.upper() if uppercase else rp
        reply = await asend(d.port, [rp], dsn(ALICE, return_path=rp))
        assert reply[rp][0] == 250 and reply["DATA"][0] == 250
        assert (await d.store.queue_counts())["pending"] == 1
        assert DOMAIN in rp.lower()


@pytest.mark.parametrize("own_process", ["true", "false"])
async def test_a_start_that_fails_half_way_leaves_nothing_open(tmp_path: Path,
                                                              own_process: str) -> None:
    """The SMTP port taken: start fails with the setting named, after the store, the worker
    (in its process or in this loop) and HTTP were started; each is stopped and closed again:
    the HTTP port is free, no worker process is left, the store is not held, the switch
    interval is back."""
    import os
    import socket
    import sys

    from bounced.exceptions import ConfigError
    from bounced.runtime.daemon import Daemon

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        http_port = probe.getsockname()[1]
    interval = sys.getswitchinterval()
    settings = make_settings(
        tmp_path, BOUNCED_SMTP_LISTEN=f"127.0.0.1:{taken.getsockname()[1]}",
        BOUNCED_HTTP_LISTEN=f"127.0.0.1:{http_port}", BOUNCED_WORKER_OWN_PROCESS=own_process)
    daemon = Daemon(settings)
    try:
        with pytest.raises(ConfigError, match=r"\[smtp\] listen"):
            await daemon.start()
    finally:
        taken.close()
    assert daemon.http_address is not None  # HTTP was up before SMTP failed
    with socket.socket() as again:
        again.bind(("127.0.0.1", http_port))  # and is closed again
    process = daemon.worker_process
    if process is not None:
        assert process.pid is not None
        with pytest.raises(ProcessLookupError):
            os.kill(process.pid, 0)
    with sqlite3.connect(tmp_path / "bounced.db", timeout=1) as db:
        db.execute("BEGIN IMMEDIATE")  # no connection of the daemon holds the database
        db.rollback()
    assert sys.getswitchinterval() == interval
