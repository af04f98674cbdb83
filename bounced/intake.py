"""Group commit: sessions that finish DATA together share one durable transaction.

Each session waits for the commit that holds its message, then answers 250. The store is
written by one flush at a time, so concurrency never costs one fsync per message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from bounced.model import NewMessage
from bounced.store import Store

MAX_BATCH = 200


class Intake:
    """Stores accepted messages durably, batching concurrent sessions into one commit."""

    def __init__(self, store: Store, on_stored: Callable[[], None] | None = None) -> None:
        self._store = store
        self._on_stored = on_stored
        self._pending: list[tuple[Sequence[NewMessage], asyncio.Future[list[int]]]] = []
        self._flusher: asyncio.Task[None] | None = None

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
            except Exception as exc:  # every waiting session answers 451
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            start = 0
            for msgs, future in batch:
                if not future.done():
                    future.set_result(ids[start : start + len(msgs)])
                start += len(msgs)
            if self._on_stored is not None:
                self._on_stored()

    async def drain(self) -> None:
        """Wait until every message handed in so far is committed or has failed."""
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
