"""Every metric of DESIGN §4 over records loaded with the fixture builder: exact values, windows, empty sets."""

from datetime import datetime, timezone

import pytest

from okrsync.config.workspace import load_workspace_text
from okrsync.engine.compute import compute
from tests.builders import deployment, incident, issue, load, mark_synced, pr, t

NOW = datetime(2026, 11, 15, tzinfo=timezone.utc)  # Q4 window: Oct 1 -> Nov 15 = 45 days
WEEKS = 45 / 7

SOURCES = """\
period: 2026-Q4
sources:
  jira: {type: jira, url: https://acme.atlassian.net}
  github: {type: github, repos: [acme/web]}
  servicenow: {type: servicenow, url: https://acme.service-now.com}
  pagerduty: {type: pagerduty}
"""


def run(store, kr: str, now=NOW, extra: str = ""):
    text = SOURCES + extra + "objectives:\n  - id: O1\n    title: t\n    key_results:\n      - " + kr.strip().replace(
        "\n", "\n        ") + "\n"
    ws = load_workspace_text(text).workspace
    for s in ws.sources:
        if store.get_state(s, "items")["cursor"] is None:
            mark_synced(store, s)
    return compute(ws, store, now).kr(ws.objectives[0].key_results[0].id)


# -- count ---------------------------------------------------------------------------------------
def test_count_created_in_window(store):
    load(store, [issue(created="2026-09-30 23:59"), issue(created="2026-10-01 00:00"), issue(created="2026-11-14 10:00"),
                 issue(created="2026-10-20", type="Bug"), issue(created="2026-10-21", type="Bug", source="jira")])
    k = run(store, "{id: KR1, title: t, metric: count, select: {source: jira}, target: 10}")
    assert (k.value, k.items) == (4.0, 4)
    k = run(store, "{id: KR1, title: t, metric: count, select: {source: jira, type: bug}, target: 10}")
    assert k.value == 2.0


def test_count_by_resolved(store):
    load(store, [issue(created="2026-08-01", resolved="2026-10-05", status_category="done"),
                 issue(created="2026-10-02", resolved=None), issue(created="2026-10-02", resolved="2026-11-01")])
    k = run(store, "{id: KR1, title: t, metric: count, count_by: resolved, select: {source: jira}, target: 10}")
    assert k.value == 2.0


# -- done ratio / points --------------------------------------------------------------------------
@pytest.fixture
def epic(store):
    load(store, [
        issue("APP-1", parent="APP-100", status_category="done", story_points=3),
        issue("APP-2", parent="APP-100", status_category="todo", story_points=5),
        issue("APP-3", parent="APP-100", status_category="in_progress", story_points=2),
        issue("APP-4", parent="APP-100", status_category="done", story_points=None),
        issue("APP-5", parent="APP-200", status_category="done", story_points=8),
        issue("APP-6", parent="APP-100", status_category="done", story_points=1, created="2025-01-01"),  # old child counts
    ])


@pytest.mark.parametrize("kr,value,items", [
    ("metric: done_ratio", 3 / 5, 5),
    ("metric: done_ratio, weighting: status", (1 + 0 + 0.5 + 1 + 1) / 5, 5),
    ("metric: points_done_ratio", 4 / 11, 5),
    ("metric: points_done", 4.0, 5),
    ("metric: sum, field: story_points", 11.0, 4),
    ("metric: mean, field: story_points", 11 / 4, 4),
    ("metric: mean, field: story_points, aggregate: median", 2.5, 4),
])
def test_scope_metrics(store, epic, kr, value, items):
    k = run(store, "{id: KR1, title: t, %s, select: {source: jira, parent: APP-100}, target: 1}" % kr)
    assert k.value == pytest.approx(value)
    assert k.items == items


def test_done_ratio_of_pull_requests(store):
    load(store, [pr(1, merged_at="2026-10-03"), pr(2, closed="2026-10-04"), pr(3)])
    k = run(store, "{id: KR1, title: t, metric: done_ratio, select: {source: github, kind: pull_request}, target: 1}")
    assert k.value == pytest.approx(1 / 3)  # closed unmerged is not done


