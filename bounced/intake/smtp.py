"""SMTP intake: verify the token at RCPT TO, store durably at DATA, then answer 250.

No error of ours ever reaches the client as a 5xx: anything unexpected is a 451 and the
sending MTA keeps the bounce and retries.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import re
from collections.abc import Callable
from email.errors import HeaderParseError
from typing import Any

import structlog
from aiosmtpd.smtp import MISSING, SMTP, Envelope, Session, syntax

from bounced.compat import SMTPHooks, get_addr_spec, get_angle_addr
from bounced.config import SMTPSettings, parse_listen
from bounced.intake.commit import Intake, blank
from bounced.intake.limits import PEER, TOTAL, InFlight, RateLimitedLog, StorageLimits
from bounced.metrics import Metrics
from bounced.model import NewMessage, TokenFields
from bounced.verp import InvalidToken, Token, Verifier

log = structlog.get_logger("bounced.smtp")

OK_RCPT = "250 2.1.5 Recipient OK"
OK_DATA = "250 2.0.0 Message stored"
TEMP_FAILURE = "451 4.3.0 Temporary local problem, please try again later"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
NOT_RELAY_CLIENT = "554 5.7.1 Access denied: not a relay client of this bounce handler"
TOO_MANY_CONNECTIONS = "421 4.7.0 Too many connections, try again later"
SHUTTING_DOWN = "421 4.3.2 Service shutting down"
NO_RECIPIENTS = "503 5.5.1 No valid recipients"
TOO_LARGE = "552 5.3.4 Message too big for system"
# An empty DATA (or blank lines only) is no bounce: refused as the pipe and HTTP ingest refuse
# it, permanently, so that the relaying mail server returns it to its postmaster at once.
EMPTY_MESSAGE = "554 5.6.0 Empty message, nothing stored"
# RFC 5321 allows 452 both to DATA and after the data: insufficient system storage, for now.
IN_FLIGHT_FULL = "452 4.3.1 Too much mail being received now, try again later"
OK_MAIL = "250 OK"
OVER_LIMIT = {
    PEER: "452 4.3.1 Too much mail stored from your address in the last minute, try later",
    TOTAL: "451 4.3.2 Too much mail stored in the last minute, try again later",
}

REJECT_TOKEN = {
    "wrong-domain": "550 5.1.1 Not a bounce address of this domain",
    "malformed": "550 5.1.1 No such bounce address (malformed token)",
    "unknown-key": "550 5.7.1 Bounce token signed with an unknown key",
    "bad-signature": "550 5.7.1 Bounce token signature invalid",
    "expired": "550 5.7.1 Bounce token expired",
    "future": "550 5.7.1 Bounce token dated in the future",
}


# <local@domain>, both dot-atoms of ASCII atext, then optional blanks and no comment: what
# get_angle_addr returns for it is the text between the brackets and the rest after the blanks.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_SIMPLE_PATH = re.compile(
    rf"<({_ATEXT}(?:\.{_ATEXT})*@{_ATEXT}(?:\.{_ATEXT})*)>[ \t]*+(?!\()(.*)\Z", re.DOTALL)


def token_fields(token: Token) -> TokenFields:
    return TokenFields(
        subject=token.subject, stream=token.stream, key_id=token.key_id, day=token.day,
        fingerprint=token.fingerprint, token_id=token.token_id,
    )


class BounceHandler:
    """aiosmtpd handler: the RCPT and DATA hooks of bounced."""

    def __init__(
        self,
        verifier: Verifier,
        intake: Intake,
        settings: SMTPSettings,
        now: Callable[[], dt.datetime],
        metrics: Metrics | None = None,
        limits: StorageLimits | None = None,
    ) -> None:
        self.metrics = metrics or Metrics()
        self.verifier = verifier
        self.intake = intake
        self.settings = settings
        self.now = now
        self.limits = limits
        self.in_flight = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self.stats: dict[str, int] = {}
        # Per message, so resolved once: the metric's child.
        self._accepted = self.metrics.accepted.labels("smtp")
        self.warnings = RateLimitedLog(log)
        if limits is not None:
            in_flight = limits.in_flight
            self.metrics.in_flight.set_function(lambda: in_flight.held)

    def _count(self, what: str) -> None:
        self.stats[what] = self.stats.get(what, 0) + 1
        if what == "accepted":
            self._accepted.inc()
        else:
            self.metrics.rejected.labels(what.partition(".")[2] or what).inc()

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str,
        mail_options: list[str],
    ) -> str:
        """Refuse at once a client whose storage allowance is used up (or too small for the
        SIZE it announces), before it sends the message."""
        if self.limits is not None:
            size = next((int(o[5:]) for o in mail_options
                         if o.startswith("SIZE=") and o[5:].isdigit()), 1)
            refusal = self.limits.full(_peer(session), size)
            if refusal is not None:
                self._count(f"rejected.rate_limit_{refusal.limit}")
                return OVER_LIMIT[refusal.limit]
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return OK_MAIL

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str,
        rcpt_options: list[str],
    ) -> str:
        accepted: list[tuple[str, TokenFields]] = envelope.__dict__.setdefault("tokens", [])
        try:
            token = self.verifier.verify(address, today=self.now().date())
        except InvalidToken as exc:
            self._count(f"rejected.{exc.reason}")
            log.info("smtp.rcpt_rejected", peer=_peer(session), reason=exc.reason, detail=str(exc))
            return REJECT_TOKEN.get(exc.reason, "550 5.1.1 No such bounce address")
        fields = token_fields(token)
        if any(fields == seen for _, seen in accepted):
            # The same token again (any letter case): accepted once, stored once, and never
            # refused as one too many (the MTA would send it again in a transaction of its own).
            return OK_RCPT
        if len(accepted) >= self.settings.max_recipients:
            self._count("rejected.too_many_recipients")
            return TOO_MANY_RECIPIENTS
        accepted.append((address, fields))
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return OK_RCPT

    async def handle_DATA(
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        accepted: list[tuple[str, TokenFields]] = envelope.__dict__.get("tokens", [])
        if not accepted:
            return NO_RECIPIENTS
        raw = envelope.original_content or b""
        if blank(raw):
            self._count("rejected.empty")
            return EMPTY_MESSAGE
        received = self.now()
        peer = _peer(session)
        messages = [
            NewMessage(
                received_at=received, peer=peer, mail_from=envelope.mail_from or "",
                rcpt_to=address, token=fields, raw=raw,
            )
            for address, fields in accepted
        ]
        if self.limits is not None:
            refusal = self.limits.charge(peer, len(raw))
            if refusal is not None:
                self._count(f"rejected.rate_limit_{refusal.limit}")
                return OVER_LIMIT[refusal.limit]
        self.in_flight += 1
        self.idle.clear()
        try:
            ids = await self.intake.store(messages)
        except Exception as exc:
            if self.limits is not None:
                self.limits.refund(peer, len(raw))
            self._count("temp_failure.store")
            log.error("smtp.store_failed", peer=peer, error=repr(exc))
            return TEMP_FAILURE
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self.idle.set()
        self._count("accepted")
        log.debug("smtp.stored", peer=peer, ids=ids, size=len(raw),
                  subjects=[m.token.subject for m in messages])
        return OK_DATA

    async def handle_exception(self, error: Exception) -> str:
        self._count("temp_failure.exception")
        log.error("smtp.exception", error=repr(error))
        return TEMP_FAILURE


class OverBudget(Exception):
    """A DATA's message did not fit in the in-flight budget (it was read, and nothing kept)."""


