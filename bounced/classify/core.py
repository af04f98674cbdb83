"""classify(): message in, report out; pure, synchronous, and it never raises."""

from __future__ import annotations

import functools
import re
from email.message import Message

from bounced.classify.detectors import DETECTORS
from bounced.classify.detectors.base import (
    ADDRESS,
    STATUS,
    Detection,
    Found,
    reply_code_of,
)
from bounced.classify.detectors.text import is_bounce, outcome, scan
from bounced.classify.model import Original, RecipientReport, Report, failure
from bounced.classify.original import original_of, quoted_original_start
from bounced.classify.parse import Mail, header, parse, walk
from bounced.classify.rules import Surroundings, is_hard, reason_for
from bounced.classify.systems import gateway_host, gateway_marker
from bounced.classify.textforms import (
    BOUNCE_FROM_FOLDED,
    FORWARD_SUBJECT,
    fold,
    says_final,
)

CONTEXT = 1_500  # characters of human-readable text around an address used as evidence
MAX_DIAGNOSTIC = 1_000
MAX_RECEIVED = 8  # Received fields of the report read for its writer's marks


# A header line of a copy of the original pasted into the report's text (no MIME part of
# its own, no marker line before it): where the report's own words end.
_PASTED_HEADER = re.compile(r"\n(?:return-path|received|message-id|dkim-signature): ",
                            re.IGNORECASE)


def _context(text: str, lowered: str, address: str) -> str:
    """The human-readable text near ``address`` (or the start of the text), up to a pasted
    copy of the original's headers; ``lowered`` is ``text.lower()``, made once per message."""
    pos = lowered.find(address) if address else -1
    start, end = (0, CONTEXT) if pos < 0 else (max(0, pos - 200), pos + CONTEXT)
    pasted = _PASTED_HEADER.search(text, max(pos, 0), end)
    return text[start: pasted.start() if pasted else end]


# The status a reporting MTA writes for a reply that carries none of its own (Sendmail's
# mapping of the reply code: 550 -> 5.2.0, 551 -> 5.1.6, 552 -> 5.2.2...; Exim and Courier
# write X.0.0 for every reply): it says no more than the reply code.
REPLY_STATUS = {"421": "4.4.2", "450": "4.2.0", "451": "4.3.0", "452": "4.2.2",
                "550": "5.2.0", "551": "5.1.6", "552": "5.2.2", "554": "5.0.0"}


def _own_status(found: Found) -> str:
    said = ""  # the last one: a relaying system's own code comes before the remote's
    for match in STATUS.finditer(found.diagnostic[:MAX_DIAGNOSTIC]):
        if match.group(1) != "2":
            said = ".".join(match.groups())
    return said


def _status(found: Found) -> str:
    """The reported status, or the diagnostic's own when that one is more specific or the
    report's is only its mapping of the reply code."""
    said = _own_status(found)
    if said and said[0] != "2" and REPLY_STATUS.get(found.reply_code) == found.status:
        return said
    if not said or said.endswith(".0.0") or said[0] == "2":
        return found.status
    if not found.status or (found.status.endswith(".0.0") and found.status[0] == said[0]):
        return said
    return found.status


def _final(found: Found) -> None:
    """A recipient reported as delayed whose own words say the delivery was given up
    (OpenSMTPD's "Envelope expired" in a notice with Action: delayed) failed."""
    if found.action == "delayed" and says_final(fold(found.diagnostic[:2000])):
        found.action = "failed"


def _hosts(value: str) -> tuple[str, ...]:
    """The host names in a Remote-MTA / Reporting-MTA value ("mx.example.org [192.0.2.1]")."""
    return tuple(w.strip("[]()<>;,.'\"").lower() for w in value.split()[:4] if "." in w)


def _domains(value: str) -> tuple[str, ...]:
    return tuple(m.group(0).rpartition("@")[2].lower() for m in ADDRESS.finditer(value))


