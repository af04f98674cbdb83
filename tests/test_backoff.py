"""One backoff helper for every retry: job retries, deliveries, the daemon's loops, the store
at start, the worker process's restarts."""

from __future__ import annotations

import pytest

from bounced.loop import backoff


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
