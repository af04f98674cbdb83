"""Shared test helpers: settings in a temp dir, an in-process daemon on an ephemeral port,
DSN builders, a subprocess daemon."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import os
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from email.utils import make_msgid
from pathlib import Path

from bounced.config import Settings, load_settings
from bounced.config.keys import make_verifier
from bounced.intake.smtp import BounceHandler
from bounced.model import utcnow
from bounced.queue.worker import Worker
from bounced.runtime.daemon import Daemon as BouncedDaemon
from bounced.store import Store
from bounced.verp import Signer

DOMAIN = "bounces.example.test"
KEY_LINE = "k1 c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS0zMmJ5dGVzISE="
ROOT = Path(__file__).resolve().parent.parent


def _bounced_command() -> str:
    """The `bounced` command of the interpreter running the tests, whatever its virtual
    environment: the script installed beside it (not resolved: a venv's python is a link),
    else one written for it that runs this checkout's bounced (a run without installing)."""
    installed = Path(sys.executable).with_name("bounced")
    if installed.is_file():
        return str(installed)
    script = Path(tempfile.gettempdir()) / f"bounced-tests-{os.getuid()}" / "bounced"
    script.parent.mkdir(mode=0o700, exist_ok=True)
    script.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(ROOT)!r})\n"
                      "from bounced.cli import main\nsys.exit(main())\n")
    script.chmod(0o755)
    return str(script)


BOUNCED = _bounced_command()


def write_keys(path: Path, text: str = KEY_LINE) -> Path:
    path.write_text(text + "\n")
    path.chmod(0o600)
    return path


def base_env(tmp: Path, **extra: str) -> dict[str, str]:
    keys = write_keys(tmp / "keys")
    env = {
        "BOUNCED_STORE_URL": f"sqlite:///{tmp / 'bounced.db'}",
        "BOUNCED_STORE_STATE_DIR": str(tmp / "state"),
        "BOUNCED_VERP_KEYS_FILE": str(keys),
        "BOUNCED_VERP_DOMAIN": DOMAIN,
        "BOUNCED_SMTP_LISTEN": "127.0.0.1:0",
        "BOUNCED_HTTP_LISTEN": "127.0.0.1:0",
        "BOUNCED_OUTBOX_POLL_INTERVAL": "0.2",
        "BOUNCED_WORKER_POLL_INTERVAL": "0.2",
        "BOUNCED_WORKER_RETRY_BASE_SECONDS": "0.2",
    }
    env.update(extra)
    return env


def make_settings(tmp: Path, store_url: str | None = None, **extra: str) -> Settings:
    if store_url is not None:
        extra["BOUNCED_STORE_URL"] = store_url
    return load_settings(env=base_env(tmp, **extra))


def signer(settings: Settings) -> Signer:
    verifier, _ = make_verifier(settings)
    return Signer(verifier.keyring, domain=settings.verp.domain, prefix=settings.verp.prefix)


def days_ago(n: int) -> dt.date:
    return utcnow().date() - dt.timedelta(days=n)


