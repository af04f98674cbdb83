"""The scenarios of the MTA matrix: what is sent, how the world answers, what the bounce must
say, all known by construction (the remote's replies are in ``world.REPLIES``).

Labels use the project's vocabulary (README "How a bounce is read"): reasons are sisimai's
identifiers; hard only for userunknown, hostunknown, hasmoved and notaccept with a 5xx;
a rejection of our IP, our DMARC/SPF, our size or our relaying is never hard; a message
that expired in the queue is ``expired``, not hard; a delay notice is kind ``delay`` (its
recipients ``delayed``/``expired``, as sisimai reads every Action: delayed).

``status`` is the enhanced code the remote (or DNS) gave, "" where none exists; ``status
class`` is its first digit for a rejection, and 4 for an expiry (the MTA gave up on
temporary failures; several MTAs still write 5.x.x there, which the classifier must not
read as permanent).
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8
from email.utils import formatdate, make_msgid

from .world import (
    CLOSING_DOMAIN,
    NULLMX_DOMAIN,
    NXDOMAIN_DOMAIN,
    REFUSED_DOMAIN,
    REMOTE_DOMAIN,
)

# Features a scenario may need; an MTA lacking one skips the scenario with its reason.
DSN = "dsn"            # RET=/NOTIFY=/ENVID= (RFC 3461) accepted on submission
SMTPUTF8_F = "smtputf8"  # SMTPUTF8 (RFC 6531) on submission and to the remote
DELAY = "delay"        # a delay warning before the final failure
EXPIRY = "expiry"      # a queue lifetime short enough for a test
NULLMX = "nullmx"      # RFC 7505 null MX understood
NXDOMAIN = "nxdomain"  # an NXDOMAIN recipient domain is a permanent failure


@dataclass(frozen=True)
class Expect:
    """One failed recipient as the bounce must report it."""

    recipient: str
    reason: str
    hard: bool
    status: str
    action: str = "failed"

    def manifest(self) -> dict[str, object]:
        """The expected entry in tests/corpus/manifest.jsonl's format."""
        return {"recipient": self.recipient, "alternate_addresses": [], "reason": self.reason,
                "status": self.status, "replycode": "", "hardbounce": self.hard,
                "feedbacktype": "", "action": self.action}


@dataclass(frozen=True)
class Scenario:
    """One bounce the matrix wants from every MTA that supports it."""

    name: str
    what: str
    recipients: tuple[str, ...]
    expected: tuple[Expect, ...]
    kind: str = "bounce"
    requires: frozenset[str] = frozenset()
    mail_options: tuple[str, ...] = ()
    rcpt_options: tuple[str, ...] = ()
    # Scenarios sharing a ``message`` are one submission; its bounces are assigned in
    # arrival order (a delay notice comes before the final failure).
    message: str = ""
    order: int = 0
    utf8: bool = False

    @property
    def submission(self) -> str:
        return self.message or self.name


