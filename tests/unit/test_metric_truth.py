"""The metric-truth rules of DESIGN §4/§5 (issue 14): projections, lines to hold, windowed ratios, deploys
counted once, outages, warnings, baselines without data, display and validation. Exact expected values."""

import json
from datetime import datetime, timezone

import pytest

from okrsync.config.workspace import load_workspace_text
from okrsync.config.yamlfile import ConfigError
from okrsync.domain.text import fmt_number
from okrsync.engine.document import status_document
from okrsync.engine.status import evaluate, infer_direction, projected_value
from tests.builders import deployment, incident, issue, load
from tests.unit.test_metrics import SOURCES, run

UTC = timezone.utc


# -- status rules (pure) ---------------------------------------------------------------------------
@pytest.mark.parametrize("value,projected,baseline,target,ended,progress,status", [
    # 24 bugs in 14 of 92 days -> 157.7 projected against 125 last quarter: the rate went up
    (24, 24 * 92 / 14, 125, 100, False, (24 * 92 / 14 - 125) / (100 - 125), "off_track"),
    # projected under the target before the end: on track at best, never achieved (a count can still rise)
    (10, 90.0, 125, 100, False, (90 - 125) / (100 - 125), "on_track"),
    # projected 110 of a 125 -> 100 decrease: 60% of the way against expected 1 -> off track
    (10, 110.0, 125, 100, False, (110 - 125) / (100 - 125), "off_track"),
    # projected 105: 80% -> at risk (>= 1 - 0.25)
    (10, 105.0, 125, 100, False, (105 - 125) / (100 - 125), "at_risk"),
    # the period has ended: the value is final and may be achieved
    (95, 95.0, 125, 100, True, (95 - 125) / (100 - 125), "achieved"),
])
def test_a_decreasing_cumulative_kr_is_judged_by_its_projection(value, projected, baseline, target, ended,
                                                                progress, status):
    ev = evaluate(value, baseline, target, direction="decrease", expected=0.15, started=True, ended=ended,
                  projected=projected)
    assert ev.progress == pytest.approx(progress)
    assert ev.status == status
    assert ev.score == pytest.approx(min(1.0, max(0.0, progress)))


@pytest.mark.parametrize("metric,baseline_given,baseline,target,explicit,direction", [
    ("first_contact_resolution", False, None, 0.9, None, "maintain_above"),
    ("availability", False, None, 0.9999, None, "maintain_above"),
    ("deployment_frequency", False, None, 5, None, "maintain_above"),
    ("throughput", False, None, 5, None, "maintain_above"),
    ("sla_compliance", False, None, 0.95, None, "maintain_above"),
    ("mean", False, None, 3, None, "maintain_above"),
    ("resolution_time", False, None, 24, None, "maintain_below"),
    ("time_to_restore", False, None, 4, None, "maintain_below"),
    ("mtta", False, None, 5, None, "maintain_below"),
    ("lead_time_for_changes", False, None, 24, None, "maintain_below"),
    ("change_failure_rate", False, None, 0.15, None, "maintain_below"),
    ("count", False, None, 100, None, "increase"),          # cumulative: from 0
    ("done_ratio", False, None, 1.0, None, "increase"),     # scope: from 0
    ("first_contact_resolution", True, 0.5, 0.9, None, "increase"),
    ("resolution_time", True, 30, 24, None, "decrease"),
    ("ratio", False, None, 0.1, "maintain_below", "maintain_below"),
])
def test_direction(metric, baseline_given, baseline, target, explicit, direction):
    assert infer_direction(baseline, target, explicit, metric, baseline_given) == direction


@pytest.mark.parametrize("value,length,elapsed,projected", [
    (24, 92 * 86400, 14 * 86400, 24 * 92 / 14),
    (10, 100, 100, 10),        # ended: the value itself
    (10, 100, 150, 10),
    (0, 100, 50, 0),
    (5, 100, 0, None),         # nothing elapsed: no projection
    (None, 100, 50, None),
])
def test_projected_value(value, length, elapsed, projected):
    assert projected_value(value, length, elapsed) == (None if projected is None else pytest.approx(projected))


# -- through the engine ----------------------------------------------------------------------------
def _bugs(created: list[str]) -> list:
    return [issue(type="Bug", created=c) for c in created]


