"""What the matrix needs from an MTA, and the adapters for Postfix and Exim (the other MTAs
have a module each: sendmail, opensmtpd, courier, dma, chasquid).

An adapter starts a private instance wired into a ``world.World`` (its resolver is the
world's DNS, its remote deliveries go to the world's port, its queue lifetime is
``LIFETIME`` seconds and its delay warning ``DELAY_WARNING``), accepts submissions, and
says which scenario features it lacks and why (``lacks``).
"""

from __future__ import annotations

import smtplib
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from . import exim, postfix
from .net import LOOPBACK
from .scenarios import DSN, SMTPUTF8_F
from .world import World, private_resolver_argv

# Queue times of every MTA of the matrix (seconds): a message that keeps failing
# temporarily is returned after LIFETIME; a delay warning goes out after DELAY_WARNING.
LIFETIME = 20
DELAY_WARNING = 6
RETRY = 2


class SubmitError(RuntimeError):
    """The MTA refused a submission (the scenario then has no bounce)."""


class MatrixMTA:
    """Base of the matrix adapters: subclasses set ``kind``/``label`` and implement the rest."""

    kind = ""
    label = ""
    # feature -> why this MTA cannot do it (the scenarios needing it are no cells of the
    # matrix, listed with that reason: matrix.unsupported_cells)
    lacks: ClassVar[dict[str, str]] = {}

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.host = LOOPBACK
        self.port = 0
        self.detected_lacks: dict[str, str] = {}

    def missing_reason(self) -> str | None:
        """Why this MTA cannot run here, or None."""
        raise NotImplementedError

    def version(self) -> str:
        """The upstream version (as in the corpus file names)."""
        raise NotImplementedError

    def start(self, world: World) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def log_tail(self) -> str:
        return ""

    def all_lacks(self) -> dict[str, str]:
        return {**self.lacks, **self.detected_lacks}

    def volatile(self) -> dict[str, str]:
        """Strings of this run to replace in corpus files (besides the world's)."""
        return {}

    queue_id_patterns: tuple[str, ...] = ()

    # -- submission over SMTP (the default) ----------------------------------------------

    def probe_ehlo(self) -> None:
        """Record DSN / SMTPUTF8 as lacking when the listener does not advertise them."""
        with smtplib.SMTP(self.host, self.port, local_hostname="app.test", timeout=30) as smtp:
            smtp.ehlo()
            if not smtp.has_extn("dsn") and DSN not in self.lacks:
                self.detected_lacks[DSN] = f"{self.label} does not advertise DSN (RFC 3461)"
            if not smtp.has_extn("smtputf8") and SMTPUTF8_F not in self.lacks:
                self.detected_lacks[SMTPUTF8_F] = f"{self.label} does not advertise SMTPUTF8"

    def submit(self, sender: str, recipients: Sequence[str], data: bytes,
               mail_options: Sequence[str] = (), rcpt_options: Sequence[str] = ()) -> None:
        """One SMTP transaction; raises SubmitError unless every recipient is accepted."""
        with smtplib.SMTP(self.host, self.port, local_hostname="app.test", timeout=30) as smtp:
            smtp.ehlo()
            code, reply = smtp.mail(sender, list(mail_options))
            if code != 250:
                raise SubmitError(f"MAIL FROM refused: {code} {reply!r}")
            for rcpt in recipients:
                code, reply = smtp.rcpt(rcpt, list(rcpt_options))
                if code not in (250, 251):
                    raise SubmitError(f"RCPT TO {rcpt} refused: {code} {reply!r}")
            code, reply = smtp.data(data)
            if code != 250:
                raise SubmitError(f"DATA refused: {code} {reply!r}")


