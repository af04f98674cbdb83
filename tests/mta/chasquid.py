"""chasquid for the MTA matrix (work in progress)."""

from __future__ import annotations

from .adapters import MatrixMTA


class ChasquidMatrix(MatrixMTA):
    kind = "chasquid"
    label = "chasquid"

    def missing_reason(self) -> str | None:
        return "harness not written yet"
