"""What recording an outcome means, once for every store.

A processed job's outcome (its incidents) is planned against the address's history and its
domain's recent figures (``rule.plan``, through a ``Planner``); then this module says what to
write: the incidents, the decision (or the decision held back while the domain's breaker is
tripped), the address's new state, the breaker's trip, and an event for each of them, in the
same transaction as the job's ``done``. Reconfirmation and a breaker's release likewise. Every
event bounced sends is built here (from ``events``) and nowhere else.

The rules are written as ``Work``: generators of the store's plain data operations
(``bounced.store.Tx``), with no SQL and no I/O of their own; each backend carries them out in
one transaction (``Store.run``): SQLite inside aiosqlite's thread in one trip, PostgreSQL as
round trips, each operation doing for a whole batch what it can.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bounced.exceptions import StoreUnavailable
from bounced.model import (
    BREAKER_TRIPPED,
    CONFIRMED,
    UNCONFIRMED,
    AddressState,
    Decision,
    DomainStats,
    Event,
    Incident,
    Job,
    Plan,
)
from bounced.policy import events
from bounced.policy.rule import with_incident_ids
from bounced.store import Op, Store, Work

# The planner sees at most this many of an address's counting incidents (the newest): bounded
# work and reads per message, however long an address has been failing.
HISTORY_LIMIT = 1000
HELD = "held"
RECONFIRM = "reconfirm"
RECONFIRM_RULE = "the application confirmed the address again"

# Given the address's state, its recorded history, the new incidents and the recent figures
# of the receiving domain (for the breaker), say what to record.
Planner = Callable[
    [AddressState | None, Sequence[Incident], Sequence[Incident], DomainStats | None], Plan
]
Result = Plan | Exception | None


@dataclass(frozen=True)
class Outcome:
    """What processing one job produced, before the policy has had its say."""

    kind: str
    classification: dict[str, Any]
    incidents: tuple[Incident, ...]
    # The breaker's window; None when the breaker is off.
    breaker_window: dt.timedelta | None = None
    # A complaint's feedback type (ARF), for its event.
    feedback_type: str | None = None


Item = tuple[Job, Outcome, Planner]


# ----------------------------------------------------------------------- finishing jobs


async def finish(store: Store, job: Job, worker: str, outcome: Outcome, planner: Planner,
                 now: dt.datetime) -> Plan | None:
    """Record a job's incidents, decision and events atomically and mark it done. None
    (recording nothing) when the claim was lost to another worker."""
    [result] = await store.run(record([(job, outcome, planner)], worker, now))
    assert not isinstance(result, Exception)
    return result


async def finish_batch(store: Store, items: Sequence[Item], worker: str,
                       now: dt.datetime) -> list[Result]:
    """``finish`` for several jobs in one transaction (one commit for all), in order: each job
    sees what the jobs before it recorded. One result per job: its plan, None (claim lost), or
    the exception that kept that job alone from being recorded (the others are committed).
    StoreUnavailable is raised: nothing is committed then."""
    if not items:
        return []
    try:
        return await store.run(record(items, worker, now))
    except StoreUnavailable:
        raise
    except Exception:
        return await _one_by_one(store, items, worker, now)


async def finish_and_claim(store: Store, items: Sequence[Item], worker: str, now: dt.datetime,
                           lease: dt.timedelta, limit: int) -> tuple[list[Result], list[Job]]:
    """``finish_batch``, then claim ``limit`` jobs, in one transaction: one commit (on SQLite
    one trip to its thread) for both, for a worker that finishes a batch before it claims."""
    if not items:
        return [], await store.claim(worker, now, lease, limit)
    try:
        return await store.run(_record_and_claim(items, worker, now, lease, limit))
    except StoreUnavailable:
        raise
    except Exception:
        results = await _one_by_one(store, items, worker, now)
        return results, await store.claim(worker, now, lease, limit)


async def _one_by_one(store: Store, items: Sequence[Item], worker: str,
                      now: dt.datetime) -> list[Result]:
    """After a batch failed as a whole: each job in a transaction of its own, so a job that
    cannot be recorded fails alone (its exception returned in its place)."""
    results: list[Result] = []
    for item in items:
        try:
            results += await store.run(record([item], worker, now))
        except StoreUnavailable:
            raise
        except Exception as exc:
            results.append(exc)
    return results


def _record_and_claim(items: Sequence[Item], worker: str, now: dt.datetime,
                      lease: dt.timedelta, limit: int) -> Work[tuple[list[Result], list[Job]]]:
    results = yield from record(items, worker, now)
    jobs: list[Job] = yield Op("claim", (worker, now, lease, limit))
    return results, jobs


def record(items: Sequence[Item], worker: str, now: dt.datetime) -> Work[list[Result]]:
    """Record the jobs in order and mark them done; raise on any error (the transaction is
    rolled back).

    Once per batch: the claims checked, the addresses read (created if new) and locked, the
    receiving domains locked, the incidents of earlier attempts deleted (reprocessing counts
    nothing twice, and no job of the batch is shown them), the events written, the jobs marked
    done. Locks are taken in one order by every transaction (jobs, addresses, domains: each
    sorted), so concurrent batches wait for each other and never deadlock."""
    owned: set[int] = yield Op("owned_jobs", (sorted(job.id for job, _, _ in items), worker))
    mine = [(job, outcome, planner) for job, outcome, planner in items if job.id in owned]
    recording = [(job, outcome) for job, outcome, _ in mine if outcome.incidents]
    states: dict[tuple[str, str], AddressState] = {}
    if recording:
        first: dict[tuple[str, str], str] = {}
        for job, outcome in recording:
            key = (job.token.subject, job.token.fingerprint)
            if not first.get(key):  # the address the incidents name (only ever the token's)
                first[key] = next((i.address for i in outcome.incidents if i.address), "")
        states = yield Op("addresses", (dict(sorted(first.items())),))
        domains = sorted({_domain(o) for _, o in recording if _domain(o)})
        if domains:  # one trip of a breaker, never two, and none missed
            yield Op("lock_domains", (domains,))
        yield Op("delete_incidents", ([job.id for job, _ in recording],))
    results: list[Result] = []
    new_events: list[Event] = []
    done: list[tuple[int, str, dict[str, Any]]] = []
    for job, outcome, planner in items:
        if job.id not in owned:
            results.append(None)
            continue
        plan = Plan(incidents=(), decision=None)
        if outcome.incidents:
            plan = yield from _record_job(job, outcome, planner, states, new_events, now)
        new_events += message_events(job, outcome, now)
        done.append((job.id, outcome.kind, outcome.classification))
        results.append(plan)
    if new_events:
        yield Op("add_events", (new_events,))
    if done:
        yield Op("mark_done", (done, now))
    return results


def _domain(outcome: Outcome) -> str:
    """The receiving domain whose breaker the outcome feeds ('' for none)."""
    if outcome.breaker_window is None or not outcome.incidents:
        return ""
    return outcome.incidents[0].domain


def _record_job(job: Job, outcome: Outcome, planner: Planner,
                states: dict[tuple[str, str], AddressState], new_events: list[Event],
                now: dt.datetime) -> Work[Plan]:
    """One job's incidents, decision and breaker (what an earlier attempt recorded is deleted
    already); the events they raise are added to ``new_events``."""
    key = (job.token.subject, job.token.fingerprint)
    state = states[key]
    domain = _domain(outcome)
    window = outcome.breaker_window
    history, stats = yield Op("history", (
        state.subject, state.fingerprint, state.reconfirmed_at, HISTORY_LIMIT, domain,
        now - window if domain and window is not None else None))
    plan: Plan = planner(state, history, outcome.incidents, stats)
    yield Op("add_incidents", (job.id, plan.incidents))
    decision = plan.decision
    if decision is not None:  # its evidence names the incidents just stored
        plan = with_incident_ids(plan, (yield Op("incident_ids", (job.id,))))
        decision = plan.decision
    if decision is not None and plan.held:
        yield Op("add_decision", (held(decision, stats),))
    elif decision is not None:
        yield Op("update_address", (decision.subject, decision.fingerprint, UNCONFIRMED,
                                    decision.decided_at, None))
        yield Op("add_decision", (decision,))
        new_events.append(events.unconfirmed(decision, state.address))
        states[key] = dataclasses.replace(state, state=UNCONFIRMED,
                                          changed_at=decision.decided_at)
    if plan.trip and stats is not None:
        yield Op("save_breaker", (stats.domain, BREAKER_TRIPPED, plan.domain_addresses, now))
        minutes = (window or dt.timedelta()).total_seconds() / 60
        new_events.append(events.breaker_tripped(stats.domain, plan.domain_addresses, minutes,
                                                 now))
    return plan


def held(decision: Decision, stats: DomainStats | None) -> Decision:
    """The decision as recorded while the domain's breaker is tripped: not carried out."""
    domain = stats.domain if stats else "?"
    return dataclasses.replace(
        decision, action=HELD, rule=f"{decision.rule}; held: the breaker for {domain} is tripped")


