"""Bounce classification: a message in, a report of kind, recipients and reasons out.

``classify`` is pure and synchronous and never raises; see ``bounced.classify.core``.
"""

from __future__ import annotations

from bounced.classify.core import classify
from bounced.classify.model import Original, RecipientReport, Report

__all__ = ["Original", "RecipientReport", "Report", "classify"]
