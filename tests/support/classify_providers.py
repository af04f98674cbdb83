"""The provider-wordings table (tests/classify/providers), each reply wrapped and classified.

Shared by bench/classify_providers.py, which prints the figures (its docstring says what they
mean), and tests/test_provider_replies.py, which holds them.
"""

from __future__ import annotations

import re
import textwrap
import tomllib
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from bounced.classify import classify

ROOT = Path(__file__).resolve().parents[2]  # the checkout
TABLE = ROOT / "tests" / "classify" / "providers"

# The classifier's vocabulary (README "How a bounce is read": sisimai's reason names).
REASONS = frozenset({
    "userunknown", "hostunknown", "hasmoved", "notaccept", "suspend", "mailboxfull",
    "systemfull", "expired", "networkerror", "systemerror", "mailererror", "filtered",
    "rejected", "blocked", "spamdetected", "virusdetected", "policyviolation", "authfailure",
    "requireptr", "securityerror", "badreputation", "contenterror", "emailtoolarge",
    "exceedlimit", "syntaxerror", "norelaying", "notcompliantrfc", "ratelimited", "speeding",
    "failedstarttls", "onhold", "undefined"})
# Only these prove the address dead (notaccept only with a 5xx): README, same section.
HARD_REASONS = frozenset({"userunknown", "hostunknown", "hasmoved", "notaccept"})
# The SMTP stage a reply answers, as the table writes it.
STAGES = ("CONNECT", "HELO", "MAIL", "RCPT", "DATA")
FORMS = ("dsn", "exim", "qmail")

SENDER = "bounce-k1.20251103.u5.00112233445566778899@bounces.example.org"
RELAY = "relay.example.org"
OUR_IP = "203.0.113.9"  # the sending relay's address, as replies quote it
_CODE = re.compile(r"^([245])\d\d(?:[ -]|$)")
_ENHANCED = re.compile(r"^[245]\d\d[ -]([245]\.\d{1,3}\.\d{1,3})\b")
_FIELD = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Row:
    """One documented reply and what it must be classified as."""

    id: str
    provider: str
    file: str
    reply: str  # as received: continuation lines on lines of their own
    stage: str
    reason: str
    also: tuple[str, ...]  # other reasons accepted where the documentation allows both
    hard: bool
    source: str
    mx: str
    ip: str
    rcpt: str
    note: str

    @property
    def accepted(self) -> tuple[str, ...]:
        return (self.reason, *self.also)

    @property
    def one_line(self) -> str:
        """The reply as an MTA quotes it on one line (continuations joined by a space)."""
        return " ".join(line.strip() for line in self.reply.splitlines() if line.strip())


class TableError(ValueError):
    """A row of the table is malformed."""


def _text(entry: dict[str, object], key: str, where: str, default: str | None = None) -> str:
    value = entry.get(key, default)
    if not isinstance(value, str) or (default is None and not value.strip()):
        raise TableError(f"{where}: '{key}' must be a non-empty string")
    return value


