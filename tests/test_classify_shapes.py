"""Hand-made samples of report shapes the classifier reads since the third accuracy round:
DSN blocks without blank lines, forwarded bounces, reports that name no one, final
failures with 4xx codes, recipients refused with no reason, multiline replies."""

from __future__ import annotations

from bounced.classify import classify

HEAD = (b"From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\n"
        b"To: bounce-abc@bounces.example.org\r\nSubject: Undelivered Mail\r\n"
        b"MIME-Version: 1.0\r\n")


def _report(dsn_fields: bytes, human: bytes = b"Delivery failed.", original: bytes = b"") -> bytes:
    parts = b"--B\r\nContent-Type: text/plain\r\n\r\n" + human + b"\r\n"
    parts += b"--B\r\nContent-Type: message/delivery-status\r\n\r\n" + dsn_fields + b"\r\n"
    if original:
        parts += b"--B\r\nContent-Type: message/rfc822\r\n\r\n" + original + b"\r\n"
    return (HEAD + b'Content-Type: multipart/report; report-type=delivery-status; boundary="B"'
            b"\r\n\r\n" + parts + b"--B--\r\n")


def _text(body: bytes, to: bytes = b"bounce-abc@bounces.example.org",
          subject: bytes = b"failure notice") -> bytes:
    return (b"From: MAILER-DAEMON@mx.example.net\r\nTo: " + to + b"\r\nSubject: " + subject
            + b"\r\n\r\n" + body)


def _got(raw: bytes) -> dict[str, tuple[str, str, bool]]:
    return {r.address: (r.action, r.reason, r.hard) for r in classify(raw).recipients}


def test_dsn_recipients_without_blank_lines_between_them() -> None:
    """Per-recipient DSN fields run together: each Final-Recipient starts a new recipient."""
    fields = (b"Reporting-MTA: dns; mx.example.net\r\n\r\n"
              b"Final-Recipient: rfc822; full@x.example\r\nAction: failed\r\nStatus: 5.2.2\r\n"
              b"Diagnostic-Code: smtp; 552 5.2.2 Mailbox Full\r\n"
              b"Final-Recipient: rfc822; gone@x.example\r\nAction: failed\r\nStatus: 5.1.1\r\n"
              b"Diagnostic-Code: smtp; 550 5.1.1 User Unknown\r\n")
    got = _got(_report(fields))
    assert got == {"full@x.example": ("failed", "mailboxfull", False),
                   "gone@x.example": ("failed", "userunknown", True)}


def test_internal_final_recipient_yields_to_original_recipient() -> None:
    """A Final-Recipient on an internal host name (no dot) is reported as the address sent."""
    fields = (b"Reporting-MTA: dns; mx.example.net\r\n\r\n"
              b"Original-Recipient: rfc822;user@x.example\r\n"
              b"Final-Recipient: rfc822;@smtp.x.example:user@store\r\n"
              b"Action: failed\r\nStatus: 5.2.2\r\n")
    assert list(_got(_report(fields))) == ["user@x.example"]


def test_forwarded_bounce_is_read_from_the_attached_report() -> None:
    """An outer notice that names no one, with a bounce attached, reports the inner bounce."""
    inner = _report(b"Reporting-MTA: dns; mx.example.net\r\n\r\n"
                    b"Final-Recipient: rfc822; gone@x.example\r\nAction: failed\r\n"
                    b"Status: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 User unknown\r\n")
    outer = (b"From: MAILER-DAEMON@gw.example.net\r\nTo: bounce-abc@bounces.example.org\r\n"
             b"Subject: Returned mail\r\nMIME-Version: 1.0\r\n"
             b'Content-Type: multipart/mixed; boundary="O"\r\n\r\n'
             b"--O\r\nContent-Type: text/plain\r\n\r\n"
             b"----- The following addresses had permanent delivery errors -----\r\n\r\n"
             b"--O\r\nContent-Type: message/rfc822\r\n\r\n" + inner + b"\r\n--O--\r\n")
    assert _got(outer) == {"gone@x.example": ("failed", "userunknown", True)}


def test_report_naming_no_one_falls_back_to_the_single_original_recipient() -> None:
    """A bounce without any recipient reports the attached original's only To: address."""
    raw = _report(b"Reporting-MTA: dns; mx.example.net\r\n",
                  human=b"Your message could not be delivered to one or more recipients.",
                  original=b"From: app@example.org\r\nTo: someone@x.example\r\n"
                           b"Subject: hi\r\n\r\nhello\r\n")
    report = classify(raw)
    assert report.kind == "bounce"
    assert [(r.address, r.action, r.hard) for r in report.recipients] == [
        ("someone@x.example", "failed", False)]


def test_no_fallback_when_the_original_had_several_recipients() -> None:
    """The fallback is not used when the original went to more than one address."""
    raw = _report(b"Reporting-MTA: dns; mx.example.net\r\n",
                  human=b"Your message could not be delivered to one or more recipients.",
                  original=b"From: app@example.org\r\nTo: a@x.example, b@y.example\r\n\r\nhi\r\n")
    assert classify(raw).recipients == ()


