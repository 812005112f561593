"""The store lock (one sync at a time, stale locks taken over) and the scheduler loop."""

import os
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone

import pytest

from okrsync.engine.lock import LockBusy, StoreLock
from okrsync.engine.scheduler import Cron, Every, Scheduler, failure_delay, parse_schedule


def test_second_holder_waits_then_fails_naming_the_pid(tmp_path):
    a = StoreLock(tmp_path / "x.db")
    a.acquire(0)
    b = StoreLock(tmp_path / "x.db")
    t = [0.0]
    with pytest.raises(LockBusy) as exc:
        b.acquire(1.0, clock=lambda: t[0], sleep=lambda s: t.__setitem__(0, t[0] + s))
    assert f"another sync is running (pid {os.getpid()})" in str(exc.value)
    a.release()
    b.acquire(0)
    b.release()


def test_lock_of_a_dead_process_is_taken_over(tmp_path):
    db = tmp_path / "x.db"
    code = textwrap.dedent(f"""
        import os, sys
        from okrsync.engine.lock import StoreLock
        StoreLock({str(db)!r}).acquire(0)
        os._exit(0)  # dies holding the lock, file left behind with its pid
    """)
    subprocess.run([sys.executable, "-c", code], check=True)
    assert (tmp_path / "x.db.lock").read_text().strip() != ""
    lock = StoreLock(db)
    lock.acquire(0)  # the kernel released the dead holder's flock
    assert lock.holder() == os.getpid()
    lock.release()


@pytest.mark.parametrize("every,cron,kind", [("15m", None, Every), (None, "*/15 * * * *", Cron)])
def test_parse_schedule(every, cron, kind):
    assert isinstance(parse_schedule(every, cron), kind)


@pytest.mark.parametrize("every,cron", [(None, None), ("15m", "* * * * *"), (None, "61 * * * *"), ("0s", None)])
def test_parse_schedule_rejects(every, cron):
    with pytest.raises(ValueError):
        parse_schedule(every, cron)


def test_cron_next():
    c = Cron("*/15 * * * *")
    assert c.next_after(datetime(2026, 11, 21, 10, 7, tzinfo=timezone.utc)) == datetime(2026, 11, 21, 10, 15, tzinfo=timezone.utc)


def test_failure_delay_backs_off_within_the_interval():
    assert [failure_delay(n, timedelta(minutes=15)).total_seconds() / 60 for n in (1, 2, 3, 4, 5)] == [1, 2, 4, 8, 15]


def test_scheduler_runs_backs_off_and_stops():
    now = [datetime(2026, 11, 21, tzinfo=timezone.utc)]
    codes = iter([0, 1, 1, 0])
    nexts = []
    sched = None

    def run():
        return next(codes)

    def on_next(when, why):
        nexts.append((when - now[0], why))

    sched = Scheduler(Every(timedelta(minutes=15)), run, clock=lambda: now[0], on_next=on_next)
    sched.stop.wait = lambda seconds: now.__setitem__(0, now[0] + timedelta(seconds=seconds))  # no real waiting
    assert sched.loop(max_runs=4) == 0
    assert [w.total_seconds() for w, _ in nexts] == [900, 60, 120]
    assert nexts[1][1].startswith("run failed (exit 1)")
