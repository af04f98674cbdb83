"""Event loops: how a bounced process runs its own, and the shape shared by the worker and the
dispatcher (run a step until stopped)."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import structlog

from bounced.exceptions import StoreUnavailable

log = structlog.get_logger("bounced.loop")

MAX_BACKOFF = 30.0
# The store's thread (aiosqlite) needs the GIL for a moment before and after every SQLite call,
# and a busy event loop hands it over only every switch interval (5 ms by default): an intake
# commit of a few messages waited 3.5-4 ms for it (p50), 1.1 ms with 0.1 ms. Only threads that
# wait for the GIL are switched to, so a short interval costs nothing when the store is idle.
# Set by the daemon and by its worker process.
SWITCH_INTERVAL = 0.0001


def backoff(attempt: int, base: float, cap: float, jitter: float = 0.0,
            rng: Callable[[float, float], float] = random.uniform) -> float:
    """Seconds to wait before try number ``attempt`` + 1 after ``attempt`` failures: ``base``
    doubled per failure after the first, at most ``cap``, times a random factor within
    1 +- ``jitter``. Jitter spreads retries that failed together (a job batch, an action's
    deliveries) so that they do not come back together; the daemon's own loops use none."""
    delay = min(base * 2.0 ** min(max(attempt - 1, 0), 64), cap)  # 2**64: past any cap
    return delay * rng(1 - jitter, 1 + jitter) if jitter else delay


class Outage:
    """Says that the store went away once, not once per attempt or request: the first failure
    of each kind (the error's class: connection refused, timed out, ...) as one warning line
    ``<name>.store_unavailable`` with ``error_class`` and ``error``, no traceback (an outage is
    expected, not a bug), then nothing until the store answers again, which is one info line
    ``<name>.store_available`` with how long it was gone and how many attempts failed."""

    def __init__(self, name: str, clock: Callable[[], float] | None = None) -> None:
        self.name = name
        self.clock = clock or (lambda: asyncio.get_running_loop().time())
        self.kinds: set[str] = set()
        self.failures = 0
        self.since: float | None = None

    def failed(self, exc: BaseException, **context: Any) -> None:
        cause = exc.__cause__ or exc
        kind = type(cause).__name__
        self.failures += 1
        if self.since is None:
            self.since = self.clock()
        if kind in self.kinds:
            return
        self.kinds.add(kind)
        log.warning(f"{self.name}.store_unavailable", error_class=kind, error=str(exc),
                    **context)

    def recovered(self) -> None:
        if self.since is None:
            return
        log.info(f"{self.name}.store_available", failures=self.failures,
                 unavailable_seconds=round(self.clock() - self.since, 1))
        self.kinds.clear()
        self.failures, self.since = 0, None


def run(coro_factory: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """Run a process's main coroutine on uvloop when it is installed."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is an optional extra
        return asyncio.run(coro_factory())
    # asyncio.Runner rather than uvloop.run(), which needs uvloop 0.18 (Debian 12 has 0.17).
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro_factory())


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
    up to 30 s. The loop itself never dies of an error: an unexpected one is logged with its
    traceback when it first occurs, and as one line while it recurs (a bug that fails every
    attempt would otherwise repeat its traceback twice a minute)."""
    delay = interval
    failures = 0
    outage = Outage(name)
    last_error = ""  # the unexpected error of the last attempt, whose traceback was logged
    while not stopping():
        if tick is not None:
            tick()
        try:
            done = await step()
            delay, failures, last_error = interval, 0, ""
            outage.recovered()
        except StoreUnavailable as exc:
            outage.failed(exc)
            failures += 1
            done, delay = 0, backoff(failures + 1, interval, MAX_BACKOFF)
        except Exception as exc:  # the loop must survive anything
            failures += 1
            said = repr(exc)
            if said != last_error:  # a new error: its traceback, once
                log.exception(f"{name}.loop_error", error=said)
            else:  # the same again, every attempt of the backoff: one line each
                log.error(f"{name}.loop_error", error=said, attempts=failures, repeated=True)
            last_error = said
            done, delay = 0, backoff(failures + 1, interval, MAX_BACKOFF)
        if not done and not stopping():
            wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), delay)
