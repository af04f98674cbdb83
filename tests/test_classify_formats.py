"""Hand-made samples of the formats the classifier must read, and detector conformance."""

from __future__ import annotations

import email
from email.policy import compat32

import pytest

from bounced.classify import classify
from bounced.classify.detectors import DETECTORS, Detector
from bounced.classify.parse import walk

HEAD = (b"From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\n"
        b"To: bounce-abc@bounces.example.org\r\nSubject: Undelivered Mail\r\n"
        b"MIME-Version: 1.0\r\n")


def dsn(blocks: list[bytes], human: bytes = b"Delivery failed.", original: bytes = b"",
        dsn_type: bytes = b"message/delivery-status") -> bytes:
    """A multipart/report DSN with the given per-recipient field blocks."""
    parts = [b"--B\r\nContent-Type: text/plain\r\n\r\n" + human + b"\r\n",
             b"--B\r\nContent-Type: " + dsn_type + b"\r\n\r\nReporting-MTA: dns; mx.example.net\r\n"
             + b"".join(b"\r\n" + blk for blk in blocks) + b"\r\n"]
    if original:
        parts.append(b"--B\r\nContent-Type: message/rfc822\r\n\r\n" + original + b"\r\n")
    return (HEAD + b'Content-Type: multipart/report; report-type=delivery-status; boundary="B"'
            b"\r\n\r\n" + b"".join(parts) + b"--B--\r\n")


def rcpt(addr: bytes, action: bytes, status: bytes, diag: bytes = b"") -> bytes:
    """One per-recipient DSN block."""
    out = (b"Final-Recipient: rfc822; " + addr + b"\r\nAction: " + action + b"\r\nStatus: "
           + status + b"\r\n")
    return out + (b"Diagnostic-Code: smtp; " + diag + b"\r\n" if diag else b"")


def test_multi_recipient_dsn_keeps_each_status() -> None:
    """A DSN with three recipients reports each with its own status, reason and hardness."""
    raw = dsn([rcpt(b"a@x.example", b"failed", b"5.1.1", b"550 5.1.1 user unknown"),
               rcpt(b"b@y.example", b"failed", b"5.2.2", b"552 5.2.2 mailbox full"),
               rcpt(b"c@z.example", b"delayed", b"4.4.1", b"connection timed out")])
    report = classify(raw)
    got = {r.address: (r.action, r.status, r.reason, r.hard) for r in report.recipients}
    assert report.kind == "bounce"
    assert got["a@x.example"] == ("failed", "5.1.1", "userunknown", True)
    assert got["b@y.example"] == ("failed", "5.2.2", "mailboxfull", False)
    assert got["c@z.example"][0] == "delayed" and not got["c@z.example"][3]
    assert report.recipients[0].reply_code == "550"


def test_global_dsn_with_utf8_address() -> None:
    """An RFC 6533 message/global-delivery-status with a UTF-8 address is read."""
    block = rcpt("ユーザー@例え.jp".encode(), b"failed", b"5.1.1", b"550 5.1.1 no such user")
    block = block.replace(b"rfc822;", b"utf-8;")
    report = classify(dsn([block], dsn_type=b"message/global-delivery-status"))
    assert report.kind == "bounce"
    assert [r.address for r in report.recipients] == ["ユーザー@例え.jp"]
    assert report.recipients[0].hard


def test_generic_status_refined_by_diagnostic() -> None:
    """Status 5.0.0 with "550 5.1.1 user unknown" in Diagnostic-Code is userunknown, hard."""
    report = classify(dsn([rcpt(b"a@x.example", b"failed", b"5.0.0",
                                b"550 5.1.1 <a@x.example>: user unknown")]))
    assert report.recipients[0].reason == "userunknown" and report.recipients[0].hard


@pytest.mark.parametrize(("diag", "reason"), [
    (b"554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org",
     "blocked"),
    (b"550 5.7.1 Message rejected as spam", "spamdetected"),
    (b"550 5.7.26 Unauthenticated email is not accepted due to domain's DMARC policy",
     "authfailure"),
    (b"550 5.7.1 Client host rejected: cannot find your reverse hostname", "requireptr"),
    (b"421 4.7.0 Too many connections from your host", "ratelimited"),
])
def test_sender_side_failures_are_never_hard(diag: bytes, reason: str) -> None:
    """Blocked IP, spam, SPF/DMARC, PTR and rate limits name the reason and are never hard."""
    status = diag.split()[1]
    report = classify(dsn([rcpt(b"a@x.example", b"failed", status, diag)]))
    assert report.recipients[0].reason == reason
    assert not report.recipients[0].hard


def test_user_unknown_with_blocklist_words_is_not_hard() -> None:
    """A 5.1.1 whose words blame the sender's IP is reported as blocked, not userunknown."""
    report = classify(dsn([rcpt(b"a@x.example", b"failed", b"5.1.1",
                                b"550 5.1.1 your IP 192.0.2.1 is listed in a blocklist")]))
    assert report.recipients[0].reason == "blocked" and not report.recipients[0].hard


def test_expired_transient_failure() -> None:
    """Action failed with a 4.x.x status is an expired delivery: reason expired, not hard."""
    report = classify(dsn([rcpt(b"a@x.example", b"failed", b"4.4.7", b"")]))
    assert report.kind == "bounce"
    assert report.recipients[0].reason == "expired" and not report.recipients[0].hard


def test_delay_notice_is_kind_delay() -> None:
    """A DSN with only Action: delayed recipients is kind delay."""
    report = classify(dsn([rcpt(b"a@x.example", b"delayed", b"4.4.1", b"timed out")]))
    assert report.kind == "delay" and not report.recipients[0].hard


