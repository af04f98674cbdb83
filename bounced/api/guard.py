"""The HTTP port's guard: a connection limit and time-outs for every phase of a connection.

aiohttp bounds header sizes and the body (``client_max_size``) but not how many connections
stay open or for how long: 1,100 idle connections exhausted the daemon's file descriptors, and
SMTP connects failed with nothing logged. Each connection is wrapped in a protocol that
forwards everything to aiohttp's and keeps one deadline, for the phase the connection is in:

- idle: open without a request under way (before the first, between keep-alive requests);
- headers: from a request's first byte to its complete headers (a slow sender, slowloris);
- body: from complete headers to the answer (reading the body, handling, answering).

A connection past its deadline is aborted. Beyond ``max_connections`` a new connection gets a
``503`` (the API's JSON error) and is closed, so the descriptors in use stay bounded whatever
clients do. The 503 is a complete response that the client can read: the connection's write
side is shut after it, and what the client sends meanwhile is read and dropped for up to
LINGER seconds (closing a socket with unread bytes resets it, and the reset could destroy the
503 before the client read it). At most LINGER_MAX refused connections linger at once: a new
one closes the one that has lingered longest (its 503 was sent first), so that the newest
refused client (a health check during a flood) still reads its 503.
Every limit hit is logged, at most once a minute per kind, with how often it was hit.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import cast

import structlog
from aiohttp import web

from bounced.config import HTTPSettings
from bounced.intake.limits import RateLimitedLog

log = structlog.get_logger("bounced.http")

IDLE, HEADERS, BODY = "idle", "headers", "body"
_BUSY_BODY = json.dumps({"error": "too many connections, retry later",
                         "reason": "connection_limit"}).encode()
BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json; charset=utf-8\r\n"
        b"Content-Length: %d\r\nRetry-After: 5\r\nConnection: close\r\n\r\n"
        % len(_BUSY_BODY)) + _BUSY_BODY
LINGER = 2.0  # seconds a refused connection is read (and dropped) after its 503
LINGER_MAX = 64  # refused connections lingering at once, at most


class HTTPGuard:
    """The protocol factory of the HTTP port: aiohttp's, gated and timed."""

    def __init__(self, factory: Callable[[], asyncio.Protocol], settings: HTTPSettings) -> None:
        self.factory = factory
        self.settings = settings
        self.live: dict[asyncio.BaseTransport, _Guarded] = {}
        self.lingering: dict[_Refused, None] = {}  # oldest first
        self.warnings = RateLimitedLog(log)
        self.deadlines = {IDLE: settings.idle_timeout, HEADERS: settings.header_timeout,
                          BODY: settings.body_timeout}

    def protocol(self) -> asyncio.Protocol:
        if len(self.live) >= self.settings.max_connections:
            self.warnings.warn("http.connection_limit", limit=self.settings.max_connections)
            return _Refused(self)
        return _Guarded(self, self.factory())

    @web.middleware
    async def middleware(
        self, request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        """Marks a connection's phases: its request's headers are complete when the handler
        is called; its answer is on its way when the handler returns."""
        guarded = self.live.get(request.transport) if request.transport else None
        if guarded is not None:
            guarded.arm(BODY)
        try:
            return await handler(request)
        finally:
            if guarded is not None:
                guarded.arm(IDLE)


class _Refused(asyncio.Protocol):
    """A connection over the limit: told so (a whole 503), then closed once the client has
    closed its side or after LINGER seconds (its descriptor freed soon whatever it does)."""

    def __init__(self, guard: HTTPGuard) -> None:
        self.guard = guard
        self.transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are no asyncio.Transport instances: cast, not isinstance.
        stream = cast(asyncio.Transport, transport)
        stream.write(BUSY)
        if not stream.can_write_eof():
            stream.close()
            return
        stream.write_eof()  # the 503, then end of file: the client reads it whole
        lingering = self.guard.lingering
        if len(lingering) >= LINGER_MAX:
            oldest = next(iter(lingering))
            del lingering[oldest]
            oldest.close()
        lingering[self] = None
        self.transport = stream
        self._timer = asyncio.get_running_loop().call_later(LINGER, self.close)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        """The request the client sent anyway: dropped."""

    def eof_received(self) -> bool:
        return False  # the client is done too: the transport closes

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.lingering.pop(self, None)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class _Guarded(asyncio.Protocol):
    """aiohttp's protocol for one connection, behind one deadline for its current phase."""

    def __init__(self, guard: HTTPGuard, inner: asyncio.Protocol) -> None:
        self.guard = guard
        self.inner = inner
        self.phase = IDLE
        self.transport: asyncio.BaseTransport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def arm(self, phase: str) -> None:
        self.phase = phase
        if self._timer is not None:
            self._timer.cancel()
        if self.transport is not None and not self.transport.is_closing():
            self._timer = asyncio.get_running_loop().call_later(
                self.guard.deadlines[phase], self._expired)

    def _expired(self) -> None:
        self._timer = None
        self.guard.warnings.warn(f"http.{self.phase}_timeout",
                                 seconds=self.guard.deadlines[self.phase])
        if self.transport is not None:
            cast(asyncio.Transport, self.transport).abort()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.guard.live[transport] = self
        self.inner.connection_made(transport)
        self.arm(IDLE)

    def data_received(self, data: bytes) -> None:
        if self.phase == IDLE:
            self.arm(HEADERS)  # the first byte of a request: its headers must follow in time
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.transport is not None:
            self.guard.live.pop(self.transport, None)
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()
