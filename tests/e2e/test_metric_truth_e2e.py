"""Metric truth through the real CLI against the sandbox: deploys counted once, warnings, lines to hold."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

pytestmark = pytest.mark.e2e

WORKSPACE = """\
period: {period}
sources:
  jira: {{type: jira, url: "{jira}", email: bot@acme.example, projects: [APP, OPS, OKR], retry_backoff: 0.01}}
  github: {{type: github, url: "{github}", repos: [acme/web, acme/api], deploy_workflows: [deploy.yml],
            retry_backoff: 0.01}}
  servicenow: {{type: servicenow, url: "{servicenow}", retry_backoff: 0.01}}
  pagerduty: {{type: pagerduty, url: "{pagerduty}", retry_backoff: 0.01}}
objectives:
  - id: O1
    title: Delivery
    key_results:
      - {{id: DF, title: Release frequency, metric: deployment_frequency,
          select: {{source: github, environment: production}}, target: 3}}
      - {{id: TYPO, title: Payments uptime, metric: availability,
          select: {{source: servicenow, service: Payment API}}, target: 99.9%}}
      - {{id: FCR, title: First-call resolution, metric: first_contact_resolution, select: {{source: servicenow}},
          target: 90%}}
"""


def _finished_in(t: datetime | None, lo: datetime, hi: datetime) -> bool:
    return t is not None and lo <= t < hi


def test_a_deploy_workflow_that_also_creates_deployments_counts_each_deploy_once(env):
    env.write_workspace(WORKSPACE)
    r = env.run("sync")
    assert r.returncode == 0, r.stderr
    w = env.sandbox.world
    c = env.computed()
    krs, lo, hi = c.krs, c.lo, c.hi

    deps = [d for d in w.github_deployments(environment="production") if d["repo"] in ("acme/web", "acme/api")]
    ok = [d for d in deps if d["final_state"] == "success" and _finished_in(d["finished"], lo, hi)]
    # a run of deploy.yml (environment production) is the same deploy as a deployment of its commit that
    # finished within an hour; any other successful run is a deploy of its own
    runs = [x for x in w.github_workflow_runs() if x["workflow"] == "deploy.yml" and x["repo"] in ("acme/web", "acme/api")
            and x["conclusion"] == "success" and _finished_in(x["updated"], lo, hi)]
    hour = timedelta(hours=1)
    lone = [x for x in runs if not any(d["repo"] == x["repo"] and d["sha"] == x["head_sha"] and d["finished"]
                                       and d["final_state"] in ("success", "failure", "error")
                                       and abs(d["finished"] - x["updated"]) <= hour for d in deps)]
    weeks = (hi - lo).total_seconds() / 86400 / 7
    if (hi - lo) > timedelta(days=7):  # minutes into a quarter nothing may have been deployed yet
        assert len(lone) < len(runs), "the sandbox's deploy workflow also created deployments this quarter"
    assert krs["DF"]["items"] == len(ok) + len(lone)
    assert krs["DF"]["value"] == pytest.approx((len(ok) + len(lone)) / weeks)

    # the explain output says how many were merged
    r = env.run("explain", "DF")
    assert r.returncode == 0, r.stderr
    assert f"merged_twins: {len(runs) - len(lone)}" in r.stdout


def test_a_selector_typo_warns_in_sync_status_and_the_document(env):
    env.write_workspace(WORKSPACE)
    r = env.run("sync")
    assert r.returncode == 0, r.stderr
    line = "warning: TYPO: select.service 'Payment API' matches no servicenow record (known: "
    assert line in r.stdout
    krs = env.krs()
    assert krs["TYPO"]["warnings"][0].startswith("select.service 'Payment API' matches no servicenow record")
    assert "warnings" not in krs["DF"]
    r = env.run("status")
    assert r.returncode == 0 and line in r.stderr


def test_a_share_without_baseline_is_a_line_to_hold(env):
    env.write_workspace(WORKSPACE)
    assert env.run("sync").returncode == 0
    k = env.krs()["FCR"]
    assert k["baseline"] is None and k["direction"] == "maintain_above"
    if k["value"] is not None:  # minutes into a quarter nothing may be resolved yet
        holds = k["value"] >= 0.9
        assert (k["score"], k["status"]) == ((1.0, "on_track") if holds else (0.0, "off_track"))


TEAMS_WORKSPACE = """\
period: {period}
sources:
  jira: {{type: jira, url: "{jira}", email: bot@acme.example, projects: [APP, OPS], retry_backoff: 0.01}}
  github: {{type: github, url: "{github}", repos: [acme/web, acme/api], retry_backoff: 0.01}}
  servicenow: {{type: servicenow, url: "{servicenow}", retry_backoff: 0.01}}
  pagerduty: {{type: pagerduty, url: "{pagerduty}", retry_backoff: 0.01}}
teams:
  web: {{repos: [acme/web], projects: [APP]}}
  ops: {{projects: [OPS]}}
objectives:
  - id: O1
    title: Web
    team: web
    key_results:
      - {{id: ISSUES, title: Web issues, metric: count, select: {{source: jira, team: web}}, target: 10}}
      - {{id: DEPLOYS, title: Web deploys, metric: deployment_frequency,
          select: {{source: github, environment: production, team: web}}, target: 3}}
      - {{id: OPSI, title: Ops issues, metric: count, select: {{source: jira, team: ops}}, target: 10, team: ops}}
"""


def test_teams_select_and_filter_through_the_cli(env):
    env.write_workspace(TEAMS_WORKSPACE)
    assert env.run("sync").returncode == 0
    w = env.sandbox.world
    c = env.computed()
    krs, lo, hi = c.krs, c.lo, c.hi
    app = [i for i in w.jira_issues(project="APP") if lo <= i["created"] < hi]
    assert krs["ISSUES"]["value"] == len(app) and krs["ISSUES"]["team"] == "web"
    web = [d for d in w.github_deployments(repo="acme/web", environment="production")
           if d["final_state"] == "success" and d["finished"] and lo <= d["finished"].replace(microsecond=0) < hi]
    assert krs["DEPLOYS"]["items"] == len(web)
    r = env.run("status", "--json", "--team", "ops")
    assert r.returncode == 0, r.stderr
    only = json.loads(r.stdout)
    assert [[k["id"] for k in o["key_results"]] for o in only["objectives"]] == [["OPSI"]]
