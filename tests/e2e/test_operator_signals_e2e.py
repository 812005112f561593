"""Ctrl-C and SIGTERM against a real `okrsync` process: it stops within seconds, keeps what it read, records the run."""

from __future__ import annotations

import signal
import time

import pytest

from okrsync.engine.lock import StoreLock

from .test_faults_e2e import READ_ONLY

pytestmark = pytest.mark.e2e

STOP_WITHIN = 5.0  # the promise is 2 s; the margin is for a loaded 2-core CI machine
SEARCH = "/rest/api/3/search"


def wait_until(predicate, proc, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"okrsync ended early: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("timed out waiting for the sync to get going")
        time.sleep(0.02)


def searches(env) -> int:
    return len([q for q in env.sandbox.requests("jira") if q["path"].startswith(SEARCH)])


def slow_jira_sync(env, *args: str, command: str = "sync"):
    """A sync whose Jira search pages take 0.5 s each, once it has saved a few pages.

    One request at a time, so the issues are read by the search's own pages: with parallel reads the few hundred
    sandbox issues arrive in milliseconds once the id listing is back, and the signal could land after the read."""
    env.write_workspace(READ_ONLY, concurrency="1")
    env.sandbox.faults.slow(0.5, system="jira", path=SEARCH)  # GET or POST, /search and /search/jql
    proc = env.run(command, *args, background=True)
    wait_until(lambda: searches(env) >= 2, proc)
    return proc


def stop(proc, sig: int) -> tuple[float, str, str]:
    sent = time.monotonic()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    return time.monotonic() - sent, out, err


def runs(env) -> list[tuple]:
    conn = env.connect()
    try:
        return conn.execute("SELECT id, status, started, finished, pid FROM runs ORDER BY id").fetchall()
    finally:
        conn.close()


def jira_saved(env) -> tuple[int, str | None, str | None]:
    conn = env.connect()
    try:
        n = conn.execute("SELECT count(*) FROM issues WHERE source = 'jira'").fetchone()[0]
        row = conn.execute("SELECT pending, cursor FROM sync_state WHERE source = 'jira' AND stream = 'issues'"
                           ).fetchone()
        return n, *(row or (None, None))
    finally:
        conn.close()


def test_sigint_during_sync_stops_at_a_page_boundary_saves_and_exits_130(env):
    proc = slow_jira_sync(env)
    elapsed, out, err = stop(proc, signal.SIGINT)
    assert proc.returncode == 130, err
    assert elapsed < STOP_WITHIN, f"took {elapsed:.1f} s to stop"
    assert "SIGINT: finishing the current page, then stopping" in err
    assert "Traceback" not in err
    assert "jira: interrupted after " in out and "the next run resumes" in out
    (run_id, status, _, finished, _), = runs(env)
    assert status == "interrupted" and finished, runs(env)
    assert f"run {run_id}: interrupted" in out
    saved, pending, cursor = jira_saved(env)
    assert saved >= 100 and pending and cursor is None  # pages kept; the read resumes from its checkpoint
    conn = env.connect()
    assert conn.execute("SELECT count(*) FROM kr_values").fetchone()[0] == 0  # nothing computed from half a read
    conn.close()
    env.sandbox.faults.clear()
    r = env.run("sync")
    assert r.returncode == 0, r.stderr
    assert [s for _, s, *_ in runs(env)] == ["interrupted", "ok"]
    assert jira_saved(env)[0] == len(env.sandbox.world.jira_issues())


def test_sigint_interrupts_a_rate_limit_wait_at_once(env):
    env.write_workspace(READ_ONLY)
    env.sandbox.faults.rate_limit(1.0, retry_after=2400, system="pagerduty")  # "waiting 2400 s"
    proc = env.run("sync", background=True)
    wait_until(lambda: any(q.get("fault") == "rate_limit" for q in env.sandbox.requests("pagerduty")), proc)
    time.sleep(0.3)  # inside the wait
    elapsed, out, err = stop(proc, signal.SIGINT)
    assert proc.returncode == 130, err
    assert elapsed < STOP_WITHIN, f"took {elapsed:.1f} s to stop"
    assert "Traceback" not in err
    assert "pagerduty: interrupted" in out
    assert [s for _, s, _, finished, _ in runs(env) if finished] == ["interrupted"]


def test_sigterm_during_sync_is_recorded_as_interrupted(env):
    proc = slow_jira_sync(env)
    elapsed, out, err = stop(proc, signal.SIGTERM)
    assert proc.returncode == 143, err  # 128 + SIGTERM; `run` ends 0 on SIGTERM instead
    assert elapsed < STOP_WITHIN
    assert [s for _, s, *_ in runs(env)] == ["interrupted"]


def test_sigint_stops_run_with_130_and_sigterm_with_0(env):
    proc = slow_jira_sync(env, "--every", "15m", command="run")
    elapsed, out, err = stop(proc, signal.SIGINT)
    assert proc.returncode == 130, err
    assert elapsed < STOP_WITHIN
    assert [s for _, s, *_ in runs(env)] == ["interrupted"]
    proc = env.run("run", "--every", "15m", background=True)
    wait_until(lambda: searches(env) >= 5, proc)
    elapsed, out, err = stop(proc, signal.SIGTERM)
    assert proc.returncode == 0, err
    assert elapsed < STOP_WITHIN
    assert [s for _, s, *_ in runs(env)] == ["interrupted", "interrupted"]


def test_a_run_left_running_by_a_killed_process_is_marked_abandoned(env):
    proc = slow_jira_sync(env)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    (_, status, _, finished, pid), = runs(env)
    assert status == "running" and finished is None and pid == proc.pid
    env.sandbox.faults.clear()
    r = env.run("sync")
    assert r.returncode == 0, r.stderr
    assert [s for _, s, *_ in runs(env)] == ["abandoned", "ok"]
    conn = env.connect()
    errors = conn.execute("SELECT errors FROM runs WHERE status = 'abandoned'").fetchone()[0]
    assert f"pid {proc.pid}" in errors


@pytest.mark.sqlite_only  # holds SQLite's lock file (PostgreSQL: test_pg_store_e2e.py)
def test_sigint_while_waiting_for_the_lock_exits_130_and_records_no_run(env):
    env.write_workspace(READ_ONLY)
    assert env.run("validate").returncode == 0
    lock = StoreLock(env.db)
    lock.acquire(0)
    try:
        proc = env.run("sync", "--wait", "120", background=True)
        time.sleep(1.5)  # started and waiting for the lock
        assert proc.poll() is None
        elapsed, out, err = stop(proc, signal.SIGINT)
    finally:
        lock.release()
    assert proc.returncode == 130, err
    assert elapsed < STOP_WITHIN
    assert "interrupted while waiting for another sync to finish; nothing was read" in err
    assert env.sandbox.requests() == []
