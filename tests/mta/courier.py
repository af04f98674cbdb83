"""Courier for the MTA matrix: Debian's courier-base and courier-mta unpacked (``dpkg -x``) into
``/var/cache/bounced-test/courier/root`` by ``.ci/install-mta`` (courier-authlib, a library
package with no MTA, is installed normally and creates the ``courier`` user).

Courier's paths are compiled in (/usr/lib/courier, /etc/courier, /var/lib/courier), so the
instance lives in a private mount + UTS namespace held open by a sleeping process: /usr is
the unpacked tree laid over the system's (a read-only overlay, plus the /usr/bin/makedat
alternative its postinst would make), /etc and /var/lib are
overlays whose writable layer is the instance's directory (its configuration, the world's
resolv.conf, its queue), /run is a directory of its own. Nothing outside the instance's
directory is written. Mail is submitted over SMTP to its own ESMTP listener (``esmtpd
start``: couriertcpd + courieresmtpd on a free loopback port); ``nsenter`` runs its
commands in that namespace. ``esmtproutes`` sends the remote, bounce and 421 domains to the
world's port; other domains go by MX.
"""

from __future__ import annotations

import gzip
import os
import pwd
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import ClassVar

from .adapters import DELAY_WARNING, LIFETIME, MatrixMTA
from .base import MTA_CACHE, process_alive
from .net import LOOPBACK, free_port, port_open
from .world import CLOSING_DOMAIN, REFUSED_DOMAIN, REMOTE_DOMAIN, World

ROOT = Path(os.environ.get("BOUNCED_COURIER_ROOT") or MTA_CACHE / "courier" / "root")
COURIERD = ROOT / "usr" / "lib" / "courier" / "courier" / "courierd"
HOSTNAME = "courier.test"
USER = "courier"


