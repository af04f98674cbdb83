"""The daemon's parts, started in order and stopped in reverse."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import sys
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import aiohttp
import structlog

from bounced import compat
from bounced.actions import build_actions
from bounced.app_support import open_ready_store, preflight, redact, utcnow
from bounced.config import Settings
from bounced.dispatch import Dispatcher
from bounced.exceptions import ConfigError
from bounced.http import HTTPApi
from bounced.intake import Intake
from bounced.limits import StorageLimits, raise_open_files
from bounced.loop import SWITCH_INTERVAL
from bounced.metrics import Metrics
from bounced.retention import run_periodically
from bounced.smtp import BounceHandler, SMTPServer
from bounced.store import Store
from bounced.verp import Verifier
from bounced.worker import Worker
from bounced.worker_process import WorkerProcess

log = structlog.get_logger("bounced.daemon")

async def _listening(setting: str, address: str,
                     start: Coroutine[Any, Any, tuple[str, int]]) -> tuple[str, int]:
    """Bind a listener; a port in use (or an address not ours) is the setting's fault."""
    try:
        return await start
    except OSError as exc:
        # asyncio's strerror repeats the address: the errno's own words are enough
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise ConfigError(f"{setting} {address}: {reason}") from None


class Daemon:
    """SMTP intake, worker, dispatcher, HTTP API and retention over one store.

    The worker runs in a child process of its own by default ([worker] own_process): one
    daemon for the operator, two CPU cores for the work (bounced/worker_process.py)."""

    def __init__(self, settings: Settings, env: Mapping[str, str] | None = None,
                 now: Callable[[], dt.datetime] = utcnow, store_wait: float = 0.0) -> None:
        self.settings = settings
        self.store_wait = store_wait
        self.env = os.environ if env is None else env
        self.now = now
        self.metrics = Metrics()
        self.stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self.http: HTTPApi | None = None
        self.smtp_address: tuple[str, int] = ("", 0)
        self.http_address: tuple[str, int] | None = None

    async def start(self) -> None:
        # Library versions whose private APIs were not tested: refuse, in one line.
        compat.require()
        s = self.settings
        raise_open_files(s)
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL)
        checked = preflight(s, self.env, dev_key="create")  # what check-config checks too
        self.verifier: Verifier = checked.verifier
        self.key_source = checked.key_source
        token = checked.http_token
        self._session = aiohttp.ClientSession() if any(a.type == "webhook" for a in s.actions) \
            else None
        try:  # a bad action or an unreachable store: close the session, no "Unclosed" noise
            actions = build_actions(s.actions, self.env, self._session, checked.webhook_secrets)
            self.store: Store = await open_ready_store(s, self.store_wait, create=True)
        except BaseException:
            await self._close_resources()
            raise
        try:
            self.worker = Worker(self.store, s, self.now, metrics=self.metrics)
            self.dispatcher = Dispatcher(self.store, s.outbox, actions, self.now,
                                         metrics=self.metrics)
            # The worker runs in a process of its own (own_process) or in this event loop.
            self.worker_process = (
                WorkerProcess(s, self.worker, self.metrics)
                if s.worker.enabled and s.worker.own_process else None
            )
            self.intake = Intake(self.store, on_stored=self.worker_process.wake
                                 if self.worker_process is not None else self.worker.wake)
            # One allowance per client address whichever way it sends (SMTP or HTTP).
            limits = StorageLimits(s.limits)
            self.handler = BounceHandler(self.verifier, self.intake, s.smtp, self.now,
                                         metrics=self.metrics, limits=limits)
            self.smtp = SMTPServer(self.handler, s.smtp)
            self.smtp_address = await _listening("[smtp] listen", s.smtp.listen, self.smtp.start())
            if s.http.enabled:
                self.http = HTTPApi(s, self.store, self.intake, self.verifier,
                                    self.worker if s.worker.enabled else None, self.metrics,
                                    self.now, token, limits)
                try:
                    self.http_address = await _listening("[http] listen", s.http.listen,
                                                         self.http.start())
                except BaseException:
                    await self.smtp.stop()
                    raise
        except BaseException:
            await self._close_resources()
            raise
        if self.worker_process is not None:
            try:
                await self.worker_process.start()
            except BaseException:
                await self.worker_process.stop(0)
                await self.smtp.stop()
                if self.http is not None:
                    await self.http.stop()
                await self._close_resources()
                raise
        elif s.worker.enabled:
            self._tasks.append(asyncio.create_task(self.worker.run()))
        self._tasks.append(asyncio.create_task(self.dispatcher.run()))
        self._tasks.append(asyncio.create_task(
            run_periodically(self.store, s, self.now, self.stopping)))
        http = self.http_address
        log.info("bounced.started", listen=f"{self.smtp_address[0]}:{self.smtp_address[1]}",
                 http=f"{http[0]}:{http[1]}" if http else None,
                 store=redact(s.store_url), keys=self.key_source, domain=s.verp.domain,
                 worker=s.worker.enabled,
                 worker_pid=self.worker_process.pid if self.worker_process else None,
                 actions=[a.name for a in s.actions],
                 dry_run=s.outbox.dry_run)

    async def stop(self) -> None:
        """Stop accepting, let transactions in flight finish, stop the loops, close."""
        self.stopping.set()
        log.info("bounced.stopping", in_flight=self.handler.in_flight)
        await self.smtp.stop()
        if self.http is not None:
            await self.http.stop()
        await self.intake.drain()
        self.worker.stop()
        self.dispatcher.stop()
        grace = self.settings.smtp.shutdown_grace
        if self.worker_process is not None:
            await self.worker_process.stop(grace)
        for task in self._tasks:
            try:
                await asyncio.wait_for(task, grace)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            except Exception as exc:  # a loop that died is logged; shutdown goes on
                log.error("bounced.task_failed", error=repr(exc))
        await self._close_resources()
        sys.setswitchinterval(self._switch_interval)
        log.info("bounced.stopped", accepted=self.handler.stats.get("accepted", 0))

    async def _close_resources(self) -> None:
        if self._session is not None:
            await self._session.close()
        if getattr(self, "store", None) is not None:
            await self.store.close()
