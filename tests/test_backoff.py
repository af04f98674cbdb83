"""One backoff helper for every retry: job retries, deliveries, the daemon's loops, the store
at start, the worker process's restarts."""

from __future__ import annotations

import asyncio

import pytest

from bounced import loop
from bounced.loop import backoff, poll_loop


def test_backoff_doubles_from_the_base_up_to_the_cap() -> None:
    """The first retry waits the base, each later one twice the one before, never past the
    cap (no attempt number makes it overflow)."""
    assert [backoff(n, 10.0, 3600.0) for n in range(1, 6)] == [10.0, 20.0, 40.0, 80.0, 160.0]
    assert backoff(20, 10.0, 3600.0) == 3600.0
    assert backoff(0, 0.25, 5.0) == 0.25  # an attempt count of 0 waits the base too
    assert backoff(10_000, 1.0, 30.0) == 30.0


@pytest.mark.parametrize("jitter", [0.2, 0.5])
def test_jitter_spreads_the_delay_around_it(jitter: float) -> None:
    """With jitter J the delay is the plain one times a factor drawn within 1 - J .. 1 + J;
    without jitter nothing is drawn."""
    asked: list[tuple[float, float]] = []

    def rng(low: float, high: float) -> float:
        asked.append((low, high))
        return high

    assert backoff(3, 5.0, 3600.0, jitter, rng) == pytest.approx(20.0 * (1 + jitter))
    assert asked == [(pytest.approx(1 - jitter), pytest.approx(1 + jitter))]
    assert backoff(3, 5.0, 3600.0, 0.0, rng) == 20.0 and len(asked) == 1
    spread = {round(backoff(2, 10.0, 3600.0, jitter), 6) for _ in range(200)}
    assert len(spread) > 100 and min(spread) >= 20 * (1 - jitter) and max(spread) <= 20 * (1 + jitter)


async def test_a_recurring_error_logs_its_traceback_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A step that fails every attempt with the same unexpected error (a bug) logs its
    traceback the first time and one line per attempt after; a different error, or the same
    one after a success, gets its traceback again. The loop survives all of them."""
    outcomes: list[Exception | int] = [ValueError("bad row 7"), ValueError("bad row 7"),
                                       ValueError("bad row 7"), KeyError("k"), 0,
                                       KeyError("k")]
    stop = asyncio.Event()
    logged: list[tuple[str, bool, object]] = []

    class Recorder:  # bounced.loop's logger (its traceback: log.exception)
        def exception(self, event: str, **kw: object) -> None:
            logged.append((str(kw["error"]), True, kw.get("attempts")))

        def error(self, event: str, **kw: object) -> None:
            logged.append((str(kw["error"]), False, kw.get("attempts")))

    monkeypatch.setattr(loop, "log", Recorder())

    async def step() -> int:
        outcome = outcomes.pop(0)
        if not outcomes:
            stop.set()
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    await asyncio.wait_for(poll_loop(step, name="worker", interval=0.001,
                                     wake=asyncio.Event(), stopping=stop.is_set), 10)
    assert logged == [("ValueError('bad row 7')", True, None),
                      ("ValueError('bad row 7')", False, 2),
                      ("ValueError('bad row 7')", False, 3),
                      ("KeyError('k')", True, None),
                      ("KeyError('k')", True, None)]
