"""classify(): message in, report out; pure, synchronous, and it never raises."""

from __future__ import annotations

from email.message import Message

from bounced.classify.detectors import DETECTORS
from bounced.classify.detectors.base import Detection, Found
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


def _recipient(found: Found, text: str) -> RecipientReport:
    reason = found.reason or reason_for(
        found.status, found.reply_code, found.action, found.diagnostic,
        _context(text, found.address),
    )
    return RecipientReport(
        address=found.address,
        action=found.action,
        status=found.status,
        reply_code=found.reply_code,
        reason=reason,
        hard=is_hard(reason, found.status, found.reply_code, found.action),
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