def test_count_reduce_kr_is_not_achieved_early(store):
    # Q3: 10 bugs; Q4 on Oct 15 (14 days in): 3 bugs -> projected 3 x 92 / 14 = 19.7 > 10: off track
    load(store, _bugs([f"2026-08-{d:02d}" for d in range(1, 11)]) + _bugs(["2026-10-02", "2026-10-05", "2026-10-10"]))
    k = run(store, "{id: KR1, title: t, metric: count, select: {source: jira, type: Bug}, baseline: auto, "
                   "target: -20%}", now=datetime(2026, 10, 15, tzinfo=UTC))
    assert (k.value, k.baseline, k.target) == (3.0, 10.0, pytest.approx(8.0))
    assert k.projected == pytest.approx(3 * 92 / 14)
    assert k.progress == pytest.approx((3 * 92 / 14 - 10) / (8 - 10))
    assert k.status == "off_track"


def test_count_reduce_kr_under_its_pace_is_on_track_not_achieved(store):
    load(store, _bugs([f"2026-08-{d:02d}" for d in range(1, 21)]) + _bugs(["2026-10-02"]))
    k = run(store, "{id: KR1, title: t, metric: count, select: {source: jira, type: Bug}, baseline: auto, "
                   "target: -20%}", now=datetime(2026, 10, 15, tzinfo=UTC))
    assert k.projected == pytest.approx(92 / 14)
    assert (k.score, k.status) == (1.0, "on_track")


def test_count_reduce_kr_before_one_day_is_not_started(store):
    load(store, _bugs(["2026-08-01", "2026-10-01 02:00"]))
    k = run(store, "{id: KR1, title: t, metric: count, select: {source: jira, type: Bug}, baseline: auto, "
                   "target: -20%}", now=datetime(2026, 10, 1, 12, tzinfo=UTC))
    assert (k.value, k.status, k.progress) == (1.0, "not_started", None)


def test_count_increase_kr_keeps_the_pace_rule_and_shows_its_projection(store):
    load(store, _bugs(["2026-10-02", "2026-10-05", "2026-11-10"]))
    k = run(store, "{id: KR1, title: t, metric: count, select: {source: jira}, target: 10}")
    assert k.projected == pytest.approx(3 * 92 / 45)
    assert k.progress == pytest.approx(0.3)  # value / target, judged against the elapsed share (45 / 92)
    assert k.status == "at_risk"


def test_fcr_without_baseline_is_a_line_to_hold(incident_store):
    k = run(incident_store, "{id: KR1, title: t, metric: first_contact_resolution, select: {source: servicenow}, "
                            "target: 90%}")
    assert k.value == pytest.approx(1 / 2)
    assert (k.direction, k.progress, k.score, k.status) == ("maintain_above", 0.0, 0.0, "off_track")
    assert k.baseline is None


@pytest.fixture
def incident_store(store):
    load(store, [incident(opened="2026-10-02", resolved="2026-10-03", reassignment_count=0, priority="1"),
                 incident(opened="2026-10-04", resolved="2026-10-05", reassignment_count=2, priority="4")])
    return store


@pytest.mark.parametrize("previous", [[], ["2026-06-01"]])  # nothing in Q3 (one bug in Q2 is not Q3)
def test_baseline_auto_without_data_is_no_data(store, previous):
    load(store, _bugs(previous + ["2026-10-02"]))
    k = run(store, "{id: KR1, title: t, metric: count, select: {source: jira, type: Bug}, baseline: auto, "
                   "target: -20%}")
    assert (k.baseline, k.target, k.status, k.progress) == (None, None, "no_data", None)
    assert k.detail["reason"] == ("no data in the baseline window "
                                  "2026-07-01T00:00:00.000Z .. 2026-10-01T00:00:00.000Z")


