"""The daemon's parts, started in order and stopped in reverse."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from typing import Any

import aiohttp
import structlog

from bounced import compat
from bounced.api.server import HTTPApi
from bounced.config import Settings, redact
from bounced.exceptions import ConfigError
from bounced.intake.commit import Intake
from bounced.intake.limits import StorageLimits, raise_open_files
from bounced.intake.smtp import BounceHandler, SMTPServer
from bounced.loop import SWITCH_INTERVAL
from bounced.metrics import Metrics
from bounced.model import utcnow
from bounced.outbox.actions import build_actions
from bounced.outbox.dispatch import Dispatcher
from bounced.queue.process import WorkerProcess
from bounced.queue.worker import Worker
from bounced.runtime.retention import run_periodically
from bounced.runtime.support import preflight
from bounced.store import Store, open_ready_store
from bounced.verp import Verifier

log = structlog.get_logger("bounced.runtime.daemon")

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
    daemon for the operator, two CPU cores for the work (bounced/queue/process.py).

    ``start`` enters each part into one AsyncExitStack as it starts it, so that ``stop``, and
    a start that fails half-way, close exactly what was started, in the reverse order: the
    listeners first (in-flight transactions finish), then the intake's last commit, the loops
    and the worker process, the HTTP client session, the store."""

    def __init__(self, settings: Settings, env: Mapping[str, str] | None = None,
                 now: Callable[[], dt.datetime] = utcnow, store_wait: float = 0.0) -> None:
        self.settings = settings
        self.store_wait = store_wait
        self.env = os.environ if env is None else env
        self.now = now
        self.metrics = Metrics()
        self.stopping = asyncio.Event()
        self._stack = contextlib.AsyncExitStack()
        # The parts, once started (None before).
        self.store: Store | None = None
        self.worker: Worker | None = None
        self.worker_process: WorkerProcess | None = None
        self.dispatcher: Dispatcher | None = None
        self.intake: Intake | None = None
        self.handler: BounceHandler | None = None
        self.smtp: SMTPServer | None = None
        self.http: HTTPApi | None = None
        self.smtp_address: tuple[str, int] = ("", 0)
        self.http_address: tuple[str, int] | None = None
        self.verifier: Verifier | None = None
        self.key_source = ""

    async def start(self) -> None:
        # Library versions whose private APIs were not tested: refuse, in one line.
        compat.require()
        try:
            await self._start(self._stack)
        except BaseException:
            await self._stack.aclose()
            raise
        s = self.settings
        http = self.http_address
        log.info("bounced.started", listen=f"{self.smtp_address[0]}:{self.smtp_address[1]}",
                 http=f"{http[0]}:{http[1]}" if http else None,
                 store=redact(s.store_url), keys=self.key_source, domain=s.verp.domain,
                 worker=s.worker.enabled,
                 worker_pid=self.worker_process.pid if self.worker_process else None,
                 actions=[a.name for a in s.actions],
                 dry_run=s.outbox.dry_run)

    async def _start(self, stack: contextlib.AsyncExitStack) -> None:
        s = self.settings
        grace = s.smtp.shutdown_grace
        raise_open_files(s)
        stack.callback(sys.setswitchinterval, sys.getswitchinterval())
        sys.setswitchinterval(SWITCH_INTERVAL)
        checked = preflight(s, self.env, dev_key="create")  # what check-config checks too
        self.verifier, self.key_source = checked.verifier, checked.key_source
        store = self.store = await open_ready_store(s, self.store_wait, create=True)
        stack.push_async_callback(store.close)
        session = None
        if any(a.type == "webhook" for a in s.actions):
            session = await stack.enter_async_context(aiohttp.ClientSession())
        actions = build_actions(s.actions, self.env, session, checked.webhook_secrets)
        worker = self.worker = Worker(store, s, self.now, metrics=self.metrics)
        dispatcher = self.dispatcher = Dispatcher(store, s.outbox, actions, self.now,
                                                  metrics=self.metrics)
        if s.worker.enabled and s.worker.own_process:  # a process of its own
            process = self.worker_process = WorkerProcess(s, worker, self.metrics)
            stack.push_async_callback(process.stop, grace)
            await process.start()
        elif s.worker.enabled:  # or in this event loop
            await stack.enter_async_context(background(worker.run(), grace))
        await stack.enter_async_context(background(dispatcher.run(), grace))
        await stack.enter_async_context(background(
            run_periodically(store, s, self.now, self.stopping), grace))
        # On the way out, once the listeners are closed and the intake's last commit is done.
        stack.callback(self._stop_loops)
        intake = self.intake = Intake(store, on_stored=self.worker_process.wake
                                      if self.worker_process is not None else worker.wake)
        stack.push_async_callback(intake.drain)
        # One allowance per client address whichever way it sends (SMTP or HTTP).
        limits = StorageLimits(s.limits)
        handler = self.handler = BounceHandler(checked.verifier, intake, s.smtp, self.now,
                                               metrics=self.metrics, limits=limits)
        if s.http.enabled:
            http = self.http = HTTPApi(s, store, intake, checked.verifier,
                                       worker if s.worker.enabled else None, self.metrics,
                                       self.now, checked.http_token, limits)
            self.http_address = await _listening("[http] listen", s.http.listen, http.start())
            stack.push_async_callback(http.stop)
        smtp = self.smtp = SMTPServer(handler, s.smtp)
        self.smtp_address = await _listening("[smtp] listen", s.smtp.listen, smtp.start())
        stack.push_async_callback(smtp.stop)

    def _stop_loops(self) -> None:
        """Tell every loop to finish what it has in hand (they are waited for one by one)."""
        self.stopping.set()
        if self.worker is not None:
            self.worker.stop()
        if self.dispatcher is not None:
            self.dispatcher.stop()
        if self.worker_process is not None:
            self.worker_process.request_stop()

    async def stop(self) -> None:
        """Stop accepting, let transactions in flight finish, stop the loops, close."""
        self.stopping.set()
        handler = self.handler
        log.info("bounced.stopping", in_flight=handler.in_flight if handler else 0)
        await self._stack.aclose()
        log.info("bounced.stopped", accepted=handler.stats.get("accepted", 0) if handler else 0)


@contextlib.asynccontextmanager
async def background(loop: Coroutine[Any, Any, None], grace: float) -> AsyncIterator[None]:
    """Run ``loop`` as a task; on exit wait up to ``grace`` seconds for it to end (it was told
    to stop), then cancel it. A loop that died is logged; shutdown goes on."""
    task = asyncio.create_task(loop)
    try:
        yield
    finally:
        try:
            await asyncio.wait_for(task, grace)
        except TimeoutError:  # wait_for cancelled it
            pass
        except asyncio.CancelledError:
            if not task.cancelled():
                raise
        except Exception as exc:  # a loop that died is logged; shutdown goes on
            log.error("bounced.task_failed", error=repr(exc))
