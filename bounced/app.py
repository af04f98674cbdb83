"""Entry point of the daemon: run it until SIGTERM, under systemd or not."""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import structlog

from bounced.app_support import make_verifier, open_ready_store, redact, utcnow
from bounced.config import Settings
from bounced.daemon import Daemon
from bounced.exceptions import ConfigError
from bounced.sdnotify import notify

log = structlog.get_logger("bounced.app")

STARTUP_STORE_WAIT = 60.0

__all__ = ["make_verifier", "open_ready_store", "redact", "run", "serve", "utcnow"]


async def serve(
    settings: Settings,
    env: Mapping[str, str] | None = None,
    now: Callable[[], dt.datetime] = utcnow,
) -> int:
    """Run the daemon until SIGTERM or SIGINT; return the exit status."""
    daemon = Daemon(settings, env, now, store_wait=STARTUP_STORE_WAIT)
    try:
        await daemon.start()
    except OSError as exc:
        log.error("bounced.listen_failed", listen=settings.smtp.listen,
                  http=settings.http.listen if settings.http.enabled else None, error=str(exc))
        return 1
    except ConfigError:
        raise
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    host, port = daemon.smtp_address
    notify(f"READY=1\nSTATUS=listening on {host}:{port}", env)
    await stop.wait()
    notify("STOPPING=1", env)
    await daemon.stop()
    return 0


def run(coro_factory: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """Run the daemon's main coroutine on uvloop when it is installed."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is an optional extra
        return asyncio.run(coro_factory())
    return uvloop.run(coro_factory())
