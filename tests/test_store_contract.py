"""The Store contract, run against every backend (SQLite, PostgreSQL, and the test backend in
memory) through ``contract_url``: jobs, recording through bounced.policy.core (one job, or a
batch in one transaction with the same results as one by one), reconfirmation, the outbox.

The planners here are tiny and explicit, so these tests pin the store's behaviour (atomicity,
locking, what the planner is shown), not the policy's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from bounced.config import EVENT_TYPES
from bounced.exceptions import NotFound
from bounced.model import (
    CONFIRMED,
    UNCONFIRMED,
    AddressState,
    Decision,
    DomainStats,
    Incident,
    Job,
    NewMessage,
    Plan,
    TokenFields,
)
from bounced.policy import core
from bounced.policy.core import Outcome
from bounced.store import Store, open_store

from .support.memory_store import MemoryStore

UTC = dt.UTC
# Near the wall clock (requeue stamps jobs with it), in whole seconds (SQLite keeps floats).
NOW = dt.datetime.now(UTC).replace(microsecond=0)
LEASE = dt.timedelta(seconds=60)
ADDRESS = "alice@example.net"


@pytest.fixture(params=["sqlite", "postgresql", "memory"])
def contract_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each backend, and the test backend in memory (which keeps rows only: what a backend
    must do is the data operations)."""
    if request.param == "memory":
        return f"memory://{tmp_path}"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'bounced.db'}"
    url: str = request.getfixturevalue("pg_database")
    return url


@pytest.fixture
async def store(contract_url: str) -> AsyncIterator[Store]:
    """An open store of each backend, closed after the test."""
    s: Store = (MemoryStore(contract_url) if contract_url.startswith("memory:")  # type: ignore[assignment]
                else open_store(contract_url))
    await s.open()
    try:
        yield s
    finally:
        await s.close()


def message(token_id: str, subject: str = "s1", fingerprint: str = "fp1",
            received: dt.datetime = NOW - dt.timedelta(minutes=1)) -> NewMessage:
    token = TokenFields(subject=subject, stream=None, key_id="k1", day=dt.date(2026, 2, 20),
                        fingerprint=fingerprint, token_id=token_id)
    return NewMessage(received_at=received, peer="127.0.0.1", mail_from="",
                      rcpt_to=f"bounce-{token_id}@bounces.example.test", token=token,
                      raw=f"raw message {token_id}\r\n".encode())


def outcome(job: Job, reason: str = "userunknown") -> Outcome:
    incident = Incident(
        id=None, message_id=job.id, subject=job.token.subject, fingerprint=job.token.fingerprint,
        address=ADDRESS, token_id=job.token.token_id, send_day=job.token.day,
        received_at=job.received_at, kind="bounce", action="failed", status="5.1.1",
        reply_code="550", reason=reason, hard=True, counts=False, diagnostic="550 5.1.1 unknown",
        remote_mta="mx.example.net",
    )
    return Outcome(kind="bounce", classification={"kind": "bounce", "n": job.id},
                   incidents=(incident,))


class Planner:
    """Counts each new incident once per token (reason 'blocked' never), unconfirms at a
    threshold of counted tokens; remembers what it was shown."""

    def __init__(self, threshold: int = 3) -> None:
        self.threshold = threshold
        self.shown: list[tuple[AddressState | None, list[Incident]]] = []

    def __call__(self, state: AddressState | None, history: Sequence[Incident],
                 new: Sequence[Incident], domain: DomainStats | None = None) -> Plan:
        self.shown.append((state, list(history)))
        used = {i.token_id for i in history if i.counts}
        marked = []
        for i in new:
            counts = i.reason != "blocked" and i.token_id not in used
            used.add(i.token_id)
            marked.append(dataclasses.replace(i, counts=counts))
        tokens = {i.token_id for i in [*history, *marked] if i.counts}
        decision = None
        if (state is None or state.state == CONFIRMED) and len(tokens) >= self.threshold:
            decision = Decision(subject=new[0].subject, fingerprint=new[0].fingerprint,
                                action="unconfirm", rule=f"{len(tokens)} tokens", decided_at=NOW,
                                evidence=tuple(i.evidence() for i in marked))
        return Plan(incidents=tuple(marked), decision=decision)


