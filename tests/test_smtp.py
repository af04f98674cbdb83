"""SMTP intake: RCPT verification, the reply codes, and the configurable limits."""

from __future__ import annotations

import asyncio
import smtplib
import socket
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bounced.verp import Keyring, Signer

from .helpers import DOMAIN, asend, days_ago, dsn, make_settings, running_daemon

ALICE = "alice@example.net"
OTHER_SECRET = "k1 b3RoZXItc2VjcmV0LW5vdC10aGUtcmVhbC1vbmUtYXQtYWxs"
OTHER_KEY_ID = "k9 b3RoZXItc2VjcmV0LW5vdC10aGUtcmVhbC1vbmUtYXQtYWxs"


def bad_return_paths(good: Signer) -> dict[str, tuple[str, str]]:
    """Each bad case: (return path, expected reply prefix)."""
    forged = Signer(Keyring.from_text(OTHER_SECRET), domain=DOMAIN)
    unknown = Signer(Keyring.from_text(OTHER_KEY_ID), domain=DOMAIN)
    valid = good.return_path("4711", ALICE, day=days_ago(1))
    local, _, _ = valid.partition("@")
    flipped = local[:-1] + ("a" if local[-1] != "a" else "b")
    return {
        "malformed": (f"bounce-nonsense@{DOMAIN}", "550 5.1.1"),
        "no token": (f"postmaster@{DOMAIN}", "550 5.1.1"),
        "flipped mac": (f"{flipped}@{DOMAIN}", "550 5.7"),
        "forged": (forged.return_path("4711", ALICE, day=days_ago(1)), "550 5.7"),
        "unknown key": (unknown.return_path("4711", ALICE, day=days_ago(1)), "550 5.7"),
        "expired": (good.return_path("4711", ALICE, day=days_ago(30)), "550 5.7"),
        "future": (good.return_path("4711", ALICE, day=days_ago(-5)), "550 5.7"),
        "other domain": (f"{local}@example.com", "550 5.1.1"),
    }


async def test_every_bad_token_rejected_and_nothing_stored(tmp_path: Path, store_url: str) -> None:
    """Malformed, forged, unknown-key, expired, future and foreign-domain recipients get 550."""
    async with running_daemon(make_settings(tmp_path, store_url), worker=False) as d:
        for case, (rp, expected) in bad_return_paths(d.signer).items():
            reply = await asend(d.port, [rp], dsn(ALICE, return_path=rp))
            code, text = reply[rp]
            assert f"{code} {text}".startswith(expected), (case, code, text)
            assert "DATA" not in reply, case
        assert sum((await d.store.queue_counts()).values()) == 0


async def test_mixed_recipients_store_only_valid_tokens(tmp_path: Path, store_url: str) -> None:
    """In one transaction, only the recipients with valid tokens are stored."""
    async with running_daemon(make_settings(tmp_path, store_url), worker=False) as d:
        good = d.signer.return_path("1", ALICE, day=days_ago(1))
        bad = f"bounce-nonsense@{DOMAIN}"
        reply = await asend(d.port, [good, bad], dsn(ALICE, return_path=good))
        assert reply[good][0] == 250 and reply[bad][0] == 550 and reply["DATA"][0] == 250
        [stored] = await d.store.messages(None)
        assert stored.rcpt_to == good


async def test_message_too_large_gets_552(tmp_path: Path, store_url: str) -> None:
    """A message over the configured size limit is refused with 552 and not stored."""
    settings = make_settings(tmp_path, store_url, BOUNCED_SMTP_MAX_MESSAGE_SIZE="2000")
    async with running_daemon(settings, worker=False) as d:
        rp = d.signer.return_path("1", ALICE, day=days_ago(1))
        big = dsn(ALICE, return_path=rp) + (b"x" * 70 + b"\r\n") * 50
        reply = await asend(d.port, [rp], big)
        assert reply["DATA"][0] == 552
        assert sum((await d.store.queue_counts()).values()) == 0


