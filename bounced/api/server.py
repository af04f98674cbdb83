"""HTTP interface (aiohttp, same process): health, metrics, address API, HTTP ingest.

Read endpoints are open (bind to loopback or put them behind a proxy); write endpoints need
``Authorization: Bearer <token>`` with the token from ``[http] token_file``,
``$BOUNCED_HTTP_TOKEN`` or the systemd credential ``http-token``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
import structlog
from aiohttp import web

from bounced.api import dashboard, overview
from bounced.api.guard import HTTPGuard
from bounced.api.openapi import OPENAPI
from bounced.api.views import address_report
from bounced.config import HTTP_TOKEN_ENV, HTTPSettings, Settings, parse_listen
from bounced.config.secrets import load_secret
from bounced.exceptions import ConfigError, StoreError, StoreUnavailable
from bounced.intake.commit import Intake, blank
from bounced.intake.limits import PEER, InFlight, StorageLimits
from bounced.intake.smtp import token_fields
from bounced.loop import Outage
from bounced.metrics import Metrics
from bounced.model import NewMessage
from bounced.policy import core
from bounced.queue.worker import Worker
from bounced.store import Store
from bounced.store.reports import AddressQuery, EventQuery
from bounced.verp import InvalidToken, Token, Verifier

_AIOHTTP_BEFORE_3_9 = tuple(int(n) for n in aiohttp.__version__.split(".")[:2]) < (3, 9)
log = structlog.get_logger("bounced.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
STORE_RETRY_AFTER = 30  # seconds, as HTTP ingest answers when it cannot store


def load_token(settings: HTTPSettings, env: Mapping[str, str]) -> str | None:
    """The bearer token for write endpoints, or None (writes disabled)."""
    found = load_secret("[http] token_file", settings.token_file, HTTP_TOKEN_ENV, "http-token",
                        env)
    token = found[0].strip() if found else ""
    if token and len(token) < 16:
        raise ConfigError("[http] token: at least 16 characters")
    return token or None


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


def _unauthorized(message: str) -> web.Response:
    return web.json_response({"error": message}, status=401,
                             headers={"WWW-Authenticate": "Bearer"})


class HTTPApi:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        intake: Intake,
        verifier: Verifier,
        worker: Worker | None,
        metrics: Metrics,
        now: Callable[[], dt.datetime],
        token: str | None,
        limits: StorageLimits | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.intake = intake
        self.verifier = verifier
        self.worker = worker
        self.metrics = metrics
        self.now = now
        self.token = token
        self.limits = limits
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None
        self._outage = Outage("http")

    def app(self, guard: HTTPGuard | None = None) -> web.Application:
        # The size limit of every way in: a message SMTP refuses is refused here too (413).
        # aiohttp before 3.9 (Debian 12's 3.8) refuses a body of exactly client_max_size.
        app = web.Application(client_max_size=self.settings.smtp.max_message_size
                              + (1 if _AIOHTTP_BEFORE_3_9 else 0),
                              middlewares=([guard.middleware] if guard is not None else [])
                              + [self._json_errors])
        app.add_routes([
            web.get("/healthz", self.healthz),
            web.get("/metrics", self.metrics_endpoint),
            web.get("/openapi.json", self.openapi),
            web.get("/v1/addresses", self._store(self.addresses)),
            web.post("/v1/subjects/{subject}/reconfirm",
                     self._write(self._store(self.reconfirm))),
            web.post("/v1/bounces", self._write(self.ingest)),
            web.get("/v1/breakers", self._store(self.breakers)),
            web.post("/v1/breakers/{domain}/release", self._write(self._store(self.release))),
            web.get("/v1/events", self._store(self.events)),
            web.get("/v1/stats", self._store(self.stats)),
            web.get("/dashboard", self.dashboard),
            web.get("/dashboard/{asset}", self.dashboard_asset),
        ])
        return app

    @web.middleware
    async def _json_errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Every error the API answers is its JSON error ({"error": ...}), aiohttp's own too: a
        request body over max_message_size (413, raised while the body is read), an unknown
        path (404), a method not allowed (405). The response goes out whole before aiohttp
        closes the connection (it reads and drops the rest of an oversized body first)."""
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            message = (f"message larger than [smtp] max_message_size "
                       f"({self.settings.smtp.max_message_size} bytes)"
                       if isinstance(exc, web.HTTPRequestEntityTooLarge)
                       else exc.reason.lower())
            headers = {k: v for k, v in exc.headers.items()
                       if k.lower() not in ("content-type", "content-length")}
            return web.json_response({"error": message}, status=exc.status, headers=headers)

    def _store(self, handler: Handler) -> Handler:
        """A handler that reads or changes the store: while the store cannot be reached it
        answers 503 with the API's JSON error and a Retry-After (it was a 500 with a
        traceback per request), logged once per outage (``http.store_unavailable``); any
        other store failure is a 500 with a JSON error and one log line."""
        async def answered(request: web.Request) -> web.StreamResponse:
            try:
                response = await handler(request)
            except StoreUnavailable as exc:
                self._outage.failed(exc)
                return web.json_response(
                    {"error": "the store is unavailable, retry later"}, status=503,
                    headers={"Retry-After": str(STORE_RETRY_AFTER)})
            except StoreError as exc:
                log.error("http.store_error", path=request.path, error_class=type(
                    exc.__cause__ or exc).__name__, error=str(exc))
                return _error(500, "the store failed to answer")
            self._outage.recovered()
            return response
        return answered

    def _write(self, handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            if self.token is None:
                return _error(403, "write endpoints are disabled: no [http] token configured")
            header = request.headers.get("Authorization", "").strip()
            if not header:
                return _unauthorized("missing bearer token")
            # The scheme is case-insensitive (RFC 6750, RFC 9110 section 11.1).
            scheme, _, given = header.partition(" ")
            # aiohttp hands over undecodable header bytes as surrogates: compare the bytes.
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                    given.strip().encode("utf-8", "surrogateescape"), self.token.encode()):
                return _unauthorized("wrong bearer token")
            return await handler(request)
        return guarded

    async def start(self) -> tuple[str, int]:
        """Listen behind the guard (bounced/api/guard.py): a connection limit and time-outs."""
        host, port = parse_listen(self.settings.http.listen, "[http] listen")
        guard = HTTPGuard(self._aiohttp_protocol, self.settings.http)
        self._runner = web.AppRunner(self.app(guard), access_log=None)
        await self._runner.setup()
        self._server = await asyncio.get_running_loop().create_server(
            guard.protocol, host, port)
        bound = self._server.sockets[0].getsockname()
        return str(bound[0]), int(bound[1])

    def _aiohttp_protocol(self) -> asyncio.Protocol:
        assert self._runner is not None and self._runner.server is not None
        return self._runner.server()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._runner is not None:
            await self._runner.cleanup()  # closes the connections
        if self._server is not None:
            await self._server.wait_closed()

    async def healthz(self, request: web.Request) -> web.Response:
        problems = []
        try:
            await self.store.ping()
            counts = await self.store.queue_counts()
            outbox = await self.store.outbox_counts()
        except Exception as exc:
            return web.json_response({"status": "unhealthy", "store": f"unreachable: {exc}"},
                                     status=503)
        for state, n in counts.items():
            self.metrics.queue.labels(state).set(n)
        for state, n in outbox.items():
            self.metrics.outbox.labels(state).set(n)
        # Reads working says little: a full disk or a read-only database still answers them.
        writes = await self.intake.write_problem(self.now())
        if writes is not None:
            problems.append(f"store writes failing: {writes}")
        worker: dict[str, Any] = {"enabled": self.worker is not None}
        if self.worker is not None:
            last = self.worker.last_loop
            stale = dt.timedelta(seconds=max(30.0, 5 * self.settings.worker.poll_interval))
            alive = last is not None and self.now() - last < stale + dt.timedelta(
                seconds=self.settings.worker.lease_seconds)
            worker.update(alive=alive, last_loop=last.isoformat() if last else None)
            if not alive:
                problems.append("worker not running")
        body = {"status": "ok" if not problems else "unhealthy", "problems": problems,
                "store": "ok", "writes": "ok" if writes is None else f"failing: {writes}",
                "worker": worker, "queue": counts, "outbox": outbox}
        return web.json_response(body, status=200 if not problems else 503)

    async def metrics_endpoint(self, request: web.Request) -> web.Response:
        try:
            for state, n in (await self.store.queue_counts()).items():
                self.metrics.queue.labels(state).set(n)
            for state, n in (await self.store.outbox_counts()).items():
                self.metrics.outbox.labels(state).set(n)
        except StoreUnavailable as exc:  # metrics still render from the counters
            self._outage.failed(exc)
        except Exception as exc:
            log.warning("http.metrics_store_error", error=str(exc))
        return web.Response(body=self.metrics.render(),
                            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(OPENAPI)

    async def addresses(self, request: web.Request) -> web.Response:
        subject = request.query.get("subject")
        address = request.query.get("address")
        if not subject and not address and "subject" not in request.query \
                and "address" not in request.query:
            return await self._address_list(request)
        if bool(subject) == bool(address):
            return _error(400, "give exactly one of ?subject= or ?address=")
        if address and "@" not in address:  # as `bounced status --address` (and sign) say
            return _error(400, f"not an email address: {address!r}")
        return web.json_response(await address_report(self.store, subject, address))

    async def _address_list(self, request: web.Request) -> web.Response:
        """Without ?subject= or ?address=: the addresses matching the filters, a page."""
        q = request.query
        try:
            query = AddressQuery(
                state=overview.parse_state(q.get("state")),
                since=_since(q.get("since"), self.now()),
                domain=overview.parse_domain(q.get("domain")),
                limit=overview.parse_limit(q.get("limit")),
                after=overview.parse_address_cursor(q.get("cursor")))
        except overview.BadQuery as exc:
            return _error(400, str(exc))
        items, cursor = await overview.address_page(self.store, query)
        return _page(request, [overview.address_json(a) for a in items], cursor)

    async def reconfirm(self, request: web.Request) -> web.Response:
        subject = request.match_info["subject"]
        decisions = await core.reconfirm(self.store, subject, self.now())
        return web.json_response({"subject": subject, "reconfirmed": [
            {"fingerprint": d.fingerprint, "decided_at": d.decided_at.isoformat()}
            for d in decisions]})

    async def ingest(self, request: web.Request) -> web.Response:
        recipient = request.query.get("recipient") or request.headers.get(
            "X-Envelope-Recipient", "")
        sender = request.query.get("sender") or request.headers.get("X-Envelope-Sender", "")
        if not recipient:
            return _error(400, "the envelope recipient is required (?recipient= or "
                          "X-Envelope-Recipient)")
        try:
            token = self.verifier.verify(recipient, today=self.now().date())
        except InvalidToken as exc:
            self.metrics.rejected.labels(exc.reason).inc()
            return _error(422, str(exc), reason=exc.reason)
        # The body is held from its first byte to its commit, in the daemon's in-flight budget:
        # what Content-Length announces before it is read, a body without one once read.
        in_flight = self.limits.in_flight if self.limits is not None else InFlight(0)
        held = request.content_length or 0
        if held > self.settings.smtp.max_message_size:
            raise web.HTTPRequestEntityTooLarge(
                max_size=self.settings.smtp.max_message_size, actual_size=held)
        if not in_flight.take(held):
            return self._busy()
        try:
            raw = await request.read()
            if len(raw) > held:
                if not in_flight.take(len(raw) - held):
                    return self._busy()
                held = len(raw)
            return await self._ingest(request, token, recipient, sender, raw)
        finally:
            in_flight.give(held)

    def _busy(self) -> web.Response:
        """Over the in-flight budget: nothing stored, the client retries."""
        self.metrics.rejected.labels("in_flight").inc()
        return web.json_response(
            {"error": "too much mail being received now, retry later", "reason": "in_flight"},
            status=503, headers={"Retry-After": "5"})

    async def _ingest(self, request: web.Request, token: Token, recipient: str,
                      sender: str | None, raw: bytes) -> web.Response:
        if blank(raw):
            return _error(400, "empty message body")
        peer = request.remote or "http"
        if self.limits is not None:
            refusal = self.limits.charge(peer, len(raw))
            if refusal is not None:
                self.metrics.rejected.labels(f"rate_limit_{refusal.limit}").inc()
                over_peer = refusal.limit == PEER
                return web.json_response(
                    {"error": "too much mail stored from this client in the last minute"
                     if over_peer else "too much mail stored in the last minute",
                     "reason": f"rate_limit_{refusal.limit}"},
                    status=429 if over_peer else 503,
                    headers={"Retry-After": str(max(1, math.ceil(refusal.retry_after)))})
        message = NewMessage(received_at=self.now(), peer=f"http:{peer}",
                             mail_from=sender or "<>", rcpt_to=recipient,
                             token=token_fields(token), raw=raw)
        try:
            [job_id] = await self.intake.store([message])
        except Exception as exc:
            if self.limits is not None:
                self.limits.refund(peer, len(raw))
            log.error("http.store_failed", error=repr(exc))
            return web.json_response({"error": "cannot store the message now, retry later"},
                                     status=503, headers={"Retry-After": "30"})
        self.metrics.accepted.labels("http").inc()
        return web.json_response({"id": job_id, "subject": token.subject}, status=202)

    async def breakers(self, request: web.Request) -> web.Response:
        rows = await self.store.breakers()
        return web.json_response([{**r, "tripped_at": _iso(r["tripped_at"]),
                                   "released_at": _iso(r["released_at"])} for r in rows])

    async def release(self, request: web.Request) -> web.Response:
        domain = request.match_info["domain"].lower()
        if not await core.release_breaker(self.store, domain, self.now()):
            return _error(404, f"no tripped breaker for {domain}")
        return web.json_response({"domain": domain, "state": "released"})

    async def events(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            query = EventQuery(
                types=overview.parse_types(q.getall("type", [])),
                since=_since(q.get("since"), self.now()),
                limit=overview.parse_limit(q.get("limit")),
                after=overview.parse_event_cursor(q.get("cursor")))
        except overview.BadQuery as exc:
            return _error(400, str(exc))
        items, cursor = await overview.event_page(self.store, query)
        return _page(request, [overview.event_json(e, states) for e, states in items], cursor)

    async def stats(self, request: web.Request) -> web.Response:
        now = self.now()
        try:
            since = overview.parse_since(request.query.get("since", overview.DEFAULT_SINCE),
                                         now)
            return web.json_response(await overview.summary(self.store, since, now))
        except overview.BadQuery as exc:
            return _error(400, str(exc))

    async def dashboard(self, request: web.Request) -> web.Response:
        return web.Response(body=dashboard.read(dashboard.PAGE), headers=dashboard.HEADERS,
                            content_type="text/html", charset="utf-8")

    async def dashboard_asset(self, request: web.Request) -> web.Response:
        found = dashboard.ASSETS.get(request.match_info["asset"])
        if found is None:
            return _error(404, "no such dashboard file")
        name, media_type = found
        return web.Response(body=dashboard.read(name), headers=dashboard.HEADERS,
                            content_type=media_type, charset="utf-8")


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _since(text: str | None, now: dt.datetime) -> dt.datetime | None:
    return None if text is None else overview.parse_since(text, now)


def _page(request: web.Request, items: list[dict[str, Any]], cursor: str | None
          ) -> web.Response:
    """One page of a list: a JSON array, and where the next page is (RFC 8288 ``Link``, and
    the bare cursor in ``X-Next-Cursor`` for scripts) unless this was the last."""
    headers = {}
    if cursor is not None:
        url = request.rel_url.update_query(cursor=cursor)
        headers = {"Link": f'<{url}>; rel="next"', "X-Next-Cursor": cursor}
    return web.json_response(items, headers=headers)

