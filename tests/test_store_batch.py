"""Store.finish_batch, run against every backend: one transaction for several jobs, with the
same results as finishing them one by one."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from bounced.model import AddressState, DomainStats, Incident, Plan
from bounced.policy import core
from bounced.store import Store

from .test_store import LEASE, NOW, Planner, message, outcome


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