# -- one deploy is one deploy ------------------------------------------------------------------------
def _twins() -> list:
    return [
        # deploy A: a deployment and the workflow run that made it (30 min apart): one deploy
        deployment(id="d1", sha="aaa", finished="2026-10-10 10:00", origin="deployment"),
        deployment(id="r1", sha="aaa", finished="2026-10-10 10:30", origin="workflow_run"),
        # deploy B: the same commit redeployed two hours later by a run: two deploys
        deployment(id="d2", sha="bbb", finished="2026-10-11 10:00", origin="deployment"),
        deployment(id="r2", sha="bbb", finished="2026-10-11 12:00", origin="workflow_run"),
        # deploy C: a run with no deployment record
        deployment(id="r3", sha="ccc", finished="2026-10-12 10:00", origin="workflow_run"),
        # a run to another environment with the same commit as A is its own deploy
        deployment(id="r4", sha="aaa", finished="2026-10-10 10:10", origin="workflow_run", environment="staging"),
        # deploy D: failed, recorded both ways
        deployment(id="d5", sha="ddd", finished="2026-10-13 10:00", origin="deployment", status="failure"),
        deployment(id="r5", sha="ddd", finished="2026-10-13 10:05", origin="workflow_run", status="failure"),
    ]


@pytest.mark.parametrize("kr,value,items,merged", [
    ("metric: deployment_frequency, select: {source: github, environment: production}", 4 / (45 / 7), 4, 1),
    ("metric: change_failure_rate, select: {source: github, environment: production}", 1 / 5, 5, 2),
    # the selector picks origins itself: nothing is merged
    ("metric: deployment_frequency, select: {source: github, environment: production, origin: workflow_run}",
     3 / (45 / 7), 3, 0),
])
def test_a_deploy_recorded_twice_counts_once(store, kr, value, items, merged):
    load(store, _twins())
    k = run(store, "{id: KR1, title: t, %s, target: 1, direction: maintain_above}" % kr)
    assert (k.value, k.items) == (pytest.approx(value), items)
    assert k.detail["merged_twins"] == merged
    assert "github:r1" not in k.item_ids or merged == 0


# -- outages ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("source,records,selector,down_hours,words", [
    ("servicenow", [("1", None, 2), ("2", None, 3), ("3", None, 5), ("4", None, 7)], "", 5, "priority 1-2"),
    ("servicenow", [("1", None, 2), ("4", None, 7)], ", priority: [1, 4]", 9, "the selected incidents"),
    ("pagerduty", [("P1", "high", 2), (None, "low", 3), (None, "high", 4)], "", 6, "urgency high"),
    ("pagerduty", [(None, "low", 3)], ", urgency: low", 3, "the selected incidents"),
])
def test_availability_outages_by_priority_or_urgency(store, source, records, selector, down_hours, words):
    load(store, [incident(source=source, priority=p, urgency=u, opened=f"2026-10-{10 + i:02d} 00:00",
                          resolved=f"2026-10-{10 + i:02d} {h:02d}:00") for i, (p, u, h) in enumerate(records)])
    k = run(store, "{id: KR1, title: t, metric: availability, select: {source: %s%s}, target: 99%%}"
            % (source, selector))
    assert k.value == pytest.approx(1 - down_hours / (45 * 24))
    assert k.detail["outages"].startswith(words)


# -- warnings ---------------------------------------------------------------------------------------
def test_a_selector_value_matching_nothing_warns_with_the_known_values(store):
    load(store, [incident(service="payments-api", opened="2026-10-02"), incident(service="core-network")])
    k = run(store, "{id: KR1, title: t, metric: availability, select: {source: servicenow, service: Payment API}, "
                   "target: 99.9%}")
    assert k.warnings == ["select.service 'Payment API' matches no servicenow record "
                          "(known: core-network, payments-api)"]
    k = run(store, "{id: KR1, title: t, metric: availability, select: {source: servicenow, service: payments-api}, "
                   "target: 99.9%}")
    assert k.warnings == []


def test_warnings_check_labels_components_and_ratio_parts(store):
    load(store, [issue(type="Bug", labels=["ui"], components=["web"], created="2026-10-02", project="APP")])
    k = run(store, """{id: KR1, title: t, metric: ratio, direction: maintain_below, target: 1,
      numerator: {metric: count, select: {source: jira, labels: [ui, uxx]}},
      denominator: {metric: count, select: {source: jira, components: webb, project: APP}}}""")
    assert k.warnings == ["select.labels 'uxx' matches no jira record (known: ui)",
                          "select.components 'webb' matches no jira record (known: web)"]