def _r(local: str, domain: str = REMOTE_DOMAIN) -> str:
    return f"{local}@{domain}"


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("rcpt-userunknown", "550 5.1.1 user unknown at RCPT",
             (_r("unknown-rcpt"),), (Expect(_r("unknown-rcpt"), "userunknown", True, "5.1.1"),)),
    Scenario("data-userunknown", "550 user unknown at the end of DATA",
             (_r("gone-data"),), (Expect(_r("gone-data"), "userunknown", True, ""),)),
    Scenario("mailboxfull", "552 5.2.2 mailbox full at RCPT",
             (_r("quota-full"),), (Expect(_r("quota-full"), "mailboxfull", False, "5.2.2"),)),
    Scenario("blocked-dnsbl", "554 5.7.1 our IP listed in a DNSBL, at RCPT",
             (_r("dnsbl-listed"),), (Expect(_r("dnsbl-listed"), "blocked", False, "5.7.1"),)),
    Scenario("dmarc", "550 5.7.26 DMARC/SPF failure at the end of DATA",
             (_r("dmarc-fail"),), (Expect(_r("dmarc-fail"), "authfailure", False, "5.7.26"),)),
    Scenario("toolarge", "552 5.3.4 message too large at the end of DATA",
             (_r("big-message"),),
             (Expect(_r("big-message"), "emailtoolarge", False, "5.3.4"),)),
    Scenario("relaying-denied", "550 5.7.1 relaying denied at RCPT",
             (_r("relay-denied"),), (Expect(_r("relay-denied"), "norelaying", False, "5.7.1"),)),
    Scenario("tempfail-delay", "451 4.3.0 at RCPT: the delay warning",
             (_r("later-tempfail"),),
             (Expect(_r("later-tempfail"), "expired", False, "4.3.0", "delayed"),),
             kind="delay", requires=frozenset({DELAY, EXPIRY}), message="tempfail", order=0),
    Scenario("tempfail-expired", "451 4.3.0 at RCPT until the queue lifetime ends",
             (_r("later-tempfail"),), (Expect(_r("later-tempfail"), "expired", False, "4.3.0"),),
             requires=frozenset({EXPIRY}), message="tempfail", order=1),
    Scenario("tempfail421-delay", "421 4.3.2 at RCPT, connection closed: the delay warning",
             (_r("someone", CLOSING_DOMAIN),),
             (Expect(_r("someone", CLOSING_DOMAIN), "expired", False, "4.3.2", "delayed"),),
             kind="delay", requires=frozenset({DELAY, EXPIRY}), message="tempfail421",
             order=0),
    Scenario("tempfail421-expired", "421 4.3.2 at RCPT, connection closed, until the queue "
             "lifetime ends",
             (_r("someone", CLOSING_DOMAIN),),
             (Expect(_r("someone", CLOSING_DOMAIN), "expired", False, "4.3.2"),),
             requires=frozenset({EXPIRY}), message="tempfail421", order=1),
    Scenario("refused-delay", "connection refused: the delay warning",
             (_r("someone", REFUSED_DOMAIN),),
             (Expect(_r("someone", REFUSED_DOMAIN), "expired", False, "4.4.1", "delayed"),),
             kind="delay", requires=frozenset({DELAY, EXPIRY}), message="refused", order=0),
    Scenario("refused-expired", "connection refused until the queue lifetime ends",
             (_r("someone", REFUSED_DOMAIN),),
             (Expect(_r("someone", REFUSED_DOMAIN), "expired", False, "4.4.1"),),
             requires=frozenset({EXPIRY}), message="refused", order=1),
    Scenario("nxdomain", "the recipient domain does not exist (NXDOMAIN)",
             (_r("someone", NXDOMAIN_DOMAIN),),
             (Expect(_r("someone", NXDOMAIN_DOMAIN), "hostunknown", True, "5.1.2"),),
             requires=frozenset({NXDOMAIN})),
    Scenario("nullmx", "the recipient domain has a null MX (RFC 7505)",
             (_r("someone", NULLMX_DOMAIN),),
             (Expect(_r("someone", NULLMX_DOMAIN), "notaccept", True, "5.1.10"),),
             requires=frozenset({NULLMX})),
    Scenario("mixed", "five recipients, one delivered, four refused for different reasons",
             (_r("unknown-mixed"), _r("quota-mixed"), _r("relay-mixed"), _r("moved-mixed"),
              _r("alice-mixed")),
             (Expect(_r("unknown-mixed"), "userunknown", True, "5.1.1"),
              Expect(_r("quota-mixed"), "mailboxfull", False, "5.2.2"),
              Expect(_r("relay-mixed"), "norelaying", False, "5.7.1"),
              Expect(_r("moved-mixed"), "hasmoved", True, "5.1.6"))),
    Scenario("ret-hdrs", "RET=HDRS, NOTIFY=FAILURE, ENVID: 550 5.1.1 at RCPT",
             (_r("unknown-hdrs"),), (Expect(_r("unknown-hdrs"), "userunknown", True, "5.1.1"),),
             requires=frozenset({DSN}), mail_options=("RET=HDRS", "ENVID=matrix-ret-hdrs"),
             rcpt_options=("NOTIFY=FAILURE",)),
    Scenario("ret-full", "RET=FULL, NOTIFY=FAILURE, ENVID: 550 5.1.1 at RCPT",
             (_r("unknown-full"),), (Expect(_r("unknown-full"), "userunknown", True, "5.1.1"),),
             requires=frozenset({DSN}), mail_options=("RET=FULL", "ENVID=matrix-ret-full"),
             rcpt_options=("NOTIFY=FAILURE",)),
    Scenario("smtputf8", "an SMTPUTF8 recipient (UTF-8 local part), 550 5.1.1 at RCPT",
             (_r("unknown-jürgen"),),
             (Expect(_r("unknown-jürgen"), "userunknown", True, "5.1.1"),),
             requires=frozenset({SMTPUTF8_F}), mail_options=("SMTPUTF8",), utf8=True),
)

BY_NAME = {s.name: s for s in SCENARIOS}


@dataclass(frozen=True)
class Correction:
    """A label corrected for one MTA: what it honestly reports is not what the scenario
    constructed (its report names another reason, or cannot tell the two apart). Kept as
    data: the manifest row carries the label it replaces (``corrected_from``) and ``why``."""

    reason: str
    why: str


