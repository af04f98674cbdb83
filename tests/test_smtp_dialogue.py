"""The SMTP dialogue, explored by hypothesis against ``bounced serve`` on 127.0.0.1.

A state machine sends HELO/EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT and garbage in any order,
with valid, duplicate (in other letter cases), forged, expired and malformed tokens, senders and
bodies with odd bytes, long lines and oversized bodies, over a raw socket, and checks after
every reply what a sending MTA relies on: no reply comes from an exception (aiosmtpd's
``500 Error: (...)``); DATA after a valid token is 250 unless the message is over the size
limit (552) or empty (554); what got 250 is in the store exactly once per transaction and token, byte for
byte; forged tokens store nothing. Bounded: about 20 s.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from bounced.verp import Keyring, Signer

from .helpers import DOMAIN, days_ago, dsn
from .test_intake_abuse import ALICE, Served, SMTPConn, case_variants

MAX_SIZE = 20_000
MAX_RCPTS = 4
BOGUS_LIMIT = 5  # aiosmtpd closes the session after this many unknown commands
FORGER = Signer(Keyring.from_text("k1 b3RoZXItc2VjcmV0LW5vdC10aGUtcmVhbC1vbmUtYXQtYWxs"),
                domain=DOMAIN)
_subjects = itertools.count()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One ``bounced serve`` for the whole exploration (worker off)."""
    d = Served(tmp_path_factory.mktemp("dialogue"),
               BOUNCED_SMTP_MAX_MESSAGE_SIZE=str(MAX_SIZE),
               BOUNCED_SMTP_MAX_RECIPIENTS=str(MAX_RCPTS),
               BOUNCED_LIMITS_PEER_BYTES_PER_MINUTE="0",  # tested on their own
               BOUNCED_LIMITS_TOTAL_BYTES_PER_MINUTE="0")
    d.start()
    try:
        yield d
    finally:
        d.proc.stop()


