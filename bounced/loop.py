"""The shape shared by the worker and the dispatcher: run a step until stopped."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

from bounced.exceptions import StoreUnavailable

log = structlog.get_logger("bounced.loop")

MAX_BACKOFF = 30.0


async def poll_loop(
    step: Callable[[], Awaitable[int]],
    *,
    name: str,
    interval: float,
    wake: asyncio.Event,
    stopping: Callable[[], bool],
    tick: Callable[[], None] | None = None,
) -> None:
    """Run ``step`` again at once while it finds work, else after ``interval`` seconds or a
    ``wake``-up; while the store is unreachable (or anything else fails) back off, doubling
    up to 30 s. The loop itself never dies of an error."""
    delay = interval
    while not stopping():
        if tick is not None:
            tick()
        try:
            done = await step()
            delay = interval
        except StoreUnavailable as exc:
            log.warning(f"{name}.store_unavailable", error=str(exc))
            done, delay = 0, min(delay * 2, MAX_BACKOFF)
        except Exception as exc:  # the loop must survive anything
            log.exception(f"{name}.loop_error", error=repr(exc))
            done, delay = 0, min(delay * 2, MAX_BACKOFF)
        if not done and not stopping():
            wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), delay)