# Reports that say the remote's last words and nothing of the queue lifetime are labelled
# with the reason those words name (as the collection in tests/corpus labels the same
# Postfix report); an MTA that says it gave up ("retry timeout exceeded", Status 4.4.7,
# "Envelope expired") keeps ``expired``.
_LAST_REPLY = ("reports the remote's last reply to RCPT TO, {reply}, with {status} and no "
               "word of the queue lifetime or of retries: the reason its report names is "
               "the remote's ({reason}), as the collection labels Postfix's report of a 4xx "
               "reply it gave up on (tests/corpus rhost-cloudflare-01.eml, '421 4.3.0 "
               "Upstream error', Action failed: systemerror); Exim ('retry timeout exceeded'), "
               "Sendmail (4.4.7) and OpenSMTPD ('Envelope expired') say the message expired")
CORRECTIONS: dict[tuple[str, str, str], Correction] = {
    ("courier", "nullmx", _r("someone", NULLMX_DOMAIN)): Correction(
        "hostunknown",
        "Courier 1.0.16 reports a null MX exactly as an NXDOMAIN: '<<< No such domain.', "
        "Status 5.0.0, 'Diagnostic-Code: unknown; No such domain.', the same report as its "
        "nxdomain scenario's. What it reports is an unknown domain (hard either way)."),
    ("courier", "tempfail-expired", _r("later-tempfail")): Correction(
        "systemerror", "Courier " + _LAST_REPLY.format(
            reply="'451 4.3.0 Temporary local problem - please try later'",
            status="its own Status 5.0.0", reason="systemerror")),
    ("postfix", "tempfail-expired", _r("later-tempfail")): Correction(
        "systemerror", "Postfix " + _LAST_REPLY.format(
            reply="'451 4.3.0 Temporary local problem - please try later'",
            status="Status 4.3.0, Action failed", reason="systemerror")),
    ("postfix", "tempfail421-expired", _r("someone", CLOSING_DOMAIN)): Correction(
        "systemerror", "Postfix " + _LAST_REPLY.format(
            reply="'421 4.3.2 Service not available, closing transmission channel' (RFC "
                  "5321's 421 text; X.3.2 is a transient 'system not accepting network "
                  "messages', RFC 3463)",
            status="Status 4.3.2, Action failed", reason="systemerror")),
    ("opensmtpd", "refused-delay", _r("someone", REFUSED_DOMAIN)): Correction(
        "networkerror",
        "OpenSMTPD's delay notice says 'Network error on destination MXs', its words for any "
        "failure to connect to a domain's MXs (refused, timed out, no route), without the "
        "cause: a network error, as the collection labels the same OpenSMTPD notice "
        "(tests/corpus lhost-opensmtpd-04.eml). Postfix and Sendmail name the refused "
        "connection, which a delay notice retries: expired."),
}


def labels(mta: str, scenario: Scenario, recipients: list[Expect] | None = None
           ) -> dict[str, object]:
    """The manifest's labels of ``mta``'s bounce for ``scenario`` (of ``recipients``, by
    default all it expects): ``expected``, and ``corrected_from`` and ``why`` when a label
    was corrected for this MTA (one recipient's fields, as in tests/corpus)."""
    entries: list[dict[str, object]] = []
    out: dict[str, object] = {"expected": entries}
    for e in scenario.expected if recipients is None else recipients:
        entry = e.manifest()
        fix = CORRECTIONS.get((mta, scenario.name, e.recipient))
        if fix is not None:
            out["corrected_from"] = {"reason": entry["reason"]}
            out["why"] = fix.why
            entry["reason"] = fix.reason
        entries.append(entry)
    return out
APP_FROM = "Test application <app@app.example.test>"


def submissions() -> dict[str, list[Scenario]]:
    """Scenarios grouped by the message that produces them, in arrival order."""
    groups: dict[str, list[Scenario]] = {}
    for scenario in SCENARIOS:
        groups.setdefault(scenario.submission, []).append(scenario)
    for group in groups.values():
        group.sort(key=lambda s: s.order)
    return groups


def message_for(scenario: Scenario, sender: str) -> bytes:
    """The application's message for a scenario (a small plain-text mail)."""
    msg = EmailMessage()
    msg["From"] = APP_FROM
    msg["To"] = ", ".join(scenario.recipients)
    msg["Subject"] = f"bounced MTA matrix: {scenario.submission}"
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain="app.example.test")
    msg["X-Bounced-Return-Path"] = sender
    msg.set_content(f"A message of the MTA matrix, scenario {scenario.submission}.\n")
    return msg.as_bytes(policy=SMTPUTF8 if scenario.utf8 else SMTP)
