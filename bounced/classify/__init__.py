"""Bounce classification: a message in, a report of kind, recipients and reasons out.

``classify`` is pure and synchronous and never raises; see ``bounced.classify.core``.
The names below are loaded when first used, so that ``bounced.classify.registry`` (the
reason vocabulary the configuration checks against) is read without the classifier.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bounced.classify.core import classify
    from bounced.classify.model import Original, RecipientReport, Report

__all__ = ["Original", "RecipientReport", "Report", "classify"]
_HOMES = {"classify": "bounced.classify.core", "Original": "bounced.classify.model",
          "RecipientReport": "bounced.classify.model", "Report": "bounced.classify.model"}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        value = getattr(importlib.import_module(_HOMES[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
