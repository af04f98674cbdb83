"""A private little Internet for the MTA matrix: a scripted DNS server, one scripted SMTP
server for every remote domain, and a resolver only the MTAs under test use.

- ``ScriptedDNS`` (dnslib) answers on port 53 of a loopback address of its own
  (127.R.S.53: resolv.conf cannot name a port, and a random /24 of 127/8 keeps concurrent
  runs apart). ``remote.test`` and the bounce domain have an MX pointing at the world's
  SMTP server; ``refused.test`` an MX pointing at an address where nothing listens;
  ``nullmx.test`` a null MX (RFC 7505); ``closing.test`` an MX of its own (421 and a
  closed connection at RCPT); ``nxdomain.test`` and every other name NXDOMAIN.
- ``WorldServer`` (aiosmtpd) listens on the same port P on 127.0.0.1 and the MX addresses:
  mail for the bounce domain is caught (the bounces the MTAs send back); mail for
  ``remote.test`` is answered by the recipient's local part (``REPLIES``).
- ``private_resolver_argv()``: the command prefix that runs an MTA in a private mount
  namespace where ``/etc/resolv.conf`` is this world's file (a bind mount that only that
  namespace sees; the system's file is never written).

Every MTA of the matrix sends to port P (the ones that always use MX records and one port
are pointed at P by their own setting), so one scripted remote serves them all at once;
each bounce is told apart by its envelope recipient, ``bounce-<mta>-<scenario>@...``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from aiosmtpd.smtp import SMTP, Envelope, Session

from .net import LOOPBACK
from .remote import Received

BOUNCE_DOMAIN = "bounces.example.test"
REMOTE_DOMAIN = "remote.test"
REFUSED_DOMAIN = "refused.test"
CLOSING_DOMAIN = "closing.test"
CLOSING_HOST = "mx.closing.test"
NULLMX_DOMAIN = "nullmx.test"
NXDOMAIN_DOMAIN = "nxdomain.test"
MX_HOST = "mx.remote.test"
REFUSED_HOST = "mx.refused.test"
REMOTE_HOSTNAME = MX_HOST


@dataclass(frozen=True)
class Reply:
    """How the remote answers a local part: at RCPT or at the end of DATA, with this line."""

    stage: str  # "rcpt" or "data"
    line: str


# The remote domain's behaviour by local-part prefix (longest first wins). Wordings are
# those of common servers (Postfix's own rejections, Exim's temporary failure, Gmail's DMARC refusal, a Spamhaus
# listing as Postfix's reject_rbl_client words it).
REPLIES: dict[str, Reply] = {
    "unknown": Reply("rcpt", "550 5.1.1 <{rcpt}>: Recipient address rejected: "
                             "User unknown in local recipient table"),
    "gone": Reply("data", "550 User unknown"),
    "quota": Reply("rcpt", "552 5.2.2 <{rcpt}>: Recipient address rejected: "
                           "Mailbox full, quota exceeded"),
    "dnsbl": Reply("rcpt", "554 5.7.1 Service unavailable; Client host [{peer}] blocked "
                           "using zen.spamhaus.org; https://www.spamhaus.org/query/ip/{peer}"),
    "dmarc": Reply("data", "550 5.7.26 Unauthenticated email from app.example.test is not "
                           "accepted due to domain's DMARC policy. Please contact the "
                           "administrator of app.example.test domain if this was a "
                           "legitimate mail."),
    "big": Reply("data", "552 5.3.4 Message size exceeds fixed maximum message size"),
    "relay": Reply("rcpt", "550 5.7.1 <{rcpt}>: Relay access denied"),
    "later": Reply("rcpt", "451 4.3.0 Temporary local problem - please try later"),
    "moved": Reply("rcpt", "551 5.1.6 <{rcpt}>: Recipient address rejected: User has moved; "
                           "please try <new-address@elsewhere.test>"),
}


# closing.test answers every RCPT with 421 and closes the connection (RFC 5321 4.2.1). It
# has an MX host of its own, so MTAs that keep connections open per host never mix it up
# with the remote domain's sessions.
CLOSING = Reply("rcpt", "421 4.3.2 mx.closing.test Service not available, closing "
                        "transmission channel")


def reply_for(address: str) -> Reply | None:
    """The scripted reply for a remote-domain address, or None when it is accepted."""
    local = address.rsplit("@", 1)[0].lower()
    for prefix in sorted(REPLIES, key=len, reverse=True):
        if local.startswith(prefix):
            return REPLIES[prefix]
    return None


def _pick_subnet() -> tuple[int, int]:
    # Three digits each: the addresses always have the same length, so an MTA that wraps
    # its lines around them wraps them the same way every run (stable corpus diffs).
    return random.randint(100, 250), random.randint(100, 250)


# -- DNS ------------------------------------------------------------------------------------

class ScriptedDNS:
    """A DNS server (UDP and TCP) on ``address``:53 with the world's fixed zone."""

    def __init__(self, address: str, mx_ip: str, closed_ip: str, bounce_domain: str,
                 closing_ip: str) -> None:
        from dnslib import MX, QTYPE, RR, A
        from dnslib.server import BaseResolver, DNSLogger, DNSServer

        self.address = address
        names: dict[str, list[Any]] = {
            REMOTE_DOMAIN: [RR(REMOTE_DOMAIN, QTYPE.MX, rdata=MX(MX_HOST, 10), ttl=60)],
            bounce_domain: [RR(bounce_domain, QTYPE.MX, rdata=MX(MX_HOST, 10), ttl=60)],
            MX_HOST: [RR(MX_HOST, QTYPE.A, rdata=A(mx_ip), ttl=60)],
            REFUSED_DOMAIN: [RR(REFUSED_DOMAIN, QTYPE.MX, rdata=MX(REFUSED_HOST, 10), ttl=60)],
            REFUSED_HOST: [RR(REFUSED_HOST, QTYPE.A, rdata=A(closed_ip), ttl=60)],
            CLOSING_DOMAIN: [RR(CLOSING_DOMAIN, QTYPE.MX, rdata=MX(CLOSING_HOST, 10), ttl=60)],
            CLOSING_HOST: [RR(CLOSING_HOST, QTYPE.A, rdata=A(closing_ip), ttl=60)],
            NULLMX_DOMAIN: [RR(NULLMX_DOMAIN, QTYPE.MX, rdata=MX(".", 0), ttl=60)],
        }
        self.queries: list[tuple[str, str]] = []
        queries = self.queries

        class Resolver(BaseResolver):  # type: ignore[misc]
            def resolve(self, request: Any, handler: Any) -> Any:
                reply = request.reply()
                qname = str(request.q.qname).rstrip(".").lower()
                qtype = QTYPE[request.q.qtype]
                queries.append((qname, qtype))
                records = names.get(qname)  # no AAAA anywhere: the MTAs use IPv4 loopback
                if records is None:
                    reply.header.rcode = 3  # NXDOMAIN
                    return reply
                for record in records:
                    if QTYPE[record.rtype] == qtype or qtype == "ANY":
                        reply.add_answer(record)
                        if record.rtype == QTYPE.MX:  # glue, as real servers add it
                            target = str(record.rdata.label).rstrip(".").lower()
                            for extra in names.get(target, []):
                                reply.add_ar(extra)
                return reply

        logger = DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data",
                           logf=lambda _s: None)
        self._servers = [DNSServer(Resolver(), address=address, port=53, tcp=tcp,
                                   logger=logger) for tcp in (False, True)]

    def start(self) -> None:
        for server in self._servers:
            server.start_thread()

    def stop(self) -> None:
        for server in self._servers:
            with contextlib.suppress(Exception):
                server.server.shutdown()
                server.server.server_close()


