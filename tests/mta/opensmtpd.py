"""OpenSMTPD for the MTA matrix (work in progress)."""

from __future__ import annotations

from .adapters import MatrixMTA


class OpenSMTPDMatrix(MatrixMTA):
    kind = "opensmtpd"
    label = "OpenSMTPD"

    def missing_reason(self) -> str | None:
        return "harness not written yet"