def load(folder: Path = TABLE) -> list[Row]:
    """Every row of every ``*.toml`` file of ``folder``, checked against the labelling rules."""
    rows: list[Row] = []
    seen: set[str] = set()
    for path in sorted(folder.glob("*.toml")):
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        where = path.name
        provider = _text(data, "provider", where)
        mx, domain = _text(data, "mx", where), _text(data, "domain", where)
        ip = _text(data, "ip", where, "198.51.100.25")
        entries = data.get("reply")
        if not isinstance(entries, list) or not entries:
            raise TableError(f"{where}: no [[reply]] rows")
        for entry in entries:
            if not isinstance(entry, dict):
                raise TableError(f"{where}: a [[reply]] is not a table")
            rid = _text(entry, "id", where)
            where_row = f"{where} {rid}"
            unknown = set(entry) - {"id", "provider", "reply", "stage", "reason", "also", "hard",
                                    "source", "mx", "ip", "domain", "rcpt", "note",
                                    "corrected_from", "why"}
            if unknown:
                raise TableError(f"{where_row}: unknown fields {sorted(unknown)}")
            if "corrected_from" in entry or "why" in entry:  # a corrected label says why
                _text(entry, "corrected_from", where_row)
                _text(entry, "why", where_row)
            if rid in seen:
                raise TableError(f"{where_row}: id used twice")
            seen.add(rid)
            reply = _text(entry, "reply", where_row).strip("\n")
            stage, reason = _text(entry, "stage", where_row), _text(entry, "reason", where_row)
            also = entry.get("also", [])
            hard = entry.get("hard")
            if stage not in STAGES:
                raise TableError(f"{where_row}: stage {stage!r} not in {STAGES}")
            if not isinstance(also, list) or not all(isinstance(a, str) for a in also):
                raise TableError(f"{where_row}: 'also' must be a list of reasons")
            for name in (reason, *also):
                if name not in REASONS:
                    raise TableError(f"{where_row}: {name!r} is not a reason of the vocabulary")
            if not isinstance(hard, bool):
                raise TableError(f"{where_row}: 'hard' must be true or false")
            code = _CODE.match(reply)
            if not code:
                raise TableError(f"{where_row}: the reply must start with its SMTP code")
            if hard != (reason in HARD_REASONS and code.group(1) == "5"):
                raise TableError(f"{where_row}: hard={hard} contradicts reason {reason} with "
                                 f"a {code.group(1)}xx reply (see README: labelling rules)")
            if any((a in HARD_REASONS and code.group(1) == "5") != hard for a in also):
                raise TableError(f"{where_row}: an alternative reason changes the hard flag")
            row_domain = _text(entry, "domain", where_row, domain)
            rows.append(Row(
                id=rid, provider=_text(entry, "provider", where_row, provider),
                file=path.stem, reply=reply, stage=stage,
                reason=reason, also=tuple(also), hard=hard,
                source=_text(entry, "source", where_row),
                mx=_text(entry, "mx", where_row, mx), ip=_text(entry, "ip", where_row, ip),
                rcpt=_text(entry, "rcpt", where_row, f"jane.doe@{row_domain}"),
                note=_text(entry, "note", where_row, "")))
    return rows


# --------------------------------------------------------------------------- the two bounces


def _render(row: Row, text: str) -> str:
    return text.replace("{rcpt}", row.rcpt).replace("{ip}", OUR_IP)


def status_of(reply: str) -> str:
    """The Status a Postfix DSN gives a reply: its enhanced code, else X.0.0."""
    found = _ENHANCED.match(reply)
    return found.group(1) if found else f"{reply[0]}.0.0"


_POSTFIX_COMMAND = {"HELO": "EHLO", "MAIL": "MAIL FROM", "RCPT": "RCPT TO", "DATA": "end of DATA"}


def _postfix_reason(row: Row) -> str:
    reply = _render(row, row.one_line)
    if row.stage == "CONNECT":
        return f"host {row.mx}[{row.ip}] refused to talk to me: {reply}"
    return (f"host {row.mx}[{row.ip}] said: {reply} (in reply to "
            f"{_POSTFIX_COMMAND[row.stage]} command)")


def _fold(first: str, width: int = 78) -> str:
    return "\n".join(textwrap.wrap(first, width=width, subsequent_indent="    ",
                                   break_long_words=False, break_on_hyphens=False))


def _original_headers(row: Row) -> str:
    return (f"Return-Path: <{SENDER}>\n"
            f"Received: by {RELAY} (Postfix, from userid 1001)\n"
            f"\tid 4dF1aB2cD3; Mon,  3 Nov 2025 10:00:00 +0000 (UTC)\n"
            f"From: Example News <news@example.org>\n"
            f"To: <{row.rcpt}>\n"
            f"Subject: Your weekly digest\n"
            f"Message-Id: <20251103100000.4dF1aB2cD3@{RELAY}>\n"
            f"Date: Mon,  3 Nov 2025 10:00:00 +0000 (UTC)\n")


