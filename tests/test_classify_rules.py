"""Each rule of the reason decision (bounced.classify.rules) on its own table: the rule is
called directly on the evidence of one recipient and must name that reason, or abstain
('') so that a later rule decides. The last test runs the whole order on rows where the
order itself matters."""

from __future__ import annotations

from typing import NamedTuple

import pytest

from bounced.classify import rules
from bounced.classify.rules import RULES, evidence


class Row(NamedTuple):
    """The recipient's status, reply code, action, diagnostic, text around it, command,
    and what the rule says ('' = it leaves the decision to a later rule)."""

    status: str
    reply: str
    action: str
    diagnostic: str
    expected: str
    context: str = ""
    command: str = ""
    senders: tuple[str, ...] = ()  # the envelope sender's domains


TABLES: dict[str, list[Row]] = {
    "delivered": [
        Row("2.0.0", "250", "delivered", "250 2.0.0 ok", "delivered"),
        Row("2.1.5", "", "relayed", "", "delivered"),
        Row("2.0.0", "", "", "", "delivered"),  # a success status, no action
        Row("2.0.0", "", "failed", "", ""),  # the action says otherwise
        Row("5.1.1", "550", "failed", "user unknown", ""),
    ],
    "provider": [
        Row("5.2.0", "550", "failed", "550 5.2.0 OFR_506 [506] Message refused as spam",
            "spamdetected"),
        Row("5.0.0", "554", "failed", "554 Message not allowed - [TS03] All messages from "
            "192.0.2.1 will be permanently deferred", "blocked"),
        Row("5.1.1", "550", "failed", "550 5.1.1 user unknown", ""),
    ],
    "sender_refused": [
        Row("5.1.1", "550", "failed", "550 5.1.1 <us@our.example>: Sender address rejected: "
            "User unknown in local recipient table", "rejected"),
        Row("", "553", "failed", "553 sender verify failed: domain not found", "rejected"),
        Row("5.7.1", "554", "failed", "Sender address rejected: blocked using spamhaus", ""),
        Row("5.1.1", "550", "failed", "550 5.1.1 user unknown", ""),
    ],
    "sender_named": [
        Row("", "553", "failed", "553 our.example does not exist", "rejected",
            senders=("our.example",)),
        Row("", "550", "failed", "550 <x@our.example>: user unknown", "",  # an address
            senders=("our.example",)),
        Row("", "550", "failed", "550 their.example does not exist", "",
            senders=("our.example",)),
        Row("", "554", "failed", "554 our.example is listed at spamhaus", "",
            senders=("our.example",)),
    ],
    "words_over_code": [
        Row("5.1.1", "550", "failed", "550 5.1.1 mailbox full", "mailboxfull"),
        Row("5.1.1", "550", "failed", "550 5.1.1 client host blocked using zen.spamhaus.org",
            "blocked"),
        Row("5.2.2", "552", "failed", "552 5.2.2 quota exceeded, spam suspected",
            "spamdetected"),
        Row("5.1.1", "550", "failed", "550 5.1.1 user unknown", ""),
        Row("5.7.1", "550", "failed", "550 5.7.1 mailbox full", ""),  # not an address code
        # a reporter that maps every 550 to 5.1.1; the words name the message's size
        Row("5.1.1", "550", "failed", "550 max message size exceeded", "emailtoolarge"),
        Row("5.1.6", "551", "failed", "551 not our customer", "userunknown"),
    ],
    "before_rcpt": [
        Row("5.1.1", "550", "failed", "550 5.1.1 user unknown (in reply to MAIL FROM command)",
            "rejected"),
        Row("", "550", "failed", "550 no such domain (in reply to HELO command)", "blocked"),
        Row("5.1.1", "550", "failed", "550 5.1.1 user unknown (in reply to RCPT TO command)", ""),
        Row("5.7.1", "550", "failed", "550 5.7.1 denied (in reply to MAIL FROM command)", ""),
        # a host closed for now at the greeting: not an address reason, not our host's fault
        Row("4.3.2", "421", "failed", "421 4.3.2 service not available (in reply to initial "
            "connection)", ""),
    ],
    "sender_words": [
        Row("5.3.4", "552", "failed", "552 5.3.4 SPF check failed", "authfailure"),
        Row("5.4.6", "554", "failed", "554 5.4.6 your IP is on our blacklist", "blocked"),
        Row("5.7.1", "550", "failed", "550 5.7.1 SPF check failed", ""),  # 5.7.1 is generic
        Row("5.1.1", "550", "failed", "550 5.1.1 blacklist", ""),  # an address code: not here
        Row("5.2.3", "552", "failed", "552 5.2.3 message too large", ""),
    ],
    "status_code": [
        Row("5.1.1", "550", "failed", "550 5.1.1 no thanks", "userunknown"),
        Row("5.2.2", "552", "failed", "552 over quota", "mailboxfull"),
        Row("4.1.2", "450", "delayed", "450 4.1.2 host not found", "networkerror"),
        Row("4.4.7", "", "failed", "delivery expired: host not found", "networkerror"),
        Row("4.4.6", "451", "failed", "451 4.4.6 been in the queue too long", "expired"),
        Row("5.0.0", "550", "failed", "550 user unknown", ""),  # generic: not specific
        # X.3.2 for now is a host closed for a while (RFC 3463); for good, no mail accepted
        Row("4.3.2", "421", "failed", "421 4.3.2 mail.example.org Service not available, "
            "closing transmission channel", "systemerror"),
        Row("4.3.2", "", "delayed", "system not accepting network messages", "systemerror"),
        Row("5.3.2", "521", "failed", "521 5.3.2 system not accepting network messages",
            "notaccept"),
        # an expiry status stands, whatever refused the connection (Sendmail's words)
        Row("4.4.7", "", "failed", "<a@b.example>... Deferred: Connection refused by "
            "mx.b.example. Message could not be delivered for 5 days", "expired"),
    ],
    "refused_recipient": [
        Row("", "550", "failed", "550 <a@b.example>: Recipient address rejected.", "userunknown",
            command="RCPT"),
        Row("5.1.0", "550", "failed", "550 5.1.0 Address rejected", "userunknown"),
        Row("", "550", "failed", "550 Recipient address rejected.", ""),  # no stage, no code
        Row("4.1.0", "450", "failed", "450 4.1.0 Address rejected", ""),
    ],
    "vague_refusal": [
        Row("5.0.0", "550", "failed", "550 5.0.0 <a@b.example> rejected", "onhold"),
        Row("5.7.1", "550", "failed", "550 5.7.1 access denied", "securityerror"),
        Row("5.0.0", "550", "failed", "550 5.0.0 rejected (in reply to MAIL FROM)", ""),
        Row("5.0.0", "550", "failed", "550 5.0.0 mailbox full", ""),
    ],
    "user_unknown": [
        Row("", "550", "failed", "550 user unknown", "userunknown", command="RCPT"),
        Row("5.0.0", "550", "failed", "550 <a@b.example>... User unknown", "userunknown"),
        Row("", "", "failed", "", "userunknown", context="Address not found"),
        Row("", "", "failed", "unknown user", "userunknown"),  # the reporter's own users
        # after the message: providers that check recipients only at the end of DATA
        Row("", "550", "failed", "550 user unknown", "userunknown", command="DATA"),
        Row("5.2.0", "550", "failed", "550 5.2.0 user unknown", "filtered"),  # the mailbox is
        Row("5.7.1", "550", "failed", "550 5.7.1 user unknown", "filtered"),  # a policy's
        Row("5.7.1", "550", "failed", "550 5.7.1 user unknown", "userunknown", command="RCPT"),
        Row("", "550", "failed", "550 user unknown, refused by the content filter",
            "filtered", command="DATA"),
        Row("5.0.0", "554", "failed", "554 spam", ""),
    ],
    "transient_host": [
        Row("", "450", "delayed", "450 host not found", "networkerror"),
        Row("", "550", "failed", "550 host not found", ""),
    ],
    "unreachable": [
        Row("", "", "delayed", "connect to mx.example.org: connection timed out", "expired"),
        Row("5.4.1", "", "failed", "connection timed out", ""),  # a status: a later rule
        Row("", "", "delayed", "no route to host", ""),  # routing: nothing was tried
        Row("4.4.1", "", "delayed", "<a@b.example>... Deferred: Connection refused by "
            "mx.b.example.", "expired"),  # Sendmail's words for the refusal
        # a final failure with the reporter's generic status and no reply of the remote:
        # the host never answered until the queue lifetime ran out (Courier, and others
        # that write X.0.0 for all they give up on)
        Row("5.0.0", "", "failed", "Connection refused", "expired"),
        Row("5.0.0", "", "failed", "Connection timed out", "expired"),
        Row("5.0.0", "", "failed", "smtp; <command failed>", "expired"),  # Courier: no reply
        Row("5.0.0", "", "failed", "host mx.b.example: connection timed out during greeting",
            "expired"),
        Row("5.0.0", "554", "failed", "554 connection refused", ""),  # the remote replied
        Row("5.0.0", "", "failed", "no route to host", ""),  # routing: nothing was tried
        Row("5.4.4", "", "failed", "connection refused", ""),  # a specific status: later
    ],
    "phrase": [
        Row("5.0.0", "550", "failed", "550 message too large", "emailtoolarge"),
        Row("", "", "failed", "", "mailboxfull", context="the mailbox is full"),
        Row("5.1.1", "550", "failed", "550 5.1.1", ""),  # a specific code: no text read
        # only "rejected" at HELO or the greeting: our host was refused, not a sender
        Row("", "550", "failed", "connected to 192.0.2.1 but my name was rejected. remote "
            "host said: 550 go ahead and try", "blocked", command="HELO"),
        Row("", "554", "failed", "554 access refused", "blocked", command="CONN"),
        Row("", "550", "failed", "550 rejected", "rejected", command="MAIL"),
        Row("", "550", "failed", "550 sender address rejected", "rejected", command="HELO"),
        # RFC 5321's own 421 text, without an enhanced code
        Row("", "421", "failed", "421 mx.example.org Service not available, closing "
            "transmission channel", "systemerror"),
    ],
    "stage": [
        Row("", "", "failed", "", "blocked", command="CONN"),
        Row("", "", "failed", "", "rejected", command="MAIL"),
        Row("", "", "failed", "", "", command="RCPT"),
    ],
    "retried": [
        Row("4.0.0", "", "delayed", "", "expired"),
        Row("4.0.0", "", "failed", "", "expired"),
        Row("5.0.0", "", "failed", "", ""),
    ],
    "generic_code": [
        Row("5.7.0", "", "failed", "", "securityerror"),
        Row("", "", "failed", "", ""),
    ],
    "nothing": [
        Row("5.0.0", "", "failed", "", "onhold"),
        Row("", "", "failed", "", "undefined"),
    ],
}


