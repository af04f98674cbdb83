"""The job queue's consumer: claim stored messages, classify, record, decide; retry or quarantine.

At-least-once: a job is done only when its incidents and decision are committed with it; a
worker that dies leaves a claim that expires and is taken again. Re-processing a message
replaces its incidents, so nothing counts twice.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import hashlib
import os
import random
import re
import signal
import socket
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from bounced.classify import Report, classify
from bounced.config import Settings
from bounced.exceptions import StoreUnavailable
from bounced.loop import backoff, poll_loop
from bounced.metrics import Metrics
from bounced.model import AddressState, DomainStats, Incident, Job, Plan
from bounced.policy import core
from bounced.policy.core import Outcome, Planner
from bounced.policy.rule import plan as policy_plan
from bounced.store import Store
from bounced.verp import fingerprint

log = structlog.get_logger("bounced.queue.worker")

MAX_INCIDENTS_PER_MESSAGE = 20
BATCH_LINGER = 0.02  # seconds a claim waits for more jobs after one that did not fill a batch
# A job retried is due within +-20 % of its backoff: the jobs of a batch that failed together
# (a store error) come back spread out, but near the configured delay.
JOB_JITTER = 0.2
# Classifications kept, by the body classified: the recipients of one DATA
# transaction share one stored body, and their jobs (consecutive, in one batch or a few) are
# classified once, so the work per message follows the bytes received, not the RCPT count (50
# recipients of a 10 MB message were 50 classifications of it). Reports are small; a few kept
# are enough for the bodies of the batch at hand and of the one before it.
CLASSIFIED_KEEP = 64


class OverBudget(BaseException):
    """A classification ran past its time budget. A BaseException, as KeyboardInterrupt is:
    code that catches Exception broadly must not swallow it and run on unbounded."""


class TimeBudget:
    """``with TimeBudget(seconds):`` raises OverBudget in the block once it has run for
    ``seconds`` (wall clock), through a SIGALRM timer.

    Signals are handled in the main thread only, between bytecodes, and CPython's regex engine
    checks for them as it goes: a runaway pattern is stopped too, not only Python code. In
    another thread (signals cannot reach it) the block runs without a budget. A timer someone
    else had armed (a test runner's) is set again afterwards with the time it had left."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._armed = False

    def _alarm(self, signum: int, frame: Any) -> None:
        if self._armed:  # else a late signal of a block that ended: nothing to stop
            self._armed = False
            raise OverBudget(f"classification exceeded {self.seconds:g} s")

    def __enter__(self) -> TimeBudget:
        self._active = threading.current_thread() is threading.main_thread()
        if self._active:
            self._previous = signal.signal(signal.SIGALRM, self._alarm)
            self._started = time.monotonic()
            self._armed = True
            self._other = signal.setitimer(signal.ITIMER_REAL, self.seconds)
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._active:
            return
        self._armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self._previous if self._previous is not None
                      else signal.SIG_DFL)
        delay, interval = self._other
        if delay:
            left = delay - (time.monotonic() - self._started)
            signal.setitimer(signal.ITIMER_REAL, max(left, 0.001), interval)


