"""What every MTA harness shares: SMTP submission, log waits, queue waits, process checks."""

from __future__ import annotations

import os
import re
import shutil
import smtplib
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from types import TracebackType
from typing import Self

from .net import LOOPBACK, wait_until

# Where .ci/install-mta unpacks the MTAs that conflict with Postfix as packages
# (<cache>/<mta>/root); BOUNCED_<MTA>_ROOT overrides one MTA's root.
MTA_CACHE = Path(os.environ.get("BOUNCED_MTA_CACHE") or "/var/cache/bounced-test")

QUEUED_AS = re.compile(rb"(?:queued as |id=)([0-9A-Za-z-]+)")


@dataclass(frozen=True)
class Submission:
    """What the MTA answered to one submitted message."""

    queue_id: str | None
    refused: dict[str, tuple[int, str]] = field(default_factory=dict)


def sample_message(recipients: Sequence[str], subject: str) -> EmailMessage:
    """A small plain-text message as an application would send it."""
    msg = EmailMessage()
    msg["From"] = "Test application <app@app.example.test>"
    msg["To"] = ", ".join(recipients)
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain="app.example.test")
    msg.set_content("A message sent through the test MTA.\n")
    return msg


def submit(
    host: str, port: int, sender: str, recipients: Sequence[str], data: bytes,
) -> Submission:
    """One SMTP transaction; refused recipients are reported, not raised."""
    refused: dict[str, tuple[int, str]] = {}
    with smtplib.SMTP(host, port, local_hostname="app.test", timeout=30) as smtp:
        smtp.ehlo()
        code, reply = smtp.mail(sender)
        if code != 250:
            raise smtplib.SMTPSenderRefused(code, reply, sender)
        accepted = 0
        for rcpt in recipients:
            code, reply = smtp.rcpt(rcpt)
            if code == 250:
                accepted += 1
            else:
                refused[rcpt] = (code, reply.decode(errors="replace"))
        if not accepted:
            smtp.rset()
            return Submission(None, refused)
        code, reply = smtp.data(data)
        if code != 250:
            raise smtplib.SMTPDataError(code, reply)
    match = QUEUED_AS.search(reply)
    return Submission(match.group(1).decode() if match else None, refused)


def process_alive(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def pids_where(field_index: int, value: int) -> list[int]:
    """Processes whose /proc stat field (after the command name) equals ``value``.

    Field 1 is the parent pid, field 2 the process group.
    """
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[field_index] == str(value):
            found.append(int(stat.parent.name))
    return found


class MTAInstance:
    """Common API of the MTA harnesses; subclasses start/stop the server and read the queue.

    After ``start()``: ``host``/``port`` is the SMTP listener on 127.0.0.1 and ``root`` the
    instance's private directory (removed by ``stop()``).
    """

    name = "MTA"

    def __init__(self) -> None:
        self.host = LOOPBACK
        self.port = 0
        self.root: Path | None = None
        self.log_copy: Path | None = None
        # Prepended to the command that starts the server (e.g. world.private_resolver_argv
        # to give it a resolver of its own); empty: started as is.
        self.command_prefix: list[str] = []

    # -- to be provided by the MTA ---------------------------------------------------------

    @property
    def log_path(self) -> Path:
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def _stop_server(self) -> None:
        """Stop the MTA's processes (bounded), escalating to SIGKILL."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop the server, keep a copy of the log if asked, remove the private directory."""
        if self.root is None:
            return
        try:
            self._stop_server()
        finally:
            if self.log_copy is not None and self.log_path.exists():
                shutil.copyfile(self.log_path, self.log_copy)
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def flush(self) -> None:
        """Attempt every queued message now, ignoring retry times."""
        raise NotImplementedError

    def queue_count(self) -> int:
        """How many messages are in the queue."""
        raise NotImplementedError

    def processes(self) -> list[int]:
        """Live processes of the instance (its master or daemon and their children)."""
        raise NotImplementedError

    # -- shared ----------------------------------------------------------------------------

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def send(
        self,
        sender: str,
        recipients: Sequence[str],
        data: bytes | EmailMessage | None = None,
        subject: str = "bounced MTA test",
    ) -> Submission:
        """Submit one message over SMTP (a plain test message unless ``data`` is given)."""
        message = sample_message(recipients, subject) if data is None else data
        raw = message.as_bytes() if isinstance(message, EmailMessage) else message
        return submit(self.host, self.port, sender, recipients, raw)

    def log_text(self) -> str:
        """The whole log so far ('' before the first line)."""
        try:
            return self.log_path.read_text(errors="replace")
        except (OSError, RuntimeError):
            return ""

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the log, for failure messages."""
        return "\n".join(self.log_text().splitlines()[-lines:])

    def log_mark(self) -> int:
        """The current log length: pass it as ``since`` to wait only for newer lines."""
        return len(self.log_text())

    def find_log(self, pattern: str, since: int = 0) -> re.Match[str] | None:
        """The first match of the regex ``pattern`` in the log after offset ``since``."""
        return re.compile(pattern, re.MULTILINE).search(self.log_text(), since)

    def wait_for_log(self, pattern: str, timeout: float = 30.0, since: int = 0) -> re.Match[str]:
        """Wait (bounded) for a log line matching the regex ``pattern`` after ``since``."""
        return wait_until(lambda: self.find_log(pattern, since), timeout,
                          f"{self.name} log line /{pattern}/", detail=self.log_tail)

    def wait_queue_empty(self, timeout: float = 30.0) -> None:
        """Wait (bounded) until the queue holds no message at all."""
        wait_until(lambda: self.queue_count() == 0, timeout, f"an empty {self.name} queue",
                   interval=0.25, detail=self.log_tail)
