"""What an event is delivered to: a signed webhook, a command, the log, or syslog.

An action type is one class here, built from its ``[actions.NAME]`` settings by its
``from_settings`` and registered in ``ACTIONS`` under the name of its ``type``; its settings
are fields of ``bounced.config.ActionSettings`` (checked where the settings are read).

Webhooks are signed as the Standard Webhooks convention does: headers ``webhook-id`` (the
event id, stable across retries), ``webhook-timestamp`` (Unix seconds) and
``webhook-signature`` = ``v1,`` + base64(HMAC-SHA256(secret, "{id}.{timestamp}.{body}")).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import aiohttp
import structlog

from bounced.config import SYSLOG_FACILITIES, ActionSettings, parse_listen
from bounced.config.secrets import load_secret
from bounced.exceptions import BouncedError, ConfigError
from bounced.model import Event

log = structlog.get_logger("bounced.outbox.actions")


class DeliveryError(BouncedError):
    """An action did not take the event; it will be retried."""


class Action(Protocol):
    name: str
    events: tuple[str, ...]
    timeout: float  # seconds one attempt may take

    async def deliver(self, event: Event, body: bytes) -> None:
        """Deliver the event's JSON body or raise DeliveryError."""


@dataclass(frozen=True)
class Context:
    """What an action may need of the daemon: its environment, the HTTP client session (when
    a webhook is configured), the webhooks' secrets (loaded before; else loaded here)."""

    env: Mapping[str, str]
    session: aiohttp.ClientSession | None = None
    secrets: Mapping[str, bytes] | None = None


def event_body(event: Event) -> bytes:
    return json.dumps(event.payload, sort_keys=True, separators=(",", ":")).encode()


def webhook_secret(text: str) -> bytes:
    """The signing key: ``whsec_<base64>`` (Standard Webhooks) or any other string's bytes."""
    text = text.strip()
    if text.startswith("whsec_"):
        try:
            key = base64.b64decode(text.removeprefix("whsec_"), validate=True)
        except ValueError:
            raise ConfigError("webhook secret: whsec_ prefix but not valid base64") from None
        if len(key) < 16:
            raise ConfigError("webhook secret: at least 16 bytes after whsec_")
        return key
    if len(text) < 16:
        raise ConfigError("webhook secret: at least 16 characters")
    return text.encode()


def sign(secret: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


class WebhookAction:
    """An HTTP POST of the event's JSON, signed; 2xx means delivered."""

    @classmethod
    def from_settings(cls, settings: ActionSettings, ctx: Context) -> WebhookAction:
        assert ctx.session is not None  # the daemon opens one when a webhook is configured
        secret = (ctx.secrets[settings.name] if ctx.secrets is not None
                  else load_webhook_secret(settings, ctx.env))
        return cls(settings, secret, ctx.session)

    def __init__(self, settings: ActionSettings, secret: bytes,
                 session: aiohttp.ClientSession) -> None:
        self.name = settings.name
        self.events = settings.events
        self.url = settings.url
        self.timeout = settings.timeout
        self._client_timeout = aiohttp.ClientTimeout(total=settings.timeout)
        self.secret = secret
        self.session = session

    async def deliver(self, event: Event, body: bytes) -> None:
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "user-agent": "bounced",
            "webhook-id": event.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(self.secret, event.id, timestamp, body),
        }
        try:
            async with self.session.post(self.url, data=body, headers=headers,
                                         timeout=self._client_timeout,
                                         allow_redirects=False) as resp:
                await resp.read()
                if not 200 <= resp.status < 300:
                    raise DeliveryError(f"HTTP {resp.status} from {self.url}")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise DeliveryError(f"{self.url}: {exc.__class__.__name__}: {exc}") from exc


# What a command action takes from the daemon's environment: enough to find programs and to
# pick a locale and a time zone. Nothing else: the daemon's environment may hold the store's
# URL with its password (BOUNCED_STORE_URL), PGPASSWORD, signing keys, tokens and webhook
# secrets, and a command has no business with any of them. An action's pass_env adds named
# variables on purpose.
COMMAND_BASE_ENV = ("PATH", "HOME", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_MESSAGES",
                    "TZ", "TMPDIR")
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


def command_environment(env: Mapping[str, str], pass_env: Sequence[str] = ()
                        ) -> dict[str, str]:
    """The environment a command action runs with: an explicit, minimal one."""
    result = {k: env[k] for k in (*COMMAND_BASE_ENV, *pass_env) if k in env}
    result.setdefault("PATH", DEFAULT_PATH)
    return result


def check_command(action: ActionSettings, env: Mapping[str, str]) -> None:
    """ConfigError unless the action's program exists and may be run (looked up in the PATH
    it will run with)."""
    program = action.command[0]
    path = command_environment(env, action.pass_env)["PATH"]
    if shutil.which(program, path=path) is None:
        where = f"[actions.{action.name}] command"
        if "/" in program:
            raise ConfigError(f"{where}: {program}: no such executable file")
        raise ConfigError(f"{where}: {program!r} not found in PATH ({path})")


