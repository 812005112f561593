"""The store locks: SQLite's flock'd lock file (one sync at a time), PostgreSQL's advisory locks per source."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from .dialect import POSTGRESQL, advisory_key


class LockBusy(Exception):
    """Another sync holds the lock; str() is the one-line message."""


class StoreLock:
    """Exclusive lock beside the store. The kernel drops it when its process dies (stale locks free themselves)."""

    def __init__(self, db_path: str | Path):
        self.path = Path(str(db_path) + ".lock")
        self._fd: int | None = None

    def holder(self) -> int | None:
        try:
            text = self.path.read_text().strip()
            return int(text) if text else None
        except (OSError, ValueError):
            return None

    def acquire(self, wait: float = 600.0, *, poll: float = 0.2, on_wait: Callable[[int | None], None] | None = None,
                clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = clock() + max(0.0, wait)
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if clock() >= deadline:
                    pid = self.holder()
                    os.close(fd)
                    who = f" (pid {pid})" if pid else ""
                    raise LockBusy(f"another sync is running{who}; waited {wait:.0f} s for {self.path.name}") from None
                try:
                    if not told and on_wait:
                        on_wait(self.holder())
                        told = True
                    sleep(poll)  # a stoppable sleep raises to end the wait (Ctrl-C)
                except BaseException:
                    os.close(fd)
                    raise
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        os.fsync(fd)
        self._fd = fd

    def hold(self, name: str) -> None:
        """(PostgreSQL's per-run lock: under SQLite's one lock no other run can be alive.)"""

    def serial(self) -> contextlib.nullcontext[None]:
        """(PostgreSQL: one process at a time abandons dead runs and starts its own; SQLite's lock is one.)"""
        return contextlib.nullcontext()

    alive = None  # abandon_runs(alive=...): none is alive under the one lock

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "StoreLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class AdvisoryLock:
    """PostgreSQL's locks for a store shared by workers on several machines: named session advisory locks in
    the workspace's schema ("source:jira", "recompute", "run:12"), held by a connection of their own. The
    server drops them when that connection ends (a killed worker's locks free themselves)."""

    def __init__(self, store: Any, names: list[str]):
        self.store = store
        self.names = list(dict.fromkeys(names))
        self._conn: Any = None

    def _keys(self, name: str) -> tuple[int, int]:
        return advisory_key(self.store.url.schema, name)

    def holder(self, name: str) -> str | None:
        """The application name (okrsync pid N) of the session holding a lock, if it can be seen."""
        k1, k2 = self._keys(name)
        row = self._conn.execute(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s::bigint::oid "
            "AND l.objid = %s::bigint::oid AND l.objsubid = 2 LIMIT 1", (k1 & 0xFFFFFFFF, k2 & 0xFFFFFFFF)).fetchone()
        return row[0] if row else None

    def _try(self, names: list[str]) -> str | None:
        """All of `names` or none: the name that could not be taken, else None."""
        taken: list[str] = []
        for name in names:
            if not self._conn.execute("SELECT pg_try_advisory_lock(%s, %s)", self._keys(name)).fetchone()[0]:
                for t in taken:
                    self._conn.execute("SELECT pg_advisory_unlock(%s, %s)", self._keys(t))
                return name
            taken.append(name)
        return None

    def acquire(self, wait: float = 600.0, *, poll: float = 0.2, on_wait: Callable[[Any], None] | None = None,
                clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self._conn = self.store.pg_connection("okrsync lock")
        deadline = clock() + max(0.0, wait)
        told = False
        try:
            while (busy := self._try(self.names)) is not None:
                who = self.holder(busy)
                pid = who.rsplit(" ", 1)[-1] if who and who.startswith("okrsync") else None
                if clock() >= deadline:
                    what = "a recompute" if busy == "recompute" else f"another sync of {busy.split(':', 1)[-1]}"
                    raise LockBusy(f"{what} is running" + (f" (pid {pid})" if pid else "")
                                   + f"; waited {wait:.0f} s")
                if not told and on_wait:
                    on_wait(pid)
                    told = True
                sleep(poll)
        except BaseException:
            self.release()
            raise

    def hold(self, name: str) -> None:
        """Also hold `name` (a run's own lock: others see the run is alive)."""
        self._conn.execute("SELECT pg_advisory_lock(%s, %s)", self._keys(name))

    @contextlib.contextmanager
    def serial(self) -> Iterator[None]:
        """One worker at a time marks dead runs abandoned and starts (and locks) its own run, so none can take
        another's run, started but not yet locked, for dead."""
        keys = self._keys("runs")
        self._conn.execute("SELECT pg_advisory_lock(%s, %s)", keys)
        try:
            yield
        finally:
            self._conn.execute("SELECT pg_advisory_unlock(%s, %s)", keys)

    def alive(self, run_id: int) -> bool:
        """A run marked running is alive while some session holds its lock."""
        with self.store.pg_connection("okrsync probe") as probe:
            k = self._keys(f"run:{run_id}")
            if probe.execute("SELECT pg_try_advisory_lock(%s, %s)", k).fetchone()[0]:
                return False
            return True

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()  # ends the session: every lock it held goes with it
            finally:
                self._conn = None

    def __enter__(self) -> "AdvisoryLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def store_lock(store: Any, names: list[str]) -> Any:
    """The lock a command takes: SQLite's one lock file beside the store (whatever the names), or PostgreSQL's
    advisory locks on `names` (a worker per source, at once on several machines; the same source never twice)."""
    return AdvisoryLock(store, names) if store.dialect == POSTGRESQL else StoreLock(store.path)
