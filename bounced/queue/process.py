"""The worker in a process of its own, started, watched and stopped by the daemon.

``bounced serve`` stays one daemon (one command, one systemd unit, one log stream), but the
worker's CPU work (classification above all) runs on a core of its own instead of sharing the
SMTP event loop. The two processes share only the store, as several daemons do: the job queue's
claims and leases are what keeps them apart, so at-least-once holds as before.

- daemon -> worker: a pipe; a byte after each commit wakes the worker, end of file stops it
  after its batch (the daemon stopping, or dying: a SIGKILLed daemon's worker exits too);
- worker -> daemon: a pipe of JSON reports (loop time, metric increments), so the daemon's
  ``/health`` and ``/metrics`` say what the worker does, as when it ran inside;
- a worker process that exits while the daemon runs is logged and started again (backoff).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import multiprocessing
import os
import signal
import sys
import time
from multiprocessing.connection import Connection
from typing import Any

import structlog

from bounced.config import Settings
from bounced.exits import EXIT_OK
from bounced.loop import backoff
from bounced.metrics import Metrics
from bounced.queue.worker import Tally, Worker

log = structlog.get_logger("bounced.queue.worker")

STORE_WAIT = 60.0  # the worker process waits this long for the store at start
READY_WAIT = 30.0  # the daemon waits this long for the worker's first report at start
RESTART_FIRST = 1.0  # seconds before a worker process that exited is started again
RESTART_MAX = 30.0
RESTART_RESET = 60.0  # a process that ran this long is restarted after RESTART_FIRST again
IDLE_REPORT = 1.0  # seconds between reports when there is nothing to tell but liveness
BUSY_REPORT = 0.1  # seconds between reports while batches follow each other


class WorkerProcess:
    """The daemon's side: spawn the worker process, wake it, read its reports, restart it."""

    def __init__(self, settings: Settings, worker: Worker, metrics: Metrics) -> None:
        self.settings = settings
        # Not run here: it holds what the worker process reports (last_loop, decisions), which
        # is what the HTTP API reads.
        self.worker = worker
        self.metrics = metrics
        self.pid: int | None = None
        self._proc: Any = None
        self._wake: Connection | None = None
        self._reports: Connection | None = None
        self._exited = asyncio.Event()
        self._ready = asyncio.Event()
        self._stopping = False
        self._decisions_base = 0
        self._watcher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the worker process and wait (bounded) until it works."""
        self._spawn()
        self._watcher = asyncio.create_task(self._watch())
        try:
            await asyncio.wait_for(self._ready.wait(), READY_WAIT)
        except TimeoutError:
            log.warning("worker.process_slow_start", pid=self.pid, waited=READY_WAIT)

    def wake(self) -> None:
        """New jobs are committed (never blocks: a full pipe already holds a wake-up)."""
        if self._wake is not None:
            with contextlib.suppress(OSError):  # full, or the process is gone (restarted)
                os.write(self._wake.fileno(), b"\x01")

    def request_stop(self) -> None:
        """Tell the worker to finish its batch and exit (``stop`` waits for it)."""
        self._stopping = True
        if self._wake is not None:
            self._wake.close()  # end of file: the worker stops after its batch
            self._wake = None

    async def stop(self, grace: float) -> None:
        """Let the worker finish its batch and exit; after ``grace`` seconds, terminate it."""
        self.request_stop()
        if self._proc is not None:
            try:
                await asyncio.wait_for(self._exited.wait(), grace)
            except TimeoutError:
                log.warning("worker.process_stop_timeout", pid=self.pid)
                self._proc.terminate()
            await asyncio.to_thread(self._reap, 5.0)
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        self._close_reports()

    def _spawn(self) -> None:
        ctx = multiprocessing.get_context("spawn")  # the daemon has threads: never fork it
        wake_r, wake_w = ctx.Pipe(duplex=False)
        reports_r, reports_w = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=child_main, args=(self.settings, wake_r, reports_w),
                           name="bounced-worker", daemon=True)
        proc.start()
        wake_r.close()  # only the child holds these ends now: end of file means it is gone
        reports_w.close()
        os.set_blocking(wake_w.fileno(), False)
        self._proc, self.pid = proc, proc.pid
        self._spawned_at = time.monotonic()
        self._wake, self._reports = wake_w, reports_r
        self._exited.clear()
        self._decisions_base = self.worker.decisions
        asyncio.get_running_loop().add_reader(reports_r.fileno(), self._on_reports)
        log.info("worker.process_started", pid=proc.pid)

    def _on_reports(self) -> None:
        conn = self._reports
        if conn is None:
            return
        try:
            while conn.poll():
                self._apply(json.loads(conn.recv_bytes()))
        except (EOFError, OSError):
            self._close_reports()
            self._exited.set()

    def _apply(self, report: dict[str, Any]) -> None:
        if report.get("loop") is not None:
            self.worker.last_loop = dt.datetime.fromtimestamp(report["loop"], dt.UTC)
        self.worker.decisions = self._decisions_base + report.get("decisions", 0)
        if report.get("tally"):
            Tally.from_dict(report["tally"]).apply(self.metrics)
        self._ready.set()

    def _close_reports(self) -> None:
        if self._reports is not None:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(self._reports.fileno())
            self._reports.close()
            self._reports = None

    def _reap(self, timeout: float) -> int | None:
        """Wait for the process to exit (killed after ``timeout``); its exit code."""
        self._proc.join(timeout)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5.0)
        code: int | None = self._proc.exitcode
        return code

    async def _watch(self) -> None:
        """Start the worker process again whenever it exits while the daemon runs: at once
        after one that ran a while (RESTART_RESET), else after a doubling delay."""
        quick_exits = 0
        while True:
            await self._exited.wait()
            if self._stopping:
                return
            ran = time.monotonic() - self._spawned_at
            quick_exits = quick_exits + 1 if ran < RESTART_RESET else 1
            delay = backoff(quick_exits, RESTART_FIRST, RESTART_MAX)
            code = await asyncio.to_thread(self._reap, 5.0)
            if self._stopping:
                return
            if self._wake is not None:
                self._wake.close()
                self._wake = None
            # Exit code 0: it was told to stop (SIGTERM to the whole unit, say, a moment before
            # the daemon hears it too); anything else is a crash.
            (log.info if code == 0 else log.error)(
                "worker.process_exited", pid=self.pid, exitcode=code, restart_in=delay)
            await asyncio.sleep(delay)
            if self._stopping:
                return
            self._spawn()


# ------------------------------------------------------------------------- the worker process


def child_main(settings: Settings, wake: Connection, reports: Connection) -> None:
    """Entry point of the worker process (spawned: a fresh interpreter)."""
    from bounced.logs import configure
    from bounced.loop import SWITCH_INTERVAL, run

    configure(settings.log.level, settings.log.format)
    sys.setswitchinterval(SWITCH_INTERVAL)  # as in the daemon: for the store's thread
    run(lambda: _serve(settings, wake, reports))


async def _serve(settings: Settings, wake: Connection, reports: Connection) -> int:
    from bounced.model import utcnow
    from bounced.store import open_ready_store

    loop = asyncio.get_running_loop()
    store = await open_ready_store(settings, STORE_WAIT)  # the daemon created it
    last_sent = 0.0
    pending = Tally()

    def report(worker: Worker, tally: Tally) -> None:
        """Busy, tell the daemon at most every BUSY_REPORT seconds; once the queue is empty,
        at once; idle, every IDLE_REPORT seconds (liveness)."""
        nonlocal last_sent, pending
        pending.add(tally)
        since = time.monotonic() - last_sent
        if (tally and since < BUSY_REPORT) or (not pending and since < IDLE_REPORT):
            return
        last_sent = time.monotonic()
        loop_at = worker.last_loop.timestamp() if worker.last_loop else None
        message = {"loop": loop_at, "decisions": worker.decisions,
                   "tally": pending.to_dict() if pending else None}
        pending = Tally()
        try:
            reports.send_bytes(json.dumps(message).encode())
        except OSError:  # the daemon is gone
            worker.stop()

    worker = Worker(store, settings, utcnow, report=report)

    def on_wake() -> None:
        try:
            data = os.read(wake.fileno(), 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            worker.wake()
        else:  # the daemon stops, or died: finish the batch in hand and exit
            loop.remove_reader(wake.fileno())
            worker.stop()

    os.set_blocking(wake.fileno(), False)
    loop.add_reader(wake.fileno(), on_wake)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    log.info("worker.started", pid=os.getpid(), name=worker.name)
    try:
        await worker.run()
    finally:
        await store.close()
        log.info("worker.stopped", pid=os.getpid())
    return EXIT_OK