def test_sum_over_raw_path(store):
    load(store, [issue(raw={"fields": {"customfield_1": 2.5}}), issue(raw={"fields": {"customfield_1": "4"}}),
                 issue(raw={"fields": {}})])
    k = run(store, "{id: KR1, title: t, metric: sum, field: fields.customfield_1, select: {source: jira}, target: 9}")
    assert (k.value, k.items) == (6.5, 2)


def test_empty_selection_is_no_data(store, epic):
    k = run(store, "{id: KR1, title: t, metric: done_ratio, select: {source: jira, parent: NOPE-1}, target: 1}")
    assert (k.value, k.status, k.progress, k.items) == (None, "no_data", None, 0)


# -- throughput / resolution time -----------------------------------------------------------------
@pytest.fixture
def resolved(store):
    load(store, [
        issue(created="2026-10-01 00:00", resolved="2026-10-01 10:00", status_category="done"),  # 10 h
        issue(created="2026-10-02 00:00", resolved="2026-10-03 00:00", status_category="done"),  # 24 h
        issue(created="2026-09-01 00:00", resolved="2026-10-10 00:00", status_category="done"),  # 936 h
        issue(created="2026-10-05 00:00", resolved="2026-10-05 02:00", status_category="todo"),  # 2 h, resolved not done
        issue(created="2026-09-01 00:00", resolved="2026-09-20 00:00", status_category="done"),  # before the window
        issue(created="2026-10-05 00:00"),  # open
    ])


@pytest.mark.parametrize("kr,value,items", [
    ("metric: throughput", 4 / WEEKS, 4),
    ("metric: resolution_time", 17.0, 4),  # median of 2, 10, 24, 936
    ("metric: resolution_time, aggregate: mean", (10 + 24 + 936 + 2) / 4, 4),
    ("metric: resolution_time, aggregate: median_low", 10.0, 4),
    ("metric: resolution_time, aggregate: p90", 24 + (936 - 24) * 0.7, 4),
])
def test_resolution_metrics(store, resolved, kr, value, items):
    k = run(store, "{id: KR1, title: t, %s, select: {source: jira}, target: 1}" % kr)
    assert k.value == pytest.approx(value)
    assert k.items == items


def test_resolution_time_with_offsets_is_exact(store):
    # Jira's +0900 times: resolved 2026-10-02T09:30+09:00 is 00:30Z, created 2026-10-01T23:00Z
    load(store, [issue(created="2026-10-02T08:00:00+09:00", resolved="2026-10-02T09:30:00+09:00")])
    k = run(store, "{id: KR1, title: t, metric: resolution_time, select: {source: jira}, target: 1}")
    assert k.value == 1.5


# -- deployments -----------------------------------------------------------------------------------
@pytest.fixture
def deploys(store):
    load(store, [
        deployment(id="d1", created="2026-10-02 10:00", finished="2026-10-02 10:05", status="success", commits=["c1", "c2"]),
        deployment(id="d2", created="2026-10-09 10:00", finished="2026-10-09 10:10", status="failure"),
        deployment(id="d3", created="2026-10-16 10:00", finished="2026-10-16 10:05", status="success", commits=["c3"]),
        deployment(id="d4", created="2026-10-20 10:00", finished="2026-10-20 10:01", status="error"),
        deployment(id="d5", created="2026-11-14 23:00", status="in_progress"),
        deployment(id="d6", created="2026-09-25 10:00", status="success", commits=["c0"]),  # previous period
        deployment(id="d7", created="2026-10-03 10:00", status="success", environment="staging"),
        pr(1, merged_at="2026-10-02 06:05", merge_sha="c1"),  # 4 h before d1
        pr(2, merged_at="2026-10-01 10:05", merge_sha="c2"),  # 24 h
        pr(3, merged_at="2026-10-15 10:05", merge_sha="c3"),  # 24 h
        pr(4, merged_at="2026-09-25 09:00", merge_sha="c0"),  # deployed before the window
        pr(5, merged_at="2026-11-01 00:00", merge_sha="c9"),  # not deployed yet
    ])