class PostfixMatrix(MatrixMTA):
    """Postfix (the installed package), a private ``postfix -c`` instance."""

    kind = "postfix"
    label = "Postfix"
    queue_id_patterns = (r"\b[0-9A-F]{8,12}\b",)

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.instance: postfix.PostfixInstance | None = None

    def missing_reason(self) -> str | None:
        return postfix.missing_reason()

    def version(self) -> str:
        out = subprocess.run(["/usr/sbin/postconf", "-h", "mail_version"], capture_output=True,
                             text=True, check=False, timeout=10).stdout.strip()
        return out or "unknown"

    def start(self, world: World) -> None:
        timing = postfix.QueueTiming(
            queue_run_delay=f"{RETRY}s", minimal_backoff_time=f"{RETRY}s",
            maximal_backoff_time=f"{RETRY * 2}s", delay_warning_time=f"{DELAY_WARNING}s",
            maximal_queue_lifetime=f"{LIFETIME}s", bounce_queue_lifetime=f"{LIFETIME}s")
        self.instance = postfix.PostfixInstance(
            bounce_port=world.port, bounce_domain=world.bounce_domain, timing=timing,
            base_dir=self.workdir, log_copy=self.workdir / "postfix.log",
            extra_main_cf={
                # remote deliveries by MX, through the world's DNS, to the world's port
                "smtp_dns_support_level": "enabled", "smtp_host_lookup": "dns",
                "smtp_tcp_port": str(world.port), "default_transport": "smtp",
                "relay_transport": "smtp", "smtputf8_enable": "yes",
                "smtp_connect_timeout": "5s",
            })
        self.instance.command_prefix = private_resolver_argv(world.resolv_conf)
        self.instance.start()
        self.host, self.port = self.instance.host, self.instance.port
        self.probe_ehlo()

    def stop(self) -> None:
        if self.instance is not None:
            self.instance.stop()

    def log_tail(self) -> str:
        if self.instance is not None and self.instance.root is not None:
            return self.instance.log_tail()
        log = self.workdir / "postfix.log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-40:]) \
            if log.exists() else ""


class EximMatrix(MatrixMTA):
    """Exim (exim4-daemon-light unpacked), a private ``exim4 -C -bdf`` daemon."""

    kind = "exim"
    label = "Exim"
    queue_id_patterns = (r"\b[0-9A-Za-z]{6}-[0-9A-Za-z]{6,11}-[0-9A-Za-z]{2,4}\b",)

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.instance: exim.EximInstance | None = None

    def missing_reason(self) -> str | None:
        return exim.missing_reason()

    def version(self) -> str:
        out = subprocess.run([str(exim.exim_binary()), "-C", "/dev/null", "-bV"],
                             capture_output=True, text=True, check=False, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Exim version "):
                return line.split()[2]
        return "unknown"

    def start(self, world: World) -> None:
        timing = exim.EximTiming(queue_interval=f"{RETRY}s",
                                 delay_warning=f"{DELAY_WARNING}s:1h",
                                 retry=f"F,{LIFETIME}s,{RETRY}s", forced=True)
        self.instance = exim.EximInstance(
            bounce_port=world.port, bounce_domain=world.bounce_domain, timing=timing,
            base_dir=self.workdir, log_copy=self.workdir / "exim.log",
            extra_main="dsn_advertise_hosts = *\nsmtputf8_advertise_hosts = *\n",
            extra_routers=("dnslookup:\n  driver = dnslookup\n  transport = world_smtp\n"
                           "  self = send\n  no_more\n"),
            extra_transports=(f"world_smtp:\n  driver = smtp\n  port = {world.port}\n"
                              "  allow_localhost\n  connect_timeout = 5s\n"
                              "  hosts_avoid_tls = *\n"))
        self.instance.command_prefix = private_resolver_argv(world.resolv_conf)
        self.instance.start()
        self.host, self.port = self.instance.host, self.instance.port
        self.probe_ehlo()

    def stop(self) -> None:
        if self.instance is not None:
            self.instance.stop()

    def log_tail(self) -> str:
        if self.instance is not None and self.instance.root is not None:
            return self.instance.log_tail()
        return ""

