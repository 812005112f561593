"""DORA metrics as dora.dev defines them today, on hand-built timelines: failed deployment recovery time,
deployment rework rate, change failure rate from incidents (DevLake's attribution rule). Exact values."""

from datetime import datetime, timezone

import pytest

from okrsync.mappings.deploys import Deploy, attribute
from tests.builders import deployment, incident, load, pr
from tests.unit.test_metrics import run

UTC = timezone.utc


def _d(**kw):
    return deployment(**kw)


def timeline():
    # acme/web production, in finish order (the window is the quarter: Oct 1 -> Nov 15)
    return [
        _d(id="w0", sha="a0", finished="2026-09-30 10:00", ref="main"),                       # before the window
        _d(id="w1", sha="a1", finished="2026-10-05 10:00", status="failure", ref="main"),     # fixed by w2: 4 h
        _d(id="w2", sha="a2", finished="2026-10-05 14:00", ref="main"),
        _d(id="w3", sha="a3", finished="2026-10-10 09:00", status="error", ref="main"),       # two in a row:
        _d(id="w4", sha="a4", finished="2026-10-10 10:00", status="failure", ref="main"),     # both fixed by w5
        _d(id="w5", sha="a5", finished="2026-10-10 12:00", ref="hotfix/login"),               # 3 h and 2 h
        _d(id="w6", sha="a6", finished="2026-10-20 10:00", ref="main"),
        _d(id="w7", sha="a7", finished="2026-11-14 10:00", status="failure", ref="main"),     # not recovered yet
        # another repository: its success does not recover acme/web
        _d(id="p1", sha="b1", finished="2026-10-05 11:00", repo="acme/api", ref="main"),
        # staging is another environment
        _d(id="s1", sha="c1", finished="2026-10-05 12:00", environment="staging", ref="main"),
    ]


def test_failed_deployment_recovery_time(store):
    load(store, timeline())
    k = run(store, "{id: KR1, title: t, metric: failed_deployment_recovery_time, "
                   "select: {source: github, environment: production, repo: acme/web}, target: 4}")
    assert k.value == pytest.approx(3.0)  # median of 4, 3, 2
    assert k.items == 3
    assert k.detail["unrecovered"] == 1
    assert (k.direction, k.status) == ("maintain_below", "on_track")
    k = run(store, "{id: KR1, title: t, metric: failed_deployment_recovery_time, aggregate: mean, "
                   "select: {source: github, environment: production, repo: acme/web}, target: 4}")
    assert k.value == pytest.approx(3.0)
    k = run(store, "{id: KR1, title: t, metric: failed_deployment_recovery_time, aggregate: max, "
                   "select: {source: github, environment: production}, target: 4}")
    assert k.value == pytest.approx(4.0)


def test_deployment_rework_rate_by_ref_and_pr_label(store):
    load(store, timeline() + [
        # w6 shipped a PR labelled hotfix
        pr(7, merge_sha="a6", merged_at="2026-10-20 09:00", labels=["hotfix"]),
    ])
    store.db.execute("INSERT INTO deployment_commits (source, deployment_id, sha) VALUES ('github', 'w6', 'a6')")
    k = run(store, "{id: KR1, title: t, metric: deployment_rework_rate, "
                   "select: {source: github, environment: production, repo: acme/web}, target: 10%}")
    # successes in the window: w2, w5, w6 -> w5 (hotfix/ ref) and w6 (hotfix PR) are rework
    assert k.value == pytest.approx(2 / 3)
    assert (k.items, k.detail["rework"]) == (3, 2)
    k = run(store, "{id: KR1, title: t, metric: deployment_rework_rate, rework: {labels: [], refs: []}, "
                   "select: {source: github, environment: production, repo: acme/web}, target: 10%}")
    assert k.value == 0.0