async def test_empty_message_gets_554_and_nothing_stored(tmp_path: Path, store_url: str) -> None:
    """An empty DATA, or blank lines only, is no bounce: 554 5.6.0 and nothing stored (it was
    stored as an empty message), as the pipe (exit 65) and HTTP ingest (400) refuse it; a
    message of header fields only is stored."""
    async with running_daemon(make_settings(tmp_path, store_url), worker=False) as d:
        rp = d.signer.return_path("1", ALICE, day=days_ago(1))
        for empty in (b"", b"\r\n", b"\r\n \r\n\t\r\n"):
            reply = await asend(d.port, [rp], empty)
            assert reply[rp][0] == 250, reply
            assert reply["DATA"][:2] == (554, "5.6.0 Empty message, nothing stored"), reply
        assert sum((await d.store.queue_counts()).values()) == 0
        headers_only = b"From: MAILER-DAEMON@mx.example.net\r\nX-Failed-Recipients: " + \
            ALICE.encode() + b"\r\n"
        assert (await asend(d.port, [rp], headers_only))["DATA"][0] == 250
        assert sum((await d.store.queue_counts()).values()) == 1


async def test_too_many_recipients_gets_452(tmp_path: Path, store_url: str) -> None:
    """Recipients beyond the per-transaction limit get 452 4.5.3; the others are stored."""
    settings = make_settings(tmp_path, store_url, BOUNCED_SMTP_MAX_RECIPIENTS="2")
    async with running_daemon(settings, worker=False) as d:
        rps = [d.signer.return_path(str(n), ALICE, day=days_ago(1)) for n in range(3)]
        reply = await asend(d.port, rps, dsn(ALICE))
        assert [reply[r][0] for r in rps] == [250, 250, 452]
        assert "4.5.3" in reply[rps[2]][1]
        assert (await d.store.queue_counts())["pending"] == 2


async def test_client_outside_relay_networks_gets_554(tmp_path: Path) -> None:
    """A connection from outside the configured relay networks is greeted with 554."""
    settings = make_settings(tmp_path, BOUNCED_SMTP_RELAY_NETWORKS="192.0.2.0/24")
    async with running_daemon(settings, worker=False) as d:
        with pytest.raises(smtplib.SMTPConnectError) as err:
            await asyncio.to_thread(smtplib.SMTP, "127.0.0.1", d.port, timeout=5)
        assert err.value.smtp_code == 554


async def test_connection_limit_gets_421(tmp_path: Path) -> None:
    """Connections beyond the configured maximum are turned away with 421."""
    settings = make_settings(tmp_path, BOUNCED_SMTP_MAX_CONNECTIONS="2")
    async with running_daemon(settings, worker=False) as d:
        held = [socket.create_connection(("127.0.0.1", d.port)) for _ in range(2)]
        try:
            for s in held:
                assert (await asyncio.to_thread(s.recv, 100)).startswith(b"220")
            with socket.create_connection(("127.0.0.1", d.port)) as third:
                third.settimeout(5)
                assert (await asyncio.to_thread(third.recv, 100)).startswith(b"421")
        finally:
            for s in held:
                s.close()


async def test_idle_connection_is_closed(tmp_path: Path) -> None:
    """A client that says nothing is disconnected after the idle timeout."""
    settings = make_settings(tmp_path, BOUNCED_SMTP_IDLE_TIMEOUT="0.5")
    async with running_daemon(settings, worker=False) as d:
        with socket.create_connection(("127.0.0.1", d.port)) as s:
            s.settimeout(5)
            greeting = await asyncio.to_thread(s.recv, 100)
            assert greeting.startswith(b"220")
            # recv() returns b"" once the server closes; a socket timeout fails the test.
            while await asyncio.to_thread(s.recv, 100):
                pass


