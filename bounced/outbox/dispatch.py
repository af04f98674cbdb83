"""The outbox dispatcher: every event to every configured action, at least once.

Failed deliveries are retried with exponential backoff and jitter; an event still not
delivered after ``[outbox] max_age_hours`` goes to the dead-letter state, which is logged as
an error and counted (``bounced_action_dead_letters``) so an alert can fire.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import os
import socket
from collections import defaultdict
from collections.abc import Callable, Sequence

import structlog

from bounced.config import OutboxSettings
from bounced.loop import backoff, poll_loop
from bounced.metrics import Metrics
from bounced.outbox.actions import Action, DeliveryError, event_body
from bounced.store import Delivery, Store

log = structlog.get_logger("bounced.outbox.dispatch")

# Seconds an attempt may run past its action's own timeout before the dispatcher ends it.
TIMEOUT_MARGIN = 5.0
# Deliveries of actions no longer configured taken per look (each is dead-lettered at once).
ORPHAN_BATCH = 20
# A delivery retried is due within +-50 % of its backoff: an application that was down gets
# the events that failed together spread over a wide band when it comes back, not at once.
DELIVERY_JITTER = 0.5


class Dispatcher:
    def __init__(
        self,
        store: Store,
        settings: OutboxSettings,
        actions: Sequence[Action],
        now: Callable[[], dt.datetime],
        metrics: Metrics | None = None,
        name: str | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.actions = {a.name: a for a in actions}
        self.now = now
        self.metrics = metrics or Metrics()
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:dispatch"
        self._stopping = False
        self._wake = asyncio.Event()
        self._in_flight: defaultdict[str, set[asyncio.Task[None]]] = defaultdict(set)

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Deliver until stopped. Each delivery runs as a task of its own, at most
        ``[outbox] concurrency`` at once per action: a slow or hanging action takes its own
        slots only, and every other action's deliveries go on meanwhile."""
        try:
            await poll_loop(self._start_due, name="dispatch",
                            interval=self.settings.poll_interval, wake=self._wake,
                            stopping=lambda: self._stopping)
            await self._settle()  # stopping: the attempts in flight finish
        finally:
            await self._cancel_in_flight()  # cancelled (past the grace): handed back now

    async def run_once(self) -> int:
        """Fan out new events, deliver what is due and wait for those deliveries; return how
        much was done (for tests and tools; ``run`` does not wait for one round to start the
        next)."""
        done = await self._start_due()
        await self._settle()
        return done

    async def _start_due(self) -> int:
        """Fan out new events and start the due deliveries each action has room for; return
        how many events and deliveries that was."""
        now = self.now()
        fanned = await self.store.fan_out(
            {name: a.events for name, a in self.actions.items()}, now, self.settings.dry_run)
        lease = dt.timedelta(seconds=self.settings.lease_seconds)
        claimed: list[Delivery] = []
        for name in self.actions:
            room = self.settings.concurrency - len(self._in_flight[name])
            if room > 0:
                claimed += await self.store.claim_deliveries(self.name, now, lease, room,
                                                             only=name)
        # Deliveries of actions no longer configured: dead-lettered (at once, no action runs).
        claimed += await self.store.claim_deliveries(self.name, now, lease, ORPHAN_BATCH,
                                                     skip=list(self.actions))
        for delivery in claimed:
            task = asyncio.create_task(self._deliver(delivery))
            tasks = self._in_flight[delivery.action]
            tasks.add(task)
            task.add_done_callback(functools.partial(self._finished, tasks))
        return fanned + len(claimed)

    def _finished(self, tasks: set[asyncio.Task[None]], task: asyncio.Task[None]) -> None:
        tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("event.delivery_task_failed", error=repr(task.exception()))
        self._wake.set()  # a slot is free: due deliveries of that action can start

    def _tasks(self) -> list[asyncio.Task[None]]:
        return [t for tasks in self._in_flight.values() for t in tasks]

    async def _settle(self) -> None:
        """Wait until every delivery in flight has finished."""
        while tasks := self._tasks():
            await asyncio.wait(tasks)

    async def _cancel_in_flight(self) -> None:
        tasks = self._tasks()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _time_limit(self, action: Action) -> float:
        """How long the dispatcher lets one attempt run: the action's own timeout (which ends
        it cleanly: a command's process group is killed) plus a margin, within the lease."""
        margin = min(TIMEOUT_MARGIN, (self.settings.lease_seconds - action.timeout) / 2)
        return action.timeout + max(margin, 0.0)

    async def _deliver(self, delivery: Delivery) -> None:
        event = delivery.event
        action = self.actions.get(delivery.action)
        if action is None:
            await self.store.delivery_failed(delivery, self.name, "action no longer configured",
                                             self.now(), None)
            log.error("event.dead_lettered", action=delivery.action, event_id=event.id,
                      type=event.type, error="action no longer configured")
            self.metrics.dead_letters.labels(delivery.action).inc()
            return
        if event.type not in action.events:
            await self.store.delivery_done(delivery, self.name, self.now())
            return
        try:
            try:
                await asyncio.wait_for(action.deliver(event, event_body(event)),
                                       self._time_limit(action))
            except TimeoutError:
                raise DeliveryError(f"no answer within {self._time_limit(action):g} s") \
                    from None
        except asyncio.CancelledError:
            # The daemon is stopping past its grace period: hand the delivery back now, or
            # the next start would wait for the claim's lease to expire.
            now = self.now()
            with contextlib.suppress(Exception):  # else the lease runs out as usual
                await asyncio.shield(self.store.delivery_failed(
                    delivery, self.name, "interrupted: bounced stopped", now, now))
            raise
        except DeliveryError as exc:
            await self._failed(delivery, str(exc))
            return
        except Exception as exc:  # an action's bug must not lose the event
            await self._failed(delivery, repr(exc))
            return
        await self.store.delivery_done(delivery, self.name, self.now())
        self.metrics.deliveries.labels(action.name, "delivered").inc()
        log.info("event.sent", action=action.name, event_id=event.id, type=event.type,
                 attempts=delivery.attempts)

    async def _failed(self, delivery: Delivery, error: str) -> None:
        now = self.now()
        event = delivery.event
        self.metrics.deliveries.labels(delivery.action, "failed").inc()
        age = now - event.occurred_at
        if age >= dt.timedelta(hours=self.settings.max_age_hours):
            await self.store.delivery_failed(delivery, self.name, error, now, None)
            self.metrics.dead_letters.labels(delivery.action).inc()
            log.error("event.dead_lettered", action=delivery.action, event_id=event.id,
                      type=event.type, attempts=delivery.attempts, error=error)
            return
        s = self.settings
        delay = backoff(delivery.attempts, s.retry_base_seconds, s.retry_max_seconds,
                        DELIVERY_JITTER)
        retry_at = min(now + dt.timedelta(seconds=delay),
                       event.occurred_at + dt.timedelta(hours=s.max_age_hours))
        await self.store.delivery_failed(delivery, self.name, error, now, retry_at)
        log.warning("event.retry", action=delivery.action, event_id=event.id,
                    attempts=delivery.attempts, in_seconds=round(delay, 1), error=error)