def message_events(job: Job, outcome: Outcome, now: dt.datetime) -> list[Event]:
    """Events that follow from the message alone: a complaint, or nothing recognised."""
    if outcome.kind == "complaint" and outcome.incidents:
        return [events.complaint(outcome.incidents, outcome.feedback_type, now)]
    if outcome.kind == "unknown" or (outcome.kind == "bounce" and not outcome.incidents):
        return [events.unrecognised(job.token.subject, job.token.fingerprint, job.id,
                                    outcome.kind, now)]
    return []


# ------------------------------------------------------------------ operators' decisions


async def reconfirm(store: Store, subject: str, now: dt.datetime) -> list[Decision]:
    """Mark every address of the subject confirmed again; history before now stops counting."""
    return await store.run(_reconfirm(subject, now))


def _reconfirm(subject: str, now: dt.datetime) -> Work[list[Decision]]:
    states: list[AddressState] = yield Op("subject_addresses", (subject,))
    decisions = []
    for state in states:
        decision = Decision(subject=state.subject, fingerprint=state.fingerprint,
                            action=RECONFIRM, rule=RECONFIRM_RULE, decided_at=now)
        yield Op("update_address", (state.subject, state.fingerprint, CONFIRMED, now, now))
        yield Op("add_decision", (decision,))
        decisions.append(decision)
    if decisions:
        yield Op("add_events", ([events.reconfirmed(d, s.address)
                                 for d, s in zip(decisions, states, strict=True)],))
    return decisions


async def release_breaker(store: Store, domain: str, now: dt.datetime) -> bool:
    """Release a tripped breaker (an event says so); False if it was not tripped."""
    return await store.run(_release(domain, now))


def _release(domain: str, now: dt.datetime) -> Work[bool]:
    released: bool = yield Op("release_breaker", (domain, now))
    if released:
        yield Op("add_events", ([events.breaker_released(domain, now)],))
    return released