def test_a_filtering_gateway_makes_user_unknown_filtered() -> None:
    """After the message, a filtering gateway's "user unknown" may be its verdict; at RCPT
    TO it never is."""
    e = evidence("", "550", "failed", "550 user unknown", "", "DATA", gateway="messagelabs")
    assert rules.user_unknown(e) == "filtered"
    e = evidence("", "550", "failed", "550 user unknown", "", "RCPT", gateway="messagelabs")
    assert rules.user_unknown(e) == "userunknown"


DELAYS = [
    # (status, reply, action, diagnostic, reason): a delay that says no more than a passing
    # failure is expired; one that names the mailbox, the network or the sender keeps that
    ("4.3.0", "451", "delayed", "451 4.3.0 temporary local problem", "expired"),
    ("4.3.2", "421", "delayed", "421 4.3.2 service not available, closing channel", "expired"),
    ("4.3.2", "421", "failed", "421 4.3.2 service not available, closing channel",
     "systemerror"),
    ("4.4.1", "", "delayed", "Deferred: Connection refused by mx.example.org.", "expired"),
    ("4.0.0", "", "delayed", "no mx found for domain", "notaccept"),
    ("4.2.2", "452", "delayed", "452 4.2.2 mailbox full", "mailboxfull"),
    ("4.4.1", "", "delayed", "no route to host", "networkerror"),
    ("4.3.0", "451", "failed", "451 4.3.0 temporary local problem", "systemerror"),
]


