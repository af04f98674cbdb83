"""The provider reply-code table: one hand-written reply per provider family, through the
table alone and through a whole DSN, and the hardness that follows from it."""

from __future__ import annotations

import re

import pytest

from bounced.classify import classify
from bounced.classify.providers import PROVIDER_NUMBERS, PROVIDER_TEXTS, provider_match
from tests.test_classify_formats import dsn, rcpt

# (provider, status, diagnostic as the provider writes it, reason)
SAMPLES: list[tuple[str, str, str, str]] = [
    ("yahoo", "4.7.0", "421 4.7.0 [TSS04] Messages from 203.0.113.9 temporarily deferred due "
     "to unexpected volume or user complaints - 4.16.55.1; see "
     "https://postmaster.yahooinc.com/error-codes", "rejected"),
    ("yahoo", "5.7.9", "553 5.7.2 [TSS09] All messages from 203.0.113.9 will be permanently "
     "deferred; Retrying will NOT succeed.", "blocked"),
    ("yahoo", "5.0.0", "554 delivery error: dd This user doesn't have a yahoo.com account "
     "(nobody@yahoo.com) [0] - mta7.mail.gq1.yahoo.com", "userunknown"),
    ("orange", "5.2.0", "550 5.2.0 Mail rejete. Mail rejected. OFR_506 [506]", "spamdetected"),
    ("orange", "5.1.1", "550 5.1.1 Adresse d au moins un destinataire invalide. Invalid "
     "recipient. LPN007_416", "userunknown"),
    ("orange", "4.0.0", "421 mwinf0k21 ME Service refuse. Veuillez essayer plus tard. "
     "Service refused, please try later. OFR_999 [999]", "ratelimited"),
    ("orange", "5.7.1", "550 5.7.1 Service refuse. Service refused. LPN001_103", "blocked"),
    ("orange", "4.0.0", "421 mwinf5c79 ME Trop de connexions, veuillez verifier votre "
     "configuration. Too many connections, slow down. OFR005_104 [104]", "ratelimited"),
    ("spectrum", "4.0.0", "421 4.7.0 Too many connections from your IP. AUP#CXCNCT", "ratelimited"),
    ("spectrum", "5.7.1", "554 5.7.1 Rate limit exceeded. AUP#O-1340 see "
     "https://www.spectrum.net/support/internet/understanding-email-error-codes",
     "ratelimited"),
    ("spectrum", "5.7.1", "554 5.7.1 Your IP is on our block list. AUP#In-1010", "blocked"),
    ("mimecast", "5.0.0", "554 Host network not allowed - https://community.mimecast.com/ "
     "[AbCdEf.uk123]", "policyviolation"),
    ("mimecast", "5.0.0", "554 Email rejected due to security policies - "
     "MCSpamSignature.av.1.9", "virusdetected"),

    ("zoho", "5.7.1", "554 5.7.1 Email cannot be delivered. Reason: Email flagged as Spam.",
     "rejected"),
    ("amazonses", "5.0.0", "554 Message rejected: Email address is not verified. The "
     "following identities failed the check in region EU-WEST-1: a@example.org",
     "norelaying"),
    ("comcast", "5.0.0", "554 resimta-po-12v.sys.comcast.net comcast 203.0.113.9 Comcast "
     "block for spam. Please see http://postmaster.comcast.net/smtp-error-codes.php#BL000000",
     "blocked"),
    ("comcast", "4.0.0", "421 resimta-h1p-1.sys.comcast.net 203.0.113.9 Too many sessions "
     "opened RL000001", "ratelimited"),
    ("microsoft", "5.7.1", "550 5.7.1 Unfortunately, messages from [203.0.113.9] weren't "
     "sent. Please contact your Internet service provider since part of their network is "
     "on our block list (S3140).", "blocked"),
    ("microsoft", "5.5.0", "550 Requested action not taken: mailbox unavailable "
     "(-2097210:2097211:-2147467259)", "userunknown"),
    ("microsoft", "4.7.650", "451 4.7.650 The mail server [203.0.113.9] has been temporarily "
     "rate limited due to IP reputation. (S3114)", "badreputation"),
    ("gmail", "5.7.0", "552-5.7.0 This message was blocked because its content presents a "
     "potential security issue.", "policyviolation"),
    ("gmail", "5.0.0", "Your email to group team@example.com was rejected due to spam "
     "classification.", "spamdetected"),
    ("cloudmark", "5.7.1", "550 5.7.1 Rejected - see https://csi.cloudmark.com/reset-request",
     "blocked"),
    ("tencent", "5.0.0", "550 Mail is rejected by recipients: frequency limited", "ratelimited"),
    ("yahoo", "4.0.0", "451 Message temporarily deferred due to unresolvable RFC.5321 from "
     "domain; see https://postmaster.yahooinc.com/error-codes", "rejected"),
    ("orange", "5.7.1", "550 5.7.1 Service refuse. Veuillez essayer plus tard. Service "
     "refused, please try later. OFR004_102 [102]", "blocked"),
    ("microsoft", "4.7.500", "451 4.7.500 Server busy. Please try again later from "
     "[203.0.113.9]. (AS761)", "ratelimited"),
    ("microsoft", "5.4.310", "550 5.4.310 DNS domain lapsed.example does not exist "
     "[Message=InfoDomainNonexistent] [LastAttemptedServerName=lapsed.example]",
     "hostunknown"),
    ("microsoft", "5.0.0", "550 OU-002 (COL004-MC1F35) Unfortunately, messages from "
     "203.0.113.9 weren't sent. Please contact your Internet service provider.", "blocked"),
    ("microsoft", "4.0.0", "421 RP-001 (BAY004-MC1F12) Unfortunately, some messages from "
     "203.0.113.9 weren't sent. Please try again. We have limits for how many messages can "
     "be sent per hour and per day.", "speeding"),
    ("barracuda", "5.0.0", "550 permanent failure for one or more recipients "
     "(someone@example.com:blocked)", "blocked"),
    ("mailru", "5.0.0", "550 Message was not accepted -- invalid mailbox. Local mailbox "
     "someone@mail.ru is unavailable: user not found", "userunknown"),
]


