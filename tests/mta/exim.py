"""A private Exim daemon for tests, run from Debian's exim4-daemon-light unpacked next to Postfix.

exim4-daemon-light conflicts with postfix as a package (both provide mail-transport-agent),
so ``.ci/install-mta`` does not install it: it unpacks the .deb (``apt-get download`` +
``dpkg -x``) into ``/var/cache/bounced-test/exim/root``, installs the daemon's shared
libraries and creates the ``Debian-exim`` user the binary looks up before it reads any
configuration. The harness then runs ``exim4 -C CONF -bdf -qINTERVAL`` as a foreground child
with its own spool, log and SMTP port on 127.0.0.1. The bounce domain is routed with the
operator snippet in ``config/exim/`` (domain and port replaced), the "remote" domain to an
aiosmtpd server. Needs root.

    with EximInstance(remote_port=remote.port, bounce_port=bounced_port) as mta:
        mta.send("bounce-xyz@bounces.example.test", ["unknown1@remote.test"])
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from .base import MTA_CACHE, MTAInstance, pids_where, process_alive
from .net import LOOPBACK, free_port, port_open
from .pipe import SNIPPET_COMMAND, SNIPPET_CONFIG, SNIPPET_USER, PipeRoute

EXIM_ROOT = Path(os.environ.get("BOUNCED_EXIM_ROOT") or MTA_CACHE / "exim" / "root")
EXIM_USER = "Debian-exim"
SNIPPET_DIR = Path(__file__).resolve().parents[2] / "config" / "exim"
SNIPPET_DOMAIN = "bounces.example.org"
SNIPPET_ROUTE = "route_list = * 127.0.0.1::2525"


def exim_binary() -> Path:
    return EXIM_ROOT / "usr" / "sbin" / "exim4"


@cache
def missing_reason() -> str | None:
    """Why a private Exim cannot run here, or None when it can."""
    binary = exim_binary()
    if not binary.exists():
        return f"Exim is not unpacked ({binary} missing; run .ci/install-mta)"
    if os.geteuid() != 0:
        return "a private Exim daemon needs root (it binds as root and drops privileges)"
    try:
        pwd.getpwnam(EXIM_USER)
    except KeyError:
        return f"user {EXIM_USER} missing (the binary looks it up first; run .ci/install-mta)"
    probe = subprocess.run(
        [str(binary), "-C", "/dev/null", "-bV"], capture_output=True, text=True, timeout=10,
        check=False,
    )
    if probe.returncode != 0:
        return f"{binary} does not run: {(probe.stderr or probe.stdout).strip()[:300]}"
    return None


@dataclass(frozen=True)
class EximTiming:
    """Queue times for the daemon; short for tests.

    ``delay_warning`` is Exim's list ("5s:1h" warns once after 5 s, then hourly; "0s" never).
    ``retry`` is the rule for every host and error: "F,60s,2s" retries every 2 s and fails
    the message 60 s after the first failure ("retry timeout exceeded").
    ``forced``: every queue run is a forced one (``-qf<interval>``), attempting each message
    whether or not its retry time has come. A queue run that starts a moment before the
    retry time defers without an attempt, and a delay warning written then quotes the retry
    database's truncated text, without the host ("H=... : ... - p", no Remote-MTA or
    Diagnostic-Code), instead of the attempt's reply: forced runs make every warning and
    expiry follow an attempt.
    """

    queue_interval: str = "2s"
    delay_warning: str = "0s"
    retry: str = "F,60s,2s"
    forced: bool = False


@dataclass(frozen=True)
class EximSnippet:
    """``config/exim/`` rewritten for a test: domain and port replaced."""

    router: str
    transport: str
    acl: str


def _body(path: Path) -> str:
    return "\n".join(ln for ln in path.read_text().splitlines()
                     if ln.strip() and not ln.lstrip().startswith("#")) + "\n"


def load_snippet(bounce_domain: str, bounce_port: int,
                 snippet_dir: Path = SNIPPET_DIR) -> EximSnippet:
    """Read the operator snippet and point it at ``bounce_domain`` on ``bounce_port``."""
    router = _body(snippet_dir / "router")
    if SNIPPET_ROUTE not in router or f"domains = {SNIPPET_DOMAIN}" not in router:
        raise ValueError("config/exim/router no longer has the route the tests rely on")
    router = router.replace(SNIPPET_ROUTE, f"route_list = * 127.0.0.1::{bounce_port}")
    acl = _body(snippet_dir / "acl")
    if SNIPPET_DOMAIN not in acl:
        raise ValueError("config/exim/acl does not name the example domain")
    return EximSnippet(
        router=router.replace(SNIPPET_DOMAIN, bounce_domain),
        transport=_body(snippet_dir / "transport"),
        acl=acl.replace(SNIPPET_DOMAIN, bounce_domain),
    )


def load_pipe_snippet(bounce_domain: str, route: PipeRoute, acl: str,
                      snippet_dir: Path = SNIPPET_DIR) -> EximSnippet:
    """The pipe-mode router and transport pointed at the test's command, config and user."""
    router = _body(snippet_dir / "pipe-router")
    if f"domains = {SNIPPET_DOMAIN}" not in router or "transport = bounced_pipe" not in router:
        raise ValueError("config/exim/pipe-router no longer has the route the tests rely on")
    transport = _body(snippet_dir / "pipe-transport")
    for placeholder in (f"command = {SNIPPET_COMMAND} ", f" --config {SNIPPET_CONFIG}",
                        f"user = {SNIPPET_USER}\n"):
        if placeholder not in transport:
            raise ValueError(f"config/exim/pipe-transport no longer has {placeholder!r}")
    transport = (transport.replace(SNIPPET_COMMAND, str(route.command))
                 .replace(SNIPPET_CONFIG, str(route.config))
                 .replace(f"user = {SNIPPET_USER}\n", f"user = {route.user}\n"))
    return EximSnippet(router=router.replace(SNIPPET_DOMAIN, bounce_domain),
                       transport=transport, acl=acl)


