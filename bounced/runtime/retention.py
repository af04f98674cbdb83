"""Retention: raw messages and old incidents are purged on a schedule."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Callable

import structlog

from bounced.config import Settings
from bounced.exceptions import StoreError
from bounced.store import Store

log = structlog.get_logger("bounced.runtime.retention")


async def purge_once(
    store: Store, settings: Settings, now: dt.datetime, *, dry_run: bool = False,
    raw_days: int | None = None,
) -> dict[str, int]:
    """Purge raw bodies past ``raw_days`` and incidents past the policy window."""
    days = settings.retention.raw_days if raw_days is None else raw_days
    counts = await store.purge(
        raw_before=now - dt.timedelta(days=days),
        incidents_before=now - dt.timedelta(days=settings.policy.window_days),
        dry_run=dry_run,
    )
    log.info("retention.purged", dry_run=dry_run, **counts)
    return counts


async def run_periodically(
    store: Store, settings: Settings, now: Callable[[], dt.datetime], stop: asyncio.Event
) -> None:
    """Purge every ``[retention] interval_seconds`` until ``stop`` is set."""
    while not stop.is_set():
        try:
            await purge_once(store, settings, now())
        except StoreError as exc:
            log.warning("retention.failed", error=str(exc))
        except Exception as exc:  # the schedule must survive anything
            log.exception("retention.error", error=repr(exc))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), settings.retention.interval_seconds)