@pytest.mark.parametrize("kr,value,items", [
    ("metric: deployment_frequency", 2 / WEEKS, 2),
    ("metric: change_failure_rate", 2 / 4, 4),
    ("metric: lead_time_for_changes", 24.0, 3),  # median of 4, 24, 24
    ("metric: lead_time_for_changes, aggregate: mean", (4 + 24 + 24) / 3, 3),
    ("metric: count", 5.0, 5),  # created in the window (in_progress included)
])
def test_delivery_metrics(store, deploys, kr, value, items):
    k = run(store, "{id: KR1, title: t, %s, select: {source: github, environment: production}, target: 1}" % kr)
    assert k.value == pytest.approx(value)
    assert k.items == items


def test_deployment_frequency_baseline_auto_and_relative_target(store, deploys):
    k = run(store, "{id: KR1, title: t, metric: deployment_frequency, select: {source: github, environment: production},"
                   " baseline: auto, target: +40%}")
    prev_weeks = 92 / 7  # [Jul 1, Oct 1): the previous period of equal length
    assert k.baseline == pytest.approx(1 / prev_weeks)
    assert k.target == pytest.approx(1.4 / prev_weeks)
    assert k.progress == pytest.approx((2 / WEEKS - 1 / prev_weeks) / (0.4 / prev_weeks))


# -- incidents -------------------------------------------------------------------------------------
@pytest.fixture
def incidents(store):
    load(store, [
        incident(opened="2026-10-01 00:00", acknowledged="2026-10-01 00:05", resolved="2026-10-01 02:00",
                 reassignment_count=0, priority="1", service="Core Network", sla_breached=False),
        incident(opened="2026-10-02 00:00", acknowledged="2026-10-02 00:30", resolved="2026-10-02 10:00",
                 reassignment_count=2, priority="2", service="Core Network", sla_breached=True),
        incident(opened="2026-10-03 00:00", acknowledged="2026-10-03 00:01", resolved="2026-10-03 03:00",
                 reassignment_count=0, priority="2", service="Email", sla_breached=False),
        incident(opened="2026-09-30 22:00", resolved="2026-10-01 01:00", reassignment_count=1, priority="1",
                 service="Core Network"),  # opened before the window, resolved inside
        incident(opened="2026-11-14 23:00", priority="3", service="Core Network"),  # still open
        incident(opened="2026-10-04 00:00", resolved="2026-10-04 01:00", status="cancelled", priority="4",
                 service="Core Network", reassignment_count=None),
    ])


@pytest.mark.parametrize("kr,value,items", [
    ("metric: time_to_restore", 3.0, 4),  # 2, 10, 3, 3 (the cancelled one is not a restore)
    ("metric: time_to_restore, aggregate: mean", (2 + 10 + 3 + 3) / 4, 4),
    ("metric: time_to_restore, aggregate: median_low", 3.0, 4),
    ("metric: mtta", 5.0, 3),  # minutes: 5, 30, 1
    ("metric: mtta, aggregate: mean", 12.0, 3),
    ("metric: first_contact_resolution", 2 / 4, 4),  # null reassignment excluded
    ("metric: sla_compliance, sla_hours: {1: 4, 2: 8}", 3 / 4, 4),  # P1: 2h ok, 3h ok; P2: 10h late, 3h ok
    ("metric: sla_compliance", 2 / 3, 3),  # from sla_breached
    ("metric: count, select: {source: servicenow, priority: [1, 2]}", 3.0, 3),
])
def test_incident_metrics(store, incidents, kr, value, items):
    sel = "" if "select:" in kr else ", select: {source: servicenow}"
    k = run(store, "{id: KR1, title: t, %s%s, target: 1}" % (kr, sel))
    assert k.value == pytest.approx(value)
    assert k.items == items


def test_availability_union_clipped_open_counts_until_now(store, incidents):
    k = run(store, "{id: KR1, title: t, metric: availability, select: {source: servicenow, service: Core Network},"
                   " target: 0.999, direction: maintain_above}")
    # down: [Sep30 22:00, Oct1 02:00] clipped to Oct1 00:00 -> 2h (overlaps the next one: union = 2 h),
    # Oct 2 00-10 -> 10 h; the P3 open since Nov 14 23:00 is no outage (priority 1-2 only); cancelled excluded
    down_h = 2 + 10
    assert k.value == pytest.approx(1 - down_h / (45 * 24))
    assert k.items == 3
    assert k.detail["outages"] == "priority 1-2"
    assert k.status == "off_track"


