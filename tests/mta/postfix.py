"""A private Postfix instance for tests: its own config and queue under a temp directory.

``postfix -c DIR`` runs a second, independent Postfix next to the system one (which may be
stopped, and whose /etc/postfix is never touched): its own main.cf/master.cf, queue, data
directory and log file, an SMTP listener on a free 127.0.0.1 port, chroot off, no DNS,
short queue times. The bounce domain is routed with the operator snippet in
``config/postfix/`` (domain and port replaced), the "remote" test domain to an aiosmtpd
server. Needs root (Postfix's master runs as root and drops to the postfix user).

    with PostfixInstance(remote_port=remote.port, bounce_port=bounced_port) as mta:
        sub = mta.send("bounce-xyz@bounces.example.test", ["unknown1@remote.test"])
        mta.wait_for_log(rf"{sub.queue_id}: .*status=bounced", timeout=20)

The waits block; from a coroutine use ``await asyncio.to_thread(mta.wait_for_log, ...)``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .base import MTAInstance, pids_where, process_alive
from .net import LOOPBACK, free_port, port_open
from .pipe import SNIPPET_COMMAND, SNIPPET_CONFIG, SNIPPET_USER, PipeRoute

SBIN = Path("/usr/sbin")
POSTFIX = SBIN / "postfix"
POSTQUEUE = SBIN / "postqueue"
POSTMAP = SBIN / "postmap"
SNIPPET_DIR = Path(__file__).resolve().parents[2] / "config" / "postfix"
SNIPPET_DOMAIN = "bounces.example.org"
PIPE_SNIPPET_DIR = SNIPPET_DIR / "pipe"
SNIPPET_NEXTHOP = re.compile(r"^(?P<transport>smtp:\[127\.0\.0\.1\]):(?P<port>\d+)$")

# master.cf for the instance: Debian's services minus the ones needing extra packages,
# every chroot column "n", and the public :25 listener replaced by {port}.
MASTER_CF = """\
{host}:{port} inet n - n - - smtpd
pickup     unix  n - n 60 1 pickup
cleanup    unix  n - n -  0 cleanup
qmgr       unix  n - n 300 1 qmgr
tlsmgr     unix  - - n 1000? 1 tlsmgr
rewrite    unix  - - n -  - trivial-rewrite
bounce     unix  - - n -  0 bounce
defer      unix  - - n -  0 bounce
trace      unix  - - n -  0 bounce
verify     unix  - - n -  1 verify
flush      unix  n - n 1000? 0 flush
proxymap   unix  - - n -  - proxymap
proxywrite unix  - - n -  1 proxymap
smtp       unix  - - n -  - smtp
relay      unix  - - n -  - smtp
showq      unix  n - n -  - showq
error      unix  - - n -  - error
retry      unix  - - n -  - error
discard    unix  - - n -  - discard
anvil      unix  - - n -  1 anvil
scache     unix  - - n -  1 scache
postlog    unix-dgram n - n - 1 postlogd
"""


def missing_reason() -> str | None:
    """Why a private Postfix cannot run here, or None when it can."""
    if not POSTFIX.exists():
        return f"Postfix is not installed ({POSTFIX} missing; run .ci/install-mta)"
    if os.geteuid() != 0:
        return "a private Postfix instance needs root (its master process runs as root)"
    return None


def skip_unless_postfix() -> None:
    """pytest.skip with the reason when Postfix cannot run here."""
    import pytest

    reason = missing_reason()
    if reason is not None:
        pytest.skip(reason)


@dataclass(frozen=True)
class QueueTiming:
    """Queue times for the instance, as Postfix time values ("10s", "2m"); short for tests.

    ``delay_warning_time = "0"`` (the default here) sends no delay DSNs.
    """

    queue_run_delay: str = "2s"
    minimal_backoff_time: str = "2s"
    maximal_backoff_time: str = "4s"
    delay_warning_time: str = "0"
    maximal_queue_lifetime: str = "60s"
    bounce_queue_lifetime: str = "60s"

    def main_cf(self) -> dict[str, str]:
        """The main.cf parameters these times set."""
        return {name: str(value) for name, value in vars(self).items()}


@dataclass(frozen=True)
class OperatorSnippet:
    """``config/postfix/`` rewritten for a test: domain and port replaced, paths moved."""

    main_cf: dict[str, str]
    transport: list[str]
    recipients_regexp: str


def _lines(path: Path) -> list[str]:
    """Non-empty, non-comment lines of a Postfix config file."""
    return [ln.strip() for ln in path.read_text().splitlines()
            if ln.strip() and not ln.lstrip().startswith("#")]


def load_snippet(config_dir: Path, bounce_domain: str, bounce_port: int,
                 snippet_dir: Path = SNIPPET_DIR) -> OperatorSnippet:
    """Read the operator snippet and adapt it to an instance in ``config_dir``.

    Fails loudly when the snippet no longer has the shape the tests rely on (a
    ``smtp:[127.0.0.1]:PORT`` transport for the example bounce domain).
    """
    main_cf: dict[str, str] = {}
    for line in _lines(snippet_dir / "main.cf.snippet"):
        name, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"main.cf.snippet: not a 'name = value' line: {line!r}")
        value = value.strip().replace("/etc/postfix/", f"{config_dir}/")
        main_cf[name.strip()] = value.replace(SNIPPET_DOMAIN, bounce_domain)
    transport = []
    for line in _lines(snippet_dir / "transport"):
        domain, nexthop = line.split()
        match = SNIPPET_NEXTHOP.match(nexthop)
        if domain != SNIPPET_DOMAIN or match is None:
            raise ValueError(f"transport snippet: unexpected line {line!r}")
        transport.append(f"{bounce_domain}\t{match['transport']}:{bounce_port}")
    if not transport:
        raise ValueError("transport snippet has no route for the bounce domain")
    regexp = (snippet_dir / "bounced_recipients.regexp").read_text()
    escaped = SNIPPET_DOMAIN.replace(".", r"\.")
    if escaped not in regexp:
        raise ValueError("bounced_recipients.regexp does not name the example domain")
    regexp = regexp.replace(escaped, bounce_domain.replace(".", r"\."))
    return OperatorSnippet(main_cf, transport, regexp)


@dataclass(frozen=True)
class PipeSnippet:
    """``config/postfix/pipe/`` rewritten for a test: command, config, user and domain."""

    main_cf: dict[str, str]
    master_cf: str
    transport: list[str]


def load_pipe_snippet(bounce_domain: str, route: PipeRoute,
                      snippet_dir: Path = PIPE_SNIPPET_DIR) -> PipeSnippet:
    """Read the pipe-mode snippet and point it at the test's command, config and user.

    Fails loudly when a placeholder the tests replace is gone (the operator's copy would
    then differ from what runs here).
    """
    master = "".join(ln + "\n" for ln in (snippet_dir / "master.cf.snippet").read_text()
                     .splitlines() if ln.strip() and not ln.lstrip().startswith("#"))
    for placeholder in (SNIPPET_COMMAND, SNIPPET_CONFIG, f"user={SNIPPET_USER} "):
        if placeholder not in master:
            raise ValueError(f"pipe/master.cf.snippet no longer has {placeholder!r}")
    master = (master.replace(SNIPPET_COMMAND, str(route.command))
              .replace(SNIPPET_CONFIG, str(route.config))
              .replace(f"user={SNIPPET_USER} ", f"user={route.user} "))
    main_cf = {}
    for line in _lines(snippet_dir / "main.cf.snippet"):
        name, _, value = line.partition("=")
        main_cf[name.strip()] = value.strip()
    transport = []
    for line in _lines(snippet_dir / "transport"):
        domain, nexthop = line.split()
        if domain != SNIPPET_DOMAIN or nexthop != "bounced:":
            raise ValueError(f"pipe/transport: unexpected line {line!r}")
        transport.append(f"{bounce_domain}\t{nexthop}")
    return PipeSnippet(main_cf, master, transport)


class PostfixInstance(MTAInstance):
    """A private Postfix (``postfix -c DIR``) on 127.0.0.1, started and stopped by the test.

    ``remote_domain`` goes to ``remote_port`` (an aiosmtpd "remote"), ``bounce_domain`` to
    ``bounce_port`` (bounced, or a stand-in) through the operator snippet, or with ``pipe``
    through the pipe-mode snippet into ``bounced deliver`` (``bounce_port`` unused then).
    Everything lives in a fresh directory under ``base_dir`` (default: the system temp dir), removed by
    ``stop()``; ``log_copy`` keeps a copy of the Postfix log after that.
    """

    name = "Postfix"

    def __init__(
        self,
        *,
        bounce_port: int,
        remote_port: int | None = None,
        bounce_domain: str = "bounces.example.test",
        remote_domain: str = "remote.test",
        timing: QueueTiming | None = None,
        extra_main_cf: Mapping[str, str] | None = None,
        myhostname: str = "mta.test",
        base_dir: Path | None = None,
        log_copy: Path | None = None,
        snippet_dir: Path = SNIPPET_DIR,
        pipe: PipeRoute | None = None,
    ) -> None:
        super().__init__()
        self.pipe = pipe
        self.bounce_port = bounce_port
        self.remote_port = remote_port
        self.bounce_domain = bounce_domain
        self.remote_domain = remote_domain
        self.timing = timing or QueueTiming()
        self.extra_main_cf = dict(extra_main_cf or {})
        self.myhostname = myhostname
        self.base_dir = base_dir
        self.log_copy = log_copy
        self.snippet_dir = snippet_dir
        self._master_pid: int | None = None

    # -- paths -----------------------------------------------------------------------------

    def _dir(self) -> Path:
        if self.root is None:
            raise RuntimeError("Postfix instance not started")
        return self.root

    @property
    def config_dir(self) -> Path:
        return self._dir() / "etc"

    @property
    def queue_dir(self) -> Path:
        return self._dir() / "queue"

    @property
    def log_path(self) -> Path:
        return self._dir() / "postfix.log"

    # -- configuration ---------------------------------------------------------------------

    def main_cf(self) -> dict[str, str]:
        """Every main.cf parameter of the instance (base, snippet, timing, extras)."""
        root = self._dir()
        snippet = load_snippet(self.config_dir, self.bounce_domain, self.bounce_port,
                               self.snippet_dir)
        params = {
            "compatibility_level": "3.6",
            "queue_directory": str(self.queue_dir),
            "data_directory": str(root / "data"),
            "maillog_file": str(self.log_path),
            "maillog_file_prefixes": str(root),
            "myhostname": self.myhostname,
            "mydomain": self.myhostname.partition(".")[2] or "test",
            "myorigin": "$myhostname",
            "mydestination": "",
            "inet_interfaces": "loopback-only",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "smtp_dns_support_level": "disabled",
            "smtpd_peername_lookup": "no",
            "smtp_address_preference": "ipv4",
            "alias_maps": "",
            "alias_database": "",
            "biff": "no",
            "append_dot_mydomain": "no",
            "default_transport": "error:no route in the test MTA",
            "relay_transport": "error:no route in the test MTA",
            "smtpd_banner": "$myhostname ESMTP test instance",
        }
        params.update(self.timing.main_cf())
        params.update(snippet.main_cf)
        if self.pipe is not None:
            params.update(load_pipe_snippet(self.bounce_domain, self.pipe).main_cf)
        params.update(self.extra_main_cf)
        return params

    def _write_config(self) -> None:
        root = self._dir()
        snippet = load_snippet(self.config_dir, self.bounce_domain, self.bounce_port,
                               self.snippet_dir)
        for sub in ("etc", "queue", "data"):
            (root / sub).mkdir(exist_ok=True)
        shutil.chown(root / "data", user="postfix")
        main = "".join(f"{name} = {value}\n" for name, value in self.main_cf().items())
        (self.config_dir / "main.cf").write_text(main)
        master = MASTER_CF.format(host=self.host, port=self.port)
        transport = list(snippet.transport)
        if self.pipe is not None:
            pipe = load_pipe_snippet(self.bounce_domain, self.pipe)
            master += pipe.master_cf
            transport = list(pipe.transport)
        (self.config_dir / "master.cf").write_text(master)
        if self.remote_port is not None:
            transport.append(f"{self.remote_domain}\tsmtp:[{LOOPBACK}]:{self.remote_port}")
        (self.config_dir / "transport").write_text("\n".join(transport) + "\n")
        (self.config_dir / "bounced_recipients.regexp").write_text(snippet.recipients_regexp)
        # Postfix will not read a table or main.cf modified in the current second (it sleeps
        # 300 ms at a time until the file looks settled): backdate what we just wrote.
        settled = time.time() - 5
        for path in self.config_dir.iterdir():
            os.utime(path, (settled, settled))
        for value in self.main_cf().values():
            for table in re.findall(r"\bhash:(\S+)", value):
                self._run(POSTMAP, "-c", str(self.config_dir), f"hash:{table}")

    # -- lifecycle -------------------------------------------------------------------------

    def _run(self, *argv: str | Path, check: bool = True,
             timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(a) for a in argv], capture_output=True, text=True, check=check,
            timeout=timeout,
        )

    def postfix(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``postfix -c CONFIG_DIR ARGS``."""
        return self._run(POSTFIX, "-c", str(self.config_dir), *args, check=check)

    def start(self, timeout: float = 20.0, attempts: int = 3) -> None:
        """Create the instance, check its configuration and start it; bounded."""
        reason = missing_reason()
        if reason is not None:
            raise RuntimeError(reason)
        base = str(self.base_dir) if self.base_dir is not None else None
        self.root = Path(tempfile.mkdtemp(prefix="bounced-postfix-", dir=base))
        self.root.chmod(0o755)  # postfix-user daemons must reach the queue and data dirs
        last = ""
        for _ in range(attempts):  # the free port can be taken before master binds it
            self.port = free_port()
            self._write_config()
            check = self.postfix("check", check=False)
            if check.returncode != 0:
                self.stop()
                raise RuntimeError(f"postfix check failed: {check.stderr.strip()}")
            mark = self.log_mark()
            started = self._run(*self.command_prefix, POSTFIX, "-c", str(self.config_dir),
                                "start", check=False)
            if started.returncode == 0 and self._wait_listening(timeout, mark):
                self._master_pid = self._read_master_pid()
                return
            last = f"{started.stderr.strip()}\n{self.log_tail()}"
            self._stop_master()
        self.stop()
        raise RuntimeError(f"Postfix did not start on 127.0.0.1 after {attempts} tries: {last}")

    def _wait_listening(self, timeout: float, since: int) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if port_open(self.port):
                return True
            if self.find_log(r"fatal:", since):
                return False
            time.sleep(0.1)
        return False

    def _read_master_pid(self) -> int | None:
        try:
            return int((self.queue_dir / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def processes(self) -> list[int]:
        """Live processes of this instance: the master's process group (the master is a
        session leader; its service processes, smtpd included, stay in its group, also
        after the master has gone)."""
        pid = self._master_pid or (self._read_master_pid() if self.root else None)
        if pid is None:
            return []
        return [p for p in pids_where(2, pid) if process_alive(p)]

    def running(self) -> bool:
        """True while this instance's master process is alive."""
        pid = self._master_pid or (self._read_master_pid() if self.root else None)
        return pid is not None and process_alive(pid)

    def _stop_master(self, timeout: float = 15.0) -> None:
        """postfix stop, then abort, then SIGKILL of this instance's master; bounded.

        Waits for every process of the master's group too, so nothing of the instance (no
        smtpd holding the listening socket) outlives the call. The group, not the master's
        children listed beforehand: the master forks services on demand (an smtpd for a
        connection just made, a proxymap for an smtpd) until it exits, and a child forked
        after such a list kept the port open after stop() one run in several.
        """
        pid = self._master_pid or self._read_master_pid()
        if pid is None:
            return
        self._master_pid = pid
        for action in ("stop", "abort"):
            if not self.running():
                break
            self.postfix(action, check=False)
            deadline = time.monotonic() + timeout
            while self.running() and time.monotonic() < deadline:
                time.sleep(0.1)
        if self.running():
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while self.processes() and time.monotonic() < deadline:
            time.sleep(0.05)
        for child in self.processes():
            os.kill(child, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while self.processes() and time.monotonic() < deadline:
            time.sleep(0.05)
        self._master_pid = None

    def _stop_server(self) -> None:
        self._stop_master()

    # -- mail ------------------------------------------------------------------------------

    def flush(self) -> None:
        """``postqueue -f``: attempt every deferred message now."""
        self._run(POSTQUEUE, "-c", str(self.config_dir), "-f")

    def queue(self) -> list[dict[str, Any]]:
        """The queue as ``postqueue -j`` reports it (one dict per message)."""
        out = self._run(POSTQUEUE, "-c", str(self.config_dir), "-j").stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def queue_count(self) -> int:
        return len(self.queue())
