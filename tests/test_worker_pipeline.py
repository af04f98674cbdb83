"""The worker's batch pipeline. With stores that have overlap_finish it finishes a batch while
it classifies the next: every job is still finished once, and a batch the store went away in
the middle of comes first. With the others it claims the next batch in the transaction that
finishes the last: every job is still finished once, and a stopped worker leaves none claimed."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from bounced.exceptions import StoreUnavailable
from bounced.model import Job, Plan, utcnow
from bounced.policy import core
from bounced.policy.core import Outcome, Planner
from bounced.queue import worker as worker_module
from bounced.queue.worker import Worker
from bounced.store import Store, open_store

from .helpers import days_ago, dsn, make_settings, signer
from .test_store_contract import message

ALICE = "alice@example.net"
FINISH_BATCH = core.finish_batch
FINISH_AND_CLAIM = core.finish_and_claim


@pytest.fixture(autouse=True)
def _finishes_through_the_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker's finishes (``bounced.policy.core``) go through the wrapping stores below,
    which record them (a plain store finishes as usual)."""
    monkeypatch.setattr(core, "finish_batch", lambda store, *args: (
        store.finish_batch(*args) if isinstance(store, Overlapping | InOrder)
        else FINISH_BATCH(store, *args)))
    monkeypatch.setattr(core, "finish_and_claim", lambda store, *args: (
        store.finish_and_claim(*args) if isinstance(store, InOrder)
        else FINISH_AND_CLAIM(store, *args)))


