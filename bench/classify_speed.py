"""Throughput: bounced.classify against flufl.bounce, parsing included, same files, same run.

    .venv/bin/python bench/classify_speed.py [--corpus DIR] [--rounds N] [--phases]

DIR defaults to tests/corpus. Each round times
every contender once over all the corpus files, in turn, so that a noisy machine slows
them alike; the median round of each is printed in msg/s, with the ratio of the medians
and the median of the per-round ratios. Contenders:

- ``bounced``: ``bounced.classify.classify(raw)`` (bytes in, report out);
- ``flufl``: ``email.message_from_bytes(raw, policy=compat32)`` then flufl.bounce's
  ``all_failures`` (the issue 3 baseline; its IndexError on a message without From is
  caught, as in bench/classify_bench.py);
- ``parse:bounced``: ``bounced.classify.parse.walk(parse(raw))``, the parsing that
  classify does before any detector runs;
- ``parse:compat32``: ``email.message_from_bytes(raw, policy=compat32)`` alone.

``--phases`` also prints where classify spends its time (parse, walk, original, detectors,
recipients), measured by wrapping those functions of bounced.classify.core.
"""

from __future__ import annotations

import argparse
import email
import statistics
import sys
import time
from collections.abc import Callable
from email.policy import compat32
from pathlib import Path
from typing import Any

from flufl.bounce import all_failures

import bounced.classify.core as core
from bounced.classify import classify
from bounced.classify.parse import parse, walk

ROOT = Path(__file__).resolve().parent.parent


def flufl(raw: bytes) -> object:
    msg = email.message_from_bytes(raw, policy=compat32)
    try:
        return all_failures(msg)
    except Exception:  # flufl raises IndexError on a message without From
        return None


CONTENDERS: dict[str, Callable[[bytes], object]] = {
    "bounced": classify,
    "flufl": flufl,
    "parse:bounced": lambda raw: walk(parse(raw)),
    "parse:compat32": lambda raw: email.message_from_bytes(raw, policy=compat32),
}


def timed(raws: list[bytes], fn: Callable[[bytes], object]) -> float:
    """Seconds for one pass of ``fn`` over ``raws``."""
    start = time.perf_counter()
    for raw in raws:
        fn(raw)
    return time.perf_counter() - start


def phases(raws: list[bytes], rounds: int) -> dict[str, float]:
    """Microseconds per message spent in each step of classify (nested steps overlap)."""
    spent: dict[str, float] = dict.fromkeys(("parse", "walk"), 0.0)
    names = ["parse", "walk", "original_of", "quoted_original_start", "_detect", "_recipient"]
    saved = {name: getattr(core, name) for name in names if hasattr(core, name)}

    def wrap(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - start
        return wrapper

    for name, fn in saved.items():
        setattr(core, name, wrap(name, fn))
    try:
        total = sum(timed(raws, classify) for _ in range(rounds))
    finally:
        for name, fn in saved.items():
            setattr(core, name, fn)
    count = len(raws) * rounds
    out = {"classify (total)": total / count * 1e6}
    out.update(sorted(((k, v / count * 1e6) for k, v in spent.items()), key=lambda kv: -kv[1]))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", type=Path, default=ROOT / "tests" / "corpus")
    p.add_argument("--rounds", type=int, default=9, help="timing rounds (median is kept)")
    p.add_argument("--phases", action="store_true", help="time each step of classify")
    args = p.parse_args()
    files = sorted(f for f in (args.corpus / "emails").iterdir() if f.is_file())
    raws = [f.read_bytes() for f in files]
    for fn in CONTENDERS.values():  # warm up: imports, regex caches
        timed(raws, fn)
    times: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    for _ in range(args.rounds):
        for name, fn in CONTENDERS.items():
            times[name].append(timed(raws, fn))
    print(f"corpus: {args.corpus} ({len(raws)} messages, {sum(map(len, raws)) // 1024} KiB), "
          f"{args.rounds} rounds, median")
    rate = {name: len(raws) / statistics.median(t) for name, t in times.items()}
    for name, value in rate.items():
        print(f"{name:<16} {value:>8.0f} msg/s  {1e6 / value:>7.0f} us/msg")
    per_round = statistics.median(f / b for b, f in zip(times["bounced"], times["flufl"],
                                                          strict=True))
    ratio = rate["bounced"] / rate["flufl"]
    print(f"ratio bounced/flufl: {ratio:.2f}x (median of per-round ratios {per_round:.2f}x; "
          f"target >= 1.5x: {'met' if ratio >= 1.5 else 'NOT met'})")
    print(f"parsing alone: {rate['parse:bounced'] / rate['parse:compat32']:.2f}x compat32")
    if args.phases:
        print("time in classify, us/msg (nested steps overlap):")
        for name, value in phases(raws, args.rounds).items():
            print(f"  {name:<22} {value:>7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