def dsn(
    recipient: str,
    status: str = "5.1.1",
    action: str = "failed",
    diagnostic: str | None = None,
    return_path: str = "",
    reporting_mta: str = "mx.example.net",
) -> bytes:
    """An RFC 3464 delivery status notification for one recipient."""
    code = "550" if status.startswith("5") else "452"
    diagnostic = diagnostic or f"{code} {status} <{recipient}>: Recipient address rejected"
    boundary = "=_dsn_boundary"
    text = f"""\
Return-Path: <>
From: MAILER-DAEMON@{reporting_mta} (Mail Delivery System)
To: {return_path or 'bounce@example.org'}
Subject: Undelivered Mail Returned to Sender
Message-ID: {make_msgid(domain=reporting_mta)}
Date: Mon, 02 Nov 2026 10:00:00 +0000
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"

--{boundary}
Content-Type: text/plain; charset=us-ascii

This is the mail system at host {reporting_mta}.
I'm sorry to have to inform you that your message could not be delivered.

<{recipient}>: host mx.example.net said: {diagnostic}

--{boundary}
Content-Type: message/delivery-status

Reporting-MTA: dns; {reporting_mta}
Arrival-Date: Mon, 02 Nov 2026 09:59:59 +0000

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822; {recipient}
Action: {action}
Status: {status}
Remote-MTA: dns; mx.example.net
Diagnostic-Code: smtp; {diagnostic}

--{boundary}
Content-Type: text/rfc822-headers

From: app@example.org
To: {recipient}
Subject: Your weekly digest
Message-ID: <digest-1@example.org>

--{boundary}--
"""
    return text.replace("\n", "\r\n").encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def smtp_send(port: int, rcpts: list[str], data: bytes, mail_from: str = "") -> dict[str, object]:
    """Send over real SMTP; return {rcpt: (code, msg)} refusals plus the DATA reply under 'DATA'."""
    result: dict[str, object] = {}
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo("mta.test")
        code, msg = client.mail(mail_from)
        assert code == 250, (code, msg)
        accepted = []
        for rcpt in rcpts:
            code, msg = client.rcpt(rcpt)
            result[rcpt] = (code, msg.decode())
            if code == 250:
                accepted.append(rcpt)
        if accepted:
            code, msg = client.data(data)
            result["DATA"] = (code, msg.decode())
        else:
            client.rset()
    return result


@dataclass
class Daemon:
    settings: Settings
    store: Store
    worker: Worker
    handler: BounceHandler
    port: int
    signer: Signer
    daemon: BouncedDaemon
    http_port: int | None


@asynccontextmanager
async def running_daemon(
    settings: Settings, *, worker: bool = True, own_process: bool = False
) -> AsyncIterator[Daemon]:
    """The whole daemon on ephemeral 127.0.0.1 ports, in this event loop (the worker too,
    unless ``own_process``: then in a child process, as ``bounced serve`` runs it)."""
    settings = dataclasses.replace(settings, worker=dataclasses.replace(
        settings.worker, enabled=worker, own_process=own_process))
    daemon = BouncedDaemon(settings)
    await daemon.start()
    try:
        yield Daemon(settings, daemon.store, daemon.worker, daemon.handler,
                     daemon.smtp_address[1],
                     Signer(daemon.verifier.keyring, domain=settings.verp.domain,
                            prefix=settings.verp.prefix),
                     daemon, daemon.http_address[1] if daemon.http_address else None)
    finally:
        await daemon.stop()


async def asend(port: int, rcpts: list[str], data: bytes) -> dict[str, object]:
    return await asyncio.to_thread(smtp_send, port, rcpts, data)


class DaemonProcess:
    """``bounced serve`` as a real subprocess (for signals, SIGKILL and systemd tests)."""

    def __init__(self, env: Mapping[str, str], log_path: Path) -> None:
        self.env = {**os.environ, **env}
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = int(env["BOUNCED_SMTP_LISTEN"].rsplit(":", 1)[1])

    def start(self, timeout: float = 20.0) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bounced.cli", "serve"], env=self.env, stdout=log, stderr=log,
            cwd=ROOT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited: {self.log_path.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(100).startswith(b"220"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("daemon did not start in time")

    def kill(self, sig: int = signal.SIGKILL, timeout: float = 20.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def children(self) -> list[int]:
        """PIDs of the daemon's child processes (its worker process, multiprocessing's
        resource tracker), from /proc."""
        assert self.proc is not None
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        try:
            return [int(p) for p in path.read_text().split()]
        except OSError:
            return []

    def kill_all(self, timeout: float = 20.0) -> int:
        """SIGKILL the daemon and its children at once, as systemd does to a failed unit's
        control group."""
        children = self.children()
        code = self.kill(signal.SIGKILL, timeout)
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return code

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
