"""The detectors, in the order they are tried: the first to recognise a message wins."""

from __future__ import annotations

from bounced.classify.detectors.arf import ARFDetector
from bounced.classify.detectors.autoreply import AutoReplyDetector
from bounced.classify.detectors.base import Detection, Detector, Found
from bounced.classify.detectors.dsn import DSNDetector
from bounced.classify.detectors.fml import FMLDetector
from bounced.classify.detectors.mdn import MDNDetector
from bounced.classify.detectors.ses import SESDetector
from bounced.classify.detectors.text import TextDetector

DETECTORS: tuple[Detector, ...] = (
    ARFDetector(),
    DSNDetector(),
    MDNDetector(),
    SESDetector(),
    FMLDetector(),
    AutoReplyDetector(),
    TextDetector(),
)

__all__ = ["DETECTORS", "Detection", "Detector", "Found"]
