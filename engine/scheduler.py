"""The scheduler loop: run every N minutes or on a cron expression, one run at a time, stop gracefully."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable

from croniter import croniter

from okrsync.config.periods import parse_duration

log = logging.getLogger("okrsync.scheduler")


class Schedule:
    def next_after(self, moment: datetime) -> datetime:  # pragma: no cover - interface
        raise NotImplementedError

    @property
    def interval_hint(self) -> timedelta:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass
class Every(Schedule):
    interval: timedelta

    def next_after(self, moment: datetime) -> datetime:
        return moment + self.interval

    @property
    def interval_hint(self) -> timedelta:
        return self.interval


@dataclass
class Cron(Schedule):
    expression: str

    def __post_init__(self) -> None:
        if not croniter.is_valid(self.expression):
            raise ValueError(f"invalid cron expression {self.expression!r} (expected 5 fields, e.g. '*/15 * * * *')")

    def next_after(self, moment: datetime) -> datetime:
        nxt: datetime = croniter(self.expression, moment.astimezone(timezone.utc)).get_next(datetime)
        return nxt

    @property
    def interval_hint(self) -> timedelta:
        now = datetime.now(timezone.utc)
        first = self.next_after(now)
        return self.next_after(first) - first


def parse_schedule(every: str | None, cron: str | None) -> Schedule:
    if bool(every) == bool(cron):
        raise ValueError("give exactly one of --every (e.g. 15m) or --cron (e.g. '*/15 * * * *')")
    if every:
        delta = parse_duration(every)
        if delta.total_seconds() < 1:
            raise ValueError("--every must be at least 1s")
        return Every(delta)
    return Cron(cron or "")


def failure_delay(failures: int, interval: timedelta, base: timedelta = timedelta(minutes=1)) -> timedelta:
    """After consecutive failures: 1, 2, 4 … minutes, never longer than the schedule's interval."""
    factor: int = 2 ** max(0, failures - 1)
    return min(interval, base * factor)


class Scheduler:
    def __init__(self, schedule: Schedule, run: Callable[[], int], *,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 on_next: Callable[[datetime, str], None] | None = None, stop: threading.Event | None = None):
        self.schedule = schedule
        self.run = run
        self.clock = clock
        self.on_next = on_next or (lambda when, why: None)
        self.stop = stop if stop is not None else threading.Event()  # set (e.g. by SIGTERM): the loop ends
        self.runs = 0
        self.failures = 0

    def loop(self, max_runs: int | None = None) -> int:
        """Run until stopped (or max_runs); returns 0 after a graceful stop."""
        while not self.stop.is_set():
            started = self.clock()
            code = self.run()
            self.runs += 1
            if max_runs is not None and self.runs >= max_runs:
                break
            if self.stop.is_set():
                break
            if code == 0:
                self.failures = 0
                nxt = self.schedule.next_after(started)
                why = "next run"
            else:
                self.failures += 1
                nxt = self.clock() + failure_delay(self.failures, self.schedule.interval_hint)
                why = f"run failed (exit {code}); retry"
            now = self.clock()
            if nxt <= now:
                nxt = self.schedule.next_after(now) if code == 0 else now
            self.on_next(nxt, why)
            self.stop.wait(max(0.0, (nxt - now).total_seconds()))
        return 0
