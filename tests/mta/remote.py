"""aiosmtpd servers on 127.0.0.1 for MTA tests, each in its own thread and event loop.

- ``RemoteServer``: the "remote" domain. It answers RCPT TO by the recipient's local part:
  ``unknown*`` -> 550 5.1.1, ``blocked*`` -> 550 5.7.1, ``full*`` -> 452 4.2.2 (temporary,
  every time, so the MTA retries until its queue lifetime runs out); anything else is
  accepted and recorded.
- ``CaptureServer``: a stand-in for bounced on the bounce-domain port. It accepts every
  recipient (or those ``accept`` allows) and records each message with its envelope.

Both run in a background thread, so synchronous tests and tests running their own event
loop can use them alike. Ports are chosen by the kernel (port 0), never guessed.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from email.policy import compat32
from types import TracebackType
from typing import Any, Self

from aiosmtpd.smtp import SMTP, Envelope, Session

from .net import LOOPBACK

OK = "250 2.0.0 OK"
ACCEPTED_RCPT = "250 2.1.5 OK"
USER_UNKNOWN = "550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown"
BLOCKED = "550 5.7.1 <{rcpt}>: Recipient address rejected: blocked by policy"
MAILBOX_FULL = "452 4.2.2 <{rcpt}>: Recipient address rejected: Mailbox full"
REMOTE_HOSTNAME = "mx.remote.test"
CAPTURE_HOSTNAME = "bounced.standin.test"


@dataclass(frozen=True)
class Received:
    """One message as an SMTP server saw it: envelope plus raw content."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes

    @property
    def message(self) -> Message:
        """The content parsed with the compat32 policy."""
        return email.message_from_bytes(self.data, policy=compat32)


@dataclass(frozen=True)
class RcptAttempt:
    """One RCPT TO the remote server answered, with the reply code it gave."""

    address: str
    code: int


def remote_reply(address: str) -> str | None:
    """The rejection the remote domain gives ``address``, or None when it accepts it."""
    local = address.rsplit("@", 1)[0].lower()
    if local.startswith("unknown"):
        return USER_UNKNOWN.format(rcpt=address)
    if local.startswith("blocked"):
        return BLOCKED.format(rcpt=address)
    if local.startswith("full"):
        return MAILBOX_FULL.format(rcpt=address)
    return None


@dataclass
class _Recorder:
    """Thread-safe record of messages and RCPT attempts, with bounded waits."""

    messages: list[Received] = field(default_factory=list)
    attempts: list[RcptAttempt] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def add_message(self, item: Received) -> None:
        with self.cond:
            self.messages.append(item)
            self.cond.notify_all()

    def add_attempt(self, item: RcptAttempt) -> None:
        with self.cond:
            self.attempts.append(item)
            self.cond.notify_all()


class _Handler:
    """aiosmtpd handler: RCPT decided by ``decide`` (None = accept), DATA recorded."""

    def __init__(self, recorder: _Recorder, decide: Callable[[str], str | None]) -> None:
        self.recorder = recorder
        self.decide = decide

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str,
        rcpt_options: list[str],
    ) -> str:
        reply = self.decide(address)
        code = int(reply[:3]) if reply else 250
        self.recorder.add_attempt(RcptAttempt(address, code))
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return ACCEPTED_RCPT

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        self.recorder.add_message(
            Received(str(envelope.mail_from), tuple(envelope.rcpt_tos), bytes(content))
        )
        return OK


class SMTPServerThread:
    """An aiosmtpd server on 127.0.0.1 with a kernel-chosen port, run in a daemon thread."""

    def __init__(self, decide: Callable[[str], str | None], hostname: str) -> None:
        self.recorder = _Recorder()
        self.handler = _Handler(self.recorder, decide)
        self.hostname = hostname
        self.host = LOOPBACK
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> None:
        """Start serving; returns once the port is bound."""
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name=f"smtp-{self.hostname}", daemon=True
        )
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError(f"{self.hostname}: server did not start in {timeout}s")
        if self._error is not None:
            raise RuntimeError(f"{self.hostname}: server failed to start") from self._error

    def stop(self, timeout: float = 10.0) -> None:
        """Close the listener and every open session, then join the thread (bounded)."""
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
            if thread.is_alive():
                raise TimeoutError(f"{self.hostname}: server thread did not stop in {timeout}s")
        self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        server: asyncio.AbstractServer | None = None
        try:
            server = loop.run_until_complete(
                loop.create_server(self._protocol, host=self.host, port=0)
            )
            self.port = int(server.sockets[0].getsockname()[1])
        except BaseException as exc:
            self._error = exc
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            server.close()
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            with contextlib.suppress(Exception):
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(server.wait_closed())
            loop.close()

    def _protocol(self) -> Any:
        return SMTP(self.handler, hostname=self.hostname, ident="test-smtp", timeout=30)

    # -- observations ----------------------------------------------------------------------

    @property
    def messages(self) -> list[Received]:
        """A snapshot of the messages received so far."""
        with self.recorder.cond:
            return list(self.recorder.messages)

    @property
    def attempts(self) -> list[RcptAttempt]:
        """A snapshot of every RCPT TO answered so far."""
        with self.recorder.cond:
            return list(self.recorder.attempts)

    def wait_for(
        self, count: int = 1, timeout: float = 30.0,
        where: Callable[[Received], bool] | None = None,
    ) -> list[Received]:
        """Wait until ``count`` received messages (matching ``where``) exist; return them."""
        def matching() -> list[Received]:
            return [m for m in self.recorder.messages if where is None or where(m)]

        with self.recorder.cond:
            if not self.recorder.cond.wait_for(lambda: len(matching()) >= count, timeout):
                got = [(m.mail_from, m.rcpt_tos) for m in self.recorder.messages]
                raise TimeoutError(
                    f"{self.hostname}: {count} matching message(s) not received in "
                    f"{timeout}s; received so far: {got}"
                )
            return matching()

    def wait_for_attempts(self, address: str, count: int = 1, timeout: float = 30.0) -> None:
        """Wait until ``address`` has been offered in RCPT TO ``count`` times."""
        def seen() -> int:
            return sum(1 for a in self.recorder.attempts if a.address == address)

        with self.recorder.cond:
            if not self.recorder.cond.wait_for(lambda: seen() >= count, timeout):
                raise TimeoutError(
                    f"{self.hostname}: {address} offered {seen()} time(s), "
                    f"wanted {count} within {timeout}s"
                )


class RemoteServer(SMTPServerThread):
    """The "remote" domain: rejects unknown*/blocked*/full* recipients, accepts the rest."""

    def __init__(self, hostname: str = REMOTE_HOSTNAME) -> None:
        super().__init__(remote_reply, hostname)


class CaptureServer(SMTPServerThread):
    """A stand-in for bounced: accepts recipients ``accept`` allows (all by default)."""

    def __init__(
        self, accept: Callable[[str], bool] | None = None, hostname: str = CAPTURE_HOSTNAME,
    ) -> None:
        allow = accept or (lambda _address: True)

        def decide(address: str) -> str | None:
            return None if allow(address) else f"550 5.1.1 <{address}>: not a bounce address"

        super().__init__(decide, hostname)