def _field_values(msg: Message, name: str) -> str:
    """The lowercase values of a header field of the report, one per line (the first few)."""
    if name == "received":  # many: the receiving side's come first
        return "\n".join(str(v).lower()[:200] for v in msg.get_all(name, ())[:MAX_RECEIVED])
    value = msg.get(name)
    return str(value).lower()[:200] if value is not None else ""


class Reporter:
    """What is known of who wrote a report and to whom, worked out when first asked: the
    hosts it names as its writer (its Reporting-MTA, its sender's domain), the filtering
    gateway they or the report's header fields mark ('' when none), and the domains of the
    envelope sender it returns the message to (its To:, the original's From:)."""

    def __init__(self, mail: Mail, detection: Detection, original: Original) -> None:
        self._mail, self._detection, self._original = mail, detection, original

    @functools.cached_property
    def hosts(self) -> tuple[str, ...]:
        return _hosts(self._detection.reporting_mta) + _domains(header(self._mail.msg, "from"))

    @functools.cached_property
    def gateway(self) -> str:
        msg = self._mail.msg
        return gateway_host(self.hosts) or gateway_marker(lambda name: _field_values(msg, name))

    @functools.cached_property
    def senders(self) -> tuple[str, ...]:
        return _domains(header(self._mail.msg, "to")) + _domains(self._original.from_)


def _recipient(found: Found, text: str, lowered: list[str], reporter: Reporter
               ) -> RecipientReport:
    """``lowered``: ``[text.lower()]`` once a recipient has needed it, else empty."""
    status = _status(found)
    reason = found.reason
    if not reason:
        def context() -> str:  # asked for by the rules that need it only
            if found.address and not lowered:
                lowered.append(text.lower())
            return _context(text, lowered[0] if lowered else "", found.address)

        domain = found.address.rpartition("@")[2]

        def remote() -> tuple[str, ...]:
            return (domain, *_hosts(found.remote_mta))

        around = Surroundings(
            gateway=lambda: reporter.gateway or gateway_host(remote()),
            senders=lambda: tuple(d for d in reporter.senders if d != domain),
            hosts=lambda: remote() + reporter.hosts)
        reason = reason_for(
            status, found.reply_code, found.action, found.diagnostic,
            context, found.command, around=around, recipient=found.address,
        )
    return RecipientReport(
        address=found.address,
        action=found.action,
        status=status,
        reply_code=found.reply_code,
        reason=reason,
        hard=is_hard(reason, status, found.reply_code, found.action),
        diagnostic=found.diagnostic[:MAX_DIAGNOSTIC],
        remote_mta=found.remote_mta,
    )


def _detect(mail: Mail, failures: list[str]) -> Detection | None:
    for detector in DETECTORS:
        try:
            found = detector.detect(mail)
        except Exception as exc:  # one broken detector must not stop the others
            failures.append(failure(f"detector {detector.name}", exc))
            continue
        if found is not None:
            return found
    return None


def _inner_report(mail: Mail) -> Message | None:
    """The attached message when it is itself a delivery report (a forwarded bounce)."""
    for part in mail.originals[:1]:
        payload = part.get_payload()
        inner = payload[0] if isinstance(payload, list) and payload else None
        if isinstance(inner, Message) and (
                inner.get_content_type() == "multipart/report"
                or BOUNCE_FROM_FOLDED.search(fold(header(inner, "from")))):
            return inner
    return None


def _from_reporter(mail: Mail) -> bool:
    """Whether the message is a mail system's own report (not a person's message)."""
    return mail.msg.get_content_type() == "multipart/report" or bool(
        BOUNCE_FROM_FOLDED.search(fold(header(mail.msg, "from"))))


def _forwarded(mail: Mail) -> bool:
    """Whether the message forwards what it attaches (a person or a helpdesk passing a
    report on: the failure is the attached report's, never the forwarder's)."""
    return not _from_reporter(mail) or bool(FORWARD_SUBJECT.match(mail.subject))


