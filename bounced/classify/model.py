"""The classification report: plain frozen values, with the JSON shape of the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field

KINDS = ("bounce", "delay", "complaint", "autoreply", "delivered", "unknown")


@dataclass(frozen=True)
class RecipientReport:
    """What happened to one recipient of the original message."""

    address: str
    action: str
    status: str
    reply_code: str
    reason: str
    hard: bool
    diagnostic: str
    remote_mta: str

    def to_json(self) -> dict[str, object]:
        """The recipient as a JSON object."""
        return {
            "address": self.address,
            "action": self.action,
            "status": self.status,
            "reply_code": self.reply_code,
            "reason": self.reason,
            "hard": self.hard,
            "diagnostic": self.diagnostic,
            "remote_mta": self.remote_mta,
        }


@dataclass(frozen=True)
class Original:
    """Headers of the message that bounced, when the report carries them."""

    message_id: str = ""
    from_: str = ""
    to: str = ""
    subject: str = ""
    cc: str = ""  # not in the JSON report: only used to tell a single-recipient original

    def to_json(self) -> dict[str, object]:
        """The original's headers as a JSON object (``from_`` becomes ``from``)."""
        return {
            "message_id": self.message_id,
            "from": self.from_,
            "to": self.to,
            "subject": self.subject,
        }


@dataclass(frozen=True)
class Report:
    """The classification of one message."""

    kind: str
    feedback_type: str | None = None
    recipients: tuple[RecipientReport, ...] = ()
    original: Original = field(default_factory=Original)
    detector: str = ""
    reporting_mta: str = ""  # the DSN's Reporting-MTA host; empty for other formats
    # What raised while the message was read ("detector dsn: IndexError: ..."): classify
    # never raises, so a reader that failed is said here, for the caller to log and count
    # (a report with failures may still be right: the other readers carried on).
    failures: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        """The report as a JSON object (the CLI adds ``file``)."""
        return {
            "kind": self.kind,
            "feedback_type": self.feedback_type,
            "recipients": [r.to_json() for r in self.recipients],
            "original": self.original.to_json(),
            "reporting_mta": self.reporting_mta,
        }


UNKNOWN = Report(kind="unknown")

MAX_FAILURE = 200  # characters of one failure's description


def failure(where: str, exc: BaseException) -> str:
    """One line naming what raised and the exception."""
    return f"{where}: {type(exc).__name__}: {exc}"[:MAX_FAILURE]
