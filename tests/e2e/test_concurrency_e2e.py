"""One sync at a time per store: wait for the lock, or say who holds it; a dead holder's lock is taken over."""

from __future__ import annotations

import re
import signal
import time

import pytest

from .test_faults_e2e import READ_ONLY

pytestmark = [pytest.mark.e2e, pytest.mark.sqlite_only]  # PostgreSQL: test_pg_store_e2e.py


def wait_for_lock(env, proc, timeout=30.0) -> int:
    lock = env.db.with_name(env.db.name + ".lock")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lock.exists() and lock.read_text().strip() == str(proc.pid):
            return proc.pid
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError("the first sync never took the lock")


def test_second_sync_refused_or_waits(env):
    env.write_workspace(READ_ONLY)
    env.sandbox.faults.slow(0.5, system="jira")  # the first sync holds the lock for seconds
    first = env.run("sync", background=True)
    pid = wait_for_lock(env, first)
    r = env.run("sync", "--wait", "0")
    assert r.returncode == 1
    assert f"another sync is running (pid {pid})" in r.stderr
    assert len([line for line in r.stderr.splitlines() if line.startswith("okrsync:")]) == 1
    waiting = env.run("sync", "--wait", "120", background=True)
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    env.sandbox.reset_log()
    out, err = waiting.communicate(timeout=120)
    assert waiting.returncode == 0, err
    # the waiting sync started after the first finished and read only what changed since (nothing)
    jira = [q for q in env.sandbox.requests("jira") if "search" in q["path"]]
    assert len(jira) <= 2
    runs = re.findall(r"run (\d+): ok", out)
    assert runs == ["2"]


def test_lock_of_a_killed_sync_is_taken_over(env):
    env.write_workspace(READ_ONLY)
    env.sandbox.faults.slow(0.05, system="jira")
    first = env.run("sync", background=True)
    wait_for_lock(env, first)
    first.send_signal(signal.SIGKILL)
    first.communicate()
    env.sandbox.faults.clear()
    r = env.run("sync", "--wait", "0")
    assert r.returncode == 0, r.stderr
