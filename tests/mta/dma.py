"""dma for the MTA matrix (work in progress)."""

from __future__ import annotations

from .adapters import MatrixMTA


class DmaMatrix(MatrixMTA):
    kind = "dma"
    label = "dma"

    def missing_reason(self) -> str | None:
        return "harness not written yet"
