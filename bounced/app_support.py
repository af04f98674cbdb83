"""Small pieces the entry points share: the clock, key loading, the store, redaction."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import Mapping

import structlog

from bounced.config import Settings
from bounced.exceptions import StoreUnavailable
from bounced.keys import load_keyring
from bounced.store import Store, open_store
from bounced.verp import Verifier

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


async def open_ready_store(settings: Settings, wait: float = 0.0) -> Store:
    """Open the store, retrying for up to ``wait`` seconds while it cannot be reached.

    The daemon, started together with its database server, waits for it instead of failing;
    command-line tools (wait 0) say at once that it is unreachable.
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