# -- SMTP -----------------------------------------------------------------------------------

class _WorldHandler:
    def __init__(self, bounce_domain: str, record: Callable[[Received], None]) -> None:
        self.bounce_domain = bounce_domain.lower()
        self.record = record

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str,
        rcpt_options: list[str],
    ) -> str:
        domain = address.rsplit("@", 1)[-1].lower()
        if domain == self.bounce_domain:
            if not address.lower().startswith("bounce-"):
                return f"550 5.1.1 <{address}>: not a bounce address"
        elif domain == CLOSING_DOMAIN:
            if server.transport is not None:
                # Closed a moment after the reply: the client has read it (and sent its
                # QUIT) by then. Closing at once raced the client's next command, whose
                # RST could discard the 421 before the client read it (the bounce then
                # said "connection reset" one run in several).
                asyncio.get_running_loop().call_later(1.0, server.transport.close)
            return CLOSING.line
        elif domain == REMOTE_DOMAIN:
            reply = reply_for(address)
            if reply is not None and reply.stage == "rcpt":
                peer = session.peer[0] if isinstance(session.peer, tuple) else "127.0.0.1"
                return reply.line.format(rcpt=address, peer=peer)
        else:
            return f"550 5.7.1 <{address}>: Relay access denied"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        for rcpt in envelope.rcpt_tos:
            reply = reply_for(rcpt) if rcpt.lower().endswith("@" + REMOTE_DOMAIN) else None
            if reply is not None and reply.stage == "data":
                return reply.line.format(rcpt=rcpt, peer="")
        content = envelope.original_content or b""
        self.record(Received(str(envelope.mail_from), tuple(envelope.rcpt_tos), bytes(content)))
        return "250 2.0.0 OK"


