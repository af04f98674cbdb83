"""dma (the DragonFly Mail Agent) for the MTA matrix: Debian's package unpacked (``dpkg -x``)
into ``/var/cache/bounced-test/dma/root`` by ``.ci/install-mta``.

dma has no SMTP listener: mail is submitted as with sendmail, ``dma -f SENDER RCPT... <
message``; it queues the message and a child delivers it (and retries) in the background.
Its configuration path (/etc/dma/dma.conf) is compiled in, so every submission runs in a
private mount namespace where /etc is an overlay of the system's /etc and a directory of
the instance (dma.conf, the world's resolv.conf): the system's /etc is only read. dma
delivers by MX to port 25 (its PORT setting applies to a smarthost only), where the world
also listens on its MX address; its UTS namespace has its own host name.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from .adapters import MatrixMTA, SubmitError
from .base import MTA_CACHE, pids_where, process_alive
from .scenarios import DELAY, DSN, EXPIRY, NULLMX, SMTPUTF8_F
from .world import World

ROOT = Path(os.environ.get("BOUNCED_DMA_ROOT") or MTA_CACHE / "dma" / "root")
BINARY = ROOT / "usr" / "sbin" / "dma"
HOSTNAME = "dma.test"
MARKER = "BOUNCED_MATRIX_DMA"  # in each submission's environment: finds the delivery children


def overlay_argv(upper: Path, work: Path, hostname: str) -> list[str]:
    """A private mount + UTS namespace whose /etc is ``upper`` laid over the system's /etc."""
    script = (f'mount -t overlay overlay -o "lowerdir=/etc,upperdir={upper},workdir={work}" '
              f'/etc && hostname {hostname} && exec "$@"')
    return ["unshare", "--mount", "--uts", "--propagation", "private", "--", "/bin/sh", "-c",
            script, "sh"]


class DmaMatrix(MatrixMTA):
    kind = "dma"
    label = "dma"
    lacks: ClassVar[dict[str, str]] = {
        EXPIRY: "dma gives up on a message only after 5 days (MAX_TIMEOUT, compiled in)",
        DELAY: "dma sends no delay warnings",
        DSN: "dma is submitted to as a sendmail command: no DSN (RFC 3461) parameters",
        SMTPUTF8_F: "dma does not implement SMTPUTF8 (RFC 6531)",
        NULLMX: "dma 0.13 does not implement null MX (RFC 7505): it retries the domain",
    }

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.world: World | None = None
        self.groups: list[int] = []

    def missing_reason(self) -> str | None:
        if not BINARY.exists():
            return f"dma is not unpacked ({BINARY} missing; run .ci/install-mta)"
        if os.geteuid() != 0:
            return "the dma harness needs root (a mount namespace for its fixed config path)"
        return None

    def version(self) -> str:
        changelog = ROOT / "usr" / "share" / "doc" / "dma" / "changelog.Debian.gz"
        if changelog.exists():
            import gzip

            first = gzip.decompress(changelog.read_bytes()).decode(errors="replace")
            version = first.split("(", 1)[1].split(")", 1)[0]
            return version.split("-")[0]
        return "unknown"

    def start(self, world: World) -> None:
        self.world = world
        assert world.smtp is not None
        if not world.smtp.port25:
            # dma 0.13 delivers by MX to port 25 whatever PORT says (PORT is the smarthost's)
            raise RuntimeError("dma delivers to port 25 and the world could not listen on "
                               f"port 25 of {world.mx_ip}: {world.smtp.port25_error}")
        upper, work = self.workdir / "etc", self.workdir / "overlay-work"
        (upper / "dma").mkdir(parents=True)
        work.mkdir()
        spool = self.workdir / "spool"
        spool.mkdir()
        # dma gives up root before it writes the spool (Debian's is mail:mail, 2775)
        shutil.chown(spool, user="mail", group="mail")
        spool.chmod(0o2775)
        (upper / "resolv.conf").write_bytes(world.resolv_conf.read_bytes())
        (upper / "dma" / "dma.conf").write_text(
            f"SPOOLDIR {spool}\nMAILNAME {HOSTNAME}\n"
            f"ALIASES {self.workdir / 'aliases'}\n")
        (self.workdir / "aliases").write_text("")

    def submit(self, sender: str, recipients: Sequence[str], data: bytes,
               mail_options: Sequence[str] = (), rcpt_options: Sequence[str] = ()) -> None:
        argv = [*overlay_argv(self.workdir / "etc", self.workdir / "overlay-work", HOSTNAME),
                str(BINARY), "-f", sender, *recipients]
        output = (self.workdir / "dma.out").open("ab")
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=output,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    env={**os.environ, MARKER: str(self.workdir)})
        finally:
            output.close()
        self.groups.append(proc.pid)
        proc.communicate(data, timeout=30)
        if proc.returncode != 0:
            raise SubmitError(f"dma exited {proc.returncode}: {self.log_tail()}")

    def _processes(self) -> list[int]:
        """This instance's dma processes: their process groups, and any that left them
        (found by the marker in their environment)."""
        found = {p for g in self.groups for p in pids_where(2, g) if process_alive(p)}
        marker = f"{MARKER}={self.workdir}".encode()
        for environ in Path("/proc").glob("[0-9]*/environ"):
            try:
                if marker in environ.read_bytes().split(b"\0"):
                    found.add(int(environ.parent.name))
            except OSError:
                continue
        return sorted(p for p in found if process_alive(p))

    def stop(self) -> None:
        """Kill every delivery child still retrying (a retry goes on for days)."""
        for pid in self._processes():
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while self._processes() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.groups = []

    def log_tail(self) -> str:
        try:
            return "\n".join((self.workdir / "dma.out").read_text(errors="replace")
                             .splitlines()[-40:])
        except OSError:
            return ""
