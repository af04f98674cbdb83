"""RFC 3834 automatic responses (vacation, out-of-office): never a bounce."""

from __future__ import annotations

import re

from bounced.classify.detectors.base import Detection, Found, clean_address
from bounced.classify.detectors.text import from_system
from bounced.classify.parse import Mail, header
from bounced.classify.phrases import CHALLENGE_PHRASES

_SUBJECT = re.compile(
    r"(?i)\b(auto[ -]?(reply|response|respons|antwort|matic reply)|out of (the )?office|"
    r"vacation|away from|absence|abwesen|r[ée]ponse automatique|automatisk svar|"
    r"automatische antwort|automatisch antwoord|autosvar|respuesta autom[áa]tica|"
    r"risposta automatica|resposta autom[áa]tica|automaattinen vastaus|"
    r"automatick[áa] odpov[ěe]ď|odpowied[źz] automatyczna|automatikus v[áa]lasz|"
    r"r[ăa]spuns automat|otomatik yan[ıi]t|автоматический ответ|автоматична відповідь|"  # noqa: RUF001
    r"αυτόματη απάντηση|自動返信|自動応答|自动回复|자동 응답|不在)"
)
_DAEMON = re.compile(r"(?i)mailer-daemon|postmaster|mail delivery|mail administrator")
_BOUNCE_SUBJECT = re.compile(
    r"(?i)undeliver|returned mail|delivery (status|fail)|failure notice|mail delivery|"
    r"delivery notification|could not be delivered|non[- ]?delivery|failed"
)
# (not X-Auto-Response-Suppress: Outlook sets it on ordinary mail and meeting requests too)
_AUTO_HEADERS = ("x-autoreply", "x-autorespond", "x-vacation")
_CHALLENGE_SCAN = 2_000  # characters of text searched for a challenge-response request


class AutoReplyDetector:
    """Auto-Submitted: auto-replied (RFC 3834) or the usual vendor headers and subjects,
    from a sender that is not a mail system reporting a failure."""

    name = "autoreply"

    def detect(self, mail: Mail) -> Detection | None:
        """Kind autoreply with the responder's address, or None."""
        msg = mail.msg
        sender = header(msg, "from")
        subject = mail.subject
        prefix = _SUBJECT.match(subject)
        if prefix and subject[prefix.end():].lstrip()[:1] in (":", "\uff1a"):  # or full-width
            subject = subject[: prefix.end()]  # the rest is the answered message's subject
        if _DAEMON.search(sender) or _BOUNCE_SUBJECT.search(subject) or from_system(mail):
            return None  # a mail system's report, not someone's automatic answer
        if msg.get_content_type() == "multipart/report":
            return None
        auto = header(msg, "auto-submitted").lower()
        signals = auto.startswith("auto-replied")
        signals = signals or any(msg.get(h) is not None for h in _AUTO_HEADERS)
        signals = signals or header(msg, "x-apple-action").upper() == "VACATION"
        signals = signals or header(msg, "precedence").lower() == "auto_reply"
        signals = signals or bool(_SUBJECT.search(subject))
        if not signals:
            start = mail.text[:_CHALLENGE_SCAN].lower()
            signals = any(phrase in start for phrase in CHALLENGE_PHRASES)
        if not signals:
            return None
        address = clean_address(sender)
        recipients = [Found(address=address, reason="vacation")] if address else []
        return Detection(self.name, "autoreply", recipients)
