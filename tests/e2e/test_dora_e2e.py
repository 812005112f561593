"""DORA metrics through the real CLI against the sandbox, computed independently from the seeded world
(dora.dev definitions; incidents attributed by DevLake's rule: the latest successful deployment before)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

pytestmark = pytest.mark.e2e

WORKSPACE = """\
period: {period}
sources:
  jira: {{type: jira, url: "{jira}", email: bot@acme.example, projects: [APP], retry_backoff: 0.01}}
  github: {{type: github, url: "{github}", repos: [acme/web, acme/api], retry_backoff: 0.01}}
  servicenow: {{type: servicenow, url: "{servicenow}", retry_backoff: 0.01}}
  pagerduty: {{type: pagerduty, url: "{pagerduty}", retry_backoff: 0.01}}
objectives:
  - id: O1
    title: Delivery
    key_results:
      - {{id: FDRT, title: Recovery, metric: failed_deployment_recovery_time,
          select: {{source: github, environment: production}}, target: 4}}
      - {{id: REWORK, title: Rework, metric: deployment_rework_rate,
          select: {{source: github, environment: production}}, target: 10%}}
      - {{id: CFR, title: Change failures, metric: change_failure_rate, failures: both,
          incidents: {{source: pagerduty}}, select: {{source: github, environment: production}}, target: 15%}}
"""


def _sec(t: datetime | None) -> datetime | None:
    return None if t is None else t.replace(microsecond=0)  # GitHub and PagerDuty render whole seconds


def _median(xs: list[float]) -> float | None:
    xs = sorted(xs)
    n = len(xs)
    return None if not n else (xs[(n - 1) // 2] + xs[n // 2]) / 2


def _approx(x: float | None):
    return None if x is None else pytest.approx(x)


def test_dora_metrics_equal_the_world(env):
    env.write_workspace(WORKSPACE)
    r = env.run("sync")
    assert r.returncode == 0, r.stderr
    w = env.sandbox.world
    c = env.computed()
    krs, lo, hi = c.krs, c.lo, c.hi

    deps = sorted(({**d, "finished": _sec(d["finished"])} for d in w.github_deployments(environment="production")
                   if d["repo"] in ("acme/web", "acme/api") and d["finished"]
                   and d["final_state"] in ("success", "failure", "error")), key=lambda d: d["finished"])

    def next_success(after: datetime, repo: str):
        return next((d for d in deps if d["finished"] > after and d["final_state"] == "success"
                     and d["repo"] == repo), None)

    def in_window(d) -> bool:
        return lo <= d["finished"] < hi

    # incidents -> the latest successful deployment that finished before each opened
    blamed: set[int] = set()
    for x in w.pagerduty_incidents():
        opened = _sec(x["created"])
        if not (lo - timedelta(days=92) <= opened < hi):
            continue
        before = [d for d in deps if d["final_state"] == "success" and d["finished"] <= opened]
        if before:
            blamed.add(before[-1]["id"])

    # failed deployment recovery time: failed (or blamed) deployments in the window, hours to the next success
    hours = []
    for d in deps:
        if in_window(d) and (d["final_state"] != "success"):
            fix = next_success(d["finished"], d["repo"])
            if fix is not None:
                hours.append((fix["finished"] - d["finished"]).total_seconds() / 3600)
    assert krs["FDRT"]["value"] == _approx(_median(hours))

    # rework: successful deployments from a hotfix branch / successful deployments
    ok = [d for d in deps if in_window(d) and d["final_state"] == "success"]
    rework = [d for d in ok if d["ref"].startswith("hotfix/")]
    assert krs["REWORK"]["value"] == _approx(len(rework) / len(ok) if ok else None)
    if (hi - lo) > timedelta(days=14):
        assert rework, "the sandbox ships hotfixes after failed deployments"

    # change failure rate, failures: both
    fin = [d for d in deps if in_window(d)]
    failed = [d for d in fin if d["final_state"] != "success" or d["id"] in blamed]
    assert krs["CFR"]["value"] == _approx(len(failed) / len(fin) if fin else None)
    assert krs["CFR"]["items"] == len(fin)
