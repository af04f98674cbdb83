"""Entry point of the daemon: run it until SIGTERM, under systemd or not."""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
from collections.abc import Callable, Mapping

import structlog

from bounced.config import Settings, redact
from bounced.config.keys import make_verifier
from bounced.exits import EXIT_OK
from bounced.loop import run
from bounced.model import utcnow
from bounced.runtime.daemon import Daemon
from bounced.runtime.sdnotify import notify
from bounced.store import open_ready_store

log = structlog.get_logger("bounced.app")

STARTUP_STORE_WAIT = 60.0
# While the daemon starts (waiting for PostgreSQL, migrating a large store), systemd is asked
# every START_EXTEND_EVERY seconds for START_EXTEND_USEC more: its start timeout (90 s by
# default) would otherwise stop a migration half-way, and the next start would begin again.
START_EXTEND_EVERY = 10.0
START_EXTEND_USEC = 30_000_000

__all__ = ["make_verifier", "open_ready_store", "redact", "run", "serve", "utcnow"]


async def serve(
    settings: Settings,
    env: Mapping[str, str] | None = None,
    now: Callable[[], dt.datetime] = utcnow,
) -> int:
    """Run the daemon until SIGTERM or SIGINT; return the exit status."""
    daemon = Daemon(settings, env, now, store_wait=STARTUP_STORE_WAIT)
    extend = asyncio.create_task(_extend_start_timeout(env))
    try:
        # A port in use, a bad action or key: a ConfigError naming the setting, which the
        # command prints as its one-line error (`bounced serve: [smtp] listen ...`).
        await daemon.start()
    finally:
        extend.cancel()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    host, port = daemon.smtp_address
    notify(f"READY=1\nSTATUS=listening on {host}:{port}", env)
    await stop.wait()
    notify("STOPPING=1", env)
    await daemon.stop()
    return EXIT_OK


async def _extend_start_timeout(env: Mapping[str, str] | None) -> None:
    """Ask systemd for more start time until cancelled (when the daemon is up or failed)."""
    state = (f"EXTEND_TIMEOUT_USEC={START_EXTEND_USEC}\n"
             "STATUS=starting: opening the store (waiting for it, or migrating)")
    if not notify(state, env):
        return  # not under systemd
    while True:
        await asyncio.sleep(START_EXTEND_EVERY)  # a period, not a wait for a condition
        notify(state, env)