def stored_form(body: bytes) -> bytes:
    """What the store keeps of a body sent with SMTPConn.send_data: its lines, each ending
    CRLF (the final CRLF added when it had none)."""
    lines = body.split(b"\r\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return b"".join(line + b"\r\n" for line in lines)


ODD_BYTES = st.binary(min_size=1, max_size=60).map(
    lambda b: b.replace(b"\r", b"").replace(b"\n", b"")).filter(bool)
SENDERS = st.one_of(
    st.just(b""), st.just(b"postmaster@mx.example.net"), st.just(b"j\xe9r\xf4me@example.net"),
    st.just(b"a\\b@example.net"), ODD_BYTES)
BODIES = st.one_of(
    st.just("dsn"),
    st.binary(max_size=2_000),
    st.tuples(st.integers(1_001, 60_000), st.sampled_from([b"a", b" ", b".", b"\xff"])).map(
        lambda t: b"X-Long: " + t[1] * t[0] + b"\r\n"),
    st.just(b".\r\n..\r\n.x\r\nend\r\n"),
    st.integers(MAX_SIZE - 10, MAX_SIZE + 10).map(lambda n: b"y" * (n - 2) + b"\r\n"),
)


class Dialogue(RuleBasedStateMachine):
    """One SMTP session (reconnected when the server ends it) and what it should have got."""

    served: ClassVar[Served]

    def __init__(self) -> None:
        super().__init__()
        self.conn: SMTPConn | None = None
        self.reply: tuple[int, str] = (220, "")
        self.greeted = False
        self.mail = False
        self.tokens: dict[str, str] = {}  # subject -> the first spelling accepted
        self.bogus = 0

    @initialize(greet=st.booleans())
    def connect(self, greet: bool = True) -> None:
        self.conn = SMTPConn(self.served.smtp_port)
        self.reply = self.conn.banner
        assert self.reply[0] == 220
        self.greeted = self.mail = False
        self.tokens = {}
        self.bogus = 0
        if greet:  # as most sessions begin; the hello rule says it again, or first
            self.hello(True, b"mx.example.net")

    def teardown(self) -> None:
        if self.conn is not None:
            self.conn.close()

    def send(self, line: bytes) -> tuple[int, str]:
        assert self.conn is not None
        self.reply = self.conn.cmd(line)
        return self.reply

    def reset_transaction(self) -> None:
        self.mail = False
        self.tokens = {}

    @invariant()
    def never_an_exception_reply(self) -> None:
        code, text = self.reply
        assert 200 <= code < 600, self.reply
        assert "Error: (" not in text, self.reply  # aiosmtpd's reply to an uncaught exception

    @rule(esmtp=st.booleans(), name=st.one_of(st.just(b"mx.example.net"), ODD_BYTES))
    def hello(self, esmtp: bool, name: bytes) -> None:
        code, _ = self.send((b"EHLO " if esmtp else b"HELO ") + name)
        if code == 250:
            self.greeted = True
            self.reset_transaction()

    @rule(sender=SENDERS, utf8=st.booleans())
    def mail_from(self, sender: bytes, utf8: bool) -> None:
        code, _ = self.send(b"MAIL FROM:<" + sender + b">" + (b" SMTPUTF8" if utf8 else b""))
        if not self.greeted:
            assert code == 503, self.reply
        elif code in (501, 553):
            pass  # an unparsable sender (or SMTPUTF8 after HELO): refused, never with a 4xx
        elif self.mail:
            assert code == 503, self.reply  # nested MAIL
        else:
            assert code == 250, self.reply
            self.mail = True

    @rule(kind=st.sampled_from(["fresh", "fresh", "again", "again", "forged", "expired",
                                "malformed"]),
          spelling=st.integers(0, 7))
    def rcpt_to(self, kind: str, spelling: int) -> None:
        subject = f"dialogue-{uuid.uuid4().hex[:8]}-{next(_subjects)}"
        if kind == "again" and self.tokens:
            subject = sorted(self.tokens)[spelling % len(self.tokens)]
            address = case_variants(self.tokens[subject], 8)[spelling]
        elif kind == "forged":
            address = FORGER.return_path(subject, ALICE, day=days_ago(1))
        elif kind == "expired":
            address = self.served.sign.return_path(subject, ALICE, day=days_ago(40))
        elif kind == "malformed":
            address = f"bounce-{subject}@{DOMAIN}"
        else:
            kind = "fresh"
            address = self.served.token(subject)
        code, _ = self.send(b"RCPT TO:<" + address.encode() + b">")
        if not self.greeted or not self.mail:
            assert code == 503, self.reply
        elif kind in ("forged", "expired", "malformed"):
            assert code == 550, self.reply
        elif kind == "again":
            assert code == 250, self.reply  # accepted once more, stored once
        elif len(self.tokens) >= MAX_RCPTS:
            assert code == 452, self.reply
        else:
            assert code == 250, self.reply
            self.tokens[subject] = address

    def ready(self) -> bool:
        return self.greeted and self.mail and bool(self.tokens)

    @precondition(lambda self: not self.ready())
    @rule()
    def data_out_of_order(self) -> None:
        assert self.send(b"DATA")[0] == 503, self.reply

    @precondition(lambda self: self.ready())
    @rule(body=BODIES)
    def data(self, body: bytes | str) -> None:
        raw = dsn(ALICE) if body == "dsn" else body
        assert isinstance(raw, bytes)
        code, _ = self.send(b"DATA")
        assert code == 354, self.reply
        assert self.conn is not None
        self.conn.send_data(raw)
        code, _ = self.send(b".")
        expected = stored_form(raw)
        if len(expected) > MAX_SIZE or not expected.strip():
            # over the size limit, or no message at all (blank lines only)
            assert code == (552 if expected.strip() else 554), self.reply
            stored = self.served.rows(
                f"SELECT subject FROM messages WHERE subject IN "
                f"({','.join('?' * len(self.tokens))})", *self.tokens)
            assert stored == [], stored
        else:
            assert code == 250, self.reply
            for subject in self.tokens:
                rows = self.served.rows(
                    "SELECT b.raw FROM messages m JOIN bodies b ON b.id = m.body_id "
                    "WHERE m.subject = $1", subject)
                assert rows == [(expected,)], (subject, len(rows))
        self.reset_transaction()

    @precondition(lambda self: self.greeted and not self.mail)
    @rule(sender=SENDERS, kinds=st.lists(
        st.sampled_from(["fresh", "again", "forged", "expired", "malformed"]), min_size=1,
        max_size=MAX_RCPTS + 2), spelling=st.integers(0, 7), body=BODIES)
    def transaction(self, sender: bytes, kinds: list[str], spelling: int,
                    body: bytes | str) -> None:
        """A whole transaction in one step, as MTAs send them (the rules above also come one
        at a time, in any order)."""
        self.mail_from(sender, utf8=False)
        for n, kind in enumerate(["fresh", *kinds]):
            if self.mail:
                self.rcpt_to(kind, (spelling + n) % 8)
        if self.ready():
            self.data(body)

    @rule()
    def rset(self) -> None:
        assert self.send(b"RSET")[0] == 250
        self.reset_transaction()

    @rule()
    def noop(self) -> None:
        assert self.send(b"NOOP")[0] == 250

    @precondition(lambda self: self.bogus < BOGUS_LIMIT - 1)
    @rule(line=ODD_BYTES)
    def garbage(self, line: bytes) -> None:
        code, _ = self.send(b"X" + line)  # never a real command
        self.bogus += 1
        assert code in (500, 501, 502), self.reply

    @rule()
    def quit_and_reconnect(self) -> None:
        assert self.send(b"QUIT")[0] == 221
        assert self.conn is not None
        self.conn.close()
        self.connect()


def test_smtp_dialogue_keeps_its_promises(daemon: Served) -> None:
    """Random SMTP dialogues with valid, duplicate, forged and odd input: no reply from an
    exception, 250 for every valid DATA within the size limit, and each 250 stored once per
    token, byte for byte."""
    Dialogue.served = daemon
    run_state_machine_as_test(Dialogue, settings=settings(
        max_examples=40, stateful_step_count=25, deadline=None, database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]))
