"""chasquid for the MTA matrix: Debian's package unpacked (``dpkg -x``) into
``/var/cache/bounced-test/chasquid/root`` by ``.ci/install-mta``, run as a foreground child
with its own configuration directory, data directory and ports.

chasquid relays only for authenticated users over TLS, so the harness makes a self-signed
certificate and one user, and submits with STARTTLS + AUTH on its submission port. It
delivers by MX on port 25 unless ``-testing__outgoing_smtp_port`` (its test hook) says
otherwise: that points it at the world's port, and the world's DNS does the routing.
"""

from __future__ import annotations

import os
import shutil
import signal
import smtplib
import ssl
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from .adapters import MatrixMTA, SubmitError
from .base import MTA_CACHE, pids_where, process_alive
from .net import LOOPBACK, free_ports, port_open
from .scenarios import DELAY, DSN, EXPIRY, NULLMX, NXDOMAIN
from .world import World, private_resolver_argv

ROOT = Path(os.environ.get("BOUNCED_CHASQUID_ROOT") or MTA_CACHE / "chasquid" / "root")
BINARY = ROOT / "usr" / "bin" / "chasquid"
UTIL = ROOT / "usr" / "bin" / "chasquid-util"
HOSTNAME = "chasquid.test"
USER = "app@app.example.test"
PASSWORD = "matrix-secret"


class ChasquidMatrix(MatrixMTA):
    kind = "chasquid"
    label = "chasquid"
    lacks: ClassVar[dict[str, str]] = {
        EXPIRY: "chasquid 1.11 gives up on a message only after a fixed 20 hours (no "
                "setting shortens it)",
        DELAY: "chasquid sends no delay warnings",
        DSN: "chasquid does not offer DSN (RFC 3461: RET/NOTIFY)",
        NULLMX: "chasquid 1.11 does not implement null MX (RFC 7505)",
        NXDOMAIN: "chasquid 1.11 retries an NXDOMAIN recipient domain as a temporary failure "
                  "(for its fixed 20 hours)",
    }

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.proc: subprocess.Popen[bytes] | None = None
        self.submission_port = 0
        self.tls_port = 0

    def missing_reason(self) -> str | None:
        if not BINARY.exists():
            return f"chasquid is not unpacked ({BINARY} missing; run .ci/install-mta)"
        if os.geteuid() != 0:
            return "the chasquid harness needs root (a mount namespace for its resolver)"
        if shutil.which("openssl") is None:
            return "openssl is missing (the harness makes chasquid's TLS certificate with it)"
        return None

    def version(self) -> str:
        out = subprocess.run([str(BINARY), "-version"], capture_output=True, text=True,
                             check=False, timeout=10)
        words = (out.stdout or out.stderr).split()
        return words[1].split("-")[0] if len(words) > 1 else "unknown"

    @property
    def config_dir(self) -> Path:
        return self.workdir / "etc"

    @property
    def log_path(self) -> Path:
        return self.workdir / "chasquid.log"

    def _configure(self) -> None:
        conf = self.config_dir
        certs = conf / "certs" / HOSTNAME
        certs.mkdir(parents=True)
        (conf / "domains" / "app.example.test").mkdir(parents=True)
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", f"/CN={HOSTNAME}", "-keyout", str(certs / "privkey.pem"),
             "-out", str(certs / "fullchain.pem")],
            capture_output=True, check=True, timeout=60)
        (conf / "chasquid.conf").write_text(
            f'hostname: "{HOSTNAME}"\n'
            f'smtp_address: "{LOOPBACK}:{self.port}"\n'
            f'submission_address: "{LOOPBACK}:{self.submission_port}"\n'
            f'submission_over_tls_address: "{LOOPBACK}:{self.tls_port}"\n'
            f'data_dir: "{self.workdir / "data"}"\n'
            f'mail_log_path: "{self.workdir / "mail.log"}"\n'
            'mail_delivery_agent_bin: "/bin/false"\n')
        subprocess.run([str(UTIL), f"--configdir={conf}", "user-add", USER,
                        f"--password={PASSWORD}"], capture_output=True, check=True, timeout=30)

    def start(self, world: World) -> None:
        self.port, self.submission_port, self.tls_port = free_ports(3)
        self._configure()
        output = self.log_path.open("ab")
        try:
            self.proc = subprocess.Popen(
                [*private_resolver_argv(world.resolv_conf), str(BINARY),
                 f"-config_dir={self.config_dir}", "-alsologtostderr",
                 f"-testing__outgoing_smtp_port={world.port}"],
                stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                start_new_session=True, cwd=self.workdir)
        finally:
            output.close()
        deadline = time.monotonic() + 20
        while not port_open(self.submission_port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chasquid did not start: {self.log_tail()}")
            time.sleep(0.1)
        self.probe_ehlo()

    def submit(self, sender: str, recipients: Sequence[str], data: bytes,
               mail_options: Sequence[str] = (), rcpt_options: Sequence[str] = ()) -> None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the instance's own throwaway certificate
        with smtplib.SMTP(LOOPBACK, self.submission_port, local_hostname="app.test",
                          timeout=30) as smtp:
            smtp.starttls(context=context)
            smtp.login(USER, PASSWORD)
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
        for pid in group:
            if process_alive(pid):
                os.kill(pid, signal.SIGKILL)
        self.proc = None

    def log_tail(self) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-40:])
        except OSError:
            return ""