def test_pagerduty_priority_matches_numbers(store):
    load(store, [incident(source="pagerduty", priority="P1", opened="2026-10-02", resolved="2026-10-02 01:00"),
                 incident(source="pagerduty", priority="P3", opened="2026-10-02", resolved="2026-10-02 05:00")])
    k = run(store, "{id: KR1, title: t, metric: time_to_restore, select: {source: pagerduty, priority: 1}, target: 1}")
    assert (k.value, k.items) == (1.0, 1)


def test_time_to_restore_for_github_incident_issues(store):
    load(store, [issue(source="github", key="acme/web#1", labels=["incident"], created="2026-10-02 00:00",
                       resolved="2026-10-02 06:00", project="acme/web"),
                 issue(source="github", key="acme/web#2", labels=["bug"], created="2026-10-02 00:00",
                       resolved="2026-10-02 01:00", project="acme/web")])
    k = run(store, "{id: KR1, title: t, metric: time_to_restore, select: {source: github, labels: incident}, target: 1}")
    assert (k.value, k.items) == (6.0, 1)


# -- ratio -----------------------------------------------------------------------------------------
def test_ratio_defect_density_is_a_rate_over_the_window(store):
    # bugs created in the quarter / points done in the quarter: done work resolved before the window is not
    # in the denominator (DESIGN §4: a scope metric inside a ratio counts the items resolved in the window)
    load(store, [issue(type="Bug", created="2026-10-03"), issue(type="Bug", created="2026-10-04"),
                 issue(type="Bug", created="2026-09-04"),  # before the window
                 issue("APP-1", parent="APP-100", status_category="done", story_points=3, resolved="2026-10-10"),
                 issue("APP-2", parent="APP-100", status_category="done", story_points=1, resolved="2026-11-01"),
                 issue("APP-3", parent="APP-100", status_category="done", story_points=8, resolved="2026-09-20"),
                 issue("APP-4", parent="APP-100", status_category="todo", story_points=5)])
    k = run(store, """{id: KR1, title: t, metric: ratio,
      numerator: {metric: count, select: {source: jira, type: Bug}},
      denominator: {metric: points_done, select: {source: jira, parent: APP-100}}, baseline: 1, target: -25%}""")
    assert k.value == pytest.approx(2 / 4)
    assert k.detail["denominator"] == 4.0 and k.detail["denominator_items"] == 2
    assert k.target == pytest.approx(0.75)
    assert k.items == 2


def test_ratio_baseline_auto_uses_the_previous_quarter_for_both_parts(store):
    load(store, [issue(type="Bug", created="2026-10-03"), issue(type="Bug", created="2026-09-04"),
                 issue(type="Bug", created="2026-08-04"), issue(type="Bug", created="2026-08-05"),
                 issue("APP-1", parent="APP-100", status_category="done", story_points=2, resolved="2026-10-10"),
                 issue("APP-3", parent="APP-100", status_category="done", story_points=8, resolved="2026-09-20")])
    k = run(store, """{id: KR1, title: t, metric: ratio,
      numerator: {metric: count, select: {source: jira, type: Bug}},
      denominator: {metric: points_done, select: {source: jira, parent: APP-100}}, baseline: auto, target: -25%}""")
    assert (k.value, k.baseline) == (pytest.approx(1 / 2), pytest.approx(3 / 8))
    assert k.detail["baseline_window"] == ["2026-07-01T00:00:00.000Z", "2026-10-01T00:00:00.000Z"]


def test_ratio_zero_denominator_is_no_data(store):
    load(store, [issue(type="Bug", created="2026-10-03")])
    k = run(store, """{id: KR1, title: t, metric: ratio, numerator: {metric: count, select: {source: jira}},
      denominator: 0, target: 1, direction: increase}""")
    assert (k.value, k.status) == (None, "no_data")


