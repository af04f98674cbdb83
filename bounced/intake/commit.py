"""Group commit: sessions that finish DATA together share one durable transaction.

Each session waits for the commit that holds its message, then answers 250. The store is
written by one flush at a time, so concurrency never costs one fsync per message.

One session's message can never fail the others': when a group's commit fails for any other
reason than the store being unavailable, each session of the group is committed again on its
own, and only the one(s) that fail alone get the error (451).

The intake also knows whether the store takes writes (``write_problem``, for /healthz): from
its own commits, and when none was made lately from a one-row write of its own.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable, Sequence

import structlog

from bounced.exceptions import StoreUnavailable
from bounced.model import NewMessage
from bounced.store import Store

log = structlog.get_logger("bounced.intake.commit")

MAX_BATCH = 200
RECENT = 10.0  # seconds: a commit this recent answers "can the store be written?"
PROBE_EVERY = 5.0  # seconds between two probe writes, at most
PROBE_TIMEOUT = 5.0


def blank(raw: bytes) -> bool:
    """Whether a message is nothing at all: no byte, or blank lines only. No mail system
    writes such a bounce (a report has at least its header), so it is refused rather than
    stored as nothing: a pipe or a script that lost the message on the way."""
    return not raw or raw.isspace()  # no copy of a large message, as strip() would make


class Intake:
    """Stores accepted messages durably, batching concurrent sessions into one commit."""

    def __init__(self, store: Store, on_stored: Callable[[], None] | None = None) -> None:
        self._store = store
        self._on_stored = on_stored
        self._pending: list[tuple[Sequence[NewMessage], asyncio.Future[list[int]]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._clock = time.monotonic
        self.written_at: float | None = None  # the last commit that succeeded
        self.write_error: str | None = None  # why the latest commit or probe failed
        self._probed_at: float | None = None

    async def write_problem(self, now: dt.datetime) -> str | None:
        """Why the store cannot be written now, or None. A commit of the last few seconds
        answers; otherwise a one-row write does (at most every PROBE_EVERY seconds)."""
        t = self._clock()
        if self.write_error is None and self.written_at is not None \
                and t - self.written_at < RECENT:
            return None
        if self._probed_at is not None and t - self._probed_at < PROBE_EVERY:
            return self.write_error
        self._probed_at = t
        try:
            await asyncio.wait_for(self._store.probe_write(now), PROBE_TIMEOUT)
        except Exception as exc:
            self._failed(exc if str(exc) else TimeoutError("no answer in time"))
        else:
            self._succeeded()
        return self.write_error

    def _succeeded(self) -> None:
        self.written_at = self._clock()
        self.write_error = None

    def _failed(self, exc: BaseException) -> None:
        self.write_error = f"{exc.__class__.__name__}: {exc}"

    async def store(self, messages: Sequence[NewMessage]) -> list[int]:
        """Return the new job ids once the messages are committed; raise if they are not."""
        future: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        self._pending.append((messages, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        # A client hanging up cancels only its own future: the commit runs in the flush task,
        # which no session awaits, so it goes on for the others (no shield needed).
        return await future

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            try:
                ids = await self._store.add_messages([m for msgs, _ in batch for m in msgs])
            except StoreUnavailable as exc:  # nobody's fault: every waiting session answers 451
                self._failed(exc)
                _fail(batch, exc)
                continue
            except Exception as exc:
                if len(batch) == 1:
                    self._failed(exc)
                    _fail(batch, exc)
                    continue
                log.warning("intake.group_commit_failed", sessions=len(batch), error=repr(exc))
                await self._one_by_one(batch)
            else:
                self._succeeded()
                start = 0
                for msgs, future in batch:
                    if not future.done():
                        future.set_result(ids[start : start + len(msgs)])
                    start += len(msgs)
            if self._on_stored is not None:
                self._on_stored()

    async def _one_by_one(
        self, batch: list[tuple[Sequence[NewMessage], asyncio.Future[list[int]]]]
    ) -> None:
        """Commit each session of a failed group on its own: one bad message fails alone."""
        for msgs, future in batch:
            try:
                ids = await self._store.add_messages(msgs)
            except Exception as exc:
                self._failed(exc)
                _fail([(msgs, future)], exc)
            else:
                self._succeeded()
                if not future.done():
                    future.set_result(ids)

    async def drain(self) -> None:
        """Wait until every message handed in so far is committed or has failed."""
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)


def _fail(batch: Sequence[tuple[Sequence[NewMessage], asyncio.Future[list[int]]]],
          exc: BaseException) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(exc)
