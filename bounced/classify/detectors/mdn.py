"""RFC 8098 message disposition notifications (read receipts): a delivery notice.

A receipt says the message reached a mailbox someone reads, so the address is alive: kind
delivered, with the Final-Recipient (or Original-Recipient) as the recipient. A receipt
that says "deleted" or "failed" is still no bounce: the message was delivered.
"""

from __future__ import annotations

from bounced.classify.detectors.arf import report_fields
from bounced.classify.detectors.base import Detection, Found, clean_address
from bounced.classify.parse import Mail


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
            recipients = [Found(address=address, action="delivered", reason="delivered",
                                diagnostic=disposition)] if address else []
            return Detection(self.name, "delivered", recipients)
        return None
