"""The HTTP port's guard: a connection limit and time-outs for every phase of a connection.

aiohttp bounds header sizes and the body (``client_max_size``) but not how many connections
stay open or for how long: 1,100 idle connections exhausted the daemon's file descriptors, and
SMTP connects failed with nothing logged. Each connection is wrapped in a protocol that
forwards everything to aiohttp's and keeps one deadline, for the phase the connection is in:

- idle: open without a request under way (before the first, between keep-alive requests);
- headers: from a request's first byte to its complete headers (a slow sender, slowloris);
- body: from complete headers to the answer (reading the body, handling, answering).

A connection past its deadline is aborted. Beyond ``max_connections`` a new connection gets a
``503`` and is closed at once, so the descriptors in use stay bounded whatever clients do.
Every limit hit is logged, at most once a minute per kind, with how often it was hit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import cast

import structlog
from aiohttp import web

from bounced.config import HTTPSettings
from bounced.intake.limits import RateLimitedLog

log = structlog.get_logger("bounced.http")

IDLE, HEADERS, BODY = "idle", "headers", "body"
BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
        b"Content-Length: 21\r\nRetry-After: 5\r\nConnection: close\r\n\r\n"
        b"too many connections\n")


class HTTPGuard:
    """The protocol factory of the HTTP port: aiohttp's, gated and timed."""

    def __init__(self, factory: Callable[[], asyncio.Protocol], settings: HTTPSettings) -> None:
        self.factory = factory
        self.settings = settings
        self.live: dict[asyncio.BaseTransport, _Guarded] = {}
        self.warnings = RateLimitedLog(log)
        self.deadlines = {IDLE: settings.idle_timeout, HEADERS: settings.header_timeout,
                          BODY: settings.body_timeout}

    def protocol(self) -> asyncio.Protocol:
        if len(self.live) >= self.settings.max_connections:
            self.warnings.warn("http.connection_limit", limit=self.settings.max_connections)
            return _Refused()
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
    """A connection over the limit: told so, and closed (its descriptor freed at once)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are no asyncio.Transport instances: cast, not isinstance.
        stream = cast(asyncio.Transport, transport)
        stream.write(BUSY)
        stream.close()


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
