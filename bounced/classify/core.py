"""classify(): message in, report out; pure, synchronous, and it never raises."""

from __future__ import annotations

from email.message import Message

from bounced.classify.detectors import DETECTORS
from bounced.classify.detectors.base import STATUS, Detection, Found
from bounced.classify.model import UNKNOWN, Original, RecipientReport, Report
from bounced.classify.original import original_of, quoted_original_start
from bounced.classify.parse import Mail, parse, walk
from bounced.classify.reasons import is_hard, reason_for

CONTEXT = 1_500  # characters of human-readable text around an address used as evidence
MAX_DIAGNOSTIC = 1_000


def _context(text: str, address: str) -> str:
    """The human-readable text near ``address`` (or the start of the text)."""
    pos = text.lower().find(address) if address else -1
    if pos < 0:
        return text[:CONTEXT]
    return text[max(0, pos - 200): pos + CONTEXT]


def _status(found: Found) -> str:
    """The reported status, or the diagnostic's own when that one is more specific."""
    said = ""  # the last one: a relaying system's own code comes before the remote's
    for match in STATUS.finditer(found.diagnostic[:MAX_DIAGNOSTIC]):
        if match.group(1) != "2":
            said = ".".join(match.groups())
    if not said or said.endswith(".0.0") or said[0] == "2":
        return found.status
    if not found.status or (found.status.endswith(".0.0") and found.status[0] == said[0]):
        return said
    return found.status


def _recipient(found: Found, text: str) -> RecipientReport:
    status = _status(found)
    reason = found.reason or reason_for(
        status, found.reply_code, found.action, found.diagnostic,
        _context(text, found.address), found.command,
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


def _detect(mail: Mail) -> Detection | None:
    for detector in DETECTORS:
        try:
            found = detector.detect(mail)
        except Exception:  # noqa: S112  # one broken detector must not stop the others
            continue
        if found is not None:
            return found
    return None


def _classify(message: bytes | Message) -> Report:
    msg = parse(message) if isinstance(message, (bytes, bytearray)) else message
    mail = walk(msg)
    mail.text = mail.text[: quoted_original_start(mail.text)]
    detection = _detect(mail)
    try:
        original = original_of(mail)
    except Exception:
        original = Original()
    if detection is None:
        return Report(kind="unknown", original=original)
    seen: set[str] = set()
    recipients = []
    for found in detection.recipients:
        key = found.address + "\0" + found.action
        if key in seen:
            continue
        seen.add(key)
        recipients.append(_recipient(found, mail.text))
    return Report(
        kind=detection.kind,
        feedback_type=detection.feedback_type,
        recipients=tuple(recipients),
        original=original,
        detector=detection.detector,
    )


def classify(message: bytes | Message) -> Report:
    """Classify a bounce, delay, complaint or auto-reply; kind "unknown" when unsure.

    Never raises: a message that cannot be read is reported as kind "unknown".
    """
    try:
        return _classify(message)
    except Exception:  # the contract: any input gets a report
        return UNKNOWN