def dsn_bounce(row: Row) -> bytes:
    """The RFC 3464 report Postfix writes when the provider answers ``row.reply``."""
    boundary = "4dF1aB2cD3.1762164001/relay.example.org"
    diagnostic = _render(row, row.one_line)
    text = f"""\
Return-Path: <>
From: MAILER-DAEMON@{RELAY} (Mail Delivery System)
To: {SENDER}
Subject: Undelivered Mail Returned to Sender
Date: Mon,  3 Nov 2025 10:00:01 +0000 (UTC)
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="{boundary}"
Message-Id: <20251103100001.5eG2bC3dE4@{RELAY}>

This is a MIME-encapsulated message.

--{boundary}
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host {RELAY}.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

For further assistance, please send mail to postmaster.

If you do so, please include this problem report. You can
delete your own text from the attached returned message.

                   The mail system

{_fold(f"<{row.rcpt}>: {_postfix_reason(row)}", 76)}

--{boundary}
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; {RELAY}
X-Postfix-Queue-ID: 4dF1aB2cD3
X-Postfix-Sender: rfc822; {SENDER}
Arrival-Date: Mon,  3 Nov 2025 10:00:00 +0000 (UTC)

Final-Recipient: rfc822; {row.rcpt}
Original-Recipient: rfc822;{row.rcpt}
Action: failed
Status: {status_of(diagnostic)}
Remote-MTA: dns; {row.mx}
{_fold(f"Diagnostic-Code: smtp; {diagnostic}")}

--{boundary}
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

{_original_headers(row)}
--{boundary}--
"""
    return text.encode("utf-8")


def _exim_stage(row: Row) -> str:
    return {"CONNECT": "after initial connection",
            "HELO": f"after EHLO {RELAY}",
            "MAIL": f"after MAIL FROM:<{SENDER}> SIZE=4817",
            "RCPT": f"after RCPT TO:<{row.rcpt}>",
            "DATA": "after end of data"}[row.stage]


def exim_bounce(row: Row) -> bytes:
    """The plain-text bounce Exim writes when the provider answers ``row.reply``."""
    lines = "\n".join(f"    {line.strip()}" for line in _render(row, row.reply).splitlines()
                      if line.strip())
    text = f"""\
Return-path: <>
From: Mail Delivery System <Mailer-Daemon@{RELAY}>
To: {SENDER}
Subject: Mail delivery failed: returning message to sender
Message-Id: <E1vF3kX-000Abc-7Q@{RELAY}>
Date: Mon, 03 Nov 2025 10:00:01 +0000
X-Failed-Recipients: {row.rcpt}
Auto-Submitted: auto-replied

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  {row.rcpt}
    host {row.mx} [{row.ip}]
    SMTP error from remote mail server {_exim_stage(row)}:
{lines}

------ This is a copy of the message's headers. ------

{_original_headers(row)}"""
    return text.encode("utf-8")


_QMAIL_STAGE = {"CONNECT": "Connected to {ip} but greeting failed.",
                "HELO": "Connected to {ip} but my name was rejected.",
                "MAIL": "Connected to {ip} but sender was rejected.",
                "RCPT": "{ip} does not like recipient.",
                "DATA": "{ip} failed after I sent the message."}


def qmail_bounce(row: Row) -> bytes:
    """The plain-text bounce qmail-send writes when the provider answers ``row.reply``."""
    reply = "\n".join(line.strip() for line in _render(row, row.reply).splitlines()
                      if line.strip())
    if row.reply.startswith("4"):
        ending = "I'm not going to try again; this message has been in the queue too long."
    else:
        ending = f"Giving up on {row.ip}."
    text = f"""\
Return-Path: <>
Received: (qmail 28713 invoked for bounce); 3 Nov 2025 10:00:01 -0000
Date: 3 Nov 2025 10:00:01 -0000
From: MAILER-DAEMON@{RELAY}
To: {SENDER}
Subject: failure notice
Message-ID: <20251103100001.28713.qmail@{RELAY}>

Hi. This is the qmail-send program at {RELAY}.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<{row.rcpt}>:
{_QMAIL_STAGE[row.stage].format(ip=row.ip)}
Remote host said: {reply}
{ending}

--- Below this line is a copy of the message.

{_original_headers(row)}"""
    return text.encode("utf-8")


WRAPPERS: dict[str, Callable[[Row], bytes]] = {
    "dsn": dsn_bounce, "exim": exim_bounce, "qmail": qmail_bounce}


# --------------------------------------------------------------------------- scoring


@dataclass(frozen=True)
class Result:
    """What the classifier made of one row in one form."""

    row: Row
    form: str
    found: bool  # the row's recipient is among the failed recipients reported
    reason: str
    hard: bool
    status: str
    kind: str

    @property
    def accepted(self) -> tuple[str, ...]:
        """The reasons right for this form: qmail's bounce of a 4xx also says it expired."""
        if self.form == "qmail" and self.row.reply.startswith("4"):
            return (*self.row.accepted, "expired")
        return self.row.accepted

    @property
    def reason_right(self) -> bool:
        return self.found and self.reason in self.accepted

    @property
    def hard_right(self) -> bool:
        return self.hard == self.row.hard

    @property
    def soft_called_hard(self) -> bool:
        return self.hard and not self.row.hard

    @property
    def missed_hard(self) -> bool:
        return self.row.hard and not self.hard

    @property
    def key(self) -> str:
        return f"{self.row.id}/{self.form}"


