"""Sendmail for the MTA matrix (work in progress)."""

from __future__ import annotations

from .adapters import MatrixMTA


class SendmailMatrix(MatrixMTA):
    kind = "sendmail"
    label = "Sendmail"

    def missing_reason(self) -> str | None:
        return "harness not written yet"
