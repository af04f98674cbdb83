"""Generalisation: remote servers' replies, none taken from the corpus.

Each row is a reply as a receiving system writes it (providers' postmaster pages, common
MTA defaults), put into the report a Postfix relay writes around it ("<rcpt>: host ...
said: REPLY (in reply to COMMAND command)"). The expectation is what the reply means under
the README's rules: ``hard`` only when the address is proven dead; the sender's IP, reputation,
content, authentication or return path never count against the recipient.
"""

from __future__ import annotations

import pytest

from bounced.classify import classify

REPORT = """\
From: MAILER-DAEMON@relay.example.org (Mail Delivery System)
To: bounce-k1.20251103.u5.00112233445566778899@bounces.example.org
Subject: Undelivered Mail Returned to Sender
Date: Mon, 3 Nov 2025 10:00:00 +0000

This is the mail system at host relay.example.org.

<{rcpt}>: host mx.{domain}[198.51.100.25] said: {reply} (in reply to
    {command} command)
"""

# (reply, SMTP command, reasons accepted ("|"-separated), hard)
REPLIES: tuple[tuple[str, str, str, bool], ...] = (
    # the address does not exist
    ("550 5.1.1 The email account that you tried to reach does not exist.", "RCPT",
     "userunknown", True),
    ("550 5.1.1 <rcpt@dest.example>: Recipient address rejected: User unknown in virtual "
     "mailbox table", "RCPT", "userunknown", True),
    ("550 5.1.1 <rcpt@dest.example>: user does not exist", "RCPT", "userunknown", True),
    ("550 Requested action not taken: mailbox unavailable", "RCPT", "userunknown", True),
    ("550 5.1.1 <rcpt@dest.example> Not our Customer", "RCPT", "userunknown", True),
    ("550 Mailbox not found.", "RCPT", "userunknown", True),
    ("550 sorry, no mailbox here by that name. (#5.1.1)", "RCPT", "userunknown", True),
    ("550 Invalid recipient <rcpt@dest.example> (#5.1.1)", "RCPT", "userunknown", True),
    ("550 #5.1.0 Address rejected rcpt@dest.example", "RCPT", "userunknown", True),
    ("550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
     "RCPT", "userunknown", True),
    ("550 Benutzer unbekannt", "RCPT", "userunknown", True),
    ("550 5.1.1 utilisateur inconnu", "RCPT", "userunknown", True),
    ("550 Usuario desconocido", "RCPT", "userunknown", True),
    ("550 Der Empfaenger existiert nicht", "RCPT", "userunknown", True),
    ("550 5.1.1 <rcpt@dest.example>: Recipient address rejected: Adresse d au moins un "
     "destinataire invalide. Invalid recipient. OFR_416 [416]", "RCPT", "userunknown", True),
    ("554 delivery error: dd This user doesn't have a yahoo.com account "
     "(rcpt@yahoo.com) [0] - mta1000.mail.gq1.yahoo.com", "DATA", "userunknown", True),
    ("551 User not local; please try <new@other.example>", "RCPT", "hasmoved", True),
    ("550 5.1.2 Host unknown (Name server: dest.example: host not found)", "RCPT",
     "hostunknown", True),
    ("550 5.4.310 DNS domain dest.example does not exist [Message=InfoDomainNonexistent]",
     "RCPT", "hostunknown", True),  # Exchange Online (was userunknown: "does not exist")
    ("550 5.1.1 <rcpt@dest.example>: Recipient address rejected: User unknown in virtual "
     "alias table", "RCPT", "userunknown", True),
    ("550 5.7.1 No such user!", "RCPT", "userunknown", True),  # Yandex
    ("550 Message was not accepted -- invalid mailbox.  Local mailbox rcpt@mail.ru is "
     "unavailable: user not found", "DATA", "userunknown", True),  # mail.ru (was filtered)
    ("552 1 Requested mail action aborted, mailbox not found", "RCPT", "userunknown", True),
    ("550 No Such User Here", "RCPT", "userunknown", True),  # cPanel's Exim
    # the mailbox exists but cannot take mail now
    ("552 5.2.2 Mailbox full", "RCPT", "mailboxfull", False),
    ("452 4.2.2 The email account that you tried to reach is over quota", "RCPT",
     "mailboxfull", False),
    ("550 5.7.1 Email quota exceeded", "RCPT", "mailboxfull", False),
    ("550 5.2.1 The email account that you tried to reach is disabled.", "RCPT", "suspend",
     False),
    ("554 30 Sorry, your message to rcpt@dest.example cannot be delivered. This account has "
     "been disabled or discontinued [#102].", "DATA", "suspend", False),
    ("550 Mailbox blocked due to inactivity", "RCPT", "suspend", False),
    ("550-5.2.1 The email account that you tried to reach is disabled. Learn more at "
     "550 5.2.1  https://support.google.com/mail/?p=DisabledUser", "RCPT", "suspend", False),
    ("552 5.2.2 <rcpt@dest.example> Quota exceeded (mailbox for user is full)", "DATA",
     "mailboxfull", False),  # Dovecot LMTP
    ("552 Requested mail action aborted: exceeded storage allocation", "DATA",
     "mailboxfull", False),  # RFC 5321's own 552 text
    # the recipient's mailbox receives too much: a rate, never a dead address
    ("450-4.2.1 The user you are trying to contact is receiving mail too quickly. Please "
     "450-4.2.1 resend your message at a later time.", "RCPT", "speeding", False),
    ("550 Message was not accepted -- invalid mailbox.  Local mailbox rcpt@mail.ru is "
     "unavailable: account is disabled", "DATA", "suspend", False),
    # the sender's IP, reputation or DNS
    ("550 5.7.1 Service unavailable; Client host [203.0.113.5] blocked using "
     "zen.spamhaus.org", "RCPT", "blocked", False),
    ("554 5.7.1 Rejected: IP in RBL", "RCPT", "blocked", False),
    ("550 5.7.606 Access denied, banned sending IP [203.0.113.5]", "RCPT", "blocked", False),
    ("550 5.7.708 Service unavailable. Access denied, traffic not accepted from this IP.",
     "RCPT", "blocked", False),
    ("554 IP is rejected, smtp auth error limit exceed", "RCPT", "blocked", False),
    ("554 5.7.1 Client host rejected: cannot find your reverse hostname, [203.0.113.5]",
     "RCPT", "requireptr", False),
    ("550-Requested action not taken: mailbox unavailable 550 invalid DNS PTR resource "
     "record, IP=203.0.113.5", "RCPT", "requireptr|blocked", False),
    ("421 Too many concurrent SMTP connections from this IP address; please try again later.",
     "RCPT", "ratelimited|speeding", False),
    # Hotmail's older codes (were undefined and expired)
    ("550 OU-002 (COL004-MC1F35) Unfortunately, messages from 203.0.113.5 weren't sent. "
     "Please contact your Internet service provider.", "RCPT", "blocked", False),
    ("421 RP-001 (BAY004-MC1F12) Unfortunately, some messages from 203.0.113.5 weren't sent. "
     "Please try again. We have limits for how many messages can be sent per hour and per "
     "day.", "RCPT", "speeding|ratelimited", False),
    ("451 4.7.500 Server busy. Please try again later from [203.0.113.5]. (AS761)", "RCPT",
     "ratelimited|speeding", False),  # Exchange Online (was systemerror)
    ("550 5.7.1 Service refuse. Veuillez essayer plus tard. service refused, please try "
     "later. OFR004_102 [102]", "RCPT", "blocked", False),  # Orange (was systemerror)
    ("554 5.7.1 Service unavailable; Client host [203.0.113.5] blocked using Trend Micro "
     "RBL+.", "RCPT", "blocked", False),
    ("550-5.7.25 [203.0.113.5] The IP address sending this message does not have a "
     "550-5.7.25 PTR record setup, or the corresponding forward DNS entry does not "
     "550 5.7.25 point to the sending IP.", "DATA", "requireptr", False),
    # the sender's authentication or return path
    ("550 5.7.26 This message does not have authentication information or fails to pass "
     "authentication checks (SPF or DKIM)", "DATA", "authfailure", False),
    ("550 5.7.1 Unauthenticated email from example.org is not accepted due to domain's "
     "DMARC policy", "DATA", "authfailure", False),
    ("550 5.7.509 Access denied, sending domain example.org does not pass DMARC "
     "verification", "DATA", "authfailure", False),
    ("550 5.7.1 SPF MAIL FROM check failed", "RCPT", "authfailure", False),
    ("553 5.7.1 <bounce@bounces.example.org>: Sender address rejected: Domain not found",
     "RCPT", "rejected", False),
    ("550 5.1.0 <bounce@bounces.example.org>: Sender address rejected: User unknown in "
     "local recipient table", "RCPT", "rejected", False),
    ("550 Adresse d'expediteur refusee", "MAIL FROM", "rejected", False),
    ("550 5.1.1 Sender domain bounces.example.org does not exist", "MAIL FROM", "rejected",
     False),  # an address status code, but at MAIL FROM: the sender's
    ("451 Message temporarily deferred due to unresolvable RFC.5321 from domain; see "
     "https://postmaster.yahooinc.com/error-codes", "MAIL FROM", "rejected", False),
    ("553 sorry, your envelope sender domain must exist (#5.7.1)", "MAIL FROM", "rejected",
     False),
    ("550-5.7.1 Messages missing a valid address in From: header, or having no From: "
     "header, are not accepted.", "DATA", "notcompliantrfc", False),  # was securityerror
    # the content
    ("554 5.7.1 Message rejected as spam by Content Filtering.", "DATA", "spamdetected",
     False),
    ("550 High probability of spam", "DATA", "spamdetected", False),
    ("554 DT:SPM 163 mx14,QMCowECpq0V4qfplRQ==.37411S2 1710000000, please see "
     "http://mail.163.com/help/help_spam_16.htm?ip=203.0.113.5", "DATA",
     "spamdetected|blocked", False),
    ("550 Message rejected because it contains a virus", "DATA", "virusdetected", False),
    ("550 Mail content denied. http://service.mail.qq.com/cgi-bin/help?subtype=1&&id=20022"
     "&&no=1000726", "DATA", "spamdetected", False),
    ("550 spam message rejected. Please visit http://help.mail.ru/notspam-support/id?c=abc",
     "DATA", "spamdetected", False),
    ("552 5.3.4 Message size exceeds fixed limit", "DATA", "emailtoolarge", False),
    ("550 5.7.1 Message rejected due to content restrictions", "DATA",
     "policyviolation|contenterror", False),
    # relaying and the path
    ("553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)", "RCPT",
     "norelaying", False),
    ("554 5.7.1 <rcpt@dest.example>: Relay access denied", "RCPT", "norelaying", False),
    ("553-you are trying to use me [server-4.tower-21.messagelabs.com] 553-as a relay, but I "
     "have not been configured to let you [203.0.113.5, relay.example.org] do this. "
     "(#5.7.1)", "RCPT", "norelaying", False),  # was securityerror
    ("550 permanent failure for one or more recipients (rcpt@dest.example:blocked)", "DATA",
     "blocked", False),  # Barracuda (was onhold)
    ("550 Rejected by header based Anti-Spoofing policy: rcpt@dest.example - "
     "https://community.mimecast.com/docs/DOC-1369#550", "DATA",
     "policyviolation|authfailure", False),
    ("554 5.7.9 Message not accepted for policy reasons.  See "
     "https://postmaster.yahooinc.com/error-codes", "DATA", "policyviolation", False),
    ("554 5.4.14 Hop count exceeded - possible mail loop", "DATA", "networkerror", False),
    # local MTAs answering in their own language
    ("550 5.1.1 Пользователь не найден", "RCPT", "userunknown", True),
    ("550 5.1.1 用户不存在", "RCPT", "userunknown", True),
    ("550 Die Adresse existiert nicht", "RCPT", "userunknown", True),
    ("550 5.1.1 Użytkownik nie istnieje", "RCPT", "userunknown", True),
    ("550 Le domaine n'existe pas", "RCPT", "hostunknown", True),
    ("552 5.2.2 Postfach voll", "RCPT", "mailboxfull", False),
    ("452 4.2.2 Casella piena", "RCPT", "mailboxfull", False),
    ("550 5.2.2 Buzón lleno", "RCPT", "mailboxfull", False),
    ("550 Konto deaktiviert", "RCPT", "suspend", False),
    # phrases of sisimai's reason tables (the vocabulary's own analyser) where the words
    # alone would have counted against the recipient
    ("554 Throttling failure: Daily message quota exceeded.", "DATA", "ratelimited", False),
    ("550 5.7.1 The recipient is not accepting mail with attachments", "DATA",
     "policyviolation", False),
    ("550 This server does not accept mail from sender.example", "MAIL", "rejected", False),
    ("550 Mailbox unavailable or access denied", "RCPT", "suspend", False),
    ("553 Invalid domain, see <URL:http://postmaster.dest.example/invalid>", "RCPT",
     "rejected", False),
    ("550 'rcpt@dest.example' is not a registered gateway user", "RCPT", "rejected", False),
    ("550 5.7.1 Backscatter protection detected an invalid or expired email address", "RCPT",
     "rejected", False),
    ("550 Recipient rejected: temporarily inactive", "RCPT", "suspend", False),
    ("552 Quota violation for rcpt@dest.example", "RCPT", "mailboxfull", False),
    ("552 Message file too big", "DATA", "emailtoolarge", False),
    ("530 5.7.0 Our mail server requires authentication when attempting to send to a "
     "non-local e-mail address", "RCPT", "norelaying", False),
    ("451 4.4.0 Host not found, try again", "RCPT", "networkerror|expired", False),
    ("550 Archived recipient", "RCPT", "userunknown", True),
    ("550 Sender address invalid", "RCPT", "rejected", False),
    ("553 sorry, your envelope recipient is in my badrcptto list (#5.7.1)", "RCPT",
     "userunknown", True),
    ("550 This email address is wrong or no longer valid", "RCPT", "userunknown", True),
    ("550 Error: no valid recipients from 192.0.2.10", "RCPT", "blocked", False),
    ("535 5.7.8 Authentication failure", "MAIL", "securityerror|rejected", False),
    ("550 Requested action not taken: mailbox unavailable (not enough free space)", "RCPT",
     "systemfull", False),
    ("550 an MX or SRV record indicated no SMTP service", "RCPT", "notaccept", True),
    ("550 5.1.1 Unrouteable address", "RCPT", "hostunknown|userunknown", True),
    # our relay's login refused (a smarthost's answer quoted in our own MTA's bounce)
    ("535 Error: Invalid user or password", "RCPT", "securityerror", False),
    ("450 service permits 2 unverifyable sending IPs - sender.example is not 192.0.2.10",
     "MAIL", "requireptr", False),
    # Exchange Online codes (Microsoft's NDR documentation, as sisimai's table reads it)
    ("501 5.5.4 Invalid domain name", "HELO", "blocked", False),
    ("550 5.5.4 Invalid domain name", "RCPT", "blocked", False),
    ("554 5.2.2 Submission quota exceeded", "DATA", "ratelimited", False),
    ("550 5.7.505 Access denied, banned recipient", "RCPT", "suspend", False),
    ("550 5.7.501 Access denied, banned sender", "RCPT", "rejected", False),
    ("550 5.4.4 SMTPSEND.DNS.InvalidArguments; invalid arguments", "RCPT", "networkerror",
     False),
    ("550 5.1.4 Recipient address reserved by RFC 2606", "RCPT", "userunknown", True),
    # RFC 3463's X.1.4: the address matched several mailboxes, so it exists
    ("550 5.1.4 Destination mailbox address ambiguous", "RCPT", "filtered", False),
    # "is not found" / "unknown" said of the mailbox (were undefined, or the 5.3.0's
    # systemerror of Sendmail's "Addressee unknown")
    ("550 The recipient's mailbox is not found", "RCPT", "userunknown", True),
    ("553 5.3.0 <rcpt@dest.example>... Addressee unknown", "RCPT", "userunknown", True),
    ("550 Mailbox unknown", "RCPT", "userunknown", True),
    ("550 5.2.1 Mailbox is locked", "RCPT", "suspend", False),
    ("550 User account is expired", "RCPT", "suspend", False),  # was expired
    # our sending's limits, not a mailbox's quota (was mailboxfull) or a message's limit
    # (was exceedlimit); the receiving system's resources (was expired)
    ("550 5.4.5 Daily user sending quota exceeded.", "MAIL", "ratelimited", False),
    ("450 4.7.1 Rate limit exceeded, try again later", "RCPT", "ratelimited", False),
    ("452 Insufficient system resources", "RCPT", "systemfull", False),
    # the sender's address or domain, refused at RCPT TO (as Postfix's restrictions do):
    # its "does not exist" is not the recipient's (were userunknown and notaccept, hard)
    ("550 5.1.0 <news@sender.example>: Sender address does not exist", "RCPT", "rejected",
     False),
    ("550 5.7.1 Unknown sender domain, no MX record", "RCPT", "rejected", False),
    # a harvest guard against our IP, and a refusal of our domain by the recipient's (were
    # userunknown and notaccept, hard)
    ("550 Too many invalid recipients", "RCPT", "ratelimited", False),
    # "is not ..." and "does not ..." said of a recipient or user that exists (were
    # userunknown, hard: "recipient is not", "user does not" read as "does not exist")
    ("550 Recipient is not authorized to receive mail from this sender", "RCPT",
     "rejected|filtered|policyviolation", False),
    ("550 The user does not accept attachments", "RCPT",
     "contenterror|policyviolation|filtered", False),
    ("550 5.7.1 The sender is not listed in the recipient's allowed senders", "RCPT",
     "rejected|filtered|policyviolation", False),
    # our HELO name, our return path's or From:'s domain "does not exist" (were userunknown,
    # hostunknown and notaccept, hard at RCPT)
    ("550 5.7.1 HELO/EHLO hostname does not exist", "RCPT", "blocked", False),
    ("553 Return path domain does not exist", "RCPT", "rejected", False),
    ("550 Your domain does not exist", "RCPT", "rejected|blocked", False),
    ("550 5.7.1 The domain of your From: address has no MX record", "RCPT", "rejected", False),
    ("550 5.7.1 Sender domain has no MX or A record", "RCPT", "rejected", False),
    # a recipient or mailbox "not accepting mail" now is not a domain that takes no mail
    # (notaccept, hard: both were)
    ("550 Recipient is not accepting mail at this time", "RCPT", "undefined|onhold|suspend",
     False),
    ("550 Mailbox is not accepting mail", "RCPT", "suspend", False),
    ("550 5.1.0 Domain is not accepting mail", "RCPT", "notaccept", True),
    # our HELO name, the sender's domain not resolved (were hostunknown: hard at RCPT)
    ("550 Invalid domain name in HELO", "RCPT", "blocked", False),
    ("550 Unable to resolve the domain of the sender address", "RCPT", "rejected", False),
    ("550 5.7.1 Your message was rejected because the recipient's domain does not accept "
     "email from your domain", "RCPT", "rejected|filtered|policyviolation", False),
)


@pytest.mark.parametrize(("reply", "command", "reasons", "hard"), REPLIES,
                         ids=[r[0][:48] for r in REPLIES])
def test_reply(reply: str, command: str, reasons: str, hard: bool) -> None:
    """The reply's reason is one of those accepted and it is hard only if the address is dead."""
    rcpt = "rcpt@dest.example"
    raw = REPORT.format(rcpt=rcpt, domain="dest.example", reply=reply, command=command)
    report = classify(raw.encode())
    got = [(r.address, r.reason, r.hard) for r in report.recipients]
    assert len(got) == 1 and got[0][0] == rcpt, got
    assert got[0][1] in reasons.split("|"), got
    assert got[0][2] == hard, got
