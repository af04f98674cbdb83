"""Amazon SES notifications forwarded as mail: a JSON body (directly, or wrapped in an SNS
envelope whose "Message" is the notification as a string)."""

from __future__ import annotations

import json
import re

from bounced.classify.detectors.base import (
    MAX_RECIPIENTS,
    Detection,
    Found,
    clean_address,
    normalise,
    reply_code_of,
    status_of,
)
from bounced.classify.parse import Mail

MAX_JSON = 1_000_000
_FIELD = re.compile(r'"(notificationType|eventType|emailAddress|complaintFeedbackType|bounceType|'
                    r'status|diagnosticCode)"\s*:\s*"((?:[^"\\]|\\.){0,2000})"')


def _notification(text: str) -> dict[str, object] | None:
    start = text.find("{")
    if start < 0 or ('"notificationType"' not in text and '"eventType"' not in text):
        return None
    try:
        data = json.loads(text[start: text.rfind("}") + 1][:MAX_JSON])
        if isinstance(data, dict) and isinstance(data.get("Message"), str):
            data = json.loads(data["Message"][:MAX_JSON])
    except ValueError:  # cut or folded by mail transport: read the fields one by one
        return _fields(text[start:MAX_JSON])
    return data if isinstance(data, dict) else None


def _fields(text: str) -> dict[str, object]:
    """A notification rebuilt from its recognisable fields (one recipient list)."""
    values: dict[str, str] = {}
    recipients: list[dict[str, object]] = []
    for key, value in _FIELD.findall(text):
        if key == "emailAddress":
            recipients.append({"emailAddress": value})
        elif key in ("status", "diagnosticCode") and recipients:
            recipients[-1].setdefault(key, value)
        else:
            values.setdefault(key, value)
    kind = values.get("notificationType") or values.get("eventType", "")
    data: dict[str, object] = {"notificationType": kind}
    if kind == "Complaint":
        data["complaint"] = {"complainedRecipients": recipients,
                             "complaintFeedbackType": values.get("complaintFeedbackType", "")}
    elif kind == "Bounce":
        data["bounce"] = {"bouncedRecipients": recipients, "bounceType": values.get("bounceType")}
    return data


def _list(value: object) -> list[dict[str, object]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


class SESDetector:
    """Bounce, Complaint and Delivery notifications of Amazon SES."""

    name = "ses"

    def detect(self, mail: Mail) -> Detection | None:
        """The notification's recipients, or None when the body is not one."""
        data = _notification(mail.text)
        if data is None:
            return None
        kind = str(data.get("notificationType") or data.get("eventType") or "")
        if kind == "Bounce" and isinstance(data.get("bounce"), dict):
            bounce: dict[str, object] = data["bounce"]  # type: ignore[assignment]
            transient = bounce.get("bounceType") == "Transient"
            found = []
            for r in _list(bounce.get("bouncedRecipients"))[:MAX_RECIPIENTS]:
                diagnostic = normalise(str(r.get("diagnosticCode", "")))
                status = status_of(str(r.get("status", ""))) or status_of(diagnostic)
                found.append(Found(
                    address=clean_address(str(r.get("emailAddress", ""))),
                    action="delayed" if transient and not status.startswith("5") else "failed",
                    status=status, reply_code=reply_code_of(diagnostic),
                    diagnostic=diagnostic, remote_mta=str(bounce.get("reportingMTA", ""))))
            found = [f for f in found if f.address]
            return Detection(self.name, "delay" if transient else "bounce", found)
        if kind == "Complaint" and isinstance(data.get("complaint"), dict):
            complaint: dict[str, object] = data["complaint"]  # type: ignore[assignment]
            found = [Found(address=clean_address(str(r.get("emailAddress", ""))),
                           reason="feedback")
                     for r in _list(complaint.get("complainedRecipients"))[:MAX_RECIPIENTS]]
            ftype = str(complaint.get("complaintFeedbackType") or "abuse")
            return Detection(self.name, "complaint", [f for f in found if f.address], ftype)
        if kind == "Delivery" and isinstance(data.get("delivery"), dict):
            delivery: dict[str, object] = data["delivery"]  # type: ignore[assignment]
            recipients = delivery.get("recipients")
            addresses = recipients if isinstance(recipients, list) else []
            smtp = normalise(str(delivery.get("smtpResponse", "")))
            found = [Found(address=clean_address(str(a)), action="delivered",
                           status=status_of(smtp), reply_code=reply_code_of(smtp),
                           diagnostic=smtp, reason="delivered")
                     for a in addresses[:MAX_RECIPIENTS]]
            return Detection(self.name, "delivered", [f for f in found if f.address])
        return None
