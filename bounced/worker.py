"""The job queue's consumer: claim stored messages, classify, record, decide; retry or quarantine.

At-least-once: a job is done only when its incidents and decision are committed with it; a
worker that dies leaves a claim that expires and is taken again. Re-processing a message
replaces its incidents, so nothing counts twice.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import os
import random
import socket
import time
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import structlog

from bounced import events
from bounced.classify import Report, classify
from bounced.config import Settings
from bounced.exceptions import StoreUnavailable
from bounced.loop import poll_loop
from bounced.metrics import Metrics
from bounced.model import AddressState, DomainStats, Event, Incident, Job, Plan
from bounced.policy import plan as policy_plan
from bounced.store import Outcome, Planner, Store
from bounced.verp import fingerprint

log = structlog.get_logger("bounced.worker")

INLINE_CLASSIFY_LIMIT = 256 * 1024  # larger messages are classified in a thread
MAX_INCIDENTS_PER_MESSAGE = 20


@runtime_checkable
class BatchFinisher(Protocol):
    """A store that can finish several jobs in one transaction (SQLite: one fsync for all)."""

    async def finish_batch(
        self, items: Sequence[tuple[Job, Outcome, Planner]], worker: str, now: dt.datetime
    ) -> list[Plan | Exception | None]: ...


def incidents_for(job: Job, report: Report) -> tuple[Incident, ...]:
    """The incidents one classified message records against the job's token."""
    if report.kind == "complaint":
        chosen = list(report.recipients) or []
    elif report.kind in ("bounce", "delay"):
        chosen = [r for r in report.recipients if r.action in ("failed", "delayed")]
    else:
        return ()
    # Prefer the recipients the token was signed for; a forwarded or aliased address that
    # does not match still tells us about this token's delivery.
    matching = [r for r in chosen if r.address and fingerprint(r.address) == job.token.fingerprint]
    chosen = (matching or chosen)[:MAX_INCIDENTS_PER_MESSAGE]
    result = []
    for r in chosen:
        if report.kind == "complaint":
            kind, action = "complaint", r.action or "complained"
        else:
            kind, action = ("bounce", "failed") if r.action == "failed" else ("delay", "delayed")
        result.append(
            Incident(
                id=None, message_id=job.id, subject=job.token.subject,
                fingerprint=job.token.fingerprint, address=r.address, token_id=job.token.token_id,
                send_day=job.token.day, received_at=job.received_at, kind=kind, action=action,
                status=r.status, reply_code=r.reply_code, reason=r.reason, hard=r.hard,
                counts=False, diagnostic=r.diagnostic[:2000], remote_mta=r.remote_mta,
                reporting_mta=report.reporting_mta,
            )
        )
    return tuple(result)