class WorldServer:
    """One aiosmtpd server on ``hosts`` (same port on each), in a thread of its own."""

    def __init__(self, hosts: list[str], bounce_domain: str,
                 smtp_port_host: str | None = None) -> None:
        self.hosts = hosts
        self.smtp_port_host = smtp_port_host
        self.port25 = False
        self.port25_error = "not asked for"
        self.port = 0
        self.messages: list[Received] = []
        self._cond = threading.Condition()
        self._handler = _WorldHandler(bounce_domain, self._record)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def _record(self, message: Received) -> None:
        with self._cond:
            self.messages.append(message)
            self._cond.notify_all()

    def snapshot(self) -> list[Received]:
        with self._cond:
            return list(self.messages)

    def wait(self, probe: Callable[[list[Received]], bool], timeout: float) -> bool:
        """Wait until ``probe(messages)`` holds; False when ``timeout`` ran out."""
        with self._cond:
            return self._cond.wait_for(lambda: probe(self.messages), timeout)

    def start(self, port: int, timeout: float = 10.0) -> None:
        ready = threading.Event()
        self.port = port
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True,
                                        name="smtp-world")
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError("world SMTP server did not start")
        if self._error is not None:
            raise self._error

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop

        def protocol() -> SMTP:
            return SMTP(self._handler, hostname=REMOTE_HOSTNAME, ident="world",
                        enable_SMTPUTF8=True, timeout=60)

        try:
            server = loop.run_until_complete(loop.create_server(
                protocol, host=self.hosts, port=self.port, reuse_address=False))
        except BaseException as exc:
            self._error = exc
            ready.set()
            loop.close()
            return
        servers = [server]
        if self.smtp_port_host is not None:
            # Port 25 of the MX address too, for MTAs that always deliver to port 25 (the
            # address is this run's own; nothing else listens there unless port 25 is
            # bound on every address, and then those MTAs skip with the reason).
            try:
                servers.append(loop.run_until_complete(loop.create_server(
                    protocol, host=self.smtp_port_host, port=25, reuse_address=False)))
                self.port25 = True
            except OSError as exc:
                self.port25_error = str(exc)
        ready.set()
        try:
            loop.run_forever()
        finally:
            for one in servers[1:]:
                one.close()
            server.close()
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            with contextlib.suppress(Exception):
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(server.wait_closed())
            loop.close()

    def stop(self, timeout: float = 10.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
        self._thread = None


# -- the whole world ------------------------------------------------------------------------

def _port_free_everywhere(port: int, hosts: list[str]) -> bool:
    for host in ["0.0.0.0", *hosts]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                return False
    return True


class World:
    """DNS + SMTP world for a matrix run; ``resolv_conf`` is the MTAs' resolver file."""

    def __init__(self, directory: Path, bounce_domain: str = BOUNCE_DOMAIN) -> None:
        self.directory = directory
        self.bounce_domain = bounce_domain
        self.subnet = (0, 0)
        self.dns: ScriptedDNS | None = None
        self.smtp: WorldServer | None = None

    def ip(self, last: int) -> str:
        return f"127.{self.subnet[0]}.{self.subnet[1]}.{last}"

    @property
    def mx_ip(self) -> str:
        return self.ip(2)

    @property
    def closed_ip(self) -> str:
        return self.ip(4)

    @property
    def closing_ip(self) -> str:
        return self.ip(3)

    @property
    def dns_ip(self) -> str:
        return self.ip(53)

    @property
    def port(self) -> int:
        if self.smtp is None:
            raise RuntimeError("world not started")
        return self.smtp.port

    @property
    def resolv_conf(self) -> Path:
        return self.directory / "resolv.conf"

    def start(self, attempts: int = 20) -> None:
        last: BaseException | None = None
        for _ in range(attempts):
            self.subnet = _pick_subnet()
            hosts = [LOOPBACK, self.mx_ip, self.closing_ip]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((LOOPBACK, 0))
                port = int(sock.getsockname()[1])
            if not _port_free_everywhere(port, [*hosts[1:], self.closed_ip]):
                continue
            try:
                dns = ScriptedDNS(self.dns_ip, self.mx_ip, self.closed_ip, self.bounce_domain,
                                  self.closing_ip)
            except OSError as exc:  # port 53 of that address taken: another subnet
                last = exc
                continue
            smtp = WorldServer(hosts, self.bounce_domain, smtp_port_host=self.mx_ip)
            try:
                smtp.start(port)
            except OSError as exc:
                dns.stop()
                last = exc
                continue
            dns.start()
            self.dns, self.smtp = dns, smtp
            self.directory.mkdir(parents=True, exist_ok=True)
            self.resolv_conf.write_text(f"nameserver {self.dns_ip}\noptions attempts:1\n")
            self.resolv_conf.chmod(0o644)
            return
        raise RuntimeError(f"could not start the test world: {last}")

    def stop(self) -> None:
        if self.smtp is not None:
            self.smtp.stop()
            self.smtp = None
        if self.dns is not None:
            self.dns.stop()
            self.dns = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def volatile(self) -> dict[str, str]:
        """This run's addresses and port, and the stable values a corpus file gets instead."""
        return {self.mx_ip: "127.0.0.2", self.closing_ip: "127.0.0.3",
                self.closed_ip: "127.0.0.4",
                self.dns_ip: "127.0.0.53", str(self.port): "2525"}


def namespace_reason() -> str | None:
    """Why MTAs cannot get a private mount namespace (bind and overlay mounts) here, or None."""
    import os
    import subprocess

    if os.geteuid() != 0:
        return "the MTA matrix needs root (mount namespaces, port 53 of a loopback address)"
    probe = ("mount --bind /etc/resolv.conf /etc/resolv.conf && "
             "mount -t overlay overlay -o lowerdir=/etc:/usr /mnt")
    try:
        done = subprocess.run(["unshare", "--mount", "--uts", "--propagation", "private", "--",
                               "/bin/sh", "-c", probe], capture_output=True, text=True,
                              timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"no private mount namespace here: {exc}"
    if done.returncode != 0:
        return f"no private mount namespace here: {(done.stderr or done.stdout).strip()[:200]}"
    return None


def private_resolver_argv(resolv_conf: Path) -> list[str]:
    """Run a command in a private mount namespace whose /etc/resolv.conf is ``resolv_conf``.

    The bind mount exists only in that namespace (``--propagation private``): the system's
    file and every other process are untouched, and it disappears with the last process.
    """
    return namespace_argv({resolv_conf: Path("/etc/resolv.conf")})


def namespace_argv(mounts: dict[Path, Path], hostname: str | None = None) -> list[str]:
    """Like ``private_resolver_argv`` for several bind mounts ({private path: path it
    covers}), and with ``hostname`` a UTS namespace of its own with that host name (for
    MTAs that take their name from the system and have no setting for it)."""
    steps = [f'mount --bind "${i * 2 + 1}" "${i * 2 + 2}"' for i in range(len(mounts))]
    args = [str(p) for pair in mounts.items() for p in pair]
    flags = ["--mount", "--propagation", "private"]
    if hostname is not None:
        flags.append("--uts")
        steps.append(f"hostname {hostname}")
    return ["unshare", *flags, "--", "/bin/sh", "-c",
            f'{" && ".join(steps)} && shift {len(args)} && exec "$@"', "sh", *args]