def _announced_size(envelope: Envelope) -> int:
    """What MAIL FROM's SIZE= announced, else 1."""
    return next((int(o[5:]) for o in envelope.mail_options
                 if o.upper().startswith("SIZE=") and o[5:].isdigit()), 1)


def _peer(session: Session | None) -> str:
    peer = session.peer if session is not None else None
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return str(peer or "")


class BouncedSMTP(SMTPHooks, SMTP):
    """aiosmtpd's protocol with relay-network and connection-count gates, and a DATA reader
    of its own: lines of any length, the size limit on the message as stored."""

    # The stream reader's buffer limit: a command line longer than this is refused as
    # aiosmtpd refuses it (500), a DATA line is read in pieces of at most this many octets.
    line_length_limit = 65536

    def __init__(self, handler: BounceHandler, server: SMTPServer, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._gatekeeper = server
        self._held = 0  # bytes of the DATA being received, taken from the in-flight budget

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._gatekeeper.connections.add(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self._gatekeeper.connections.discard(self)
        super().connection_lost(error)

    def parse_path(self, arg: str) -> tuple[str | None, str | None]:
        """aiosmtpd 1.4's address parsing of MAIL and RCPT, with the same answers, faster:
        without the ``typing.Protocol`` class it defines on every call, and with the common
        forms (``<>``, ``<dot-atom@dot-atom>``) read directly rather than through the email
        package's header parser (together about a fifth of the daemon's CPU for SMTP in a
        profile). tests/test_smtp.py compares the two on fixed and generated arguments."""
        if not arg:
            return "", ""
        if arg.startswith("<>"):  # the null sender, as get_angle_addr reads it
            return "<>", arg[2:]
        simple = _SIMPLE_PATH.match(arg)
        if simple is not None:
            path: str = simple[1]
            if self.local_part_limit and len(path.rpartition("@")[0]) > self.local_part_limit:
                return None, None
            return path, simple[2]
        address: Any
        try:
            if arg.lstrip().startswith("<"):
                address, rest = get_angle_addr(arg)
            else:
                address, rest = get_addr_spec(arg)
        except HeaderParseError:
            return None, None
        addr: str = address.addr_spec
        if self.local_part_limit and len(addr.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return addr, rest

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        """aiosmtpd's DATA with another policy for long lines: real MTAs send lines over the
        1,000 octets of RFC 5321 (bounces quote what they were given), and aiosmtpd's
        permanent ``500 Line too long`` made the sender drop a legitimate bounce. Every line is
        kept as sent; the one limit is the size of the message as stored (552 beyond it, the
        same limit HTTP ingest and the pipe apply). The body is built in one buffer rather
        than a list of lines.

        The bytes read are held in the daemon's in-flight budget (``[limits]
        in_flight_bytes``) until the message is stored: a DATA when the budget has no room
        (for the SIZE announced, if any) is answered 452 at once, and a message that outgrows
        it is read to its end keeping nothing and answered 452 (the sender retries later)."""
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        limits = self._handler.limits
        in_flight = limits.in_flight if limits is not None else None
        if in_flight is not None and not in_flight.room(_announced_size(self.envelope)):
            self._in_flight_refused(in_flight)
            await self.push(IN_FLIGHT_FULL)
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        self._held = 0
        try:
            refusal = TOO_LARGE
            try:
                content = await self._read_data(in_flight)
            except OverBudget:
                assert in_flight is not None
                self._in_flight_refused(in_flight)
                content, refusal = None, IN_FLIGHT_FULL
            if content is None:
                self.reset_after_data()
                await self.push(refusal)
                return
            self.envelope.content = self.envelope.original_content = content
            status = await self.call_handler_hook("DATA")  # stored (or refused) on return
        finally:
            if in_flight is not None:
                in_flight.give(self._held)
            self._held = 0
        self.reset_after_data()
        await self.push("250 OK" if status is MISSING else status)

    @property
    def _handler(self) -> BounceHandler:
        return self._gatekeeper.handler

    def _in_flight_refused(self, in_flight: InFlight) -> None:
        self._handler._count("rejected.in_flight")
        self._handler.warnings.warn("limits.in_flight_exceeded", peer=_peer(self.session),
                                    in_flight_bytes=in_flight.budget)

    async def _read_data(self, in_flight: InFlight | None = None) -> bytes | None:
        """The message up to the lone dot, dot-unstuffed; None when it is over the size limit,
        OverBudget raised when it does not fit in the in-flight budget (read to its end all
        the same, keeping nothing, so that the 552 or 452 answers it). The bytes kept are taken
        from ``in_flight`` as they come, and counted in ``self._held``."""
        limit = self.data_size_limit
        body = bytearray()
        too_large = over_budget = False
        line_start = True
        while True:
            try:
                piece = await self.stream_reader.readuntil(b"\r\n")
            except asyncio.LimitOverrunError as exc:
                # No line end within the buffer: take what is there (all but a possible CR)
                # and go on with the rest of the line.
                piece = await self.stream_reader.read(exc.consumed)
            except asyncio.CancelledError:  # the connection went away (aiosmtpd's contract)
                self.close_stream()
                raise
            if line_start and piece == b".\r\n":
                break
            if line_start and piece.startswith(b"."):
                piece = piece[1:]  # RFC 5321 4.5.2: the transparency dot
            line_start = piece.endswith(b"\r\n")
            if too_large or over_budget:
                continue
            if in_flight is not None:
                if not in_flight.take(len(piece)):
                    over_budget = True
                    in_flight.give(self._held)
                    self._held = 0
                    body = bytearray()
                    continue
                self._held += len(piece)
            body += piece
            if limit and len(body) > limit:
                too_large = True
                body = bytearray()  # keep nothing of a message that will be refused
                if in_flight is not None:
                    in_flight.give(self._held)
                    self._held = 0
        if too_large:
            return None
        if over_budget:
            raise OverBudget
        return bytes(body)

    async def serve_client(self) -> None:
        peer = self.session.peer if self.session is not None else None
        refusal = self._gatekeeper.refusal(peer)
        if refusal == TOO_MANY_CONNECTIONS:  # a flood is one line a minute, with its count
            self._gatekeeper.warnings.warn("smtp.connection_limit",
                                           limit=self._gatekeeper.settings.max_connections)
        elif refusal is not None:
            log.info("smtp.connection_refused", peer=_peer(self.session), reply=refusal)
        if refusal is not None:
            await self.push(refusal)
            if self.transport is not None:
                self.transport.close()
            return
        await super().serve_client()


class SMTPServer:
    """The listening socket, its sessions and a graceful shutdown."""

    def __init__(self, handler: BounceHandler, settings: SMTPSettings) -> None:
        self.handler = handler
        self.settings = settings
        self.networks = [ipaddress.ip_network(n, strict=False) for n in settings.relay_networks]
        self.connections: set[BouncedSMTP] = set()
        self.warnings = RateLimitedLog(log)
        self.closing = False
        self._server: asyncio.Server | None = None

    def refusal(self, peer: Any) -> str | None:
        """The reply that turns this connection away, or None to serve it."""
        if self.closing:
            return SHUTTING_DOWN
        host = peer[0] if isinstance(peer, tuple) and peer else ""
        try:
            ip = ipaddress.ip_address(str(host).split("%")[0])
        except ValueError:
            return NOT_RELAY_CLIENT
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if not any(ip in net for net in self.networks):
            return NOT_RELAY_CLIENT
        if len(self.connections) > self.settings.max_connections:
            return TOO_MANY_CONNECTIONS
        return None

    def _protocol(self) -> BouncedSMTP:
        return BouncedSMTP(
            self.handler,
            self,
            hostname=self.settings.hostname,
            ident="bounced",
            data_size_limit=self.settings.max_message_size,
            timeout=self.settings.idle_timeout,
            enable_SMTPUTF8=True,
            decode_data=False,
        )

    async def start(self, sock: Any = None) -> tuple[str, int]:
        """Bind and listen; return the bound address (the port may have been 0)."""
        loop = asyncio.get_running_loop()
        if sock is not None:
            self._server = await loop.create_server(self._protocol, sock=sock)
        else:
            host, port = parse_listen(self.settings.listen)
            self._server = await loop.create_server(self._protocol, host, port)
        bound = self._server.sockets[0].getsockname()
        return str(bound[0]), int(bound[1])

    async def stop(self) -> None:
        """Stop listening, let transactions in flight finish (bounded), close the rest."""
        self.closing = True
        if self._server is not None:
            self._server.close()
        try:
            await asyncio.wait_for(self.handler.idle.wait(), self.settings.shutdown_grace)
        except TimeoutError:
            log.warning("smtp.shutdown_timeout", in_flight=self.handler.in_flight)
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.close()
        if self._server is not None:
            await self._server.wait_closed()