class EximInstance(MTAInstance):
    """A private Exim daemon (``exim4 -C CONF -bdf``) on 127.0.0.1, owned by the test.

    Same routing and API as PostfixInstance: ``remote_domain`` to ``remote_port``,
    ``bounce_domain`` to ``bounce_port`` through the operator snippet, or with ``pipe``
    through the pipe-mode snippet into ``bounced deliver`` (``bounce_port`` unused then).
    ``extra_routers``/``extra_transports`` are appended to those sections (after the
    remote route), e.g. a dnslookup router for the MTA matrix.
    """

    name = "Exim"

    def __init__(
        self,
        *,
        bounce_port: int,
        remote_port: int | None = None,
        bounce_domain: str = "bounces.example.test",
        remote_domain: str = "remote.test",
        timing: EximTiming | None = None,
        extra_main: str = "",
        hostname: str = "exim.test",
        base_dir: Path | None = None,
        log_copy: Path | None = None,
        snippet_dir: Path = SNIPPET_DIR,
        pipe: PipeRoute | None = None,
        extra_routers: str = "",
        extra_transports: str = "",
    ) -> None:
        super().__init__()
        self.pipe = pipe
        self.extra_routers = extra_routers
        self.extra_transports = extra_transports
        self.bounce_port = bounce_port
        self.remote_port = remote_port
        self.bounce_domain = bounce_domain
        self.remote_domain = remote_domain
        self.timing = timing or EximTiming()
        self.extra_main = extra_main
        self.hostname = hostname
        self.base_dir = base_dir
        self.log_copy = log_copy
        self.snippet_dir = snippet_dir
        self.proc: subprocess.Popen[bytes] | None = None

    # -- paths -----------------------------------------------------------------------------

    def _dir(self) -> Path:
        if self.root is None:
            raise RuntimeError("Exim instance not started")
        return self.root

    @property
    def config_path(self) -> Path:
        return self._dir() / "exim.conf"

    @property
    def log_path(self) -> Path:
        return self._dir() / "log" / "mainlog"

    # -- configuration ---------------------------------------------------------------------

    def config(self) -> str:
        """The whole configuration file of the instance."""
        root = self._dir()
        snippet = load_snippet(self.bounce_domain, self.bounce_port, self.snippet_dir)
        if self.pipe is not None:
            snippet = load_pipe_snippet(self.bounce_domain, self.pipe, snippet.acl,
                                        self.snippet_dir)
        remote = ""
        if self.remote_port is not None:
            remote = (
                "remote:\n  driver = manualroute\n"
                f"  domains = {self.remote_domain}\n  transport = remote_smtp\n"
                f"  route_list = * {LOOPBACK}::{self.remote_port}\n"
                "  self = send\n  no_more\n"
            )
        return f"""\
primary_hostname = {self.hostname}
qualify_domain = {self.hostname}
spool_directory = {root}/spool
log_file_path = {root}/log/%slog
pid_file_path = {root}/exim.pid
exim_path = {exim_binary()}
keep_environment =
local_interfaces = {LOOPBACK}
daemon_smtp_ports = {self.port}
daemon_startup_retries = 0
host_lookup =
rfc1413_hosts =
tls_advertise_hosts =
delay_warning = {self.timing.delay_warning}
domainlist relay_to_domains = {self.bounce_domain}
hostlist relay_from_hosts = {LOOPBACK}
acl_smtp_rcpt = acl_check_rcpt
{self.extra_main}

begin acl

acl_check_rcpt:
{snippet.acl}
accept  hosts = +relay_from_hosts
deny    message = relay not permitted

begin routers

{snippet.router}
{remote}
{self.extra_routers}

begin transports

{snippet.transport}
remote_smtp:
  driver = smtp
  allow_localhost
  hosts_avoid_tls = {LOOPBACK}

{self.extra_transports}

begin retry

*  *  {self.timing.retry}
"""

    def _exim(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run the unpacked exim4 with this instance's configuration."""
        return subprocess.run(
            [str(exim_binary()), "-C", str(self.config_path), *args],
            capture_output=True, text=True, timeout=timeout, check=False,
        )

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float = 20.0, attempts: int = 3) -> None:
        """Write the configuration, check it (-bV) and start the daemon; bounded."""
        reason = missing_reason()
        if reason is not None:
            raise RuntimeError(reason)
        base = str(self.base_dir) if self.base_dir is not None else None
        self.root = Path(tempfile.mkdtemp(prefix="bounced-exim-", dir=base))
        self.root.chmod(0o755)
        for sub in ("spool", "log"):  # written by the exim user, not root
            (self.root / sub).mkdir()
            shutil.chown(self.root / sub, user=EXIM_USER, group=EXIM_USER)
        last = ""
        for _ in range(attempts):  # the free port can be taken before Exim binds it
            self.port = free_port()
            self.config_path.write_text(self.config())
            check = self._exim("-bV", timeout=10)
            if check.returncode != 0:
                self.stop()
                raise RuntimeError(f"exim -bV rejected the configuration: {check.stderr}")
            output = (self._dir() / "daemon.out").open("ab")
            try:
                self.proc = subprocess.Popen(
                    [*self.command_prefix, str(exim_binary()), "-C", str(self.config_path), "-bdf",
                     f"-q{'f' if self.timing.forced else ''}{self.timing.queue_interval}"],
                    stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            finally:
                output.close()
            if self._wait_listening(timeout):
                return
            last = (self._dir() / "daemon.out").read_text(errors="replace")[-2000:]
            self._stop_daemon()
        self.stop()
        raise RuntimeError(f"Exim did not start on 127.0.0.1 after {attempts} tries: {last}")

    def _wait_listening(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            if port_open(self.port):
                return True
            time.sleep(0.1)
        return False

    def processes(self) -> list[int]:
        """Live processes of this instance (the daemon's process group)."""
        if self.proc is None:
            return []
        return [p for p in pids_where(2, self.proc.pid) if process_alive(p)]

    def _stop_daemon(self, timeout: float = 15.0) -> None:
        """SIGTERM the daemon's process group, SIGKILL what is left after ``timeout``."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while (proc.poll() is None or self.processes()) and time.monotonic() < deadline:
            time.sleep(0.05)
        if proc.poll() is None or self.processes():
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout)
        self.proc = None

    def _stop_server(self) -> None:
        self._stop_daemon()

    def running(self) -> bool:
        """True while the daemon process is alive."""
        return self.proc is not None and self.proc.poll() is None

    # -- queue -----------------------------------------------------------------------------

    def flush(self) -> None:
        """``exim -qf``: a queue run now, ignoring retry times (frozen messages stay frozen)."""
        self._exim("-qf")

    def queue_count(self) -> int:
        out = self._exim("-bpc", timeout=10).stdout
        match = re.search(r"\d+", out)
        if match is None:
            raise RuntimeError(f"exim -bpc printed no count: {out!r}")
        return int(match.group(0))
