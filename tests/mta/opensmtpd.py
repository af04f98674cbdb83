"""OpenSMTPD for the MTA matrix: Debian's package unpacked (``dpkg -x``) into
``/var/cache/bounced-test/opensmtpd/root`` by ``.ci/install-mta`` (which also creates the
``opensmtpd``/``opensmtpq`` users and the empty chroot directory the binary looks up).

Its spool (/var/spool/smtpd) and control socket (/var/run/smtpd.sock) are compiled in, so
the daemon runs in a private mount namespace where /var/spool and /run are directories of
the instance (bind mounts nobody else sees), /etc/resolv.conf is the world's and the host
name is its own (a UTS namespace): the system's spool and /etc are never touched.
Routes: the remote and bounce domains to the world's MX address and port, ``refused.test``
to the closed address, anything else by MX (the NXDOMAIN and null-MX scenarios).
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import time
from pathlib import Path
from typing import ClassVar

from .adapters import DELAY_WARNING, LIFETIME, MatrixMTA
from .base import MTA_CACHE, pids_where, process_alive
from .net import LOOPBACK, free_port, port_open
from .scenarios import NULLMX, SMTPUTF8_F
from .world import (
    CLOSING_DOMAIN,
    NULLMX_DOMAIN,
    REFUSED_DOMAIN,
    REMOTE_DOMAIN,
    World,
    namespace_argv,
)

ROOT = Path(os.environ.get("BOUNCED_OPENSMTPD_ROOT") or MTA_CACHE / "opensmtpd" / "root")
BINARY = ROOT / "usr" / "sbin" / "smtpd"
USERS = ("opensmtpd", "opensmtpq")
CHROOT = Path("/var/lib/opensmtpd/empty")
HOSTNAME = "opensmtpd.test"


class OpenSMTPDMatrix(MatrixMTA):
    kind = "opensmtpd"
    label = "OpenSMTPD"
    lacks: ClassVar[dict[str, str]] = {
        NULLMX: "OpenSMTPD 6.8 does not implement null MX (RFC 7505): it retries the "
                "domain until the message expires",
        SMTPUTF8_F: "OpenSMTPD 6.8 does not implement SMTPUTF8 (RFC 6531)",
    }
    queue_id_patterns = (r"\b[0-9a-f]{16}\b", r"\b[0-9a-f]{8}\b")

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.proc: subprocess.Popen[bytes] | None = None

    def missing_reason(self) -> str | None:
        if not BINARY.exists():
            return f"OpenSMTPD is not unpacked ({BINARY} missing; run .ci/install-mta)"
        if os.geteuid() != 0:
            return "a private OpenSMTPD needs root (it binds as root and drops privileges)"
        for user in USERS:
            try:
                pwd.getpwnam(user)
            except KeyError:
                return f"user {user} missing (run .ci/install-mta)"
        if not CHROOT.is_dir():
            return f"{CHROOT} missing (run .ci/install-mta)"
        return None

    def version(self) -> str:
        out = subprocess.run([str(BINARY), "-h"], capture_output=True, text=True, check=False,
                             timeout=10)
        for line in (out.stdout + out.stderr).splitlines():
            if line.startswith("version: OpenSMTPD "):
                return line.split()[-1]
        return "unknown"

    @property
    def log_path(self) -> Path:
        return self.workdir / "smtpd.log"

    def config(self, world: World) -> str:
        relay = f"smtp+notls://{world.mx_ip}:{world.port}"
        refused = f"smtp+notls://{world.closed_ip}:{world.port}"
        closing = f"smtp+notls://{world.closing_ip}:{world.port}"
        return f"""\
queue ttl {LIFETIME}s
bounce warn-interval {DELAY_WARNING}s
listen on {LOOPBACK} port {self.port} hostname {HOSTNAME}
action "world" relay host "{relay}" helo {HOSTNAME}
action "refused" relay host "{refused}" helo {HOSTNAME}
action "closing" relay host "{closing}" helo {HOSTNAME}
action "mx" relay helo {HOSTNAME}
match from any for domain "{REMOTE_DOMAIN}" action "world"
match from any for domain "{world.bounce_domain}" action "world"
match from any for domain "{REFUSED_DOMAIN}" action "refused"
match from any for domain "{CLOSING_DOMAIN}" action "closing"
match from local for domain "{NULLMX_DOMAIN}" action "mx"
match from local for any action "mx"
"""

    def start(self, world: World) -> None:
        self.port = free_port()
        spool, run = self.workdir / "spool", self.workdir / "run"
        for path in (spool, run):
            path.mkdir(mode=0o755)
        conf = self.workdir / "smtpd.conf"
        conf.write_text(self.config(world))
        mounts = {world.resolv_conf: Path("/etc/resolv.conf"), spool: Path("/var/spool"),
                  run: Path("/run")}
        output = self.log_path.open("ab")
        try:
            self.proc = subprocess.Popen(
                [*namespace_argv(mounts, HOSTNAME), str(BINARY), "-d", "-f", str(conf),
                 "-T", "expand"],
                stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                start_new_session=True)
        finally:
            output.close()
        deadline = time.monotonic() + 20
        while not port_open(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"OpenSMTPD did not start: {self.log_tail()}")
            time.sleep(0.1)
        self.probe_ehlo()

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        group = [p for p in pids_where(2, proc.pid) if process_alive(p)]
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        deadline = time.monotonic() + 10
        while any(process_alive(p) for p in group) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in group:
            if process_alive(pid):
                os.kill(pid, signal.SIGKILL)
        self.proc = None

    def log_tail(self) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-40:])
        except OSError:
            return ""