def test_change_failure_rate_from_incidents_by_devlakes_rule(store):
    load(store, timeline() + [
        # opened after w2 finished and before w3: attributed to w2 (the latest success before it)
        incident(source="pagerduty", opened="2026-10-06 08:00", resolved="2026-10-06 09:00", service="web"),
        # opened after w6: attributed to w6
        incident(source="pagerduty", opened="2026-10-21 08:00", resolved="2026-10-21 09:00", service="web"),
        # another service: not selected
        incident(source="pagerduty", opened="2026-10-22 08:00", resolved="2026-10-22 09:00", service="db"),
    ])
    base = ("{id: KR1, title: t, metric: change_failure_rate, target: 15%%, failures: %s, "
            "incidents: {source: pagerduty, service: web}, "
            "select: {source: github, environment: production, repo: acme/web}}")
    finished = 7  # w1..w7 in the window
    k = run(store, base % "incidents")
    assert (k.value, k.items) == (pytest.approx(2 / finished), finished)
    k = run(store, base % "both")   # w1, w3, w4, w7 failed + w2, w6 blamed
    assert k.value == pytest.approx(6 / finished)
    k = run(store, "{id: KR1, title: t, metric: change_failure_rate, target: 15%, "
                   "select: {source: github, environment: production, repo: acme/web}}")
    assert k.value == pytest.approx(4 / finished)


def test_an_attributed_incident_makes_a_deployment_failed_for_recovery_and_rework(store):
    load(store, timeline() + [incident(source="pagerduty", opened="2026-10-21 08:00", service="web")])
    k = run(store, "{id: KR1, title: t, metric: failed_deployment_recovery_time, target: 4, aggregate: max, "
                   "incidents: {source: pagerduty}, select: {source: github, environment: production, repo: acme/web}}")
    # w6 (blamed) recovers only with... nothing after it but the failed w7: unrecovered; the others as before
    assert (k.value, k.detail["unrecovered"]) == (pytest.approx(4.0), 2)
    k = run(store, "{id: KR1, title: t, metric: deployment_rework_rate, target: 10%, rework: {labels: [], refs: []}, "
                   "incidents: {source: pagerduty}, select: {source: github, environment: production, repo: acme/web}}")
    assert k.value == 0.0  # no success after the incident yet


def test_explicit_attribution_by_an_incident_field(store):
    load(store, timeline() + [
        incident(source="servicenow", opened="2026-10-25 08:00", raw={"u_change": "a2"}),  # too short for a sha
        incident(source="servicenow", opened="2026-10-25 09:00", raw={"u_change": "w5"}),  # a deployment id
    ])
    k = run(store, "{id: KR1, title: t, metric: change_failure_rate, target: 15%, failures: incidents, "
                   "incidents: {source: servicenow}, attribution: u_change, "
                   "select: {source: github, environment: production, repo: acme/web}}")
    assert k.value == pytest.approx(1 / 7)


@pytest.mark.parametrize("incidents,expected", [
    ([("2026-10-05 12:00:00.000Z", None)], ["w2"]),          # the latest success finished before it
    ([("2026-10-05 09:00:00.000Z", None)], ["w0"]),
    ([("2026-09-01 00:00:00.000Z", None)], []),              # nothing before it
    ([("2026-10-05 12:00:00.000Z", "w1")], ["w1"]),          # named by id, even a failed one
    ([("2026-10-05 12:00:00.000Z", "a1xxxxx")], []),         # a sha prefix must match
    ([("2026-10-05 12:00:00.000Z", "")], ["w2"]),            # an empty field falls back to the rule
])
def test_attribute(incidents, expected):
    def d(id_, status, at):
        return Deploy(0, id_, "acme/web", "production", status, datetime.fromisoformat(at).replace(tzinfo=UTC),
                      None, "main")
    deploys = [d("w0", "success", "2026-09-30 10:00"), d("w1", "failure", "2026-10-05 10:00"),
               d("w2", "success", "2026-10-05 11:00")]
    assert [x.id for _, x in attribute(deploys, incidents)] == expected