async def process(store: Store, token_id: str, planner: Planner, reason: str = "userunknown",
                  received: dt.datetime = NOW - dt.timedelta(minutes=1)) -> Plan | None:
    """Store one message, claim it and finish it."""
    [mid] = await store.add_messages([message(token_id, received=received)])
    [job] = [j for j in await store.claim("w", NOW, LEASE, 100) if j.id == mid]
    return await core.finish(store, job, "w", outcome(job, reason), planner, NOW)


async def test_messages_stored_as_pending_jobs_in_order(store: Store) -> None:
    """add_messages returns increasing ids; each message is pending with its raw bytes kept."""
    ids = await store.add_messages([message("t1"), message("t2", subject="s2")])
    assert ids == sorted(ids) and len(set(ids)) == 2
    assert (await store.queue_counts())["pending"] == 2
    info, raw, incidents = await store.message(ids[1])
    assert (info.subject, info.token_id, info.state, info.has_raw) == ("s2", "t2", "pending", True)
    assert raw == b"raw message t2\r\n" and incidents == []
    assert [m.id for m in await store.messages("pending")] == ids[::-1]
    with pytest.raises(NotFound):
        await store.message(ids[1] + 1000)


async def test_claim_leases_due_jobs_up_to_the_limit(store: Store) -> None:
    """A claim takes the oldest due jobs up to the limit, once, and counts the attempt."""
    ids = await store.add_messages([message(f"t{n}") for n in range(3)])
    first = await store.claim("w1", NOW, LEASE, 2)
    assert [j.id for j in first] == ids[:2] and all(j.attempts == 1 for j in first)
    assert first[0].raw == b"raw message t0\r\n" and first[0].token.token_id == "t0"
    assert [j.id for j in await store.claim("w2", NOW, LEASE, 2)] == ids[2:]
    assert await store.claim("w3", NOW, LEASE, 2) == []
    assert (await store.queue_counts())["processing"] == 3


async def test_expired_lease_is_reclaimed_and_old_worker_loses_the_job(store: Store) -> None:
    """A job whose lease expired is claimed again; the first worker's finish records nothing."""
    await store.add_messages([message("t1")])
    [job] = await store.claim("w1", NOW, LEASE, 10)
    assert await store.claim("w2", NOW + LEASE / 2, LEASE, 10) == []
    [again] = await store.claim("w2", NOW + LEASE * 2, LEASE, 10)
    assert (again.id, again.attempts) == (job.id, 2)
    assert await core.finish(store, job, "w1", outcome(job), Planner(), NOW) is None
    assert await store.address_states(subject="s1") == []
    plan = await core.finish(store, again, "w2", outcome(again), Planner(), NOW)
    assert plan is not None and len(plan.incidents) == 1
    assert (await store.queue_counts())["done"] == 1


async def test_finish_records_incidents_and_one_decision(store: Store) -> None:
    """Three counted tokens unconfirm the address once; the planner sees the history in order."""
    planner = Planner(threshold=3)
    for n in range(1, 4):
        received = NOW - dt.timedelta(minutes=10 - n)
        plan = await process(store, f"t{n}", planner, received=received)
        assert plan is not None and (plan.decision is not None) == (n == 3)
    assert [i.token_id for i in planner.shown[2][1]] == ["t1", "t2"]
    [state] = await store.address_states(subject="s1")
    assert (state.state, state.address, state.fingerprint) == (UNCONFIRMED, ADDRESS, "fp1")
    [decision] = await store.decisions("s1", "fp1")
    assert (decision.action, decision.rule) == ("unconfirm", "3 tokens")
    assert decision.evidence[0]["token_id"] == "t3"
    incidents = await store.incidents("s1", "fp1")
    assert [i.token_id for i in incidents] == ["t3", "t2", "t1"] and all(i.counts for i in incidents)
    assert await process(store, "t4", planner) is not None
    assert len(await store.decisions("s1", "fp1")) == 1
    [info] = await store.messages("done", limit=1)
    assert info.classification == {"kind": "bounce", "n": info.id} and info.processed_at == NOW


