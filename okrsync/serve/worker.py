"""The sync worker: debounced webhook syncs and polling runs, one at a time, drained on shutdown."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

log = logging.getLogger("okrsync.serve")

DEBOUNCE = 2.0  # seconds: webhooks arriving within this window of the first one make one sync
RETRY_AFTER_FAILURE = 30.0  # seconds before a webhook sync that could not run (lock busy) is tried again


@dataclass
class SyncJob:
    """One run to make: the sources (None: all) and, per source, the streams to read (None: all)."""

    trigger: str  # startup | poll | webhook
    sources: list[str] | None = None
    streams: dict[str, frozenset[str] | None] = field(default_factory=dict)
    events: int = 0  # webhooks folded into this run


class Pending:
    """Webhook requests waiting for their debounce window; merged per source (a None stream set wins)."""

    def __init__(self) -> None:
        self.streams: dict[str, frozenset[str] | None] = {}
        self.due: float | None = None
        self.events = 0

    def add(self, source: str, streams: frozenset[str] | None, due: float) -> None:
        if source in self.streams:
            old = self.streams[source]
            self.streams[source] = None if old is None or streams is None else old | streams
        else:
            self.streams[source] = streams
        self.due = due if self.due is None else min(self.due, due)
        self.events += 1

    def take(self) -> SyncJob:
        job = SyncJob("webhook", sorted(self.streams), dict(self.streams), self.events)
        self.streams, self.due, self.events = {}, None, 0
        return job

    def __bool__(self) -> bool:
        return bool(self.streams)


class SyncWorker:
    """Runs `run(job)` in one thread: a startup sync of every source, then webhook jobs when their debounce
    window closes, and a poll of every source each `every` seconds (reconciliation for lost webhooks).

    `run` returns True when the job ran (even with source errors) and False when it could not start (lock busy):
    a webhook job is then retried after RETRY_AFTER_FAILURE seconds. `abort` is the run's stop event: set only
    when a drain takes too long, so a SIGTERM lets the sync in flight finish."""

    def __init__(self, run: Callable[[SyncJob], bool], *, every: float, debounce: float = DEBOUNCE,
                 clock: Callable[[], float] = time.monotonic):
        self.run = run
        self.every = every
        self.debounce = debounce
        self.clock = clock
        self.abort = threading.Event()
        self._stopping = threading.Event()
        self._cond = threading.Condition()
        self._pending = Pending()
        self._busy = False
        self._thread: threading.Thread | None = None
        self.first_done = threading.Event()  # the start-up sync has ended (readiness)
        self.next_poll: float = 0.0

    # -- control ------------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="okrsync-serve-sync", daemon=True)
        self._thread.start()

    def trigger(self, source: str, streams: frozenset[str] | None = None) -> None:
        """A webhook for `source`: sync it when the debounce window that this event opened (or joined) closes."""
        with self._cond:
            self._pending.add(source, streams, self.clock() + self.debounce)
            self._cond.notify_all()

    def poll_now(self) -> None:
        with self._cond:
            self.next_poll = self.clock()
            self._cond.notify_all()

    @property
    def busy(self) -> bool:
        return self._busy

    def drain(self, timeout: float) -> bool:
        """Stop taking jobs, let the sync in flight finish (up to `timeout` s, then ask it to stop at its next page
        boundary); True when the worker ended in time."""
        self._stopping.set()
        with self._cond:
            if self._pending:
                log.info("shutting down: %d webhook(s) not yet synced; the next start-up sync reads them",
                         self._pending.events)
            self._cond.notify_all()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("the sync in flight did not end within %.0f s: stopping it at its next page", timeout)
            self.abort.set()
            self._thread.join(10.0)
        return not self._thread.is_alive()

    # -- the loop -----------------------------------------------------------------------------------
    def _loop(self) -> None:
        try:
            self._execute(SyncJob("startup"))
        finally:
            self.first_done.set()
        self.next_poll = self.clock() + self.every
        while not self._stopping.is_set():
            job = self._next_job()
            if job is None:
                continue
            ok = self._execute(job)
            if job.trigger == "poll":
                self.next_poll = self.clock() + self.every
            elif not ok and not self._stopping.is_set():
                with self._cond:  # put it back: the lock holder (another okrsync) should be done by then
                    for source, streams in job.streams.items():
                        self._pending.add(source, streams, self.clock() + RETRY_AFTER_FAILURE)

    def _next_job(self) -> SyncJob | None:
        with self._cond:
            now = self.clock()
            if now >= self.next_poll:
                self._pending.take()  # a poll reads every source: it covers the webhooks waiting
                return SyncJob("poll")
            if self._pending and self._pending.due is not None and now >= self._pending.due:
                return self._pending.take()
            wake = self.next_poll
            if self._pending.due is not None:
                wake = min(wake, self._pending.due)
            self._cond.wait(min(max(0.0, wake - now), 1.0))
            return None

    def _execute(self, job: SyncJob) -> bool:
        if self._stopping.is_set():
            return True
        self._busy = True
        try:
            return self.run(job)
        except Exception:  # a bug must not end the server: the next job or poll tries again
            log.exception("the %s sync failed unexpectedly", job.trigger)
            return True
        finally:
            self._busy = False