# -- windows ---------------------------------------------------------------------------------------
def test_rolling_window(store):
    load(store, [issue(created="2026-10-10"), issue(created="2026-10-20"), issue(created="2026-11-10")])
    k = run(store, "{id: KR1, title: t, metric: count, window: rolling 30d, select: {source: jira}, target: 5}")
    assert k.value == 2.0  # Oct 16 -> Nov 15
    assert k.window.start == t("2026-10-16 00:00")


def test_sprint_window_and_expected(store):
    from okrsync.domain.records import Sprint

    s1 = Sprint("1", "Sprint 1", "closed", t("2026-10-05"), t("2026-10-19"), t("2026-10-19"))
    s2 = Sprint("2", "Sprint 2", "active", t("2026-11-09"), t("2026-11-23"), None)
    load(store, [issue(sprints=[s1], status_category="done", created="2026-10-01"),
                 issue(sprints=[s1, s2], status_category="todo", created="2026-10-01"),
                 issue(sprints=[s2], status_category="in_progress", created="2026-11-10")])
    k = run(store, "{id: KR1, title: t, metric: done_ratio, window: sprint, select: {source: jira, sprint: active}, target: 1}")
    assert k.value == 0.0
    assert k.items == 2
    assert k.expected == pytest.approx(6 / 14)  # 6 days into a 14-day sprint
    k = run(store, "{id: KR1, title: t, metric: done_ratio, select: {source: jira, sprint: Sprint 1}, target: 1}")
    assert k.value == 0.5


def test_period_in_a_time_zone(store):
    load(store, [issue(created="2026-09-30 22:30")])  # Oct 1 00:30 in Berlin
    text = "timezone: Europe/Berlin\n"
    k = run(store, "{id: KR1, title: t, metric: count, select: {source: jira}, target: 5}", extra=text)
    assert k.value == 1.0


def test_not_started_before_the_period(store):
    load(store, [issue(created="2026-09-01")])
    k = run(store, "{id: KR1, title: t, metric: count, select: {source: jira}, target: 5}",
            now=datetime(2026, 9, 15, tzinfo=timezone.utc))
    assert k.status == "not_started"


def test_never_synced_source_is_no_data_not_zero(store, workspace):
    ws = workspace(SOURCES + "objectives:\n  - id: O1\n    title: t\n    key_results:\n"
                   "      - {id: KR1, title: t, metric: deployment_frequency, select: {source: github}, target: 2}\n")
    k = compute(ws, store, NOW).kr("KR1")
    assert (k.value, k.status, k.synced_at) == (None, "no_data", None)


def test_override_replaces_value_and_keeps_computed(store, epic):
    k = run(store, "{id: KR1, title: t, metric: done_ratio, select: {source: jira, parent: APP-100}, target: 1,"
                   " override: {value: 0.9, reason: manual check-in, until: 2026-12-01}}")
    assert (k.value, k.computed_value, k.overridden) == (0.9, pytest.approx(0.6), True)
    k = run(store, "{id: KR1, title: t, metric: done_ratio, select: {source: jira, parent: APP-100}, target: 1,"
                   " override: {value: 0.9, reason: old, until: 2026-11-01}}")
    assert (k.value, k.overridden) == (pytest.approx(0.6), False)


def test_deleted_items_stop_counting(store):
    load(store, [issue("APP-1", id="1", created="2026-10-02"), issue("APP-2", id="2", created="2026-10-02")])
    store.db.execute("UPDATE issues SET deleted = 1 WHERE id = '2'")
    k = run(store, "{id: KR1, title: t, metric: count, select: {source: jira}, target: 5}")
    assert k.value == 1.0


def test_linked_by_label(store):
    load(store, [issue(labels=["kr:KR1"], status_category="done"), issue(labels=["KR:kr1"]), issue(labels=["other"])])
    k = run(store, "{id: KR1, title: t, metric: done_ratio, select: {source: jira, linked: true}, target: 1}")
    assert (k.value, k.items) == (0.5, 2)


def test_where_on_raw_payload(store):
    load(store, [issue(raw={"fields": {"priority": {"name": "High"}}}), issue(raw={"fields": {"priority": {"name": "Low"}}})])
    k = run(store, "{id: KR1, title: t, metric: count, select: {source: jira, where: {fields.priority.name: High}}, target: 5}")
    assert k.value == 1.0