async def test_reprocessing_a_job_replaces_its_incidents(store: Store) -> None:
    """A job processed twice keeps one set of incidents, and never sees its own as history."""
    planner = Planner()
    await process(store, "t1", planner)
    [info] = await store.messages("done")
    assert await store.requeue(ids=[info.id]) == 1
    [job] = await store.claim("w", dt.datetime.now(UTC) + dt.timedelta(seconds=1), LEASE, 10)
    assert job.attempts == 1
    plan = await core.finish(store, job, "w", outcome(job), planner, NOW)
    assert plan is not None and plan.incidents[0].counts
    assert planner.shown[-1][1] == []
    [incident] = await store.incidents("s1", "fp1")
    assert incident.counts and incident.message_id == info.id


async def test_fail_retries_then_quarantines_and_requeue_restores(store: Store) -> None:
    """A failure waits until retry_at; without one the job is quarantined until requeued."""
    [mid] = await store.add_messages([message("t1")])
    [job] = await store.claim("w", NOW, LEASE, 10)
    retry_at = NOW + dt.timedelta(minutes=5)
    await store.fail(job, "w", "boom", NOW, retry_at)
    info, _, _ = await store.message(mid)
    assert (info.state, info.last_error) == ("pending", "boom")
    assert await store.claim("w", NOW + dt.timedelta(minutes=4), LEASE, 10) == []
    [job] = await store.claim("w", retry_at, LEASE, 10)
    await store.fail(job, "other-worker", "not mine", NOW, None)
    assert (await store.message(mid))[0].state == "processing"
    await store.fail(job, "w", "unparseable", NOW, None)
    info, _, _ = await store.message(mid)
    assert (info.state, info.last_error, info.attempts) == ("quarantined", "unparseable", 2)
    assert await store.claim("w", NOW + dt.timedelta(days=1), LEASE, 10) == []
    assert await store.requeue(states=["quarantined"]) == 1
    info, _, _ = await store.message(mid)
    assert (info.state, info.attempts) == ("pending", 0)


async def test_requeue_skips_jobs_in_processing(store: Store) -> None:
    """A job being processed is not requeued by id."""
    [mid] = await store.add_messages([message("t1")])
    await store.claim("w", NOW, LEASE, 10)
    assert await store.requeue(ids=[mid]) == 0
    assert (await store.message(mid))[0].state == "processing"


async def test_purge_drops_old_raw_bodies_and_incidents(store: Store) -> None:
    """Purge empties raw bodies of old done messages and deletes old incidents; dry run counts."""
    old, new = NOW - dt.timedelta(days=40), NOW - dt.timedelta(days=1)
    await process(store, "t-old", Planner(), received=old)
    await process(store, "t-new", Planner(), received=new)
    cutoff = NOW - dt.timedelta(days=30)
    dry = await store.purge(raw_before=cutoff, incidents_before=cutoff, dry_run=True)
    assert dry == {"raw_messages": 1, "incidents": 1}
    assert len(await store.incidents("s1", "fp1")) == 2
    assert await store.purge(raw_before=cutoff, incidents_before=cutoff, dry_run=False) == dry
    by_token = {m.token_id: m for m in await store.messages(None)}
    assert not by_token["t-old"].has_raw and by_token["t-new"].has_raw
    assert (await store.message(by_token["t-old"].id))[1] is None
    assert [i.token_id for i in await store.incidents("s1", "fp1")] == ["t-new"]
    assert await store.requeue(ids=[by_token["t-old"].id]) == 0
    assert await store.purge(raw_before=cutoff, incidents_before=cutoff, dry_run=False) == {
        "raw_messages": 0, "incidents": 0}


