"""Small pieces the entry points share: the clock, key loading, the store, redaction."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

import structlog

from bounced.config import Settings
from bounced.exceptions import ConfigError, StoreNotFound, StoreUnavailable
from bounced.keys import DevKey, load_keyring
from bounced.loop import backoff
from bounced.store import Store, open_store
from bounced.verp import Verifier

log = structlog.get_logger("bounced.app")

STORE_RETRY_FIRST = 0.25  # seconds before trying an unreachable store again, doubling
STORE_RETRY_MAX = 5.0


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def redact(url: str) -> str:
    """A store URL without its password."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def make_verifier(settings: Settings, env: Mapping[str, str] | None = None,
                  *, dev_key: DevKey = "use") -> tuple[Verifier, str]:
    keyring, source = load_keyring(settings, env, dev_key=dev_key)
    verifier = Verifier(
        keyring, domain=settings.verp.domain, prefix=settings.verp.prefix,
        max_age_days=settings.verp.max_age_days, future_skew_days=settings.verp.future_skew_days,
    )
    return verifier, source


@dataclass(frozen=True)
class Preflight:
    """What the checks before binding yield: the verifier, the HTTP token, webhook secrets."""

    verifier: Verifier
    key_source: str
    http_token: str | None
    webhook_secrets: Mapping[str, bytes]


def preflight(settings: Settings, env: Mapping[str, str] | None = None, *,
              dev_key: DevKey) -> Preflight:
    """Every check ``bounced serve`` makes before it opens the store and binds its ports: the
    signing keys, the HTTP token, each webhook's secret, each command's program. ``serve``
    and ``check-config`` both call this (one list, nothing to drift apart); they differ in
    ``dev_key`` only: serve may generate a development key, check-config refuses one."""
    from bounced.actions import check_command, load_webhook_secret
    from bounced.http import load_token

    env = os.environ if env is None else env
    verifier, source = make_verifier(settings, env, dev_key=dev_key)
    token = load_token(settings.http, env) if settings.http.enabled else None
    secrets: dict[str, bytes] = {}
    for action in settings.actions:
        if action.type == "webhook":
            secrets[action.name] = load_webhook_secret(action, env)
        elif action.type == "command":
            check_command(action, env)
    return Preflight(verifier, source, token, secrets)


async def check_store(settings: Settings) -> str:
    """What ``check-config`` says about the store: opened if it exists (never created); where
    it would be created if not (its directory must be one bounced can create or write)."""
    from bounced.config import sqlite_path

    try:
        store = await open_ready_store(settings)
    except StoreNotFound:
        if not settings.store_url.startswith("sqlite:"):  # reachable, but empty
            return (f"{redact(settings.store_url)} (no schema yet: `bounced serve` or "
                    "`bounced migrate` creates it)")
        path = sqlite_path(settings.store_url).absolute()
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise ConfigError(f"[store] url: cannot create {path}: {parent} is not a "
                              "writable directory") from None
        return f"{redact(settings.store_url)} (not created yet: `bounced serve` creates it)"
    await store.close()
    return redact(settings.store_url)


async def open_ready_store(settings: Settings, wait: float = 0.0, *,
                           create: bool = False) -> Store:
    """Open the store, retrying for up to ``wait`` seconds while it cannot be reached.

    The daemon, started together with its database server, waits for it instead of failing;
    command-line tools (wait 0) say at once that it is unreachable. Only ``create`` (serve,
    migrate) makes a new store; otherwise one must exist where the configuration points.
    """
    if settings.store_url.startswith("sqlite:"):
        wait = 0.0  # an embedded file that cannot be opened will not come up by itself
    deadline = asyncio.get_running_loop().time() + wait
    failures = 0
    while True:
        store = open_store(settings.store_url)
        try:
            await store.open(create=create)
        except StoreUnavailable as exc:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise
            failures += 1
            delay = min(backoff(failures, STORE_RETRY_FIRST, STORE_RETRY_MAX), left)
            log.warning("store.unavailable", store=redact(settings.store_url), error=str(exc),
                        retry_in=round(delay, 2))
            await asyncio.sleep(delay)
            continue
        return store