def _fallback(mail: Mail, original: Original) -> Detection | None:
    """A report that names no recipient: the original's only recipient, if it had one
    (only for a report from a mail system, not for anyone's forwarded message)."""
    if not (_from_reporter(mail) and is_bounce(mail)):
        return None
    addresses = {m.group(0).lower() for m in ADDRESS.finditer(original.to)}
    if len(addresses) != 1 or original.cc:
        return None
    delayed = outcome(mail)[1]
    found = Found(address=addresses.pop(), action="delayed" if delayed else "failed")
    return Detection("original-to", "delay" if delayed else "bounce", [found])


def _wants_text(found: Found, recipients: list[Found]) -> bool:
    """Whether a DSN recipient's missing diagnostic should come from its line in the text:
    with several recipients (the text around the first address is not every one's), or
    when it expired in the queue (the transcript says what kept failing: "Deferred: ...")."""
    return not found.diagnostic and (len(recipients) > 1 or found.status[1:] == ".4.7")


def _diagnostics_from_text(mail: Mail, recipients: list[Found]) -> None:
    """Fill in the diagnostic a DSN leaves out from the recipient's own line in the text."""
    said = {f.address: f.diagnostic for f in scan(mail) if f.diagnostic}
    for found in recipients:
        if _wants_text(found, recipients) and said.get(found.address):
            found.diagnostic = said[found.address]
            found.reply_code = found.reply_code or reply_code_of(found.diagnostic)


def _classify(message: bytes | Message, failures: list[str], nested: bool = False) -> Report:
    msg = parse(message) if isinstance(message, (bytes, bytearray)) else message
    mail = walk(msg)
    try:
        original = original_of(mail)
    except Exception as exc:  # the report can be read without the original's headers
        failures.append(failure("original", exc))
        original = Original()
    mail.text = mail.text[: quoted_original_start(mail.text)]
    inner = None if nested else _inner_report(mail)
    if inner is not None and _forwarded(mail):  # the attached report first
        report = _classify(inner, failures, nested=True)
        if report.recipients:
            return report
        inner = None  # read already: the forwarder's own text is what is left
    detection = _detect(mail, failures)
    if detection is None or not detection.recipients:
        if inner is not None:  # a mail system's report whose original is a report
            report = _classify(inner, failures, nested=True)
            if report.recipients:
                return report
        detection = _fallback(mail, original) or detection
    if detection is None:
        return Report(kind="unknown", original=original, failures=tuple(failures))
    if detection.detector != "text" and any(
            _wants_text(f, detection.recipients) for f in detection.recipients):
        _diagnostics_from_text(mail, detection.recipients)
    for found in detection.recipients:
        _final(found)
    if detection.kind == "delay" and any(f.action == "failed" for f in detection.recipients):
        detection.kind = "bounce"
    seen: set[str] = set()
    recipients = []
    lowered: list[str] = []  # mail.text.lower(), made when first needed
    reporter = Reporter(mail, detection, original)
    for found in detection.recipients:
        key = found.address + "\0" + found.action
        if key in seen:
            continue
        seen.add(key)
        recipients.append(_recipient(found, mail.text, lowered, reporter))
    return Report(
        kind=detection.kind,
        feedback_type=detection.feedback_type,
        recipients=tuple(recipients),
        original=original,
        detector=detection.detector,
        reporting_mta=detection.reporting_mta,
        failures=tuple(failures),
    )


def classify(message: bytes | Message) -> Report:
    """Classify a bounce, delay, complaint or auto-reply; kind "unknown" when unsure.

    Never raises: a message that cannot be read is reported as kind "unknown". What raised
    on the way is named in the report's ``failures`` (for the caller to log and count).
    """
    failures: list[str] = []
    try:
        return _classify(message, failures)
    except Exception as exc:  # the contract: any input gets a report
        return Report(kind="unknown", failures=(*failures, failure("classify", exc)))