def _mount_ns(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return ""


class CourierMatrix(MatrixMTA):
    kind = "courier"
    label = "Courier"
    lacks: ClassVar[dict[str, str]] = {}
    queue_id_patterns = (r"\b[0-9A-F]{16}\.[0-9A-F]{8}\.[0-9A-F]{4,8}\b",
                         r"\b[0-9A-F]{8}\.[0-9A-F]{8}\.[0-9A-F]{4,8}\b")

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.holder: subprocess.Popen[bytes] | None = None
        self.namespace = ""

    def missing_reason(self) -> str | None:
        if not COURIERD.exists():
            return f"Courier is not unpacked ({COURIERD} missing; run .ci/install-mta)"
        if os.geteuid() != 0:
            return "a private Courier needs root (overlay mounts in its own namespace)"
        try:
            pwd.getpwnam(USER)
        except KeyError:
            return f"user {USER} missing (courier-authlib creates it; run .ci/install-mta)"
        if shutil.which("nsenter") is None:
            return "nsenter is missing (util-linux)"
        return None

    def version(self) -> str:
        changelog = ROOT / "usr" / "share" / "doc" / "courier-mta" / "changelog.Debian.gz"
        if not changelog.exists():
            return "unknown"
        head = gzip.decompress(changelog.read_bytes()).decode(errors="replace")
        return head.split("(", 1)[1].split(")", 1)[0].split("-")[0]

    def _configure(self, world: World) -> None:
        work = self.workdir
        etc = work / "etc" / "courier"
        etc.mkdir(parents=True)
        for sub in ("etc-w", "varlib", "varlib-w", "run", "usr/bin"):
            (work / sub).mkdir(parents=True)
        # The alternative courier-base's postinst would make (update-alternatives):
        # makesmtpaccess runs /usr/bin/makedat.
        (work / "usr" / "bin" / "makedat").symlink_to("makedat.courier")
        (work / "etc" / "resolv.conf").write_bytes(world.resolv_conf.read_bytes())
        files = {
            "me": HOSTNAME, "defaultdomain": HOSTNAME,
            "esmtproutes": (f"{REMOTE_DOMAIN}: [{world.mx_ip}],{world.port}\n"
                            f"{world.bounce_domain}: [{world.mx_ip}],{world.port}\n"
                            f"{CLOSING_DOMAIN}: [{world.closing_ip}],{world.port}\n"
                            f"{REFUSED_DOMAIN}: [{world.closed_ip}],{world.port}"),
            # the queue lifetime and the delay warning; retries every couple of seconds
            "queuetime": f"{LIFETIME}", "warntime": f"{DELAY_WARNING}",
            "retryalpha": "2", "retrybeta": "1", "retrygamma": "2", "retrymaxdelta": "1",
            "esmtpdelay": "1", "esmtptimeoutconnect": "5",
        }
        for name, text in files.items():
            (etc / name).write_text(text + "\n")
        # Its ESMTP listener (couriertcpd + courieresmtpd, started by `esmtpd start`): on
        # this instance's port, loopback only, no tarpit and no DNS checks of the client.
        settings = {"PORT": str(self.port), "ADDRESS": LOOPBACK, "TARPIT": "0",
                    "BOFHCHECKDNS": "0", "TCPDOPTS": '"-noidentlookup"', "ESMTPDSTART": "YES"}
        lines = [ln for ln in (ROOT / "etc" / "courier" / "esmtpd").read_text().splitlines()
                 if ln.partition("=")[0] not in settings]
        (etc / "esmtpd").write_text("\n".join([*lines, *(f"{k}={v}" for k, v in
                                                         settings.items())]) + "\n")

    def _script(self) -> str:
        work = self.workdir
        return "\n".join([
            "set -e",
            f"mount -t overlay overlay -o 'lowerdir={work}/usr:{ROOT}/usr:/usr' /usr",
            f"mount -t overlay overlay -o 'lowerdir={ROOT}/etc:/etc,upperdir={work}/etc,"
            f"workdir={work}/etc-w' /etc",
            f"mount -t overlay overlay -o 'lowerdir={ROOT}/var/lib:/var/lib,"
            f"upperdir={work}/varlib,workdir={work}/varlib-w' /var/lib",
            f"mount --bind '{work}/run' /run",
            f"hostname {HOSTNAME}",
            f"chown -R {USER}:{USER} /var/lib/courier",
            # if a later step fails, the daemons must not outlive the script unseen
            "trap 'courier stop >/dev/null 2>&1 || true' EXIT",
            "courier start",
            "mkdir -p /run/courier",
            "makesmtpaccess",
            "esmtpd start",
            "exec sleep 100000",
        ])

    def _nsenter(self, *argv: str, data: bytes | None = None,
                 timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
        assert self.holder is not None
        return subprocess.run(
            ["nsenter", f"--target={self.holder.pid}", "--mount", "--uts", "--", *argv],
            input=data, capture_output=True, timeout=timeout, check=False)

    def start(self, world: World) -> None:
        self.port = free_port()
        self._configure(world)
        output = (self.workdir / "courier.out").open("ab")
        try:
            self.holder = subprocess.Popen(
                ["unshare", "--mount", "--uts", "--propagation", "private", "--",
                 "/bin/sh", "-c", self._script()],
                stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                start_new_session=True)
        finally:
            output.close()
        deadline = time.monotonic() + 20
        while True:  # courierd is up once its queue lock file exists
            if self.holder.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Courier did not start: {self.log_tail()}")
            self.namespace = _mount_ns(self.holder.pid)
            if self.namespace and port_open(self.port) and any(
                    "courierd" in self._cmdline(p) for p in self._pids()):
                break
            time.sleep(0.2)
        self.probe_ehlo()

    @staticmethod
    def _cmdline(pid: int) -> str:
        try:
            return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            return ""

    def _pids(self) -> list[int]:
        """Every process of the instance's mount namespace (courierd daemonizes itself)."""
        if not self.namespace or self.namespace == _mount_ns(os.getpid()):
            return []
        return [int(p.name) for p in Path("/proc").iterdir()
                if p.name.isdigit() and _mount_ns(int(p.name)) == self.namespace]

    def stop(self) -> None:
        if self.holder is None:
            return
        if self.holder.poll() is None:
            self._nsenter("courier", "stop", timeout=20)
        deadline = time.monotonic() + 5
        while any(p != self.holder.pid for p in self._pids()) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in self._pids():
            if process_alive(pid):
                os.kill(pid, signal.SIGKILL)
        if self.holder.poll() is None:
            self.holder.kill()
        self.holder.wait(10)
        self.holder = None

    def log_tail(self) -> str:
        try:
            return "\n".join((self.workdir / "courier.out").read_text(errors="replace")
                             .splitlines()[-40:])
        except OSError:
            return ""