def judge(row: Row, form: str) -> Result:
    """Classify ``row`` wrapped in the bounce of ``form``."""
    report = classify(WRAPPERS[form](row))
    mine = [r for r in report.recipients if r.address.lower() == row.rcpt.lower()]
    if not mine:
        return Result(row, form, False, "", False, "", report.kind)
    got = mine[0]
    return Result(row, form, True, got.reason, got.hard, got.status, report.kind)


def evaluate(rows: Iterable[Row] | None = None) -> list[Result]:
    """Every row in every form."""
    table = load() if rows is None else list(rows)
    return [judge(row, form) for row in table for form in FORMS]


@dataclass(frozen=True)
class Figures:
    """The aggregate figures of a set of results."""

    results: int
    found: float
    reason_right: float
    hard_right: float
    soft_called_hard: tuple[str, ...]
    missed_hard: tuple[str, ...]


def _pct(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 100.0


def figures(results: list[Result]) -> Figures:
    n = len(results)
    return Figures(
        results=n,
        found=_pct(sum(r.found for r in results), n),
        reason_right=_pct(sum(r.reason_right for r in results), n),
        hard_right=_pct(sum(r.hard_right for r in results), n),
        soft_called_hard=tuple(sorted(r.key for r in results if r.soft_called_hard)),
        missed_hard=tuple(sorted(r.key for r in results if r.missed_hard)))


def misses(results: list[Result]) -> list[Result]:
    """Results whose recipient, reason or hard flag is wrong."""
    return [r for r in results if not (r.reason_right and r.hard_right)]


def misses_markdown(results: list[Result]) -> str:
    """Every miss as Markdown: soft replies called hard first, then missed hard, then reasons."""
    wrong = misses(results)
    groups = (("Soft replies called hard (must be zero)", [r for r in wrong if r.soft_called_hard]),
              ("Hard replies missed (the address is dead, not said so)",
               [r for r in wrong if r.missed_hard]),
              ("Reason wrong, hard flag right",
               [r for r in wrong if r.hard_right]))
    total = figures(results)
    out = ["# Provider-table misses",
           "",
           "Written by `.venv/bin/python bench/classify_providers.py --misses FILE` (table: "
           "tests/classify/providers/, forms: `dsn` = Postfix RFC 3464 report, `exim` = "
           "Exim plain-text bounce, `qmail` = qmail-send plain-text bounce).",
           "",
           f"{len(results)} classifications of {len(results) // len(FORMS)} rows: reason right "
           f"{total.reason_right:.1f} %, hard right {total.hard_right:.1f} %, "
           f"{len(total.soft_called_hard)} soft called hard, {len(total.missed_hard)} hard "
           f"missed, {len(wrong)} misses in all.", ""]
    pairs: dict[tuple[str, str], list[str]] = defaultdict(list)
    for r in wrong:
        pairs[(r.row.reason, r.reason if r.found else "not found")].append(r.key)
    out += ["## Classes of failure (expected reason -> reason given: count, rows)", ""]
    for (want, got), keys in sorted(pairs.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        out.append(f"- {want} -> {got}: {len(keys)} ({', '.join(keys)})")
    out.append("")
    for title, items in groups:
        out += [f"## {title}: {len(items)}", ""]
        by_row: dict[str, list[Result]] = defaultdict(list)
        for r in items:
            by_row[r.row.id].append(r)
        for rid, rs in by_row.items():
            row = rs[0].row
            got = "; ".join(f"{r.form}: " + (f"{r.reason or '-'} hard={r.hard} status={r.status}"
                                             if r.found else f"recipient not found (kind {r.kind})")
                            for r in rs)
            out += [f"- `{rid}` ({row.provider}, {row.file}.toml, {row.stage}, mx {row.mx})",
                    f"  - reply: `{_render(row, row.one_line)}`",
                    f"  - expected: {'|'.join(row.accepted)} hard={row.hard}"
                    + (" (qmail form of a 4xx: also expired)" if row.reply.startswith("4")
                       else ""),
                    f"  - got: {got}"]
        out.append("")
    return "\n".join(out)
