"""One way to make either MTA, so a test can run against Postfix and Exim alike."""

from __future__ import annotations

from pathlib import Path

from . import exim, postfix
from .base import MTAInstance
from .pipe import PIPE_USER, PipeRoute

MTA_KINDS = ("postfix", "exim")


def missing_reason(kind: str) -> str | None:
    """Why MTA ``kind`` cannot run here, or None when it can."""
    if kind == "postfix":
        return postfix.missing_reason()
    if kind == "exim":
        return exim.missing_reason()
    raise ValueError(f"unknown MTA kind {kind!r}")


def pipe_user(kind: str) -> str:
    """The account the MTA's pipe runs ``bounced deliver`` as in the tests.

    Postfix's pipe(8) switches to any unprivileged user (here ``nobody``). The private Exim
    runs with ``-C``, so it gives up root ("exim user lost privilege for using -C option")
    and can run a pipe only as its own user.
    """
    if kind == "postfix":
        return PIPE_USER
    if kind == "exim":
        return exim.EXIM_USER
    raise ValueError(f"unknown MTA kind {kind!r}")


def make_mta(
    kind: str,
    *,
    bounce_port: int,
    remote_port: int | None = None,
    bounce_domain: str = "bounces.example.test",
    remote_domain: str = "remote.test",
    delay_warning: int | None = None,
    lifetime: int = 60,
    log_copy: Path | None = None,
    pipe: PipeRoute | None = None,
) -> MTAInstance:
    """An unstarted instance of ``kind`` with the same routing and queue behaviour.

    ``delay_warning``: seconds after which the sender gets one delay DSN (None: never).
    ``lifetime``: seconds after which a message that keeps failing temporarily is returned
    with a failed DSN (Postfix: maximal_queue_lifetime; Exim: the retry rule's cutoff).
    ``pipe``: route the bounce domain through the pipe-mode snippet into ``bounced
    deliver`` instead of SMTP to ``bounce_port``.
    Retries happen every 2 s.
    """
    if kind == "postfix":
        return postfix.PostfixInstance(
            bounce_port=bounce_port, remote_port=remote_port, bounce_domain=bounce_domain,
            remote_domain=remote_domain, log_copy=log_copy, pipe=pipe,
            timing=postfix.QueueTiming(
                delay_warning_time=f"{delay_warning}s" if delay_warning else "0",
                maximal_queue_lifetime=f"{lifetime}s", bounce_queue_lifetime=f"{lifetime}s",
            ),
        )
    if kind == "exim":
        return exim.EximInstance(
            bounce_port=bounce_port, remote_port=remote_port, bounce_domain=bounce_domain,
            remote_domain=remote_domain, log_copy=log_copy, pipe=pipe,
            timing=exim.EximTiming(
                delay_warning=f"{delay_warning}s:1h" if delay_warning else "0s",
                retry=f"F,{lifetime}s,2s",
            ),
        )
    raise ValueError(f"unknown MTA kind {kind!r}")