class Worker:
    """Processes the stored messages of one store until stopped."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        now: Callable[[], dt.datetime],
        name: str | None = None,
        metrics: Metrics | None = None,
        batch_commit: bool = True,
    ) -> None:
        # batch_commit: with a store that can, finish a claimed batch in one transaction.
        self.batch_commit = batch_commit
        self.metrics = metrics or Metrics()
        self.store = store
        self.settings = settings
        self.now = now
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{random.getrandbits(24):06x}"
        self._wake = asyncio.Event()
        self._leftover: list[Job] = []
        # Checked once: isinstance against a runtime Protocol is slow on a hot path.
        self._batch_store = store if isinstance(store, BatchFinisher) else None
        self._stopping = False
        self.last_loop: dt.datetime | None = None
        self.decisions = 0

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Claim and process jobs until stopped; store outages are waited out."""
        def tick() -> None:
            self.last_loop = self.now()

        await poll_loop(self.run_batch, name="worker", interval=self.settings.worker.poll_interval,
                        wake=self._wake, stopping=lambda: self._stopping, tick=tick)

    async def run_batch(self) -> int:
        """Claim one batch of runnable jobs and process them; return how many."""
        ws = self.settings.worker
        # Jobs still claimed from a batch the store went away in the middle of come first:
        # left alone they would wait for their lease to expire.
        jobs, self._leftover = self._leftover, []
        if not jobs:
            jobs = await self.store.claim(
                self.name, self.now(), dt.timedelta(seconds=ws.lease_seconds), ws.batch_size
            )
        # A claimed batch is finished even when stopping, for the same reason.
        if self._batch_store is not None and self.batch_commit:
            try:
                await self._process_batch(self._batch_store, jobs)
            except StoreUnavailable:
                self._leftover = list(jobs)
                raise
            return len(jobs)
        for n, job in enumerate(jobs):
            try:
                await self.process(job)
            except StoreUnavailable:
                self._leftover = jobs[n:]
                raise
        return len(jobs)

    async def drain(self) -> int:
        """Process every runnable job now (for the CLI and tests); return how many."""
        total = 0
        while (n := await self.run_batch()) > 0:
            total += n
        return total

    async def process(self, job: Job) -> Plan | None:
        prepared = await self._prepare(job)
        if prepared is None:
            return None
        report, outcome, planner, now = prepared
        try:
            with self.metrics.processing.time():
                result = await self.store.finish(job, self.name, outcome, planner, now)
        except StoreUnavailable:
            raise
        except Exception as exc:
            await self._retry(job, exc)
            return None
        return self._recorded(job, report, result)

    async def _process_batch(self, store: BatchFinisher, jobs: Sequence[Job]) -> None:
        """Classify the claimed jobs, then finish them all in one transaction: one trip to the
        store and one commit (one fsync on SQLite) for the batch. At-least-once holds: no job
        is done before that commit, and a batch not committed is claimed again."""
        ready: list[tuple[Job, Report, Outcome, Planner]] = []
        for job in jobs:
            prepared = await self._prepare(job)
            if prepared is not None:
                ready.append((job, *prepared[:3]))
        if not ready:
            return
        started = time.perf_counter()
        results = await store.finish_batch([(j, o, p) for j, _, o, p in ready], self.name,
                                           self.now())
        elapsed = (time.perf_counter() - started) / len(ready)
        for (job, report, _, _), result in zip(ready, results, strict=True):
            self.metrics.processing.observe(elapsed)
            if isinstance(result, Exception):
                await self._retry(job, result)
            else:
                self._recorded(job, report, result)

    async def _prepare(self, job: Job) -> tuple[Report, Outcome, Planner, dt.datetime] | None:
        """Classify one job and say what to record; None when it failed (and was recorded so)."""
        if job.raw is None:
            await self.store.fail(job, self.name, "raw message was purged", self.now(), None)
            return None
        try:
            if len(job.raw) > INLINE_CLASSIFY_LIMIT:
                report = await asyncio.to_thread(classify, job.raw)
            else:
                report = classify(job.raw)
            incidents = incidents_for(job, report)
        except Exception as exc:  # an unclassifiable message is kept, never dropped
            log.error("bounce.quarantined", job=job.id, error=repr(exc))
            await self.store.fail(job, self.name, f"classification failed: {exc!r}", self.now(),
                                  None)
            return None
        now = self.now()
        outcome = Outcome(
            kind=report.kind, classification=report.to_json(), incidents=incidents,
            events=self._events(job, report, incidents, now),
            breaker_window=(dt.timedelta(minutes=self.settings.breaker.window_minutes)
                            if self.settings.breaker.enabled else None),
        )
        return report, outcome, functools.partial(self._plan, now=now), now

    def _recorded(self, job: Job, report: Report, result: Plan | None) -> Plan | None:
        """Metrics and log lines for one finished job."""
        if result is None:
            log.warning("bounce.claim_lost", job=job.id)
            return None
        decision = result.decision
        self.metrics.classified.labels(report.kind).inc()
        for i in result.incidents:
            self.metrics.incidents.labels(i.reason, "yes" if i.counts else "no").inc()
        if decision is not None:
            self.metrics.decisions.labels("held" if result.held else decision.action).inc()
        if result.trip:
            self.metrics.breakers.inc()
            log.error("breaker.tripped", domain=result.incidents[0].domain,
                      addresses=result.domain_addresses)
        if decision is not None and result.held:
            log.warning("address.unconfirm_held", subject=decision.subject,
                        fingerprint=decision.fingerprint, rule=decision.rule)
        elif decision is not None:
            self.decisions += 1
            log.warning("address.unconfirmed", subject=decision.subject,
                        fingerprint=decision.fingerprint, rule=decision.rule)
        log.info(
            "bounce.processed", job=job.id, kind=report.kind, subject=job.token.subject,
            incidents=len(result.incidents), counting=sum(i.counts for i in result.incidents),
            reasons=sorted({i.reason for i in result.incidents}),
            decision=("held" if result.held else decision.action) if decision else None,
        )
        return result

    def _plan(
        self,
        state: AddressState | None,
        history: Sequence[Incident],
        new: Sequence[Incident],
        domain: DomainStats | None = None,
        *,
        now: dt.datetime,
    ) -> Plan:
        return policy_plan(self.settings.policy, state, history, new, now,
                           breaker=self.settings.breaker, domain=domain)

    @staticmethod
    def _events(job: Job, report: Report, incidents: Sequence[Incident],
                now: dt.datetime) -> tuple[Event, ...]:
        """Events that follow from the message alone: a complaint, or nothing recognised."""
        if report.kind == "complaint" and incidents:
            return (events.complaint(incidents, report.feedback_type, now),)
        if report.kind == "unknown" or (report.kind == "bounce" and not incidents):
            return (events.unrecognised(job.token.subject, job.token.fingerprint, job.id,
                                        report.kind, now),)
        return ()

    async def _retry(self, job: Job, exc: Exception) -> None:
        ws = self.settings.worker
        now = self.now()
        if job.attempts >= ws.max_attempts:
            log.error("bounce.quarantined", job=job.id, attempts=job.attempts, error=repr(exc))
            await self.store.fail(job, self.name, repr(exc), now, None)
            return
        backoff = min(ws.retry_base_seconds * 2 ** (job.attempts - 1), ws.retry_max_seconds)
        backoff *= random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not cryptography
        log.warning("bounce.retry", job=job.id, attempts=job.attempts, in_seconds=round(backoff),
                    error=repr(exc))
        await self.store.fail(job, self.name, repr(exc), now, now + dt.timedelta(seconds=backoff))
