"""structlog set-up: a readable console on a terminal, one JSON object per line otherwise."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR}


def configure(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Configure structlog once per process, as its documentation recommends for production:
    the processor chain and the level filter fixed here, and each module's logger bound on its
    first use and kept (``cache_logger_on_first_use``), so a log call does not assemble a
    logger again. Loggers used before this call keep what they had: call it first."""
    stream = stream or sys.stderr
    use_console = fmt == "console" or (fmt == "auto" and stream.isatty())
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if use_console:
        # The console renderer lays out an exception itself (format_exc_info before it would
        # leave it a plain string, and structlog warns about that).
        processors.append(structlog.dev.ConsoleRenderer())
    else:
        processors += [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(
            LEVELS.get(level.lower(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=True,
    )
    # aiosmtpd logs every connection through the standard library at INFO: keep it quiet.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