@dataclass
class Tally:
    """What the worker did since it last reported: the increments of its metrics.

    In the daemon's own process they are added to its metrics after every batch; a worker
    running in a process of its own sends them to the daemon (bounced/queue/process.py)."""

    classified: Counter[str] = field(default_factory=Counter)
    incidents: Counter[tuple[str, str]] = field(default_factory=Counter)
    decisions: Counter[str] = field(default_factory=Counter)
    breakers: int = 0
    seconds: list[float] = field(default_factory=list)  # processing time of each job
    classify_failures: Counter[str] = field(default_factory=Counter)  # by reader that raised

    def __bool__(self) -> bool:
        return bool(self.classified or self.incidents or self.decisions or self.breakers
                    or self.seconds or self.classify_failures)

    def add(self, other: Tally) -> None:
        self.classify_failures.update(other.classify_failures)
        self.classified.update(other.classified)
        self.incidents.update(other.incidents)
        self.decisions.update(other.decisions)
        self.breakers += other.breakers
        self.seconds += other.seconds

    def apply(self, metrics: Metrics) -> None:
        for reader, n in self.classify_failures.items():
            metrics.classify_failures.labels(reader).inc(n)
        for kind, n in self.classified.items():
            metrics.classified.labels(kind).inc(n)
        for (reason, counts), n in self.incidents.items():
            metrics.incidents.labels(reason, counts).inc(n)
        for action, n in self.decisions.items():
            metrics.decisions.labels(action).inc(n)
        if self.breakers:
            metrics.breakers.inc(self.breakers)
        for seconds in self.seconds:
            metrics.processing.observe(seconds)

    def to_dict(self) -> dict[str, Any]:
        return {"classified": dict(self.classified),
                "incidents": [[r, c, n] for (r, c), n in self.incidents.items()],
                "decisions": dict(self.decisions), "breakers": self.breakers,
                "seconds": self.seconds, "classify_failures": dict(self.classify_failures)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Tally:
        return cls(classified=Counter(data["classified"]),
                   incidents=Counter({(r, c): n for r, c, n in data["incidents"]}),
                   decisions=Counter(data["decisions"]), breakers=data["breakers"],
                   seconds=list(data["seconds"]),
                   classify_failures=Counter(data.get("classify_failures", {})))


# A run of characters that can make up an address (one match per run: linear in the text).
_WORD = re.compile(r"[^\s<>()\[\],;:\"'`]+")
OTHER_ADDRESS = "[another address]"


def without_other_addresses(text: str, fp: str) -> str:
    """``text`` (a diagnostic: the report's words) with every address but the token's own
    replaced: an incident names no address the token was not signed for, not even in the
    words it quotes."""
    if "@" not in text:
        return text

    def keep_or_hide(m: re.Match[str]) -> str:
        word = m.group()
        if "@" not in word or fingerprint(word.strip(".")) == fp:
            return word
        return OTHER_ADDRESS

    return _WORD.sub(keep_or_hide, text)


def incidents_for(job: Job, report: Report) -> tuple[Incident, ...]:
    """The incidents one classified message records against the job's token."""
    if report.kind == "complaint":
        chosen = list(report.recipients) or []
    elif report.kind in ("bounce", "delay"):
        chosen = [r for r in report.recipients if r.action in ("failed", "delayed")]
    else:
        return ()
    # The token binds one address by its fingerprint; only that address is ever recorded.
    # A report naming others (a forwarding or alias target, or a forged report naming a
    # victim) still tells about this token's delivery, so it is recorded once, for the
    # token's subject and fingerprint, without the address it named (address_mismatch).
    matching = [r for r in chosen if r.address and fingerprint(r.address) == job.token.fingerprint]
    if not matching and report.kind != "complaint" and any(
            r.action in ("delivered", "relayed") and r.address
            and fingerprint(r.address) == job.token.fingerprint for r in report.recipients):
        # the report says this very address got the message (a report of several
        # recipients, delivered to one and failed for another): the others' failures are
        # not this address's
        return ()
    mismatch = not matching and bool(chosen)
    chosen = matching[:MAX_INCIDENTS_PER_MESSAGE] if matching else chosen[:1]
    result = []
    for r in chosen:
        if report.kind == "complaint":
            kind, action = "complaint", r.action or "complained"
        else:
            kind, action = ("bounce", "failed") if r.action == "failed" else ("delay", "delayed")
        result.append(
            Incident(
                id=None, message_id=job.id, subject=job.token.subject,
                fingerprint=job.token.fingerprint, address="" if mismatch else r.address,
                token_id=job.token.token_id,
                send_day=job.token.day, received_at=job.received_at, kind=kind, action=action,
                status=r.status, reply_code=r.reply_code, reason=r.reason, hard=r.hard,
                counts=False,
                diagnostic=without_other_addresses(r.diagnostic[:2000], job.token.fingerprint),
                remote_mta=r.remote_mta,
                reporting_mta=report.reporting_mta,
                address_mismatch=mismatch and bool(r.address),
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
        report: Callable[[Worker, Tally], None] | None = None,
    ) -> None:
        # batch_commit: finish a claimed batch in one transaction (else job by job).
        self.batch_commit = batch_commit
        self.metrics = metrics or Metrics()
        self.store = store
        self.settings = settings
        self.now = now
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{random.getrandbits(24):06x}"
        self._wake = asyncio.Event()
        self._leftover: list[Job] = []
        # Jobs claimed in the transaction that finished the last batch (stores that finish a
        # batch before claiming the next: one commit for both).
        self._next: list[Job] = []
        # The batch being finished (its jobs, and the task finishing them).
        self._finishing: tuple[list[Job], asyncio.Task[None]] | None = None
        self._stopping = False
        self._short = False
        self.last_loop: dt.datetime | None = None
        self.decisions = 0
        # Called after every look at the queue (a batch, or none), with what was done since
        # the last call; by default the tally goes to this process's metrics.
        self._report = report or (lambda worker, tally: tally.apply(worker.metrics))
        self._tally = Tally()
        self._classified: OrderedDict[tuple[object, ...], Report | str] = OrderedDict()

    @property
    def _lease(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.settings.worker.lease_seconds)

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
        try:
            await self._settle()
            # Claimed with the last finish: a claimed batch is finished even when stopping (no
            # further claim then).
            while self._next:
                jobs, self._next = self._next, []
                await self._process_batch(jobs)
        except Exception as exc:  # its jobs are taken again when their lease expires
            log.error("worker.last_batch_failed", error=repr(exc))
        self.flush_report()

    def flush_report(self) -> None:
        """Hand what was done since the last report to the report callback."""
        tally, self._tally = self._tally, Tally()
        self._report(self, tally)

    async def run_batch(self) -> int:
        """Claim one batch of runnable jobs and process them; return how many."""
        try:
            return await self._run_batch()
        finally:
            self.flush_report()

    async def _run_batch(self) -> int:
        jobs = await self._next_jobs()
        if not jobs:
            await self._settle()
            return 0
        return await self._process_batch(jobs)

    async def _next_jobs(self) -> list[Job]:
        """The jobs to process next: those still claimed from a batch the store went away in the
        middle of (left alone they would wait for their lease to expire), else those claimed
        with the last finish, topped up by a claim when they do not fill a batch."""
        ws = self.settings.worker
        jobs, self._leftover = self._leftover, []
        if jobs:
            return jobs
        jobs, self._next = self._next, []
        if len(jobs) < ws.batch_size:
            if self._short:
                # The last look at the queue did not fill a batch: let the jobs arriving now
                # gather for a moment, so a worker that keeps up still claims and commits them
                # in batches (one transaction, one fsync, for many) instead of one by one.
                await asyncio.sleep(BATCH_LINGER)
            try:
                jobs += await self.store.claim(self.name, self.now(), self._lease,
                                               ws.batch_size - len(jobs))
            except StoreUnavailable:
                self._leftover = jobs
                raise
        self._short = len(jobs) < ws.batch_size
        return jobs

    async def _process_batch(self, jobs: list[Job]) -> int:
        """Classify and finish claimed jobs; return how many. A claimed batch is finished even
        when stopping."""
        if self.batch_commit:
            try:
                ready = await self._prepare_batch(jobs)
                await self._settle()
            except StoreUnavailable:
                self._leftover += jobs  # after the previous batch's, which _settle put first
                raise
            if ready:
                self._finishing = (list(jobs), asyncio.create_task(self._finish_batch(ready)))
                if not self.store.overlap_finish:
                    await self._settle()
            return len(jobs)
        await self._settle()
        for n, job in enumerate(jobs):
            try:
                await self.process(job)
            except StoreUnavailable:
                self._leftover = jobs[n:]
                raise
        return len(jobs)

    async def _settle(self) -> None:
        """Wait until the batch in the store's hands is finished. If the store went away, its
        jobs are the first to be processed again."""
        if self._finishing is None:
            return
        jobs, task = self._finishing
        self._finishing = None
        try:
            await task
        except StoreUnavailable:
            self._leftover = jobs + self._leftover
            raise

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
        started = time.perf_counter()
        try:
            result = await core.finish(self.store, job, self.name, outcome, planner, now)
        except StoreUnavailable:
            raise
        except Exception as exc:
            await self._retry(job, exc)
            return None
        finally:
            self._tally.seconds.append(time.perf_counter() - started)
        return self._recorded(job, report, result)

    async def _prepare_batch(
        self, jobs: Sequence[Job]
    ) -> list[tuple[Job, Report, Outcome, Planner]]:
        """Classify the claimed jobs (letting the batch being finished progress in between)."""
        ready: list[tuple[Job, Report, Outcome, Planner]] = []
        for job in jobs:
            prepared = await self._prepare(job)
            if prepared is not None:
                ready.append((job, *prepared[:3]))
            if self._finishing is not None:
                await asyncio.sleep(0)
        return ready

    async def _finish_batch(self, ready: Sequence[tuple[Job, Report, Outcome, Planner]]) -> None:
        """Finish the classified jobs in one transaction: one trip to the store and one commit
        (one fsync) for the batch. At-least-once holds: no job is done before that commit,
        and a batch not committed is claimed again."""
        started = time.perf_counter()
        items = [(j, o, p) for j, _, o, p in ready]
        if self.store.overlap_finish or self._stopping:
            results = await core.finish_batch(self.store, items, self.name, self.now())
        else:
            # The next batch's claim rides in the same transaction (one commit less per batch).
            results, self._next = await core.finish_and_claim(
                self.store, items, self.name, self.now(), self._lease,
                self.settings.worker.batch_size)
            self._short = len(self._next) < self.settings.worker.batch_size
        elapsed = (time.perf_counter() - started) / len(ready)
        for (job, report, _, _), result in zip(ready, results, strict=True):
            self._tally.seconds.append(elapsed)
            if isinstance(result, Exception):
                await self._retry(job, result)
            else:
                self._recorded(job, report, result)

    async def _prepare(self, job: Job) -> tuple[Report, Outcome, Planner, dt.datetime] | None:
        """Classify one job and say what to record; None when it failed (and was recorded so)."""
        if job.raw is None:
            await self.store.fail(job, self.name, "raw message was purged", self.now(), None)
            return None
        if job.attempts > self.settings.worker.max_attempts:
            # Claimed more often than a failing job may be tried, yet never finished nor
            # failed: each worker that took it died on it (a message that crashes or kills the
            # process). Classifying it again would kill this one too, forever.
            error = (f"abandoned: claimed {job.attempts - 1} times without finishing "
                     "(the worker died while processing it)")
            log.error("bounce.quarantined", job=job.id, error=error)
            await self.store.fail(job, self.name, error, self.now(), None)
            return None
        try:
            report = self._classify(job)
            if isinstance(report, str):  # quarantined with its reason, never tried again
                log.error("bounce.quarantined", job=job.id, error=report)
                await self.store.fail(job, self.name, report, self.now(), None)
                return None
            incidents = incidents_for(job, report)
        except Exception as exc:  # an unclassifiable message is kept, never dropped
            log.error("bounce.quarantined", job=job.id, error=repr(exc))
            await self.store.fail(job, self.name, f"classification failed: {exc!r}", self.now(),
                                  None)
            return None
        now = self.now()
        outcome = Outcome(
            kind=report.kind, classification=report.to_json(), incidents=incidents,
            feedback_type=report.feedback_type,
            breaker_window=(dt.timedelta(minutes=self.settings.breaker.window_minutes)
                            if self.settings.breaker.enabled else None),
        )
        return report, outcome, functools.partial(self._plan, now=now), now

    def _classify(self, job: Job) -> Report | str:
        """The job's body classified, or why it cannot be (the reason it is quarantined with).
        A body already classified (another recipient of its DATA transaction) is not classified
        again: its report, or its failure (a body over the time budget is over it for each of
        its recipients), is the one kept."""
        assert job.raw is not None
        # By the body's id when the store gives it (ids are never reused); else by a digest
        # of the bytes, which costs a pass over them per job (about 1 ms per MB).
        key: tuple[object, ...] = (
            (job.body_id, len(job.raw)) if job.body_id is not None
            else (hashlib.blake2b(job.raw, digest_size=16).digest(),))
        known = self._classified.get(key)
        if known is not None:
            self._classified.move_to_end(key)
            return known
        result: Report | str
        try:
            # In this thread, whatever the size: only the main thread can be interrupted at
            # the budget (a thread would run on). Outside the daemon's own process (the
            # default), that blocks nothing else.
            with TimeBudget(self.settings.worker.classify_budget_seconds):
                result = classify(job.raw)
        except OverBudget as exc:
            result = str(exc)
        except Exception as exc:
            result = f"classification failed: {exc!r}"
        if isinstance(result, Report) and result.failures:
            # A reader raised: a bug to see (once per body), the others classified it.
            log.error("classify.reader_failed", job=job.id, failures=list(result.failures))
            for failure in result.failures:
                self._tally.classify_failures[failure.split(":", 1)[0]] += 1
        if CLASSIFIED_KEEP:
            self._classified[key] = result
            while len(self._classified) > CLASSIFIED_KEEP:
                self._classified.popitem(last=False)
        return result

    def _recorded(self, job: Job, report: Report, result: Plan | None) -> Plan | None:
        """Metrics and log lines for one finished job."""
        if result is None:
            log.warning("bounce.claim_lost", job=job.id)
            return None
        decision = result.decision
        tally = self._tally
        tally.classified[report.kind] += 1
        for i in result.incidents:
            tally.incidents[i.reason, "yes" if i.counts else "no"] += 1
        if decision is not None:
            tally.decisions["held" if result.held else decision.action] += 1
        if result.trip:
            tally.breakers += 1
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

    async def _retry(self, job: Job, exc: Exception) -> None:
        ws = self.settings.worker
        now = self.now()
        if job.attempts >= ws.max_attempts:
            log.error("bounce.quarantined", job=job.id, attempts=job.attempts, error=repr(exc))
            await self.store.fail(job, self.name, repr(exc), now, None)
            return
        delay = backoff(job.attempts, ws.retry_base_seconds, ws.retry_max_seconds, JOB_JITTER)
        log.warning("bounce.retry", job=job.id, attempts=job.attempts, in_seconds=round(delay),
                    error=repr(exc))
        await self.store.fail(job, self.name, repr(exc), now, now + dt.timedelta(seconds=delay))
