"""`okrsync run`: runs on a schedule, a failed run backs off without ending the loop, SIGTERM stops cleanly."""

from __future__ import annotations

import signal
import time

import pytest

from .test_faults_e2e import READ_ONLY

pytestmark = pytest.mark.e2e


def test_every_runs_repeatedly_and_a_failure_backs_off(env):
    env.write_workspace(READ_ONLY)
    # the first run fails (ServiceNow answers 500 for good), later ones succeed
    env.sandbox.faults.server_errors(6, system="servicenow")
    r = env.run("run", "--every", "1s", "--max-runs", "3", timeout=180)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "run failed (exit 1); retry at " in out
    assert out.count("next run at ") >= 1
    assert "okrsync: servicenow: HTTP 50" in r.stderr
    statuses = [s for (s,) in env.query("SELECT status FROM runs ORDER BY id")]
    assert statuses[0] == "partial" and statuses[-1] == "ok" and len(statuses) == 3


def test_sigterm_finishes_the_page_saves_and_exits_0(env):
    # one request at a time (the search pages as they are) and each slow: the signal lands while a page is in
    # flight; with parallel reads ~300 issues are read in milliseconds once the id listing is back
    env.write_workspace(READ_ONLY, concurrency="1")
    env.sandbox.faults.slow(0.3, system="jira", method="POST", path="/rest/api/3/")
    proc = env.run("run", "--every", "15m", background=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        searches = [q for q in env.sandbox.requests("jira") if "search" in q["path"]]
        if len(searches) >= 2:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "SIGTERM: finishing the current page, then stopping" in err
    assert "Traceback" not in err
    pending, cursor = env.query("SELECT pending, cursor FROM sync_state WHERE source = 'jira' AND stream = 'issues'")[0]
    saved = env.query("SELECT count(*) FROM issues WHERE source = 'jira'")[0][0]
    assert cursor is None and pending and saved >= 100  # pages kept, the read resumes next time
    env.sandbox.faults.clear()
    r = env.run("run", "--once")
    assert r.returncode == 0, r.stderr
    assert env.query("SELECT count(*) FROM issues WHERE source = 'jira'")[0][0] == len(
        env.sandbox.world.jira_issues())