class CommandAction:
    """Runs a program (no shell) with the event's JSON on stdin; exit 0 means delivered."""

    @classmethod
    def from_settings(cls, settings: ActionSettings, ctx: Context) -> CommandAction:
        return cls(settings, ctx.env)

    def __init__(self, settings: ActionSettings, env: Mapping[str, str] | None = None) -> None:
        self.name = settings.name
        self.events = settings.events
        self.command = settings.command
        self.timeout = settings.timeout
        self.env = command_environment(os.environ if env is None else env, settings.pass_env)

    async def deliver(self, event: Event, body: bytes) -> None:
        env = {**self.env, "BOUNCED_EVENT_ID": event.id, "BOUNCED_EVENT_TYPE": event.type}
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env=env, start_new_session=True,
            )
        except OSError as exc:
            raise DeliveryError(f"cannot run {self.command[0]}: {exc.strerror}") from exc
        try:
            _, err = await asyncio.wait_for(proc.communicate(body), self.timeout)
        except TimeoutError:
            _kill_group(proc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 5)
            raise DeliveryError(f"{self.command[0]} timed out after {self.timeout:g} s") from None
        except asyncio.CancelledError:  # the daemon is stopping: leave nothing running
            _kill_group(proc)
            raise
        if proc.returncode != 0:
            detail = err.decode("utf-8", "replace").strip()[-300:]
            raise DeliveryError(f"{self.command[0]} exited {proc.returncode}: {detail}")


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    """Kill the command and whatever it started: a child left holding the command's pipes
    would otherwise keep the delivery waiting long past its timeout."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # start_new_session: the group is the command's


class LogAction:
    """The event in the log only."""

    @classmethod
    def from_settings(cls, settings: ActionSettings, ctx: Context) -> LogAction:
        return cls(settings)

    def __init__(self, settings: ActionSettings) -> None:
        self.name = settings.name
        self.events = settings.events
        self.timeout = settings.timeout

    async def deliver(self, event: Event, body: bytes) -> None:
        log.info("event.delivered", action=self.name, event_id=event.id, type=event.type,
                 subject=event.subject, fingerprint=event.fingerprint,
                 rule=event.payload.get("rule"))


def load_webhook_secret(action: ActionSettings, env: Mapping[str, str]) -> bytes:
    """A webhook's secret: ``secret_file``, $BOUNCED_ACTION_<NAME>_SECRET, or the systemd
    credential ``webhook-<name>``."""
    env_name = f"BOUNCED_ACTION_{action.name.upper().replace('-', '_')}_SECRET"
    where = f"[actions.{action.name}]"
    found = load_secret(f"{where} secret_file", action.secret_file, env_name,
                        f"webhook-{action.name}", env)
    if found is not None:
        return webhook_secret(found[0])
    raise ConfigError(f"{where}: a webhook needs a secret: secret_file, ${env_name} or the "
                      f"credential webhook-{action.name}")


class SyslogAction:
    """The event to syslog: one datagram per event (RFC 3164's format, which rsyslog,
    syslog-ng and journald's /dev/log all read), to a local socket or over UDP: the event's
    type and id, then its JSON. Severity notice; warning for a tripped breaker. A datagram
    sent is delivered (syslog acknowledges nothing); a socket that is missing or refuses is
    retried."""

    @classmethod
    def from_settings(cls, settings: ActionSettings, ctx: Context) -> SyslogAction:
        return cls(settings)

    def __init__(self, settings: ActionSettings) -> None:
        self.name = settings.name
        self.events = settings.events
        self.timeout = settings.timeout
        self.address = settings.address
        self.facility = SYSLOG_FACILITIES[settings.facility]
        self.hostname = socket.gethostname().split(".")[0] or "-"

    def message(self, event: Event, body: bytes, now: float | None = None) -> bytes:
        """The datagram: <PRI>TIMESTAMP HOSTNAME bounced[PID]: TYPE ID JSON."""
        severity = SYSLOG_WARNING if event.type == "breaker.tripped" else SYSLOG_NOTICE
        stamp = time.strftime("%b %d %H:%M:%S", time.localtime(now))
        if stamp[4] == "0":  # RFC 3164 writes the day with a space, not a zero: "Mar  2"
            stamp = f"{stamp[:4]} {stamp[5:]}"
        head = (f"<{self.facility * 8 + severity}>{stamp} {self.hostname} "
                f"bounced[{os.getpid()}]: {event.type} {event.id} ")
        return head.encode() + body

    async def deliver(self, event: Event, body: bytes) -> None:
        datagram = self.message(event, body)
        try:
            if self.address.startswith("udp://"):
                host, port = parse_listen(self.address.removeprefix("udp://"))
                family, kind, proto, _, target = (await asyncio.get_running_loop().getaddrinfo(
                    host, port, type=socket.SOCK_DGRAM))[0]
                with socket.socket(family, kind, proto) as sock:
                    sock.setblocking(False)  # a full buffer is an error to retry, not a wait
                    sock.sendto(datagram, target)
            else:
                with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                    sock.setblocking(False)
                    sock.sendto(datagram, self.address)
        except OSError as exc:
            raise DeliveryError(f"syslog {self.address}: {exc.strerror or exc}") from exc


SYSLOG_WARNING = 4
SYSLOG_NOTICE = 5

# Every action type by the name its settings give as ``type`` (bounced.config.ACTION_TYPES).
ACTIONS: dict[str, type[WebhookAction | CommandAction | LogAction | SyslogAction]] = {
    "webhook": WebhookAction, "command": CommandAction, "log": LogAction, "syslog": SyslogAction,
}


def build_actions(settings: tuple[ActionSettings, ...], env: Mapping[str, str],
                  session: aiohttp.ClientSession | None,
                  secrets: Mapping[str, bytes] | None = None) -> list[Action]:
    """The configured actions; ``secrets`` are the webhooks' (loaded here when not given)."""
    ctx = Context(env, session, secrets)
    return [ACTIONS[a.type].from_settings(a, ctx) for a in settings]
