"""Courier for the MTA matrix (work in progress)."""

from __future__ import annotations

from .adapters import MatrixMTA


class CourierMatrix(MatrixMTA):
    kind = "courier"
    label = "Courier"

    def missing_reason(self) -> str | None:
        return "harness not written yet"
