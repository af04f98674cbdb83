"""RFC 8098 message disposition notifications (read receipts): a delivery notice.

A receipt says the message reached a mailbox someone reads, so the address is alive: kind
delivered, with the Final-Recipient (or Original-Recipient) as the recipient. A receipt
that says a person deleted it, or "failed", is still no bounce: the message was delivered.
The exception is RFC 5429's Sieve "reject": the delivery agent refused the message for the
recipient (a rule, a full mailbox) and says so with an MDN whose disposition is
"automatic-action/MDN-sent-automatically; deleted": a failure, with the reason its text
gives ("Your message to <addr> was automatically rejected: Quota exceeded").
"""

from __future__ import annotations

from bounced.classify.detectors.arf import report_fields
from bounced.classify.detectors.base import Detection, Found, clean_address, normalise
from bounced.classify.parse import Mail

MAX_REASON = 500  # characters of the rejection's text kept as its diagnostic


def _rejected(disposition: str) -> bool:
    """Whether a Disposition field is a delivery agent's automatic refusal (RFC 5429)."""
    mode, _, kind = disposition.lower().partition(";")
    return mode.strip().startswith("automatic-action") and kind.split("/")[0].strip() == "deleted"


class MDNDetector:
    """A message/disposition-notification part."""

    name = "mdn"

    def detect(self, mail: Mail) -> Detection | None:
        """Kind delivered with the recipient the receipt is for, or None."""
        for part in mail.parts:
            if part.get_content_type() != "message/disposition-notification":
                continue
            fields = report_fields(part)
            address = ""
            for name in ("original-recipient", "final-recipient"):
                address = address or clean_address(fields.get(name, ""))
            disposition = " ".join(fields.get("disposition", "").split())
            if _rejected(disposition):
                found = Found(address=address, action="failed",
                              diagnostic=normalise(mail.text)[:MAX_REASON] or disposition)
                return Detection(self.name, "bounce", [found] if address else [])
            recipients = [Found(address=address, action="delivered", reason="delivered",
                                diagnostic=disposition)] if address else []
            return Detection(self.name, "delivered", recipients)
        return None
