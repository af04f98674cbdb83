"""Limits on the bytes stored per minute, per client address and for the whole daemon, and on
the bytes being received at once.

Each is a token bucket: it holds up to a minute's allowance and refills continuously, so a
client may send a minute's worth at once and then at the allowed rate. A message is charged
when it is about to be stored (its body once, whatever its recipient count) and refunded if the
store fails; beyond a limit it is refused for now (SMTP 452/451, HTTP 429/503) and the sending
MTA retries later. The limits are per daemon process (one per MX host on PostgreSQL); the pipe
(`bounced deliver`, a process per message) is paced by the mail server that runs it.
"""

from __future__ import annotations

import contextlib
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from bounced.config import LimitsSettings, Settings

log = structlog.get_logger("bounced.intake.limits")

PEER = "peer"
TOTAL = "total"
MAX_PEERS = 4096  # buckets kept before the full (idle) ones are dropped
LOG_EVERY = 60.0  # seconds between two log lines about one client's refusals


class RateLimitedLog:
    """A warning per kind at most every LOG_EVERY seconds, with the count since the last."""

    def __init__(self, logger: Any, clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.clock = clock
        self._last: dict[str, float] = {}
        self._count: dict[str, int] = {}

    def warn(self, event: str, **fields: Any) -> None:
        self._count[event] = self._count.get(event, 0) + 1
        now = self.clock()
        if now - self._last.get(event, -LOG_EVERY) >= LOG_EVERY:
            self._last[event] = now
            self.logger.warning(event, times=self._count.pop(event), **fields)


class _Bucket:
    __slots__ = ("at", "level")

    def __init__(self, level: float, at: float) -> None:
        self.level = level
        self.at = at

    def refill(self, capacity: float, now: float) -> float:
        self.level = min(capacity, self.level + (now - self.at) * capacity / 60.0)
        self.at = now
        return self.level


@dataclass(frozen=True)
class Refusal:
    """Which limit a message is over, and in how many seconds it would fit."""

    limit: str  # PEER or TOTAL
    retry_after: float


class InFlight:
    """The bytes of messages being received and not yet stored, across every session: what
    the daemon holds in memory for them. Without it, sessions each sending a message of the
    largest size held ``max_message_size`` x sessions at once (a gigabyte at the default
    100 connections).

    A session takes its message's bytes as they arrive and gives them back once the message is
    stored or refused. A message that does not fit is refused whole for now (SMTP 452 4.3.1
    once its data has been read, HTTP 503): the sender keeps it and retries, and nothing of it
    is stored."""

    def __init__(self, budget: int) -> None:
        self.budget = budget  # 0: no limit
        self.held = 0

    def room(self, size: int = 1) -> bool:
        """Whether ``size`` more bytes fit now. Takes nothing."""
        return not self.budget or self.held + size <= self.budget

    def take(self, size: int) -> bool:
        """Hold ``size`` more bytes, or say they do not fit (holding nothing more)."""
        if not self.room(size):
            return False
        self.held += size
        return True

    def give(self, size: int) -> None:
        self.held -= size


class StorageLimits:
    """The daemon's buckets: one per client address and one for everything; and the budget of
    bytes being received."""

    def __init__(self, settings: LimitsSettings,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.in_flight = InFlight(settings.in_flight_bytes)
        self.peer_capacity = float(settings.peer_bytes_per_minute)
        self.total_capacity = float(settings.total_bytes_per_minute)
        self.clock = clock
        self._peers: dict[str, _Bucket] = {}
        self._total = _Bucket(self.total_capacity, clock())
        self._logged: dict[str, float] = {}

    def full(self, peer: str, size: int = 1) -> Refusal | None:
        """Whether a message of ``size`` bytes (what MAIL FROM's SIZE announces; 1 when it
        does not) cannot be stored for ``peer`` now. Takes nothing."""
        return self._over(peer, size)

    def charge(self, peer: str, size: int) -> Refusal | None:
        """Take ``size`` bytes from the peer's and the total allowance, or say which limit it is
        over (taking nothing)."""
        refusal = self._over(peer, size)
        if refusal is None:
            if self.peer_capacity:
                self._peers[peer].level -= size
            if self.total_capacity:
                self._total.level -= size
        else:
            self._log(peer, size, refusal)
        return refusal

    def refund(self, peer: str, size: int) -> None:
        """Give back what a message that was not stored took."""
        now = self.clock()
        if self.peer_capacity and peer in self._peers:
            bucket = self._peers[peer]
            bucket.refill(self.peer_capacity, now)
            bucket.level = min(self.peer_capacity, bucket.level + size)
        if self.total_capacity:
            self._total.refill(self.total_capacity, now)
            self._total.level = min(self.total_capacity, self._total.level + size)

    def _over(self, peer: str, size: int) -> Refusal | None:
        now = self.clock()
        if self.peer_capacity:
            bucket = self._peers.get(peer)
            if bucket is None:
                if len(self._peers) >= MAX_PEERS:
                    self._prune(now)
                bucket = self._peers[peer] = _Bucket(self.peer_capacity, now)
            level = bucket.refill(self.peer_capacity, now)
            if level < size:
                return Refusal(PEER, (size - level) * 60.0 / self.peer_capacity)
        if self.total_capacity:
            level = self._total.refill(self.total_capacity, now)
            if level < size:
                return Refusal(TOTAL, (size - level) * 60.0 / self.total_capacity)
        return None

    def _prune(self, now: float) -> None:
        """Drop the buckets that have refilled (their clients were quiet for a minute)."""
        for peer, bucket in list(self._peers.items()):
            if bucket.refill(self.peer_capacity, now) >= self.peer_capacity:
                del self._peers[peer]
                self._logged.pop(peer, None)

    def _log(self, peer: str, size: int, refusal: Refusal) -> None:
        """One warning per client and minute at most: a flood of refusals is one line."""
        key = peer if refusal.limit == PEER else ""
        now = self.clock()
        if now - self._logged.get(key, -LOG_EVERY) >= LOG_EVERY:
            self._logged[key] = now
            capacity = self.peer_capacity if refusal.limit == PEER else self.total_capacity
            log.warning("limits.storage_rate_exceeded", limit=refusal.limit, peer=peer,
                        size=size, bytes_per_minute=int(capacity),
                        retry_after=round(refusal.retry_after, 1))


# Descriptors kept for the store's connections, the worker's pipes, logs and the listeners.
FD_RESERVE = 100


def raise_open_files(settings: Settings) -> None:
    """Raise the soft limit on open files to the hard one (1,024, systemd's default soft
    limit, dates from select(); the event loop uses epoll), and warn when both ports' connection
    limits do not fit in what is left: running out of descriptors refuses every connection."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    needed = settings.smtp.max_connections + FD_RESERVE + (
        settings.http.max_connections if settings.http.enabled else 0)
    if soft != resource.RLIM_INFINITY and soft < needed:
        log.warning("bounced.open_files_limit", limit=soft, needed=needed,
                    fix="raise LimitNOFILE= or lower [smtp] / [http] max_connections")
