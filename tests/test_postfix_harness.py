"""The real-MTA harness: a private Postfix (and Exim) relays its own DSNs to the bounce domain.

A stand-in receiver (aiosmtpd) plays bounced on the bounce-domain port; the daemon tests
reuse the same harness with ``bounced serve`` there instead. Tests taking ``mta_factory``
run once with Postfix and once with Exim.
"""

from __future__ import annotations

import hashlib
import smtplib
from pathlib import Path

import pytest

from .mta import exim
from .mta.base import MTAInstance, process_alive
from .mta.dsn import RecipientStatus, delivery_status
from .mta.fixtures import (  # noqa: F401 - registers the fixtures
    MTAFactory,
    mta_capture_fixture,
    mta_factory_fixture,
    mta_remote_fixture,
)
from .mta.net import port_open
from .mta.postfix import SNIPPET_DIR, load_snippet
from .mta.remote import CaptureServer, Received, RemoteServer

BOUNCE_DOMAIN = "bounces.example.test"


def sender(tag: str) -> str:
    return f"bounce-{tag}@{BOUNCE_DOMAIN}"


def only_status(message: Received) -> RecipientStatus:
    statuses = delivery_status(message.data)
    assert len(statuses) == 1, statuses
    return statuses[0]


def dsn_status(mta: MTAInstance, action: str, remote_status: str) -> str:
    """The Status: field each MTA writes (Exim: always x.0.0; the remote's code is only in
    Diagnostic-Code)."""
    if mta.name == "Exim":
        return "5.0.0" if action == "failed" else "4.0.0"
    return remote_status


def etc_postfix_digest() -> dict[str, str]:
    etc = Path("/etc/postfix")
    if not etc.is_dir():
        return {}
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in etc.iterdir() if p.is_file()}


def test_remote_server_answers_by_local_part(mta_remote: RemoteServer) -> None:
    """unknown*/blocked*/full* get 550 5.1.1, 550 5.7.1, 452 4.2.2; others are accepted."""
    with smtplib.SMTP(mta_remote.host, mta_remote.port, timeout=10) as smtp:
        smtp.ehlo("app.test")
        smtp.mail("app@app.example.test")
        replies = {r: smtp.rcpt(f"{r}@remote.test") for r in ("unknown7", "blocked7", "full7")}
        assert replies["unknown7"][0] == 550 and replies["unknown7"][1].startswith(b"5.1.1")
        assert replies["blocked7"][0] == 550 and replies["blocked7"][1].startswith(b"5.7.1")
        assert replies["full7"][0] == 452 and replies["full7"][1].startswith(b"4.2.2")
        assert smtp.rcpt("alice@remote.test")[0] == 250
        assert smtp.data(b"Subject: hi\r\n\r\nbody\r\n")[0] == 250
    [got] = mta_remote.wait_for(1, timeout=5)
    assert got.rcpt_tos == ("alice@remote.test",)
    assert [a.code for a in mta_remote.attempts] == [550, 550, 452, 250]


def test_postfix_snippet_is_rewritten_for_the_test_domain_and_port(tmp_path: Path) -> None:
    """The operator's Postfix transport line is reused with only domain and port replaced."""
    snippet = load_snippet(tmp_path, BOUNCE_DOMAIN, 40025)
    assert snippet.transport == [f"{BOUNCE_DOMAIN}\tsmtp:[127.0.0.1]:40025"]
    assert snippet.main_cf["relay_domains"] == BOUNCE_DOMAIN
    assert snippet.main_cf["transport_maps"] == f"hash:{tmp_path}/transport"
    assert r"bounces\.example\.test$/" in snippet.recipients_regexp
    original = (SNIPPET_DIR / "transport").read_text()
    assert "bounces.example.org    smtp:[127.0.0.1]:2525" in original


def test_exim_snippet_is_rewritten_for_the_test_domain_and_port() -> None:
    """The operator's Exim router is reused with only domain and port replaced."""
    snippet = exim.load_snippet(BOUNCE_DOMAIN, 40025)
    assert f"domains = {BOUNCE_DOMAIN}\n" in snippet.router
    assert "route_list = * 127.0.0.1::40025\n" in snippet.router
    assert "transport = bounced_smtp\n" in snippet.router
    assert snippet.transport.startswith("bounced_smtp:\n")
    assert f"domains = {BOUNCE_DOMAIN}\n" in snippet.acl and "example.org" not in snippet.acl