@pytest.mark.parametrize(("status", "reply", "action", "diagnostic", "reason"), DELAYS)
def test_delay_finish(status: str, reply: str, action: str, diagnostic: str,
                      reason: str) -> None:
    """The finishing rule of a delay (after the rule that decided)."""
    assert rules.decide(evidence(status, reply, action, diagnostic, ""))[0] == reason


def _rows() -> list[tuple[str, Row]]:
    return [(name, row) for name, table in TABLES.items() for row in table]


def test_every_rule_has_a_table() -> None:
    """Each rule of the order is tested, and only the rules of the order are."""
    assert [name for name, _ in RULES] == list(TABLES)


@pytest.mark.parametrize(("name", "row"), _rows(),
                         ids=[f"{n}-{i}" for n, t in TABLES.items() for i in range(len(t))])
def test_rule_on_its_table(name: str, row: Row) -> None:
    """The rule names the row's reason, or abstains."""
    rule = dict(RULES)[name]
    e = evidence(row.status, row.reply, row.action, row.diagnostic, row.context, row.command,
                 senders=row.senders)
    assert rule(e) == row.expected, (name, row, e)


ORDER = [
    # (status, reply, action, diagnostic, reason, rule that decides)
    ("5.1.1", "550", "failed", "550 5.1.1 <us@our.example>: Sender address rejected: "
     "User unknown", "rejected", "sender_refused"),
    ("5.1.1", "550", "failed", "550 5.1.1 user unknown (in reply to MAIL FROM command)",
     "rejected", "before_rcpt"),
    ("5.2.0", "550", "failed", "550 5.2.0 OFR_506 [506] user unknown", "spamdetected", "provider"),
    ("", "550", "failed", "550 user unknown", "userunknown", "user_unknown"),
    ("4.3.0", "451", "delayed", "451 4.3.0 temporary local problem", "expired", "phrase+delay"),
    ("4.4.7", "", "failed", "Deferred: Connection refused by mx.example.org. Message could "
     "not be delivered for 5 days", "expired", "status_code"),
    ("5.0.0", "", "failed", "unknown; Connection refused", "expired", "unreachable"),
    ("", "", "", "", "undefined", "nothing"),
]


@pytest.mark.parametrize(("status", "reply", "action", "diagnostic", "reason", "rule"), ORDER)
def test_order_of_the_rules(status: str, reply: str, action: str, diagnostic: str,
                            reason: str, rule: str) -> None:
    """The whole decision: the first rule that names a reason decides."""
    assert rules.decide(evidence(status, reply, action, diagnostic, "")) == (reason, rule)