@pytest.mark.parametrize(("provider", "status", "diag", "reason"), SAMPLES,
                         ids=[f"{s[0]}-{s[3]}" for s in SAMPLES])
def test_provider_reply_names_the_reason(provider: str, status: str, diag: str,
                                         reason: str) -> None:
    """A provider's documented reply code gives its reason, whatever the status says."""
    got_provider, got_reason = provider_match(" ".join(diag.lower().split()))
    assert (got_provider, got_reason) == (provider, reason)
    report = classify(dsn([rcpt(b"someone@example.com", b"failed", status.encode(),
                                diag.encode())]))
    (recipient,) = report.recipients
    assert recipient.reason == reason
    assert recipient.hard == (reason in ("userunknown", "hostunknown")
                              and status.startswith("5"))


def test_every_provider_family_has_a_sample() -> None:
    """Each provider in the table is exercised by at least one sample above."""
    providers = {p for p, _, _ in PROVIDER_TEXTS} | {p for p, _, _ in PROVIDER_NUMBERS}
    sampled = {s[0] for s in SAMPLES}
    assert providers - sampled <= {"proofpoint"}


def test_provider_patterns_compile_and_reasons_are_known() -> None:
    """Every pattern compiles and every reason is in the reason vocabulary."""
    vocabulary = {  # the registry's (bounced/classify/registry.py), less the non-bounce kinds
        "userunknown", "hostunknown", "hasmoved", "notaccept", "suspend", "mailboxfull",
        "systemfull", "expired", "networkerror", "systemerror", "mailererror", "filtered",
        "rejected", "blocked", "spamdetected", "virusdetected", "policyviolation",
        "authfailure", "requireptr", "securityerror", "badreputation", "contenterror",
        "emailtoolarge", "exceedlimit", "syntaxerror", "norelaying", "notcompliantrfc",
        "ratelimited", "speeding", "failedstarttls", "onhold", "undefined"}
    for _, pattern, reason in PROVIDER_TEXTS:
        re.compile(pattern)
        assert reason in vocabulary
    for _, pattern, ranges in PROVIDER_NUMBERS:
        assert re.compile(pattern).groups == 1
        assert all(low <= high and reason in vocabulary for low, high, reason in ranges)


def test_unknown_user_of_au_is_hard_only_when_named() -> None:
    """au's "550 : User unknown" (a sender filter) is soft; naming the user proves it dead."""
    filtered = classify(dsn([rcpt(b"x@ezweb.ne.jp", b"failed", b"5.0.0",
                                  b"550 : User unknown")]))
    named = classify(dsn([rcpt(b"x@ezweb.ne.jp", b"failed", b"5.0.0",
                               b"550 <x@ezweb.ne.jp>: User unknown")]))
    assert (filtered.recipients[0].reason, filtered.recipients[0].hard) == ("filtered", False)
    assert (named.recipients[0].reason, named.recipients[0].hard) == ("userunknown", True)


def test_ordinary_reply_matches_no_provider() -> None:
    """A plain "550 5.1.1 user unknown" carries no provider code."""
    assert provider_match("550 5.1.1 <a@example.com>: recipient address rejected: "
                          "user unknown in local recipient table") == ("", "")
