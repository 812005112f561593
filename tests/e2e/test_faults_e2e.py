"""Faults: 429s, 5xx bursts, dropped connections, malformed pages, slow responses; the store converges."""

from __future__ import annotations

import pytest

from okrsync.sandbox import Sandbox

from .conftest import NOW, Env, snapshot

pytestmark = pytest.mark.e2e

READ_ONLY = """\
period: {period}
sources:
  jira: {{type: jira, url: "{jira}", email: bot@acme.example, projects: [APP, OPS, OKR], retry_backoff: 0.01{extra}}}
  github: {{type: github, url: "{github}", repos: [acme/web, acme/api], retry_backoff: 0.01{extra}}}
  servicenow: {{type: servicenow, url: "{servicenow}", retry_backoff: 0.01{extra}}}
  pagerduty: {{type: pagerduty, url: "{pagerduty}", retry_backoff: 0.01{extra}}}
objectives:
  - id: O1
    title: t
    key_results:
      - {{id: KR1, title: a, metric: deployment_frequency, select: {{source: github, environment: production}}, target: 3}}
      - {{id: KR2, title: b, metric: count, select: {{source: jira, jql: 'project = APP AND issuetype = Bug'}}, target: 9}}
      - {{id: KR3, title: c, metric: first_contact_resolution, select: {{source: servicenow}}, target: 90%}}
      - {{id: KR4, title: d, metric: mtta, select: {{source: pagerduty}}, target: 5}}
"""


@pytest.fixture
def pair(tmp_path, store_kind):
    """Two identical worlds: one behaves (into SQLite), one misbehaves (into the store under test)."""
    envs = []
    for name in ("clean", "faulty"):
        sb = Sandbox(seed=42, scale=300, now=NOW, fault_seed=7)
        sb.start()
        d = tmp_path / name
        d.mkdir()
        e = Env(sb, d, "sqlite" if name == "clean" else store_kind)
        envs.append(e)
    yield envs
    for e in envs:
        e.sandbox.stop()


def test_a_run_under_faults_converges_to_the_clean_store(pair):
    clean, faulty = pair
    clean.write_workspace(READ_ONLY)
    faulty.write_workspace(READ_ONLY, max_attempts=10)
    f = faulty.sandbox.faults
    f.rate_limit(0.10, retry_after=0, method="GET")
    f.drop(0.03, method="GET")
    f.malformed(0.03, method="GET")
    f.slow(0.05, fraction=0.05, method="GET")
    # GitHub deployments are POSTed GraphQL queries (safe to retry): the same kinds of faults
    f.rate_limit(0.10, retry_after=0, method="POST", path="/graphql")
    f.drop(0.05, method="POST", path="/graphql")
    f.malformed(0.10, method="POST", path="/graphql")
    for system in ("jira", "github", "servicenow", "pagerduty"):
        f.server_errors(3, system=system, method="GET", after=2)
    r = clean.run("sync")
    assert r.returncode == 0, r.stderr
    r = faulty.run("sync")
    assert r.returncode == 0, r.stderr
    injected = [q for q in faulty.sandbox.requests() if q.get("fault")]
    # the faults really happened (fewer requests than before GraphQL: deployment statuses no longer cost a GET each)
    assert len(injected) >= 12
    assert snapshot(faulty.target) == snapshot(clean.target)
    as_of = {"OKRSYNC_NOW": NOW.isoformat()}
    keys = ("value", "baseline", "target", "progress", "score", "status", "items")
    same = lambda krs: {i: {k: v[k] for k in keys} for i, v in krs.items()}  # noqa: E731
    assert same(clean.krs(env=as_of)) == same(faulty.krs(env=as_of))


def test_past_the_retry_bound_the_source_fails_cleanly_and_resumes(env):
    env.write_workspace(READ_ONLY, max_attempts=3)
    env.sandbox.faults.server_errors(1000, system="jira", path="/rest/api/3/search", after=1)
    r = env.run("sync")
    assert r.returncode == 1
    errors = [line for line in r.stderr.splitlines() if line.startswith("okrsync: ")]
    assert len(errors) == 1, r.stderr
    assert errors[0].startswith("okrsync: jira: HTTP 50")  # the burst cycles 500, 502, 503
    assert errors[0].endswith(f" from {env.sandbox.urls['jira']}/rest/api/3/search/jql, gave up after 3 attempts")
    assert "Traceback" not in r.stderr
    assert "run 1: partial" in r.stdout
    cursors = dict(env.query("SELECT source || '/' || stream, cursor FROM sync_state"))
    assert cursors.get("jira/issues") is None  # not advanced past unseen data
    assert cursors["github/issues"] and cursors["servicenow/incidents"] and cursors["pagerduty/incidents"]
    saved = env.query("SELECT count(*) FROM issues WHERE source = 'jira'")[0][0]
    assert saved == 100  # the one page read before the failure was kept
    env.sandbox.faults.clear()
    r = env.run("sync")
    assert r.returncode == 0, r.stderr
    assert env.query("SELECT count(*) FROM issues WHERE source = 'jira'")[0][0] == len(
        env.sandbox.world.jira_issues())
