"""Two daemon processes on one PostgreSQL database: shared queue, race-free decisions.

Both daemons start at once on a fresh database (so they race to apply the migrations), then
concurrent bounces for the same few addresses arrive at both. Every address must be
unconfirmed by exactly one decision, and every stored job processed exactly once.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bounced.config import load_settings
from bounced.model import DONE, UNCONFIRMED
from bounced.policy.events import UNCONFIRMED as UNCONFIRMED_EVENT
from bounced.store import Store, open_store

from .helpers import DaemonProcess, base_env, days_ago, dsn, free_port, signer, smtp_send

ADDRESSES = 12
BOUNCES_PER_ADDRESS = 8
SENDERS = 8
DRAIN_DEADLINE = 60.0


def daemon_env(tmp: Path, url: str) -> dict[str, str]:
    tmp.mkdir()
    return base_env(
        tmp,
        BOUNCED_STORE_URL=url,
        BOUNCED_SMTP_LISTEN=f"127.0.0.1:{free_port()}",
        BOUNCED_WORKER_BATCH_SIZE="2",  # small claims: both workers get a share of the jobs
        BOUNCED_LOG_FORMAT="json",
    )


async def wait_done(store: Store, expected: int) -> dict[str, int]:
    deadline = time.monotonic() + DRAIN_DEADLINE
    while True:
        counts = await store.queue_counts()
        if counts[DONE] + counts["quarantined"] + counts["failed"] >= expected:
            return counts
        assert time.monotonic() < deadline, f"not processed in time: {counts}"
        await asyncio.sleep(0.1)


async def test_two_daemons_share_queue_and_decide_once(tmp_path: Path, pg_database: str) -> None:
    """Concurrent bounces for one address sent to two daemons give exactly one unconfirm each."""
    daemons = [
        DaemonProcess(daemon_env(tmp_path / name, pg_database), tmp_path / f"{name}.log")
        for name in ("a", "b")
    ]
    sign = signer(load_settings(env=daemon_env(tmp_path / "client", pg_database))).return_path
    # Two early bounces per address first; then a burst in which every bounce would be the
    # deciding third one, sent to both daemons at once, address by address (so that the two
    # workers' claims hold bounces for the same address at the same time).
    early: list[tuple[int, str, str, str]] = []  # (daemon port, subject, address, return path)
    burst: list[tuple[int, str, str, str]] = []
    for n in range(ADDRESSES):
        address = f"user{n}@example.net"
        for k in range(BOUNCES_PER_ADDRESS):
            rp = sign(f"subject-{n}", address, day=days_ago(14 - k if k < 2 else 2 + k % 4))
            (early if k < 2 else burst).append((daemons[k % 2].port, f"subject-{n}", address, rp))
    work = early + burst
    try:
        starters = [threading.Thread(target=d.start) for d in daemons]
        for t in starters:
            t.start()
        for t in starters:
            t.join(30)
        for d in daemons:
            assert d.proc is not None and d.proc.poll() is None, d.log_path.read_text()[-2000:]

        def send(item: tuple[int, str, str, str]) -> int:
            port, _, address, rp = item
            reply = smtp_send(port, [rp], dsn(address, return_path=rp))
            code, _ = reply["DATA"]  # type: ignore[misc]
            return int(code)

        store = open_store(pg_database)
        await store.open()
        try:
            with ThreadPoolExecutor(SENDERS) as pool:
                codes = list(pool.map(send, early))
                await wait_done(store, len(early))
                codes += list(pool.map(send, burst))
            assert codes == [250] * len(work)
            counts = await wait_done(store, len(work))
            assert counts[DONE] == len(work), counts
            messages = await store.messages(None, limit=10_000)
            assert len(messages) == len(work)
            assert all(m.attempts == 1 for m in messages), "a job was claimed twice"
            for n in range(ADDRESSES):
                [state] = await store.address_states(subject=f"subject-{n}")
                assert state.state == UNCONFIRMED
                decisions = await store.decisions(state.subject, state.fingerprint)
                assert [d.action for d in decisions] == ["unconfirm"], decisions
                incidents = await store.incidents(state.subject, state.fingerprint, limit=1000)
                per_message = Counter(i.message_id for i in incidents)
                assert len(per_message) == BOUNCES_PER_ADDRESS
                assert set(per_message.values()) == {1}
            events = [e for e, _ in await store.events(limit=1000)]
            assert Counter(e.type for e in events)[UNCONFIRMED_EVENT] == ADDRESSES
        finally:
            await store.close()
        processed = [d.log_path.read_text().count('"bounce.processed"') for d in daemons]
        assert sum(processed) == len(work), processed
        print(f"\njobs processed per daemon: {processed}; accepted per daemon: "
              f"{Counter(port for port, *_ in work).most_common()}")
    finally:
        for d in daemons:
            d.stop()
