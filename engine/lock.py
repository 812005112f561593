"""One sync at a time per store: an flock'd lock file holding the owner's pid."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from typing import Callable


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

    def __exit__(self, *exc) -> None:
        self.release()
