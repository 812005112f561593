"""Parallel reads within each API's manners: a whole sync never has more requests in flight than a source allows."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Iterator

import pytest

from okrsync.sandbox import Sandbox

from . import test_crash_e2e as crash
from .conftest import NOW, Env, snapshot
from .test_crash_e2e import kill_after
from .test_faults_e2e import READ_ONLY

pytestmark = pytest.mark.e2e
reference = crash.reference  # the store one clean sync makes


def test_a_sync_keeps_every_source_within_its_concurrency(env):
    env.sandbox.set_latency(5)
    env.write_workspace(concurrency="2")
    r = env.run("sync")
    assert r.returncode == 0, r.stderr
    peaks = env.sandbox.peak_in_flight()
    assert set(peaks) >= {"jira", "github", "servicenow", "pagerduty"}
    assert all(1 <= p <= 2 for p in peaks.values()), peaks


def test_parallel_reads_killed_mid_read_converge_to_the_clean_store(env, reference):
    """Jira Cloud's bulkfetch batches, GitHub's numbered pages and GraphQL deployments, ServiceNow's ranges and
    PagerDuty's windows, SIGKILLed at many points: the rerun
    converges to a store synced in one go (records and checkpoint commit together; the cursor never passes a
    batch that is not written)."""
    env.write_workspace(READ_ONLY, page_size="40")  # small pages: every source's read is many pages, in parallel
    env.sandbox.set_latency(3, 6)  # requests overlap, so the kills land with batches in flight
    kills = 0
    for point in (3, 6, 10, 15, 22, 30, 45, 70, 100):
        kills += kill_after(env, point)
    assert kills >= 5
    env.sandbox.set_latency(0)
    r = env.run("sync")
    assert r.returncode == 0, r.stderr
    assert snapshot(env.target) == snapshot(reference.target)
    # every parallel path is what such a first read uses: checked on one uninterrupted first sync into a fresh
    # store (where the kills land under load decides which paths the killed runs reached)
    env.sandbox.reset_log()
    r = env.run("sync", "--db", str(env.dir / "fresh.db"))
    assert r.returncode == 0, r.stderr
    log = env.sandbox.requests()
    assert any(e["path"].endswith("/bulkfetch") for e in log)  # Jira Cloud: ids, then bulkfetch batches
    assert any(e["path"] == "/graphql" for e in log)  # GitHub deployments
    assert any("sys_updated_on<" in str(e["args"].get("sysparm_query")) for e in log)  # ServiceNow ranges
    assert len({e["args"].get("since") for e in log if e["path"] == "/incidents"}) > 1  # PagerDuty windows


RUNS_ONLY = """\
period: {period}
sources:
  github: {{type: github, url: "{github}", repos: [acme/web], deployments: false, pull_requests: false,
            releases: false, deploy_workflows: [deploy.yml], retry_backoff: 0.01{extra}}}
objectives:
  - id: O1
    title: t
    key_results:
      - {{id: KR1, title: a, metric: deployment_frequency, select: {{source: github, environment: production}}, target: 3}}
"""


@contextmanager
def synced_once(tmp_path: Path, template: str, sandbox: dict, **workspace: str) -> Iterator[tuple[Sandbox, Env, Env]]:
    """A sandbox of the test's own, and two workspaces on it: `ref` synced once cleanly, `env` not synced yet."""
    sb = Sandbox(seed=42, now=NOW, **sandbox)
    sb.start()
    try:
        (tmp_path / "ref").mkdir()
        (tmp_path / "killed").mkdir()
        ref, env = Env(sb, tmp_path / "ref"), Env(sb, tmp_path / "killed")
        for e in (ref, env):
            e.write_workspace(template, **workspace)
        r = ref.run("sync")
        assert r.returncode == 0, r.stderr
        yield sb, ref, env
    finally:
        sb.stop()


def killed_then_converged(sb: Sandbox, ref: Env, env: Env, points: tuple[int, ...], min_kills: int) -> None:
    """SIGKILL syncs at each request count in `points` (requests overlapping, so kills land with pages in
    flight), then one clean rerun must leave the store `ref` holds."""
    sb.set_latency(3, 6)
    kills = sum(kill_after(env, point) for point in points)
    assert kills >= min_kills
    sb.set_latency(0)
    r = env.run("sync")
    assert r.returncode == 0, r.stderr
    assert snapshot(env.target) == snapshot(ref.target)


def test_workflow_runs_read_by_numbered_pages_killed_mid_read_converge(tmp_path):
    """A deploy workflow's runs past the first page are read by number in parallel; SIGKILLed at many points, the
    rerun converges to the store one clean sync makes (the stream commits a workflow's runs once all are read).
    A sandbox of its own, larger than the shared one, read from a fixed 170 days back (not the previous period,
    which is short at a quarter start): acme/web's deploy workflow has three pages of runs or more."""
    with synced_once(tmp_path, RUNS_ONLY, {"scale": 4000},
                     sync_from=(NOW - timedelta(days=170)).date().isoformat()) as (sb, ref, env):
        runs = [e for e in sb.requests("github") if e["path"].endswith("/runs")]
        assert len(runs) >= 3 and not any("after" in e["args"] for e in runs[1:])  # pages 2.. by number
        # the first points land in the issues stream and the runs after it; once the issues are read, a rerun
        # starts with the runs, so the later, small points land in their pages and in the comparisons after them
        killed_then_converged(sb, ref, env, (5, 14, 24, 26, 28, 2, 3, 4, 6, 10), min_kills=3)


JIRA_DC_ONLY = """\
period: {period}
sources:
  jira: {{type: jira, url: "{jira}", projects: [APP, OPS], retry_backoff: 0.01{extra}}}
objectives:
  - id: O1
    title: t
    key_results:
      - {{id: KR1, title: a, metric: done_ratio, select: {{source: jira, project: APP}}, target: 1}}
"""


def test_jira_data_center_startat_pages_killed_mid_read_converge(tmp_path):
    """Data Center reads startAt pages in parallel within its search window; SIGKILLed at many points, the rerun
    converges to the store one clean sync makes (the checkpoint passes a page only once every page before it is
    written)."""
    with synced_once(tmp_path, JIRA_DC_ONLY, {"scale": 300, "jira_mode": "server"}, page_size="10",
                     concurrency="4") as (sb, ref, env):
        searches = [e for e in sb.requests("jira") if e["path"] == "/rest/api/2/search"]
        assert len({e["body"] for e in searches}) >= 5 and len(snapshot(ref.target)["issues"]) > 100
        killed_then_converged(sb, ref, env, (2, 3, 4, 5, 6, 8, 10), min_kills=3)
        assert sb.peak_in_flight()["jira"] > 1  # with latency, the startAt pages overlapped