class Overlapping:
    """A real SQLite store that asks for overlapped finishing, records the order of calls,
    and can fail a number of finish_batch calls as a store outage would."""

    overlap_finish = True

    def __init__(self, store: Store, failures: int = 0) -> None:
        self._store = store
        self.failures = failures
        self.calls: list[tuple[str, list[int]]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def claim(self, worker: str, now: dt.datetime, lease: dt.timedelta,
                    limit: int) -> list[Job]:
        self.calls.append(("claim", []))  # when asked, before the finish in flight ends
        return await self._store.claim(worker, now, lease, limit)

    async def finish_batch(self, items: Sequence[tuple[Job, Outcome, Planner]], worker: str,
                           now: dt.datetime) -> list[Plan | Exception | None]:
        self.calls.append(("finish", [j.id for j, _, _ in items]))
        if self.failures:
            self.failures -= 1
            raise StoreUnavailable("the store went away")
        return await FINISH_BATCH(self._store, items, worker, now)


async def stored(tmp_path: Path, count: int) -> tuple[Any, Store]:
    settings = make_settings(tmp_path, BOUNCED_WORKER_BATCH_SIZE="3")
    store = open_store(settings.store_url)
    await store.open()
    sign = signer(settings)
    messages = []
    for n in range(count):
        rp = sign.return_path(f"s{n}", ALICE, day=days_ago(1))
        m = message(f"t{n}", subject=f"s{n}")
        messages.append(type(m)(received_at=m.received_at, peer=m.peer, mail_from="",
                                rcpt_to=rp, token=m.token,
                                raw=dsn(ALICE, return_path=rp)))
    await store.add_messages(messages)
    return settings, store


async def test_overlapped_batches_are_each_finished_once(tmp_path: Path) -> None:
    """Seven jobs in batches of three: the next batch is claimed before the last is finished,
    and every job is done once."""
    settings, inner = await stored(tmp_path, 7)
    try:
        store = Overlapping(inner)
        worker = Worker(store, settings, utcnow)  # type: ignore[arg-type]
        assert await worker.drain() == 7
        assert (await inner.queue_counts())["done"] == 7
        finished = [i for call, ids in store.calls if call == "finish" for i in ids]
        assert sorted(finished) == sorted(set(finished)) and len(finished) == 7
        order = [call for call, _ in store.calls]
        assert order[:2] == ["claim", "claim"], order  # the next claimed before the finish
    finally:
        await inner.close()


async def test_batch_lost_to_an_outage_comes_first_after_it(tmp_path: Path) -> None:
    """A batch whose finish met a store outage is finished first once the store is back,
    with the batch classified meanwhile; nothing is lost or done twice."""
    settings, inner = await stored(tmp_path, 6)
    try:
        store = Overlapping(inner, failures=1)
        worker = Worker(store, settings, utcnow)  # type: ignore[arg-type]
        first = await worker.run_batch()
        assert first == 3
        try:
            await worker.run_batch()
        except StoreUnavailable:
            pass
        else:  # the outage surfaces at the latest when the next batch waits for it
            await worker.run_batch()
        assert await worker.drain() >= 3
        assert (await inner.queue_counts())["done"] == 6
        finishes = [ids for call, ids in store.calls if call == "finish"]
        # The failed batch first, then the one classified meanwhile (together: both are ready).
        assert finishes[1][:3] == finishes[0], "the failed batch was not the next one finished"
    finally:
        await inner.close()


class InOrder:
    """A real SQLite store (which finishes a batch before claiming the next) that records the
    calls the worker makes, and can stop the worker after a number of finish_and_claim calls."""

    overlap_finish = False

    def __init__(self, store: Store, stop_after: int = 0) -> None:
        self._store = store
        self.stop_after = stop_after
        self.worker: Worker | None = None
        self.calls: list[tuple[str, list[int]]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def claim(self, worker: str, now: dt.datetime, lease: dt.timedelta,
                    limit: int) -> list[Job]:
        jobs = await self._store.claim(worker, now, lease, limit)
        self.calls.append(("claim", [j.id for j in jobs]))
        return jobs

    async def finish_batch(self, items: Sequence[tuple[Job, Outcome, Planner]], worker: str,
                           now: dt.datetime) -> list[Plan | Exception | None]:
        self.calls.append(("finish", [j.id for j, _, _ in items]))
        return await FINISH_BATCH(self._store, items, worker, now)

    async def finish_and_claim(
        self, items: Sequence[tuple[Job, Outcome, Planner]], worker: str, now: dt.datetime,
        lease: dt.timedelta, limit: int,
    ) -> tuple[list[Plan | Exception | None], list[Job]]:
        results, jobs = await FINISH_AND_CLAIM(self._store, items, worker, now, lease, limit)
        self.calls.append(("finish+claim", [j.id for j in jobs]))
        if self.worker is not None and len(
                [c for c, _ in self.calls if c == "finish+claim"]) == self.stop_after:
            self.worker.stop()
        return results, jobs


async def test_in_order_store_claims_the_next_batch_with_the_finish(tmp_path: Path) -> None:
    """Seven jobs in batches of three on a store that finishes in order: after the first claim,
    each batch is claimed in the transaction that finishes the one before; a short one is topped
    up by a claim; every job is done once."""
    settings, inner = await stored(tmp_path, 7)
    try:
        store = InOrder(inner)
        worker = Worker(store, settings, utcnow)  # type: ignore[arg-type]
        assert await worker.drain() == 7
        assert (await inner.queue_counts())["done"] == 7
        assert [c for c, _ in store.calls[:3]] == ["claim", "finish+claim", "finish+claim"]
        assert [len(ids) for _, ids in store.calls[:3]] == [3, 3, 1]
        assert store.calls[3] == ("claim", [])  # the short batch topped up: nothing more came
        assert "finish" not in [c for c, _ in store.calls]
    finally:
        await inner.close()


async def test_stopped_worker_finishes_the_jobs_claimed_with_its_last_finish(
    tmp_path: Path,
) -> None:
    """A worker stopped while a finish claimed the next batch processes that batch (finished
    without a further claim) before it returns: no job is left claimed."""
    settings, inner = await stored(tmp_path, 7)
    try:
        store = InOrder(inner, stop_after=1)
        worker = Worker(store, settings, utcnow)  # type: ignore[arg-type]
        store.worker = worker
        await worker.run()
        counts = await inner.queue_counts()
        assert (counts["done"], counts["processing"], counts["pending"]) == (6, 0, 1)
        assert [c for c, _ in store.calls] == ["claim", "finish+claim", "finish"]
    finally:
        await inner.close()


async def test_message_whose_workers_all_died_is_quarantined_not_claimed_forever(
    tmp_path: Path, store_url: str
) -> None:
    """A message claimed max_attempts times by workers that died on it (never finished, never
    failed) is quarantined with the reason by the next worker instead of being classified
    again, so a message that kills the worker process cannot do so forever."""
    settings = make_settings(tmp_path, store_url, BOUNCED_WORKER_MAX_ATTEMPTS="3")
    store = open_store(settings.store_url)
    await store.open()
    try:
        rp = signer(settings).return_path("s1", ALICE, day=days_ago(1))
        m = message("t1", subject="s1")
        [mid] = await store.add_messages([type(m)(
            received_at=m.received_at, peer=m.peer, mail_from="", rcpt_to=rp, token=m.token,
            raw=dsn(ALICE, return_path=rp))])
        now = utcnow()
        lease = dt.timedelta(seconds=1)
        for n in range(3):  # three workers take it and die: their leases run out
            assert [j.id for j in await store.claim(f"dead{n}", now, lease, 10)] == [mid]
            now += dt.timedelta(seconds=2)
        worker = Worker(store, settings, lambda: now)
        await worker.drain()
        info, _, incidents = await store.message(mid)
        assert info.state == "quarantined"
        assert info.last_error is not None and "abandoned" in info.last_error
        assert incidents == []
        # Reprocessing by an operator starts the count again: it is classified normally.
        assert await store.requeue(ids=[mid]) == 1
        await worker.drain()
        info, _, _ = await store.message(mid)
        assert info.state == "done"
    finally:
        await store.close()


async def one_data_many_rcpts(settings: Any, store: Store, rcpts: int, raw: bytes,
                              prefix: str = "r") -> None:
    """What SMTP stores for one DATA transaction with ``rcpts`` accepted tokens: a message per
    recipient, one body shared by all."""
    sign = signer(settings)
    messages = []
    for n in range(rcpts):
        rp = sign.return_path(f"{prefix}{n}", ALICE, day=days_ago(1))
        m = message(f"{prefix}{n}", subject=f"{prefix}{n}")
        messages.append(type(m)(received_at=m.received_at, peer=m.peer, mail_from="",
                                rcpt_to=rp, token=m.token, raw=raw))
    await store.add_messages(messages)


@pytest.fixture
def classify_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of each body the worker classifies."""
    calls: list[int] = []
    real = worker_module.classify

    def counting(raw: bytes) -> Any:
        calls.append(len(raw))
        return real(raw)

    monkeypatch.setattr(worker_module, "classify", counting)
    return calls


class WithoutBodyIds:
    """A store whose jobs do not say their body's id (the worker then knows bodies by their
    bytes). Every claim goes through it: it finishes a batch apart from the next claim."""

    overlap_finish = True

    def __init__(self, store: Store) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def claim(self, worker: str, now: dt.datetime, lease: dt.timedelta,
                    limit: int) -> list[Job]:
        jobs = await self._store.claim(worker, now, lease, limit)
        return [dataclasses.replace(j, body_id=None) for j in jobs]


@pytest.mark.parametrize("body_ids", [True, False], ids=["body-ids", "no-body-ids"])
async def test_a_body_shared_by_many_recipients_is_classified_once(
    tmp_path: Path, store_url: str, classify_calls: list[int], body_ids: bool
) -> None:
    """One DATA with 50 accepted recipients (batches of 20: the jobs span three) is classified
    once, not once per recipient: the worker's work follows the bytes received. Each recipient
    still gets its incident; another body is classified on its own."""
    settings = make_settings(tmp_path, store_url)
    assert settings.worker.batch_size < 50
    store = open_store(settings.store_url)
    await store.open()
    try:
        await one_data_many_rcpts(settings, store, 50, dsn(ALICE))
        await one_data_many_rcpts(settings, store, 3, dsn(ALICE, status="5.2.2"), "other")
        worker = Worker(store if body_ids else WithoutBodyIds(store),  # type: ignore[arg-type]
                        settings, utcnow)
        assert await worker.drain() == 53
        assert (await store.queue_counts())["done"] == 53
        assert len(classify_calls) == 2, classify_calls
        reasons = [[i.reason for i in await store.incidents(f"r{n}", "fp1")] for n in range(50)]
        assert reasons == [["userunknown"]] * 50
    finally:
        await store.close()


async def test_a_body_over_the_budget_costs_one_budget_for_all_its_recipients(
    tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A body that runs past the classification budget is quarantined for each of its 50
    recipients after one run, not 50 runs of the budget each."""
    settings = make_settings(tmp_path, store_url)
    store = open_store(settings.store_url)
    await store.open()
    calls = []

    def over(raw: bytes) -> Any:
        calls.append(len(raw))
        raise worker_module.OverBudget("classification exceeded 5 s")

    monkeypatch.setattr(worker_module, "classify", over)
    try:
        await one_data_many_rcpts(settings, store, 50, dsn(ALICE))
        worker = Worker(store, settings, utcnow)
        assert await worker.drain() == 50
        assert (await store.queue_counts())["quarantined"] == 50
        assert len(calls) == 1
    finally:
        await store.close()
