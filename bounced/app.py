"""Wiring: the daemon's parts started in order and stopped in reverse, under systemd or not."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import re
import signal
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import structlog

from bounced.config import Settings
from bounced.exceptions import StoreUnavailable
from bounced.intake import Intake
from bounced.keys import load_keyring
from bounced.retention import run_periodically
from bounced.sdnotify import notify
from bounced.smtp import BounceHandler, SMTPServer
from bounced.store import Store, open_store
from bounced.verp import Verifier
from bounced.worker import Worker

log = structlog.get_logger("bounced.app")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def redact(url: str) -> str:
    """A store URL without its password."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def make_verifier(settings: Settings, env: Mapping[str, str] | None = None,
                  *, allow_dev: bool = True) -> tuple[Verifier, str]:
    keyring, source = load_keyring(settings, env, allow_dev=allow_dev)
    verifier = Verifier(
        keyring, domain=settings.verp.domain, prefix=settings.verp.prefix,
        max_age_days=settings.verp.max_age_days, future_skew_days=settings.verp.future_skew_days,
    )
    return verifier, source


async def open_ready_store(settings: Settings, wait: float = 60.0) -> Store:
    """Open the store, retrying for up to ``wait`` seconds while it cannot be reached.

    A daemon started together with its database server waits for it instead of failing.
    """
    if settings.store_url.startswith("sqlite:"):
        wait = 0.0  # an embedded file that cannot be opened will not come up by itself
    deadline = asyncio.get_running_loop().time() + wait
    delay = 0.25
    while True:
        store = open_store(settings.store_url)
        try:
            await store.open()
        except StoreUnavailable as exc:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise
            log.warning("store.unavailable", store=redact(settings.store_url), error=str(exc),
                        retry_in=round(min(delay, left), 2))
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, 5.0)
            continue
        return store


async def serve(
    settings: Settings,
    env: Mapping[str, str] | None = None,
    now: Callable[[], dt.datetime] = utcnow,
) -> int:
    """Run the daemon until SIGTERM or SIGINT; return the exit status."""
    verifier, key_source = make_verifier(settings, env)
    store = await open_ready_store(settings)
    worker = Worker(store, settings, now)
    intake = Intake(store, on_stored=worker.wake)
    handler = BounceHandler(verifier, intake, settings.smtp, now)
    server = SMTPServer(handler, settings.smtp)
    try:
        host, port = await server.start()
    except OSError as exc:
        await store.close()
        log.error("bounced.listen_failed", listen=settings.smtp.listen, error=str(exc))
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    worker_task = asyncio.create_task(worker.run()) if settings.worker.enabled else None
    retention_task = asyncio.create_task(run_periodically(store, settings, now, stop))
    log.info("bounced.started", listen=f"{host}:{port}", store=redact(settings.store_url),
             keys=key_source, domain=settings.verp.domain, worker=settings.worker.enabled)
    notify(f"READY=1\nSTATUS=listening on {host}:{port}", env)
    await stop.wait()
    notify("STOPPING=1", env)
    log.info("bounced.stopping", in_flight=handler.in_flight)
    await server.stop()
    await intake.drain()
    if worker_task is not None:
        worker.stop()
        try:
            await asyncio.wait_for(worker_task, settings.smtp.shutdown_grace)
        except TimeoutError:
            worker_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker_task
    await retention_task
    await store.close()
    log.info("bounced.stopped", accepted=handler.stats.get("accepted", 0))
    return 0


def run(coro_factory: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """Run the daemon's main coroutine on uvloop when it is installed."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is an optional extra
        return asyncio.run(coro_factory())
    return uvloop.run(coro_factory())