def test_recipient_equal_to_the_report_to_address_is_found() -> None:
    """A message its sender sent to itself: the report's own To: is the failed recipient."""
    raw = _text(b"The following address(es) failed:\r\n\r\n  me@x.example:\r\n"
                b"    SMTP error from remote server: 550 5.2.2 mailbox full\r\n",
                to=b"me@x.example", subject=b"Mail delivery failed")
    assert _got(raw) == {"me@x.example": ("failed", "mailboxfull", False)}


def test_reason_written_before_the_address() -> None:
    """'User mailbox exceeds allowed size: addr' gives the address and its reason."""
    raw = _text(b"User mailbox exceeds allowed size: user@x.example\r\n",
                subject=b"Undeliverable Mail")
    assert _got(raw) == {"user@x.example": ("failed", "mailboxfull", False)}


def test_given_up_4xx_is_a_failure_not_a_delay() -> None:
    """qmail's 'in the queue too long' after 4xx replies is a final failure, never hard."""
    raw = _text(b"I'm afraid I wasn't able to deliver your message to the following addresses."
                b"\r\nThis is a permanent error; I've given up. Sorry it didn't work out.\r\n\r\n"
                b"<user@x.example>:\r\n192.0.2.1 does not like recipient.\r\n"
                b"Remote host said: 450 4.2.2 <user@x.example>... Mailbox Full\r\n"
                b"I'm not going to try again; this message has been in the queue too long.\r\n")
    report = classify(raw)
    assert report.kind == "bounce"
    assert _got(raw) == {"user@x.example": ("failed", "mailboxfull", False)}


def test_recipient_refused_without_reason_at_rcpt_is_unknown() -> None:
    """'Recipient address rejected.' with nothing after it, in reply to RCPT TO, is hard."""
    fields = (b"Reporting-MTA: dns; mx.example.net\r\n\r\n"
              b"Final-Recipient: rfc822; gone@x.example\r\nAction: failed\r\nStatus: 5.0.0\r\n"
              b"Diagnostic-Code: smtp; 550 <gone@x.example>: Recipient address rejected.\r\n")
    human = (b"<gone@x.example>: host mx.x.example said: 550 <gone@x.example>: Recipient "
             b"address rejected. (in reply to RCPT TO command)")
    assert _got(_report(fields, human)) == {"gone@x.example": ("failed", "userunknown", True)}


def test_recipient_refused_with_a_reason_is_not_unknown() -> None:
    """'Recipient address rejected: <reason>' is decided by the reason, not made hard."""
    fields = (b"Reporting-MTA: dns; mx.example.net\r\n\r\n"
              b"Final-Recipient: rfc822; a@x.example\r\nAction: failed\r\nStatus: 5.0.0\r\n"
              b"Diagnostic-Code: smtp; 550 <a@x.example>: Recipient address rejected: "
              b"Greylisted by policy\r\n")
    human = b"<a@x.example>: host said: 550 (in reply to RCPT TO command)"
    _action, reason, hard = _got(_report(fields, human))["a@x.example"]
    assert not hard and reason != "userunknown"


def test_multiline_reply_phrase_across_continuation_codes() -> None:
    """A phrase split by a multiline reply's '550 5.7.1' continuation prefix still matches."""
    fields = (b"Reporting-MTA: dns; mx.example.net\r\n\r\n"
              b"Final-Recipient: rfc822; a@x.example\r\nAction: failed\r\nStatus: 5.7.1\r\n"
              b"Diagnostic-Code: smtp; 550-5.7.1 Messages with multiple 550 5.7.1 addresses "
              b"in From: header are not accepted.\r\n")
    assert _got(_report(fields))["a@x.example"][1] == "notcompliantrfc"


def test_group_posting_refusal_in_another_language() -> None:
    """A group service's refusal in French is a rejection of the sender, never hard."""
    raw = (b"From: Mail Delivery Subsystem <mailer-daemon@mail.example.com>\r\n"
           b"To: app@example.org\r\nSubject: Delivery Status Notification (Failure)\r\n"
           b"X-Failed-Recipients: list@groups.example.com\r\n\r\n"
           b"Il se peut que le groupe que vous avez essay\xc3\xa9 de contacter n'existe pas ou "
           b"que vous ne soyez pas autoris\xc3\xa9 \xc3\xa0 lui envoyer des messages.\r\n")
    raw = raw.replace(b"\r\n\r\n", b"\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n", 1)
    assert _got(raw) == {"list@groups.example.com": ("failed", "rejected", False)}


def test_an_address_the_report_says_to_try_instead_is_not_a_recipient() -> None:
    """Advice to write to another address ("try sending to addr instead", RFC 5321's 551
    "please try <addr>") names no failed recipient; the one that failed is still found."""
    for advice in (b"If the problem persists, try sending to help-desk@x.example instead.",
                   b"To reach staff, try emailing to NAME@staff.x.example.",
                   b"551 User not local; please try <new@y.example>"):
        raw = _text(b"Delivery to the following recipient failed permanently:\r\n\r\n"
                    b"    old@y.example\r\n\r\nTechnical details of permanent failure:\r\n"
                    b"550 5.1.1 user unknown\r\n\r\n" + advice + b"\r\n")
        assert set(_got(raw)) == {"old@y.example"}, advice
        # alone, the advice is no report of a failed recipient either
        assert _got(_text(b"Your message could not be delivered.\r\n\r\n" + advice
                          + b"\r\n")) == {}, advice
