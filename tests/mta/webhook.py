"""The application's side of bounced's webhooks, for end-to-end tests: an aiohttp server on
127.0.0.1 that records every request and checks its Standard Webhooks signature on its own
(not with bounced's code), in the test's event loop.

    async with WebhookReceiver(secret) as hook:
        ...  # configure an [actions.NAME] webhook with url=hook.url
        [call] = await hook.wait_for(1, within=20)
        assert call.valid and call.json["type"] == "address.unconfirmed"
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from .net import LOOPBACK


@dataclass(frozen=True)
class WebhookCall:
    """One request the receiver got: headers (lowercase names), body, signature verdict."""

    headers: dict[str, str]
    body: bytes
    valid: bool

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def signing_key(secret: str) -> bytes:
    """The HMAC key of a secret: ``whsec_<base64>`` decoded, anything else as UTF-8."""
    if secret.startswith("whsec_"):
        return base64.b64decode(secret.removeprefix("whsec_"))
    return secret.encode()


def signature_valid(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """Standard Webhooks: ``v1,`` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))."""
    msg_id, timestamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
    if not msg_id or not timestamp.isdigit():
        return False
    digest = hmac.new(signing_key(secret), f"{msg_id}.{timestamp}.".encode() + body,
                      hashlib.sha256).digest()
    expected = "v1," + base64.b64encode(digest).decode()
    offered = headers.get("webhook-signature", "").split()
    return any(hmac.compare_digest(expected, sig) for sig in offered)


class WebhookReceiver:
    """Answers 204 to every POST on ``/bounced`` and records it."""

    path = "/bounced"

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.calls: list[WebhookCall] = []
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._changed = asyncio.Condition()

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}{self.path}"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        async with self._changed:
            self.calls.append(WebhookCall(headers, body,
                                          signature_valid(self.secret, headers, body)))
            self._changed.notify_all()
        return web.Response(status=204)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post(self.path, self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, LOOPBACK, 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def wait_for(self, count: int, within: float) -> list[WebhookCall]:
        """Wait (bounded) until at least ``count`` requests arrived; return all of them."""
        async with self._changed:
            try:
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: len(self.calls) >= count), within)
            except TimeoutError:
                raise TimeoutError(f"{count} webhook call(s) not received in {within}s; "
                                   f"got {len(self.calls)}") from None
            return list(self.calls)