@pytest.mark.sqlite_only
def test_a_parent_is_looked_up_by_its_children_first_and_by_key_only_when_it_has_none(store):
    from okrsync.engine.selector_check import SelectorChecker
    load(store, [issue("APP-1", type="Epic"), issue("APP-2", parent="APP-1"), issue("APP-3", type="Epic")])
    kr = "{id: KR1, title: t, metric: done_ratio, select: {source: jira, parent: %s}, target: 1}"
    assert [run(store, kr % p).warnings for p in ("APP-1", "APP-3")] == [[], []]
    assert run(store, kr % "APP-9").warnings == ["select.parent 'APP-9' matches no jira record (known: APP-1, "
                                                 "APP-2, APP-3)"]
    checker, seen = SelectorChecker(store, {"jira": "jira"}), []
    store.db.conn.set_trace_callback(seen.append)
    try:  # issues.key has no index: at 1M issues a probe by key is a scan of a second or more
        specs = {p: load_workspace_text(SOURCES + "objectives:\n  - {id: O1, title: t, key_results: [%s]}\n"
                                        % (kr % p)).workspace.objectives[0].key_results[0] for p in ("APP-1", "APP-3")}
        assert checker.warnings(specs["APP-1"]) == []
        assert not [q for q in seen if "key = " in q]
        assert checker.warnings(specs["APP-3"]) == []
        assert [q for q in seen if "key = " in q]
    finally:
        store.db.conn.set_trace_callback(None)


def test_no_warning_before_a_source_is_synced(store):
    k = run(store, "{id: KR1, title: t, metric: count, select: {source: jira, project: NOPE}, target: 1}")
    assert k.warnings == []


# -- validation ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kr,message", [
    ("{id: KR1, title: t, metric: first_contact_resolution, select: {source: servicenow}, target: 90}",
     "first_contact_resolution is a fraction between 0 and 1: target 90 is above 1 (did you mean 90%?)"),
    ("{id: KR1, title: t, metric: availability, select: {source: servicenow}, baseline: 99, target: 99.9%}",
     "baseline 99 is above 1 (did you mean 99%?)"),
    ("{id: KR1, title: t, metric: ratio, numerator: {metric: count, select: {source: jira}}, denominator: 5, "
     "target: 1}", "key result KR1: a ratio without a baseline needs direction:"),
])
def test_validation_names_the_mistake(kr, message):
    text = SOURCES + "objectives:\n  - id: O1\n    title: t\n    key_results:\n      - " + kr + "\n"
    with pytest.raises(ConfigError) as err:
        load_workspace_text(text)
    assert message in str(err.value)


@pytest.mark.parametrize("target", ["90%", "0.9", "1", "+10%"])
def test_fraction_targets_that_are_fine(target):
    base = ", baseline: 50%" if target.startswith("+") else ""
    text = SOURCES + ("objectives:\n  - id: O1\n    title: t\n    key_results:\n      - {id: KR1, title: t, "
                      f"metric: first_contact_resolution, select: {{source: servicenow}}, target: '{target}'{base}}}\n")
    load_workspace_text(text)


# -- display ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("value,unit,like,text", [
    (0.9999, "%", None, "99.99%"),
    (0.999, "%", None, "99.9%"),
    (0.99999, "%", None, "99.999%"),
    (0.9, "%", None, "90.0%"),
    (1.0, "%", None, "100.0%"),
    (0.558123, "%", 0.9, "55.8%"),
    (0.99987, "%", 0.9999, "99.987%"),   # must not read as the 99.99% target
    (0.99994, "%", 0.9999, "99.994%"),
    (0.999, None, None, "0.999"),
    (99.999, None, None, "99.999"),
    (45.556904, "hours", None, "45.56 hours"),
    (4.0, "deploys/week", None, "4 deploys/week"),
    (3.25, None, None, "3.25"),
    (None, "%", None, "—"),
])
def test_fmt_number(value, unit, like, text):
    assert fmt_number(value, unit, like) == text


