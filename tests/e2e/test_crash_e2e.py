"""A run SIGKILLed at many points, then run again, converges: no duplicates, nothing lost, one comment."""

from __future__ import annotations

import signal
import time

import pytest

from okrsync.sandbox import Sandbox

from .conftest import NOW, Env, snapshot
from .test_faults_e2e import READ_ONLY

pytestmark = pytest.mark.e2e


def kill_after(env: Env, requests: int, timeout: float = 60.0) -> bool:
    """Start a sync; SIGKILL it once the sandbox has seen `requests` requests. True if it was killed."""
    before = len(env.sandbox.requests())
    proc = env.run("sync", background=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            proc.communicate()
            return False  # finished before the kill point
        if len(env.sandbox.requests()) - before >= requests:
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
            return True
        time.sleep(0.005)
    proc.kill()
    raise AssertionError("the sync neither finished nor reached the kill point")


@pytest.fixture
def reference(tmp_path):
    sb = Sandbox(seed=42, scale=300, now=NOW)
    sb.start()
    d = tmp_path / "reference"
    d.mkdir()
    e = Env(sb, d)
    e.write_workspace(READ_ONLY)
    r = e.run("sync")
    assert r.returncode == 0, r.stderr
    yield e
    sb.stop()


def test_killed_at_many_points_then_rerun_converges(env, reference):
    env.write_workspace(READ_ONLY)
    # slow, jittery responses so the kills land mid-page, between pages, between streams and sources
    env.sandbox.faults.slow(0.01, fraction=0.5, method="GET")
    kills = 0
    for point in (2, 5, 9, 14, 20, 33, 50, 80, 120):
        kills += kill_after(env, point)
    assert kills >= 6
    env.sandbox.faults.clear()
    r = env.run("sync")
    assert r.returncode == 0, r.stderr
    assert snapshot(env.target) == snapshot(reference.target)  # PostgreSQL: the same as SQLite's
    as_of = {"OKRSYNC_NOW": NOW.isoformat()}
    values = lambda e: {i: (k["value"], k["items"], k["status"]) for i, k in e.krs(env=as_of).items()}  # noqa: E731
    assert values(env) == values(reference)


def test_killed_during_write_back_never_posts_a_second_comment(env):
    sb = env.sandbox
    # the comment goes out fast; the property write after it hangs, and the sync is killed there:
    # the comment exists in Jira but okrsync never recorded it
    sb.faults.slow(20, system="jira", method="PUT", path="/rest/api/2/issue/OKR-1/properties")
    proc = env.run("sync", background=True)
    deadline = time.monotonic() + 60
    while not sb.world.jira_comments("OKR-1") and time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(proc.communicate())
        time.sleep(0.01)
    time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert len(sb.world.jira_comments("OKR-1")) == 1
    sb.faults.clear()
    for _ in range(2):
        r = env.run("sync")
        assert r.returncode == 0, r.stderr
    ours = [c for c in sb.world.jira_comments("OKR-1") if "okrsync:KR1" in c["body"].replace("\\", "")]
    assert len(ours) == 1
    assert sb.world.jira_property("OKR-1", "okrsync.status")["kr"] == "KR1"
    body = sb.world.github_issue("acme/okrs", 1)["body"]
    assert body.count("<!-- okrsync:KR1 -->") == 1