async def test_reconfirm_confirms_and_earlier_history_stops_counting(store: Store) -> None:
    """After a reconfirmation the address is confirmed and the planner sees no earlier incident."""
    planner = Planner(threshold=2)
    await process(store, "t1", planner, received=NOW - dt.timedelta(minutes=5))
    await process(store, "t2", planner, received=NOW - dt.timedelta(minutes=4))
    assert (await store.address_states(subject="s1"))[0].state == UNCONFIRMED
    [decision] = await core.reconfirm(store, "s1", NOW - dt.timedelta(minutes=3))
    assert (decision.action, decision.fingerprint) == ("reconfirm", "fp1")
    [state] = await store.address_states(fingerprint="fp1")
    assert state.state == CONFIRMED and state.reconfirmed_at == NOW - dt.timedelta(minutes=3)
    await process(store, "t3", planner, received=NOW - dt.timedelta(minutes=2))
    assert planner.shown[-1][1] == []
    assert (await store.address_states(subject="s1"))[0].state == CONFIRMED
    assert sorted(d.action for d in await store.decisions("s1", "fp1")) == [
        "reconfirm", "unconfirm"]


async def test_history_is_counting_incidents_only_and_bounded(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The planner is shown the newest counting incidents, oldest first, at most HISTORY_LIMIT."""
    monkeypatch.setattr(core, "HISTORY_LIMIT", 2)
    planner = Planner(threshold=100)
    for n, reason in enumerate(["userunknown", "blocked", "userunknown", "userunknown",
                                "blocked", "userunknown"]):
        await process(store, f"t{n}", planner, reason,
                      received=NOW - dt.timedelta(minutes=30 - n))
    assert [i.token_id for i in planner.shown[-1][1]] == ["t2", "t3"]
    assert len(await store.incidents("s1", "fp1")) == 6


async def test_concurrent_claims_never_hand_one_job_to_two_workers(store_url: str) -> None:
    """Four store instances claiming at once take every job exactly once."""
    first = open_store(store_url)
    await first.open()
    stores = [first]
    try:
        ids = await first.add_messages([message(f"t{n}") for n in range(80)])
        for _ in range(3):
            s = open_store(store_url)
            await s.open()
            stores.append(s)

        async def claim_all(s: Store, worker: str) -> list[int]:
            got: list[int] = []
            for _ in range(200):
                jobs = await s.claim(worker, NOW, LEASE, 3)
                got.extend(j.id for j in jobs)
                if not jobs and (await s.queue_counts())["pending"] == 0:
                    break
            return got

        claimed = await asyncio.gather(*(claim_all(s, f"w{n}") for n, s in enumerate(stores)))
        flat = [i for got in claimed for i in got]
        assert sorted(flat) == ids, "a job was claimed twice or not at all"
    finally:
        for s in stores:
            await s.close()


async def test_concurrent_finishes_for_one_address_decide_once(store_url: str) -> None:
    """Bounces for one address finished at once by separate connections unconfirm it once."""
    stores: list[Store] = []
    try:
        for _ in range(5):
            s = open_store(store_url)
            await s.open()
            stores.append(s)
        planner = Planner(threshold=3)
        ids = await stores[0].add_messages([message(f"t{n}") for n in range(7)])
        jobs = await stores[0].claim("w", NOW, LEASE, 10)
        assert [j.id for j in jobs] == ids
        for job in jobs[:2]:
            await core.finish(stores[0], job, "w", outcome(job), planner, NOW)
        plans = await asyncio.gather(*(
            core.finish(stores[n % 5], job, "w", outcome(job), planner, NOW)
            for n, job in enumerate(jobs[2:])
        ))
        assert sum(p is not None and p.decision is not None for p in plans) == 1
        assert len(await stores[0].decisions("s1", "fp1")) == 1
        assert (await stores[0].queue_counts())["done"] == 7
        assert len(await stores[0].incidents("s1", "fp1")) == 7
    finally:
        for s in stores:
            await s.close()


async def test_concurrent_opens_apply_each_migration_once(store_url: str) -> None:
    """Stores opening a fresh database at the same time all succeed; the schema is applied once."""
    stores = [open_store(store_url) for _ in range(4)]
    try:
        await asyncio.gather(*(s.open() for s in stores))
        ids = await stores[1].add_messages([message("t1")])
        assert [m.id for m in await stores[3].messages(None)] == ids
    finally:
        for s in stores:
            await s.close()
    again = open_store(store_url)
    await again.open()
    await again.close()


async def test_outbox_deliveries_claimed_once(store: Store) -> None:
    """Events fan out to one delivery per action; a delivery is claimed by one worker at a time."""
    await process(store, "t1", Planner(threshold=1))
    assert await store.fan_out(dict.fromkeys(["log", "webhook"], EVENT_TYPES), NOW, False) == 1
    assert await store.fan_out(dict.fromkeys(["log", "webhook"], EVENT_TYPES), NOW, False) == 0
    first, second = await asyncio.gather(
        store.claim_deliveries("w1", NOW, LEASE, 1), store.claim_deliveries("w2", NOW, LEASE, 1))
    assert {d.action for d in [*first, *second]} == {"log", "webhook"}
    assert await store.claim_deliveries("w3", NOW, LEASE, 10) == []
    [event_and_states] = await store.events()
    assert event_and_states[0].type == "address.unconfirmed"
    await store.delivery_done(first[0], "w1", NOW)
    await store.delivery_failed(second[0], "w2", "refused", NOW, None)
    counts = await store.outbox_counts()
    assert (counts["delivered"], counts["dead"], counts["pending"]) == (1, 1, 0)


# --- several jobs in one transaction (core.finish_batch, core.finish_and_claim) ----------


class Failing(Planner):
    """A planner that raises, as a broken job would."""

    def __call__(self, state: AddressState | None, history: Sequence[Incident],
                 new: Sequence[Incident], domain: DomainStats | None = None) -> Plan:
        raise RuntimeError("this job cannot be planned")


async def test_batch_records_each_job_and_later_jobs_see_earlier_ones(store: Store) -> None:
    """Three bounces for one address in one batch: each sees the ones before it, the third
    unconfirms, all three are done after one call."""
    await store.add_messages([message(f"t{n}") for n in range(3)])
    jobs = await store.claim("w", NOW, LEASE, 10)
    planner = Planner(threshold=3)
    results = await core.finish_batch(store, [(j, outcome(j), planner) for j in jobs], "w", NOW)
    assert all(isinstance(r, Plan) for r in results)
    assert [len(history) for _, history in planner.shown] == [0, 1, 2]
    assert [r.decision is not None for r in results if isinstance(r, Plan)] == [False, False, True]
    assert (await store.queue_counts())["done"] == 3
    [state] = await store.address_states(subject="s1")
    assert state.state == "unconfirmed"
    assert len(await store.incidents("s1", "fp1")) == 3
    assert [d.action for d in await store.decisions("s1", "fp1")] == ["unconfirm"]


async def test_batch_sees_the_state_a_decision_of_the_batch_set(store: Store) -> None:
    """After an unconfirm in the batch, a later job for the address is shown it unconfirmed
    and decides nothing more."""
    await store.add_messages([message(f"t{n}") for n in range(4)])
    jobs = await store.claim("w", NOW, LEASE, 10)
    planner = Planner(threshold=3)
    results = await core.finish_batch(store, [(j, outcome(j), planner) for j in jobs], "w", NOW)
    states = [state.state if state else None for state, _ in planner.shown]
    assert states == ["confirmed", "confirmed", "confirmed", "unconfirmed"]
    assert [r.decision is not None for r in results if isinstance(r, Plan)] == \
        [False, False, True, False]
    assert len(await store.decisions("s1", "fp1")) == 1


async def test_batch_same_as_one_by_one(store: Store) -> None:
    """What a batch records (incidents counted, decisions) and what its planner is shown are
    what finishing the same jobs one by one gives."""
    await store.add_messages([message(f"b{n}", subject="batch") for n in range(4)]
                             + [message(f"o{n}", subject="single") for n in range(4)])
    jobs = await store.claim("w", NOW, LEASE, 10)
    batch_planner, single_planner = Planner(3), Planner(3)
    batch = await core.finish_batch(store, [(j, outcome(j), batch_planner) for j in jobs[:4]], "w", NOW)
    single = [await core.finish(store, j, "w", outcome(j), single_planner, NOW)
              for j in jobs[4:]]

    def shape(plans: Sequence[Plan | Exception | None]) -> list[tuple[object, ...]]:
        return [(tuple(i.counts for i in p.incidents), p.decision is not None)
                for p in plans if isinstance(p, Plan)]

    assert shape(batch) == shape(single) and len(shape(batch)) == 4
    assert [(s.state if s else None, len(h)) for s, h in batch_planner.shown] == \
        [(s.state if s else None, len(h)) for s, h in single_planner.shown]
    assert len(await store.incidents("batch", "fp1")) == len(await store.incidents("single", "fp1"))


async def test_batch_lost_claim_records_nothing_for_that_job(store: Store) -> None:
    """A job whose claim went to another worker gets None; the others are recorded."""
    await store.add_messages([message("t1"), message("t2", subject="s2")])
    jobs = await store.claim("w1", NOW, LEASE, 10)
    [stolen] = await store.claim("w2", NOW + LEASE * 2, LEASE, 1)
    assert stolen.id == jobs[0].id
    results = await core.finish_batch(store, [(j, outcome(j), Planner()) for j in jobs], "w1", NOW)
    assert results[0] is None and isinstance(results[1], Plan)
    assert await store.address_states(subject="s1") == []
    assert len(await store.address_states(subject="s2")) == 1
    info, _, _ = await store.message(jobs[0].id)
    assert info.state == "processing"


async def test_batch_failing_job_alone_is_not_recorded(store: Store) -> None:
    """A job whose recording fails gets its exception; it stays claimed (nothing recorded for
    it), the jobs before and after it are recorded and done."""
    await store.add_messages([message(f"t{n}", subject=f"s{n}") for n in range(3)])
    jobs = await store.claim("w", NOW, LEASE, 10)
    planners = [Planner(), Failing(), Planner()]
    results = await core.finish_batch(store,
        [(j, outcome(j), p) for j, p in zip(jobs, planners, strict=True)], "w", NOW)
    assert isinstance(results[0], Plan) and isinstance(results[2], Plan)
    assert isinstance(results[1], RuntimeError)
    assert (await store.queue_counts())["done"] == 2
    assert await store.incidents("s1", "fp1") == []
    assert len(await store.incidents("s0", "fp1")) == 1
    assert len(await store.incidents("s2", "fp1")) == 1
    info, _, _ = await store.message(jobs[1].id)
    assert info.state == "processing"


async def test_batch_events_of_the_jobs_are_written(store: Store) -> None:
    """Events of the messages themselves (one not recognised) and those a decision raises
    are all written."""
    await store.add_messages([message(f"t{n}") for n in range(4)])
    jobs = await store.claim("w", NOW, LEASE, 10)
    items = [(j, outcome(j), Planner(3)) for j in jobs]
    items[0] = (items[0][0], core.Outcome(kind="unknown", classification={}, incidents=()),
                items[0][2])
    await core.finish_batch(store, items, "w", NOW)
    types = sorted(event.type for event, _ in await store.events())
    assert types == ["address.unconfirmed", "bounce.unrecognised"]


async def test_batch_reprocessed_job_replaces_its_incidents(store: Store) -> None:
    """A job finished again after its lease expired (in a batch) keeps one set of incidents."""
    await store.add_messages([message("t1")])
    [job] = await store.claim("w1", NOW, LEASE, 10)
    await core.finish_batch(store, [(job, outcome(job), Planner())], "w1", NOW)
    await store.requeue(ids=[job.id])  # due at the wall clock's now: claim a day later
    [again] = await store.claim("w2", NOW + dt.timedelta(days=1), LEASE, 10)
    await core.finish_batch(store, [(again, outcome(again), Planner())], "w2", NOW)
    assert len(await store.incidents("s1", "fp1")) == 1


async def test_finish_and_claim_records_the_batch_and_claims_the_next(store: Store) -> None:
    """finish_and_claim records and marks done the batch, and claims the next jobs (with their
    raw bodies and the attempt counted), never one of the batch just finished."""
    ids = await store.add_messages([message(f"t{n}", subject=f"s{n}") for n in range(5)])
    jobs = await store.claim("w", NOW, LEASE, 2)
    results, following = await core.finish_and_claim(
        store, [(j, outcome(j), Planner()) for j in jobs], "w", NOW, LEASE, 2)
    assert all(isinstance(r, Plan) for r in results)
    assert [j.id for j in following] == ids[2:4]
    assert following[0].raw == b"raw message t2\r\n" and following[0].attempts == 1
    assert await store.queue_counts() == {"pending": 1, "processing": 2, "done": 2,
                                          "failed": 0, "quarantined": 0}
    results, following = await core.finish_and_claim(
        store, [(j, outcome(j), Planner()) for j in following], "w", NOW, LEASE, 2)
    assert len(results) == 2 and [j.id for j in following] == ids[4:]
    assert (await store.queue_counts())["done"] == 4


async def test_finish_and_claim_with_a_failing_job_still_claims(store: Store) -> None:
    """A job whose recording fails is returned as its exception and stays claimed; the others
    are done, and the next jobs are claimed all the same."""
    ids = await store.add_messages([message(f"t{n}", subject=f"s{n}") for n in range(4)])
    jobs = await store.claim("w", NOW, LEASE, 2)
    results, following = await core.finish_and_claim(
        store, [(jobs[0], outcome(jobs[0]), Failing()), (jobs[1], outcome(jobs[1]), Planner())],
        "w", NOW, LEASE, 10)
    assert isinstance(results[0], RuntimeError) and isinstance(results[1], Plan)
    assert [j.id for j in following] == ids[2:]
    counts = await store.queue_counts()
    assert (counts["done"], counts["processing"]) == (1, 3)
    assert await store.incidents("s0", "fp1") == []


async def test_finish_and_claim_of_nothing_only_claims(store: Store) -> None:
    """With no job to finish, finish_and_claim is a claim."""
    ids = await store.add_messages([message("t1", received=NOW + dt.timedelta(minutes=1))])
    assert await core.finish_and_claim(store, [], "w", NOW, LEASE, 5) == ([], [])  # not yet due
    results, following = await core.finish_and_claim(
        store, [], "w", NOW + dt.timedelta(minutes=2), LEASE, 5)
    assert results == [] and [j.id for j in following] == ids


async def test_batch_shows_no_job_what_a_reprocessed_job_recorded_before(store: Store) -> None:
    """In a batch with a job processed again, no job (before or after it in the batch) is shown
    the incidents its earlier attempt recorded, and it keeps one set of incidents."""
    await store.add_messages([message("t1")])
    [first] = await store.claim("w1", NOW, LEASE, 10)
    await core.finish_batch(store, [(first, outcome(first), Planner())], "w1", NOW)
    await store.requeue(ids=[first.id])  # due at the wall clock's now: claim a day later
    await store.add_messages([message("t2"), message("t3")])
    jobs = await store.claim("w2", NOW + dt.timedelta(days=1), LEASE, 10)
    jobs.sort(key=lambda j: j.token.token_id != "t2")  # t2 first, then t1 (again), then t3
    assert [j.token.token_id for j in jobs] == ["t2", "t1", "t3"]
    planner = Planner(threshold=100)
    await core.finish_batch(store, [(j, outcome(j), planner) for j in jobs], "w2", NOW)
    shown = [[i.token_id for i in history] for _, history in planner.shown]
    assert shown == [[], ["t2"], ["t2", "t1"]]
    assert sorted(i.token_id for i in await store.incidents("s1", "fp1")) == ["t1", "t2", "t3"]


def test_sqlite_reads_a_batch_of_addresses_by_the_primary_key(tmp_path: Path) -> None:
    """The addresses of a batch are looked up by their key, never by a scan of the table
    (which grows with every address ever seen)."""
    import sqlite3

    from bounced.store.migrations import migrations
    from bounced.store.sqlite.tx import addresses_of

    db = sqlite3.connect(tmp_path / "plan.db")
    for _, _, sql in migrations("sqlite"):
        db.executescript(sql)
    plan = db.execute(f"EXPLAIN QUERY PLAN {addresses_of(3)}", ["s", "f"] * 3).fetchall()
    steps = [row[-1] for row in plan]
    assert any("SEARCH a USING" in s and "(subject=? AND fingerprint=?)" in s for s in steps), \
        steps
    assert not any(s.startswith("SCAN a") or s == "SCAN addresses" for s in steps), steps
