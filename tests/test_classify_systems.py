"""Mail systems (bounced.classify.systems): a provider's own reply is read as its only for
the hosts it runs, a filtering gateway's "user unknown" after the message is its verdict,
and a new system is one module."""

from __future__ import annotations

import pytest

from bounced.classify import classify
from bounced.classify.systems import SYSTEMS, filtering_gateway, system_reply
from tests.test_classify_formats import dsn, rcpt

AU_REPLY = b"550 : User unknown"  # au's answer for a recipient's own refusal list


def _one(raw: bytes) -> tuple[str, bool]:
    (recipient,) = classify(raw).recipients
    return recipient.reason, recipient.hard


def test_a_providers_reply_is_its_own_only_for_its_hosts() -> None:
    """au's address-less "User unknown" is the recipient's filter for an au address; the same
    words from another server are read by the general rules (here: a dead address)."""
    assert _one(dsn([rcpt(b"taro@ezweb.ne.jp", b"failed", b"5.0.0", AU_REPLY)])) == (
        "filtered", False)
    assert _one(dsn([rcpt(b"taro@example.org", b"failed", b"5.0.0", AU_REPLY)])) == (
        "userunknown", True)
    assert system_reply(lambda: ("ezweb.ne.jp",), "550 : user unknown") == "filtered"
    assert system_reply(lambda: ("mx.example.org",), "550 : user unknown") == ""


@pytest.mark.parametrize(("hosts", "headers", "gateway"), [
    (("server-12.bemta-8.messagelabs.com",), {}, "messagelabs"),
    (("mx1.hc1234-56.iphmx.com",), {}, "cisco"),
    (("mx0b-001.pphosted.com",), {}, "proofpoint"),
    (("docomo.ne.jp",), {}, "docomo"),
    ((), {"x-nai-header": "modified by mcafee email gateway (4500)"}, "mcafee"),
    ((), {"received": "from a by b (postfix)\nfrom c by d (mailfoundry) id 1"}, "mailfoundry"),
    (("mx.example.org", "messagelabs.com.example.org"), {}, ""),  # a name that only contains it
    ((), {"x-mailer": "outlook"}, ""),
])
def test_filtering_gateways_are_known_by_host_or_mark(
        hosts: tuple[str, ...], headers: dict[str, str], gateway: str) -> None:
    """A gateway is recognised by its hosts or the fields only its reports carry."""
    assert filtering_gateway(hosts, headers) == gateway


def test_a_gateways_user_unknown_after_data_is_filtered() -> None:
    """The same "550 <addr>... No such user" after the message is a dead address from a
    mail server and the filter's verdict from a filtering service's."""
    def bounce(remote: bytes) -> bytes:
        return dsn([rcpt(b"ken@example.org", b"failed", b"5.0.0",
                         b"550 ken@example.org... No such user") + b"Remote-MTA: " + remote
                    + b"\r\n"])
    assert _one(bounce(b"dns; mail.example.org")) == ("userunknown", True)
    assert _one(bounce(b"dns; cluster5.eu.messagelabs.com")) == ("filtered", False)


def test_every_system_module_defines_one_system() -> None:
    """Each module of the package is one system, named once."""
    names = [s.name for s in SYSTEMS]
    assert len(names) == len(set(names)) >= 12
    for system in SYSTEMS:
        assert system.hosts or system.markers or system.replies or system.phrases, system.name


@pytest.mark.parametrize(("diagnostic", "reason"), [
    (b"<command failed>", "expired"),  # Courier: the command got no reply, given up on
    (b"Connection refused", "expired"),  # the same, in the words every MTA has
    (b"pipe to |/usr/bin/procmail: command failed", "mailererror"),  # a local program
])
def test_a_systems_connect_failure_given_up_on_is_expired(diagnostic: bytes,
                                                          reason: str) -> None:
    """A system's own words for an attempt that never talked to the host (its
    ``connect_failures``), in a final report with its generic status and no reply, are the
    retries running out; a local program that failed is not."""
    assert classify(dsn([rcpt(b"a@b.example", b"failed", b"5.0.0", diagnostic)])) \
        .recipients[0].reason == reason


@pytest.mark.parametrize("diagnostic", [
    # Exim's words for a pipe or filter program that failed (its exit 127 and 126 notes
    # name the command, not the recipient)
    b"Child process of address_pipe transport returned 127 (could mean unable to exec or "
    b"command does not exist) from command: /usr/local/bin/filter",
    b"Child process of address_pipe transport returned 126 (could mean unable to exec or "
    b"command not executable) from command: /usr/local/bin/filter",
    b"Child process of local_delivery transport returned 75 from command: /usr/bin/deliver",
    b'Command died with status 1: "/usr/bin/procmail". Command output: procmail: '
    b'Couldn\'t create "/var/mail/ken"',
])
def test_a_local_program_that_failed_is_a_mailer_error(diagnostic: bytes) -> None:
    """A local delivery program's failure is the mail system's (mailererror), never a dead
    address, whatever the words it quotes say does not exist."""
    [report] = classify(dsn([rcpt(b"ken@example.org", b"failed", b"5.0.0", diagnostic)])
                        ).recipients
    assert (report.reason, report.hard) == ("mailererror", False)