async def test_null_sender_and_smtputf8_accepted(tmp_path: Path, store_url: str) -> None:
    """A bounce from the null sender with an SMTPUTF8 transaction is accepted and stored."""
    async with running_daemon(make_settings(tmp_path, store_url), worker=False) as d:
        rp = d.signer.return_path("1", "jörg@exämple.net", day=days_ago(1))

        def send() -> tuple[int, bytes]:
            with smtplib.SMTP("127.0.0.1", d.port, timeout=10) as c:
                c.ehlo("mta.test")
                assert c.has_extn("smtputf8")
                c.mail("", ["SMTPUTF8"])
                assert c.rcpt(rp)[0] == 250
                return c.data(
                    dsn("jörg@exämple.net", return_path=rp).decode("ascii", "replace").encode()
                )

        code, _ = await asyncio.to_thread(send)
        assert code == 250
        [info] = await d.store.messages(None)
        assert info.mail_from == "<>"


def _both_getaddr(limit: int) -> tuple[Any, Any]:
    from aiosmtpd.smtp import SMTP

    from bounced.intake.smtp import BouncedSMTP

    ours = BouncedSMTP.__new__(BouncedSMTP)
    theirs = SMTP.__new__(SMTP)
    ours.local_part_limit = theirs.local_part_limit = limit

    def outcome(fn: Any) -> Any:
        def call(arg: str) -> Any:
            try:
                return fn(arg)
            except Exception as exc:  # aiosmtpd's parser raises on some input: so must ours
                return type(exc)
        return call

    return outcome(ours._getaddr), outcome(lambda arg: SMTP._getaddr(theirs, arg))


def test_address_parsing_is_aiosmtpds() -> None:
    """BouncedSMTP._getaddr answers as aiosmtpd's own for MAIL and RCPT arguments."""
    samples = [
        "", "<>", "<> SIZE=100", "<>SIZE=1", "<>  (c) x", "<a@b.example>",
        "<a@b.example> BODY=8BITMIME", "a@b.example", "a@b.example SMTPUTF8",
        "<bounce-x.k1aaaa@bounces.example.test>", "<a b@c>", "<@>", "<a@>", "<@b>",
        '<"quoted local"@b.example>', "<a@[192.0.2.1]>", "  <a@b.example>", "<a@b.example",
        "a@b.example>", "<<a@b.example>>", "<a@b@c>", "<" + "x" * 70 + "@b.c>",
        "<üser@b.example>", "<a@b.example>   rest of line", "<a\t@b.example>",
        "<(c)a@b.example>", "<a@b.example> (comment) SIZE=1", "<a@b.example>\t (c)",
        "<a@b.example>x", "<a..b@c>", "<.a@c>", "<a.@c>", "<a@b..c>", "<a@b.c.>", "<a@.b>",
        "<A+tag@Example.ORG> SIZE=1", "<a@-b.c>", "<a!#$%&'*+/=?^_`{|}~-@b>",
    ]
    for limit in (0, 64, 3):
        ours, theirs = _both_getaddr(limit)
        for arg in samples:
            assert ours(arg) == theirs(arg), (limit, arg)


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet="<>@.a-b\" ()\t!#=ü", max_size=24), st.sampled_from([0, 4, 64]))
def test_address_parsing_is_aiosmtpds_on_generated_arguments(arg: str, limit: int) -> None:
    """On generated arguments of brackets, dots, at signs, blanks, comments and quotes the two
    parsers agree."""
    ours, theirs = _both_getaddr(limit)
    assert ours(arg) == theirs(arg)


@settings(max_examples=2000, deadline=None)
@given(st.text(alphabet="ab.-+!_(", min_size=0, max_size=8),
       st.text(alphabet="ab.-[]1", min_size=0, max_size=8),
       st.text(alphabet=" \t(a)=S", max_size=6), st.sampled_from([0, 2, 64]))
def test_address_parsing_is_aiosmtpds_on_generated_paths(local: str, domain: str, rest: str,
                                                         limit: int) -> None:
    """On generated <local@domain>rest paths (the form the direct reading takes) the two
    parsers agree."""
    ours, theirs = _both_getaddr(limit)
    arg = f"<{local}@{domain}>{rest}"
    assert ours(arg) == theirs(arg)
