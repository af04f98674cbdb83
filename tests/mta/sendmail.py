"""Sendmail for the MTA matrix: Debian's sendmail-bin, sendmail-base and sendmail-cf unpacked
(``dpkg -x``) into ``/var/cache/bounced-test/sendmail/root`` by ``.ci/install-mta``.

The harness builds a sendmail.cf from a .mc with the unpacked m4 macros (``m4`` is a
package of its own), then runs ``sendmail -C CF -bD -q2s`` (foreground daemon, queue runs
every 2 s) with its own queue directory, pid file and port. Sendmail routes by MX and its
smtp/esmtp mailers connect to the world's port (``SMTP_MAILER_ARGS``); it runs in a mount
namespace with the world's resolver and a UTS namespace with its own host name.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import ClassVar

from .adapters import DELAY_WARNING, LIFETIME, RETRY, MatrixMTA
from .base import MTA_CACHE, pids_where, process_alive
from .net import LOOPBACK, free_port, port_open
from .scenarios import SMTPUTF8_F
from .world import World, namespace_argv

ROOT = Path(os.environ.get("BOUNCED_SENDMAIL_ROOT") or MTA_CACHE / "sendmail" / "root")
BINARY = ROOT / "usr" / "libexec" / "sendmail" / "sendmail"
CF_DIR = ROOT / "usr" / "share" / "sendmail" / "cf"
HOSTNAME = "sendmail.test"


class SendmailMatrix(MatrixMTA):
    kind = "sendmail"
    label = "Sendmail"
    lacks: ClassVar[dict[str, str]] = {
        SMTPUTF8_F: "Debian's Sendmail 8.17 is built without EAI: no SMTPUTF8 (RFC 6531)",
    }
    queue_id_patterns = (r"\b[0-9A-Za-z]{8}\d{6}\b",)

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.proc: subprocess.Popen[bytes] | None = None

    def missing_reason(self) -> str | None:
        if not BINARY.exists():
            return f"Sendmail is not unpacked ({BINARY} missing; run .ci/install-mta)"
        if not (CF_DIR / "m4" / "cf.m4").exists():
            return f"sendmail-cf is not unpacked ({CF_DIR} missing; run .ci/install-mta)"
        if shutil.which("m4") is None:
            return "m4 is missing (sendmail.cf is built with it; run .ci/install-mta)"
        if os.geteuid() != 0:
            return "a private Sendmail daemon needs root"
        return None

    def version(self) -> str:
        # Read from the binary: any sendmail command line would first try to qualify the
        # machine's host name through the system's resolver, which may hang here.
        match = re.search(rb"\b(8\.\d+\.\d+(?:\.\d+)?)\x00", BINARY.read_bytes())
        return match.group(1).decode() if match else "unknown"

    def mc(self, world: World) -> str:
        work = self.workdir
        return f"""\
divert(-1)
define(`_CF_DIR_', `{CF_DIR}/')
include(`{CF_DIR}/m4/cf.m4')
VERSIONID(`bounced MTA matrix')
OSTYPE(`linux')
define(`confDOMAIN_NAME', `{HOSTNAME}')
define(`QUEUE_DIR', `{work}/mqueue')
define(`STATUS_FILE', `{work}/statistics')
define(`confPID_FILE', `{work}/sendmail.pid')
define(`ALIAS_FILE', `{work}/aliases')
define(`confHELP_FILE', `')
define(`confDONT_PROBE_INTERFACES', `True')
define(`confTO_QUEUERETURN', `{LIFETIME}s')
define(`confTO_QUEUEWARN', `{DELAY_WARNING}s')
define(`confTO_CONNECT', `5s')
define(`confTO_ICONNECT', `5s')
define(`confMIN_QUEUE_AGE', `0')
define(`confSMTP_UTF8', `True')
define(`confCON_EXPENSIVE', `False')
define(`confDELIVERY_MODE', `background')
define(`confPRIVACY_FLAGS', `authwarnings')
define(`SMTP_MAILER_ARGS', `TCP $h {world.port}')
define(`ESMTP_MAILER_ARGS', `TCP $h {world.port}')
define(`RELAY_MAILER_ARGS', `TCP $h {world.port}')
FEATURE(`no_default_msa')
FEATURE(`promiscuous_relay')
FEATURE(`accept_unqualified_senders')
DAEMON_OPTIONS(`Family=inet, Name=MTA-v4, Port={self.port}, Addr={LOOPBACK}')
MAILER(`local')
MAILER(`smtp')
"""

    def start(self, world: World) -> None:
        self.port = free_port()
        work = self.workdir
        (work / "mqueue").mkdir(mode=0o700)
        (work / "aliases").write_text("")
        subprocess.run([str(ROOT / "usr" / "libexec" / "sendmail" / "makemap"), "hash",
                        str(work / "aliases")], input="", capture_output=True, text=True,
                       check=False, timeout=20)
        (work / "sendmail.mc").write_text(self.mc(world))
        built = subprocess.run(["m4", str(work / "sendmail.mc")], capture_output=True,
                               text=True, check=False, timeout=30)
        if built.returncode != 0:
            raise RuntimeError(f"m4 failed: {built.stderr[-500:]}")
        (work / "sendmail.cf").write_text(built.stdout)
        output = (work / "sendmail.out").open("ab")
        try:
            self.proc = subprocess.Popen(
                [*namespace_argv({world.resolv_conf: Path("/etc/resolv.conf")}, HOSTNAME),
                 str(BINARY), "-C", str(work / "sendmail.cf"), "-bD", f"-q{RETRY}s",
                 "-X", str(work / "traffic.log")],
                stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                start_new_session=True, cwd=work)
        finally:
            output.close()
        deadline = time.monotonic() + 30
        while not port_open(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Sendmail did not start: {self.log_tail()}")
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
        for pid in [*group, *pids_where(2, proc.pid)]:
            if process_alive(pid):
                os.kill(pid, signal.SIGKILL)
        self.proc = None

    def log_tail(self) -> str:
        parts = []
        for name in ("sendmail.out", "traffic.log"):
            try:
                lines = (self.workdir / name).read_text(errors="replace").splitlines()
            except OSError:
                continue
            parts.append("\n".join(lines[-30:]))
        return "\n".join(parts)
