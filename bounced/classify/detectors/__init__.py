"""The detectors, in the order they are tried: the first to recognise a message wins."""

from __future__ import annotations

from bounced.classify.detectors.base import Detection, Detector, Found
from bounced.classify.detectors.dsn import DSNDetector

DETECTORS: tuple[Detector, ...] = (
    DSNDetector(),
)

__all__ = ["DETECTORS", "Detection", "Detector", "Found"]