def test_hard_failures_come_back_as_failed_dsns(
    mta_remote: RemoteServer, mta_capture: CaptureServer, mta_factory: MTAFactory,
) -> None:
    """550 5.1.1 and 550 5.7.1 from the remote reach the bounce port as failed DSNs."""
    mta = mta_factory(remote_port=mta_remote.port, bounce_port=mta_capture.port)
    for tag in ("unknown1", "blocked1", "alice"):
        assert mta.send(sender(tag), [f"{tag}@remote.test"]).queue_id
    dsns = mta_capture.wait_for(2, timeout=20)
    mta_remote.wait_for(1, timeout=20)
    mta.wait_queue_empty(timeout=20)
    by_rcpt = {m.rcpt_tos: m for m in dsns}
    assert set(by_rcpt) == {(sender("unknown1"),), (sender("blocked1"),)}
    for tag, status in (("unknown1", "5.1.1"), ("blocked1", "5.7.1")):
        dsn = by_rcpt[(sender(tag),)]
        assert dsn.mail_from == "<>"
        got = only_status(dsn)
        assert (got.final_recipient, got.action) == (f"{tag}@remote.test", "failed")
        assert got.status == dsn_status(mta, "failed", status)
        assert got.diagnostic.startswith(f"smtp; 550 {status} <{tag}@remote.test>")
    assert [m.rcpt_tos for m in mta_remote.messages] == [("alice@remote.test",)]
    assert len(mta_capture.messages) == 2  # nothing for the delivered message


@pytest.mark.slow
def test_full_mailbox_gives_delay_then_failed_dsn(
    mta_remote: RemoteServer, mta_capture: CaptureServer, mta_factory: MTAFactory,
) -> None:
    """452 4.2.2 yields a delayed DSN, then after the queue lifetime a failed one."""
    mta = mta_factory(remote_port=mta_remote.port, bounce_port=mta_capture.port,
                      delay_warning=5, lifetime=15)
    assert mta.send(sender("full1"), ["full1@remote.test"]).queue_id
    mta_remote.wait_for_attempts("full1@remote.test", timeout=10)
    [delay] = mta_capture.wait_for(1, timeout=30)
    assert delay.mail_from == "<>" and delay.rcpt_tos == (sender("full1"),)
    assert only_status(delay).action == "delayed"
    assert only_status(delay).status == dsn_status(mta, "delayed", "4.2.2")
    assert "452 4.2.2" in only_status(delay).diagnostic
    failed = mta_capture.wait_for(2, timeout=45)[1]
    assert failed.mail_from == "<>" and failed.rcpt_tos == (sender("full1"),)
    assert only_status(failed).action == "failed"
    assert only_status(failed).status == dsn_status(mta, "failed", "4.2.2")
    assert "452 4.2.2" in only_status(failed).diagnostic
    mta.wait_queue_empty(timeout=20)
    assert len(mta_remote.attempts) >= 3 and mta_remote.messages == []
    assert len(mta_capture.messages) == 2


def test_bounce_domain_accepts_only_bounce_addresses_from_outside(
    mta_capture: CaptureServer, mta_factory: MTAFactory,
) -> None:
    """From another server, bounce-* for the domain is relayed; other local parts get 550."""
    mta = mta_factory(bounce_port=mta_capture.port)
    submitted = mta.send("", [sender("abc.1-x"), f"postmaster@{BOUNCE_DOMAIN}"])
    assert submitted.queue_id is not None
    assert list(submitted.refused) == [f"postmaster@{BOUNCE_DOMAIN}"]
    assert submitted.refused[f"postmaster@{BOUNCE_DOMAIN}"][0] == 550
    [relayed] = mta_capture.wait_for(1, timeout=20)
    assert relayed.mail_from == "<>" and relayed.rcpt_tos == (sender("abc.1-x"),)


def test_dsn_refused_by_bounce_port_is_not_retried(
    mta_remote: RemoteServer, mta_factory: MTAFactory,
) -> None:
    """A 550 at RCPT from the bounce port ends the DSN: offered once, never looped back."""
    with CaptureServer(accept=lambda _rcpt: False) as refusing:
        mta = mta_factory(remote_port=mta_remote.port, bounce_port=refusing.port)
        assert mta.send(sender("forged"), ["unknown2@remote.test"]).queue_id
        refusing.wait_for_attempts(sender("forged"), timeout=20)
        if mta.name == "Exim":  # Exim freezes a failed bounce (ignore_bounce_errors_after)
            mta.wait_for_log(r"Frozen \(delivery error message\)", timeout=20)
        else:  # Postfix discards it
            mta.wait_queue_empty(timeout=20)
        mta.flush()
        assert [a.code for a in refusing.attempts] == [550]
        assert refusing.messages == []
        assert [a.address for a in mta_remote.attempts] == ["unknown2@remote.test"]


def test_instance_leaves_nothing_behind(
    mta_capture: CaptureServer, mta_factory: MTAFactory,
) -> None:
    """Stopping removes the instance's processes, port and files; /etc/postfix is untouched."""
    before = etc_postfix_digest()
    mta = mta_factory(bounce_port=mta_capture.port)
    root = mta.root
    assert root is not None and root.is_dir() and port_open(mta.port)
    procs = mta.processes()
    assert procs  # the Postfix master and its services, or the Exim daemon
    mta.stop()
    assert not root.exists()
    assert not port_open(mta.port)
    assert not any(process_alive(pid) for pid in procs)
    assert etc_postfix_digest() == before
