"""What ``bounced serve`` checks before it binds, and what ``check-config`` reports of it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from bounced.config import Settings, redact
from bounced.config.keys import DevKey, make_verifier
from bounced.exceptions import ConfigError, SchemaMismatch, StoreNotFound
from bounced.store import open_ready_store
from bounced.verp import Verifier


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
    from bounced.api.server import load_token
    from bounced.outbox.actions import check_command, load_webhook_secret

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
    except SchemaMismatch as exc:
        if exc.found > exc.needed:
            raise  # serve refuses a newer bounced's schema too
        return (f"{redact(settings.store_url)} (schema at {exc.found}: `bounced serve` or "
                f"`bounced migrate` brings it to {exc.needed})")
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
