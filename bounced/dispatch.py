"""The outbox dispatcher: every event to every configured action, at least once.

Failed deliveries are retried with exponential backoff and jitter; an event still not
delivered after ``[outbox] max_age_hours`` goes to the dead-letter state, which is logged as
an error and counted (``bounced_action_dead_letters``) so an alert can fire.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import random
import socket
from collections.abc import Callable, Sequence

import structlog

from bounced.actions import Action, DeliveryError, event_body
from bounced.config import OutboxSettings
from bounced.loop import poll_loop
from bounced.metrics import Metrics
from bounced.store import Delivery, Store

log = structlog.get_logger("bounced.dispatch")


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

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        await poll_loop(self.run_once, name="dispatch", interval=self.settings.poll_interval,
                        wake=self._wake, stopping=lambda: self._stopping)

    async def run_once(self) -> int:
        """Fan out new events, then deliver what is due; return how much was done."""
        now = self.now()
        fanned = await self.store.fan_out(
            {name: a.events for name, a in self.actions.items()}, now, self.settings.dry_run)
        deliveries = await self.store.claim_deliveries(
            self.name, now, dt.timedelta(seconds=self.settings.lease_seconds), 20)
        if deliveries:
            await asyncio.gather(*(self._deliver(d) for d in deliveries))
        return fanned + len(deliveries)

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
            await action.deliver(event, event_body(event))
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
        backoff = min(s.retry_base_seconds * 2 ** max(delivery.attempts - 1, 0),
                      s.retry_max_seconds)
        backoff *= random.uniform(0.5, 1.5)  # noqa: S311 - jitter, not cryptography
        retry_at = min(now + dt.timedelta(seconds=backoff),
                       event.occurred_at + dt.timedelta(hours=s.max_age_hours))
        await self.store.delivery_failed(delivery, self.name, error, now, retry_at)
        log.warning("event.retry", action=delivery.action, event_id=event.id,
                    attempts=delivery.attempts, in_seconds=round(backoff, 1), error=error)
