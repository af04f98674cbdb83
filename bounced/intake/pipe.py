"""Pipe mode: one message on stdin, the recipient from an argument or the MTA's environment.

Exit codes follow sysexits.h, which Postfix's pipe(8) and Exim's pipe transport understand:
0 stored, 67 (EX_NOUSER) bad token, 65 (EX_DATAERR) too large or empty, 64 (EX_USAGE) no
recipient, 75 (EX_TEMPFAIL) anything temporary: the mail server keeps the message and retries.

An empty stdin (or blank lines only) is not a bounce: 65, so that the mail server returns it
(to the null sender of a bounce: the postmaster sees a double bounce) instead of retrying it
for days (75) or bounced storing nothing (0). A message of header fields only is stored: some
mail systems say all in their header (X-Failed-Recipients).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import BinaryIO, TextIO

import structlog

from bounced.config import Settings
from bounced.config.keys import make_verifier
from bounced.exits import EX_DATAERR, EX_NOUSER, EX_TEMPFAIL, EX_USAGE, EXIT_OK
from bounced.intake.commit import blank
from bounced.intake.smtp import token_fields
from bounced.model import NewMessage
from bounced.store import open_ready_store
from bounced.verp import InvalidToken

log = structlog.get_logger("bounced.intake.pipe")



def recipient_from(arg: str | None, env: Mapping[str, str]) -> str | None:
    """The envelope recipient: the argument, else what Postfix (local, pipe) or Exim set."""
    if arg:
        return arg
    for name in ("RECIPIENT", "ORIGINAL_RECIPIENT"):
        if env.get(name):
            return env[name]
    if env.get("LOCAL_PART") and env.get("DOMAIN"):
        return f"{env['LOCAL_PART']}@{env['DOMAIN']}"
    return None


async def deliver(
    settings: Settings,
    recipient: str | None,
    sender: str | None,
    stdin: BinaryIO,
    stderr: TextIO,
    env: Mapping[str, str],
    now: dt.datetime,
) -> int:
    rcpt = recipient_from(recipient, env)
    if not rcpt:
        print("bounced deliver: no recipient (argument, $RECIPIENT, or $LOCAL_PART/$DOMAIN)",
              file=stderr)
        return EX_USAGE
    try:
        verifier, _ = make_verifier(settings, env)  # never generates a development key
    except Exception as exc:
        print(f"bounced deliver: {exc}", file=stderr)
        return EX_TEMPFAIL
    try:
        token = verifier.verify(rcpt, today=now.date())
    except InvalidToken as exc:
        # one line, which the mail server quotes in the bounce it sends back (a log line as
        # well would say it twice there)
        print(f"bounced deliver: {rcpt}: {exc}", file=stderr)
        return EX_NOUSER
    limit = settings.smtp.max_message_size
    raw = stdin.read(limit + 1)
    if len(raw) > limit:
        print(f"bounced deliver: message larger than {limit} bytes", file=stderr)
        return EX_DATAERR
    if blank(raw):
        print("bounced deliver: empty message on stdin, nothing stored", file=stderr)
        return EX_DATAERR
    message = NewMessage(
        received_at=now, peer="pipe", mail_from=sender or env.get("SENDER", "") or "<>",
        rcpt_to=rcpt, token=token_fields(token), raw=raw,
    )
    try:
        store = await open_ready_store(settings)
        try:
            [job_id] = await store.add_messages([message])
        finally:
            await store.close()
    except Exception as exc:
        # One line on stderr, which the mail server logs with the deferral (a log line as
        # well would say it twice there).
        print(f"bounced deliver: cannot store the message now: {exc}", file=stderr)
        return EX_TEMPFAIL
    log.info("deliver.stored", id=job_id, size=len(raw), subject=token.subject)
    return EXIT_OK