# -- plan: pace that is not a straight line ---------------------------------------------------------------
def test_plan_milestones_set_the_expected_pace(store):
    load(store, [issue(status_category="done"), issue(status_category="todo"), issue(status_category="todo"),
                 issue(status_category="todo"), issue(status_category="todo")])
    kr = ("{id: KR1, title: t, metric: done_ratio, select: {source: jira}, target: 1, "
          "plan: {2026-10-31: 10%, 2026-11-30: 60%, 2026-12-31: 100%}}")
    # Nov 15 00:00: 15 of 30 days from the Oct 31 milestone (reached at the end of that day) to Nov 30's
    k = run(store, kr)
    assert k.expected == pytest.approx(0.1 + 0.5 * 14 / 30)
    assert (k.progress, k.status) == (pytest.approx(0.2), "at_risk")
    k = run(store, kr.replace("done_ratio,", "done_ratio, window: period,"), now=datetime(2026, 10, 20, tzinfo=UTC))
    assert k.expected == pytest.approx(0.1 * 19 / 31)
    assert k.status == "on_track"


@pytest.mark.parametrize("plan,message", [
    ("{2026-10-31: 120%}", "plan milestone 2026-10-31: expected a share of the target between 0% and 100%"),
    ("{2026-10-31: +10%}", "relative amount"),
])
def test_plan_validation(plan, message):
    text = SOURCES + ("objectives:\n  - id: O1\n    title: t\n    key_results:\n      - {id: KR1, title: t, "
                      f"metric: done_ratio, select: {{source: jira}}, target: 1, plan: {plan}}}\n")
    with pytest.raises(ConfigError) as err:
        load_workspace_text(text)
    assert message in str(err.value)


# -- any instant: minutes into a period, its last second, a period in the past or the future ---------------
ALL_KRS = """\
      - {id: C, title: t, metric: count, select: {source: jira, type: Bug}, baseline: auto, target: -20%}
      - {id: D, title: t, metric: done_ratio, select: {source: jira}, target: 1}
      - {id: F, title: t, metric: deployment_frequency, select: {source: github, environment: production}, target: 3}
      - {id: R, title: t, metric: failed_deployment_recovery_time, select: {source: github}, target: 4}
      - {id: W, title: t, metric: deployment_rework_rate, select: {source: github}, target: 10%}
      - {id: A, title: t, metric: availability, select: {source: servicenow}, target: 99.9%}
      - {id: M, title: t, metric: mtta, select: {source: servicenow}, target: 5}
      - {id: X, title: t, metric: ratio, numerator: {metric: count, select: {source: jira, type: Bug}},
         denominator: {metric: points_done, select: {source: jira}}, baseline: auto, target: -25%}
      - {id: P, title: t, metric: points_done, select: {source: jira}, target: 100, plan: {2026-11-30: 50%}}
"""


@pytest.mark.parametrize("now", [
    datetime(2026, 10, 1, 0, 0, 1, tzinfo=UTC),        # a second into the period
    datetime(2026, 10, 1, 0, 5, tzinfo=UTC),           # minutes into it
    datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC),    # its last second
    datetime(2027, 3, 1, tzinfo=UTC),                  # the period is over
    datetime(2026, 6, 1, tzinfo=UTC),                  # the period has not begun
])
def test_every_kr_is_a_value_or_no_data_at_any_instant(store, now):
    load(store, _bugs(["2026-08-01", "2026-10-20"]) + [
        issue(status_category="done", story_points=3, resolved="2026-10-21"),
        deployment(finished="2026-10-22", sha="x"), deployment(finished="2026-10-23", status="failure", sha="y"),
        incident(opened="2026-10-24", acknowledged="2026-10-24 00:03", resolved="2026-10-24 01:00", priority="1")])
    text = SOURCES + "objectives:\n  - id: O1\n    title: t\n    key_results:\n" + ALL_KRS
    from okrsync.engine.compute import compute

    comp = compute(load_workspace_text(text).workspace, store, now)
    for k in comp.all_krs():
        assert k.status in ("achieved", "on_track", "at_risk", "off_track", "no_data", "not_started"), k.kr.id
        assert 0.0 <= k.expected <= 1.0
        if k.value is None:
            assert k.status in ("no_data", "not_started"), (k.kr.id, k.status)
        if now < datetime(2026, 10, 1, tzinfo=UTC):
            assert k.status == "not_started", k.kr.id
    doc = status_document(comp)
    json.dumps(doc)  # plain numbers: no NaN, no datetime objects
    assert "NaN" not in json.dumps(doc) and "Infinity" not in json.dumps(doc)