def test_fake_dsn_inside_attached_original_is_ignored() -> None:
    """Recipients are never taken from inside an attached original message."""
    fake = dsn([rcpt(b"victim@fake.example", b"failed", b"5.1.1", b"550 5.1.1 unknown")])
    original = (b"From: app@example.org\r\nTo: real@x.example\r\nSubject: hi\r\n"
                b"Message-ID: <m1@example.org>\r\n" + fake.split(b"\r\n", 4)[4])
    raw = dsn([rcpt(b"real@x.example", b"failed", b"5.2.2", b"552 mailbox full")],
              original=original)
    report = classify(raw)
    assert [r.address for r in report.recipients] == ["real@x.example"]
    assert report.original.message_id == "<m1@example.org>"
    assert report.original.subject == "hi"


def test_arf_complaint() -> None:
    """An RFC 5965 report is kind complaint with its feedback type and recipient."""
    raw = (b"From: fbl@isp.example\r\nTo: abuse@example.org\r\nSubject: FW: report\r\n"
           b'MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=feedback-report; '
           b'boundary="B"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nA complaint.\r\n'
           b"--B\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\n"
           b"User-Agent: FBL/1.0\r\nVersion: 1\r\nOriginal-Rcpt-To: <user@isp.example>\r\n"
           b"\r\n--B\r\nContent-Type: message/rfc822\r\n\r\nFrom: app@example.org\r\n"
           b"To: user@isp.example\r\nSubject: news\r\n\r\nhello\r\n--B--\r\n")
    report = classify(raw)
    assert report.kind == "complaint" and report.feedback_type == "abuse"
    assert [r.address for r in report.recipients] == ["user@isp.example"]
    assert not report.recipients[0].hard


def test_auto_reply_is_never_a_bounce() -> None:
    """An RFC 3834 vacation reply (even mentioning "user unknown") is kind autoreply."""
    raw = (b"From: Alice <alice@x.example>\r\nTo: bounce-abc@bounces.example.org\r\n"
           b"Subject: Out of office\r\nAuto-Submitted: auto-replied\r\n\r\n"
           b"I am away. If urgent: user unknown issues go to bob@x.example.\r\n")
    report = classify(raw)
    assert report.kind == "autoreply"
    assert not any(r.hard or r.action == "failed" for r in report.recipients)


def test_qmail_plain_text_bounce() -> None:
    """A qmail failure notice is read from its text."""
    raw = (b"From: MAILER-DAEMON@mx.example.net\r\nTo: bounce-abc@bounces.example.org\r\n"
           b"Subject: failure notice\r\n\r\nHi. This is the qmail-send program.\r\n"
           b"I'm afraid I wasn't able to deliver your message to the following addresses.\r\n"
           b"This is a permanent error; I've given up. Sorry it didn't work out.\r\n\r\n"
           b"<gone@x.example>:\r\n192.0.2.1 does not like recipient.\r\n"
           b"Remote host said: 550 5.1.1 <gone@x.example>... User Unknown\r\n\r\n"
           b"--- Below this line is a copy of the message.\r\n\r\nFrom: app@example.org\r\n"
           b"To: gone@x.example\r\n\r\nhi <other@y.example>:\r\n")
    report = classify(raw)
    assert report.kind == "bounce"
    assert [(r.address, r.reason, r.hard) for r in report.recipients] == [
        ("gone@x.example", "userunknown", True)]


def test_ordinary_mail_is_unknown() -> None:
    """A personal message that is no report of any kind is kind unknown."""
    raw = b"From: bob@x.example\r\nTo: alice@y.example\r\nSubject: lunch\r\n\r\nNoon?\r\n"
    assert classify(raw).kind == "unknown"


@pytest.mark.parametrize("detector", DETECTORS, ids=[d.name for d in DETECTORS])
def test_detector_conformance(detector: Detector) -> None:
    """Every detector has a name, ignores an ordinary message and never raises on junk."""
    name = detector.name
    assert isinstance(name, str) and name
    detect = detector.detect
    plain = email.message_from_bytes(b"From: a@b.example\r\nSubject: hi\r\n\r\nhello\r\n",
                                     policy=compat32)
    assert detect(walk(plain)) is None
    junk = email.message_from_bytes(b"Content-Type: multipart/report; boundary=x\r\n\r\n"
                                    b"--x\r\nContent-Type: message/delivery-status\r\n\r\n"
                                    b"\xff\xfe:::\r\n--x", policy=compat32)
    try:
        detect(walk(junk))
    except Exception as exc:  # pragma: no cover - the assertion reports it
        pytest.fail(f"{name} raised {exc!r}")


def test_reporting_mta_from_dsn() -> None:
    """The DSN's Reporting-MTA host is reported (type prefix and comment removed) and
    carried in the JSON report; a plain-text bounce names none."""
    report = classify(dsn([rcpt(b"a@x.example", b"failed", b"5.1.1")]))
    assert report.reporting_mta == "mx.example.net"
    assert report.to_json()["reporting_mta"] == "mx.example.net"
    commented = dsn([rcpt(b"a@x.example", b"failed", b"5.1.1")]).replace(
        b"Reporting-MTA: dns; mx.example.net", b"Reporting-MTA: dns; mta1.example.net (daemon)")
    assert classify(commented).reporting_mta == "mta1.example.net"
    plain = (HEAD + b"Content-Type: text/plain\r\n\r\nI'm sorry to have to inform you that your "
             b"message could not be delivered to one or more recipients.\r\n\r\n"
             b"<a@x.example>: host mx.x.example said: 550 5.1.1 user unknown\r\n")
    text_report = classify(plain)
    assert text_report.recipients and text_report.reporting_mta == ""
    assert text_report.to_json()["reporting_mta"] == ""
