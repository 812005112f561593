"""Metric definitions: each metric is one SQL query over a selection plus a pure reduction of its rows.

Counting metrics aggregate in SQL and return one row; duration and interval metrics return one small
row per item (durations are computed in SQL and rounded to the millisecond, so they are exact). Each
result carries the item count and a cheap fingerprint of the counted set; the item ids themselves are
loaded only when someone needs them (history diff, explain, report).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Protocol

from okrsync.config.keyresults import TRAITS, Rework
from okrsync.domain.records import iso, parse_iso

from .aggregates import aggregate, ratio, union_seconds
from .deploys import Attribution as Attribution  # engine.compute reads Attribution, MetricResult and Window here
from .deploys import (
    change_failure_rate,
    deployment_frequency,
    deployment_rework_rate,
    failed_deployment_recovery_time,
    lead_time,
)
from .plans import (
    Detail,
    Params,
    Row,
    _aggregate_plan,
    _in_window,
    _not_cancelled,
    _opened_col,
    _row_plan,
    _seconds,
    _where,
)
from .plans import MetricPlan as MetricPlan
from .plans import MetricResult as MetricResult
from .plans import Window as Window
from .selectors import Selection, field_expr


def plan(metric: str, sel: Selection, window: Window, *, now: datetime, agg: str | None = None,
         field_name: str | None = None, weighting: str = "count", count_by: str | None = None,
         sla_hours: dict[str, float] | None = None, failures: str = "deployments",
         attribution: Attribution | None = None, rework: Rework | None = None) -> MetricPlan:
    """Build the query and reduction of one (non-ratio) metric."""
    spec = METRIC_DEFS[metric]
    return spec.build(sel=sel, window=window, now=now, agg=agg or spec.aggregate, field_name=field_name,
                      weighting=weighting, count_by=count_by, sla_hours=sla_hours, failures=failures,
                      attribution=attribution, rework=rework)


def _count(sel: Selection, window: Window, count_by: str | None, **_: object) -> MetricPlan:
    col = {"resolved": "t.resolved", "updated": "t.updated"}.get(count_by or "", _opened_col(sel))
    cond, params = _in_window(col, window)
    return _aggregate_plan(sel, [], cond, params, lambda row, n: (float(n), {}))


def _done_ratio(sel: Selection, weighting: str, **_: object) -> MetricPlan:
    cols = ["total(t.status_category = 'done')", "total(t.status_category = 'in_progress')"]

    def value(row: Row, n: int) -> tuple[float | None, Detail]:
        done = row[0] + (0.5 * row[1] if weighting == "status" else 0.0)
        return ratio(done, n), {"done": row[0], "in_progress": row[1], "all": n}

    return _aggregate_plan(sel, cols, [], [], value)


def _resolved_in(window: Window, count_by: str | None) -> tuple[list[str], Params]:
    """`count_by: resolved`: a scope metric counts only the items resolved in the window (DESIGN §4)."""
    return _in_window("t.resolved", window) if count_by == "resolved" else ([], [])


def _points(sel: Selection, ratio_of_all: bool, window: Window, count_by: str | None) -> MetricPlan:
    cols = ["total(CASE WHEN t.status_category = 'done' THEN t.story_points END)", "total(t.story_points)"]
    cond, params = ([], []) if ratio_of_all else _resolved_in(window, count_by)

    def value(row: Row, n: int) -> tuple[float | None, Detail]:
        done, total = row[0], row[1]
        return (ratio(done, total) if ratio_of_all else done), {"points_done": done, "points_all": total}

    return _aggregate_plan(sel, cols, cond, params, value)


def _field_values(sel: Selection, field_name: str | None, how: str | None, window: Window,
                  count_by: str | None) -> MetricPlan:
    assert field_name is not None and how is not None  # the workspace check requires field:; agg has a default
    expr = field_expr(sel.table, field_name)
    cond, params = _resolved_in(window, count_by) if how == "sum" else ([], [])

    def keep(r: Row) -> float | None:
        try:
            return float(r[1])
        except (TypeError, ValueError):
            return None  # non-numeric values are not counted

    def value(vals: list[float]) -> tuple[float | None, Detail]:
        return (sum(vals) if how == "sum" else aggregate(vals, how)), {}

    return _row_plan(sel, [expr], [f"{expr} IS NOT NULL", *cond], params, keep, value)


def _throughput(sel: Selection, window: Window, **_: object) -> MetricPlan:
    cond, params = _in_window("t.resolved", window)
    return _aggregate_plan(sel, [], cond + _not_cancelled(sel), params,
                           lambda row, n: (ratio(float(n), window.weeks), {}))


def _positions(how: str) -> Callable[[int], list[int]]:
    """Which sorted positions an aggregate needs, for n values."""
    if how in ("mean", "sum", "min", "max"):
        return lambda n: []
    q = 0.5 if how in ("median", "median_low") else int(how[1:]) / 100.0

    def pos(n: int) -> list[int]:
        if n == 0:
            return []
        if how == "median_low":
            return [(n - 1) // 2]
        x = (n - 1) * q
        return sorted({int(x), min(n - 1, int(x) + (x > int(x)))})

    return pos


def _order_value(how: str, n: int, values: dict[int, float]) -> float | None:
    if n == 0:
        return None
    if how == "median_low":
        return values[(n - 1) // 2]
    q = 0.5 if how == "median" else int(how[1:]) / 100.0
    x = (n - 1) * q
    lo = int(x)
    hi = min(n - 1, lo + (x > lo))
    return values[lo] + (values[hi] - values[lo]) * (x - lo)


def _durations(sel: Selection, window: Window, agg: str | None, start_col: str, end_col: str, window_col: str,
               per: float) -> MetricPlan:
    """Duration aggregates in SQL: sum/min/max in one pass, medians and pNN by sorted position."""
    cond, params = _in_window(window_col, window)
    cond += [f"{start_col} IS NOT NULL", f"{end_col} IS NOT NULL"] + _not_cancelled(sel)
    dur = _seconds(start_col, end_col)
    assert agg is not None  # METRIC_DEFS gives durations a default
    how = agg

    def value(row: Row, n: int) -> tuple[float | None, Detail]:
        if n == 0:
            return None, {}
        total, lo, hi = row
        simple = {"mean": total / n, "sum": total, "min": lo, "max": hi}
        return (simple[how] / per if how in simple else None), {}

    base = _aggregate_plan(sel, [f"total({dur})", f"min({dur})", f"max({dur})"], cond, params, value)
    if how in ("mean", "sum", "min", "max"):
        return base
    stats_sql = f"SELECT {dur} AS d FROM {sel.table} t WHERE {_where(sel, cond)} ORDER BY d LIMIT ? OFFSET ?"

    def finish(res: MetricResult, values: dict[int, float]) -> MetricResult:
        v = _order_value(how, res.items, values)
        res.value = None if v is None else v / per
        return res

    base.order_stats = (stats_sql, sel.params + params, _positions(how))
    base.finish = finish
    return base


def _resolution_time(sel: Selection, window: Window, agg: str | None, **_: object) -> MetricPlan:
    return _durations(sel, window, agg, _opened_col(sel), "t.resolved", "t.resolved", 3600.0)


def _mtta(sel: Selection, window: Window, agg: str | None, **_: object) -> MetricPlan:
    return _durations(sel, window, agg, "t.opened", "t.acknowledged", "t.opened", 60.0)


def _first_contact(sel: Selection, window: Window, **_: object) -> MetricPlan:
    cond, params = _in_window("t.resolved", window)

    def value(row: Row, n: int) -> tuple[float | None, Detail]:
        return ratio(row[0], n), {"first_contact": row[0], "resolved": n}

    return _aggregate_plan(sel, ["total(t.reassignment_count = 0)"],
                           cond + ["t.reassignment_count IS NOT NULL"] + _not_cancelled(sel), params, value)


def _sla(sel: Selection, window: Window, sla_hours: dict[str, float] | None, **_: object) -> MetricPlan:
    cond, params = _in_window("t.resolved", window)
    cond += _not_cancelled(sel)
    hours = {str(k).upper().removeprefix("P"): float(v) for k, v in (sla_hours or {}).items()}
    if hours:
        # '1' and 'P1' are the same priority; priorities without SLA hours are not counted
        cases = " ".join(f"WHEN '{k}' THEN {v * 3600.0!r}" for k, v in hours.items() if k.isalnum())
        limit = f"(CASE ltrim(upper(t.priority), 'P') {cases} END)"
        cond += [f"{limit} IS NOT NULL", "t.opened IS NOT NULL"]
        within = f"total({_seconds('t.opened', 't.resolved')} <= {limit})"
    else:
        cond += ["t.sla_breached IS NOT NULL"]
        within = "total(t.sla_breached = 0)"

    def value(row: Row, n: int) -> tuple[float | None, Detail]:
        return ratio(row[0], n), {"within_sla": row[0]}

    return _aggregate_plan(sel, [within], cond, params, value)


# What counts as an outage when the selector does not say (DESIGN §4): ServiceNow priority 1-2 (Critical,
# High), PagerDuty high urgency. Other sources' incidents all count.
OUTAGES = {
    "servicenow": ("ltrim(upper(t.priority), 'P') IN ('1', '2')", "priority 1-2"),
    "pagerduty": ("t.urgency = 'high'", "urgency high"),
}


def outage_definition(sel: Selection) -> tuple[str | None, str]:
    """(SQL condition or None, the definition in words) of the incidents availability counts as outages."""
    if sel.table != "incidents":
        return None, "every selected item"
    if sel.names_severity:
        return None, "the selected incidents (the selector names priority, severity or urgency)"
    sql, words = OUTAGES.get(sel.source_type or "", (None, "every selected incident"))
    return sql, words


def _availability(sel: Selection, window: Window, now: datetime, **_: object) -> MetricPlan:
    start = _opened_col(sel)
    end = "coalesce(t.resolved, t.closed)" if sel.table == "incidents" else "t.resolved"
    outage_sql, outage_words = outage_definition(sel)
    extra = [f"{start} < ?", f"({end} IS NULL OR {end} > ?)"] + _not_cancelled(sel)
    extra += [outage_sql] if outage_sql else []

    def keep(r: Row) -> tuple[datetime, datetime]:
        return parse_iso(r[1]), parse_iso(r[2]) if r[2] else max(now, window.start)

    def value(intervals: list[tuple[datetime, datetime]]) -> tuple[float | None, Detail]:
        if window.seconds <= 0:
            return None, {}
        down = union_seconds(intervals, window.start, window.end)
        return 1.0 - down / window.seconds, {"down_hours": down / 3600.0, "outages": outage_words}

    return _row_plan(sel, [start, end], extra, [iso(window.end), iso(window.start)], keep, value)


class MetricBuilder(Protocol):
    """A metric's query builder: plan() passes every setting by keyword; each builder takes those it reads."""

    def __call__(self, *, sel: Selection, window: Window, now: datetime, agg: str | None, field_name: str | None,
                 weighting: str, count_by: str | None, sla_hours: dict[str, float] | None, failures: str,
                 attribution: Attribution | None, rework: Rework | None) -> MetricPlan: ...


def _points_done_ratio(sel: Selection, window: Window, **_: object) -> MetricPlan:
    return _points(sel, True, window, None)


def _points_done(sel: Selection, window: Window, count_by: str | None, **_: object) -> MetricPlan:
    return _points(sel, False, window, count_by)


def _sum(sel: Selection, field_name: str | None, window: Window, count_by: str | None, **_: object) -> MetricPlan:
    return _field_values(sel, field_name, "sum", window, count_by)


def _mean(sel: Selection, field_name: str | None, agg: str | None, window: Window, **_: object) -> MetricPlan:
    return _field_values(sel, field_name, agg, window, None)


@dataclass(frozen=True)
class MetricDef:
    """How one metric is computed: its query builder, its formula in words, its default aggregate."""

    build: MetricBuilder
    formula: str
    aggregate: str | None = None  # durations: median unless the KR says otherwise


# The one table of metric computations (how each is judged is config.keyresults.TRAITS, beside the validation).
METRIC_DEFS: dict[str, MetricDef] = {
    "count": MetricDef(_count, "number of selected items {date} in the window"),
    "done_ratio": MetricDef(_done_ratio, "done items / all selected items"),
    "points_done_ratio": MetricDef(_points_done_ratio,
                                   "story points of done items / story points of all selected items"),
    "points_done": MetricDef(_points_done, "sum of story points of done items"),
    "sum": MetricDef(_sum, "sum of {field} over the selected items"),
    "mean": MetricDef(_mean, "{aggregate} of {field} over the selected items", "mean"),
    "throughput": MetricDef(_throughput, "items resolved in the window / (window days / 7)"),
    "resolution_time": MetricDef(_resolution_time, "{aggregate} of (resolved - created) in hours, items resolved in "
                                                   "the window", "median"),
    "deployment_frequency": MetricDef(deployment_frequency, "successful deployments finished in the window / "
                                                            "(window days / 7)"),
    "lead_time_for_changes": MetricDef(lead_time, "{aggregate} hours from PR merge to the first successful "
                                                  "deployment containing it", "median"),
    "change_failure_rate": MetricDef(change_failure_rate, "deployments finished in the window with status failure "
                                                          "or error / all finished"),
    "time_to_restore": MetricDef(_resolution_time, "{aggregate} of (resolved - opened) in hours, incidents resolved "
                                                   "in the window", "median"),
    "mtta": MetricDef(_mtta, "{aggregate} of (first acknowledgement - opened) in minutes, incidents opened in the "
                             "window", "median"),
    "first_contact_resolution": MetricDef(_first_contact, "resolved incidents with reassignment_count 0 / resolved "
                                                          "incidents"),
    "sla_compliance": MetricDef(_sla, "incidents resolved within their priority's SLA hours / resolved incidents"),
    "availability": MetricDef(_availability, "1 - union of outage intervals clipped to the window / window length"),
    "failed_deployment_recovery_time": MetricDef(
        failed_deployment_recovery_time, "{aggregate} hours from a failed deployment to the next successful one of "
                                         "the same repository and environment", "median"),
    "deployment_rework_rate": MetricDef(deployment_rework_rate, "unplanned (hotfix/rollback or after an incident) / "
                                                                "successful deployments"),
}
assert set(METRIC_DEFS) == set(TRAITS) - {"ratio"}, "every metric but ratio has its computation"


def describe(metric: str, *, agg: str | None, field_name: str | None, count_by: str | None) -> str:
    if metric == "ratio":
        return "numerator / denominator"
    spec = METRIC_DEFS[metric]
    return spec.formula.format(aggregate=agg or spec.aggregate, field=field_name or "?", date=count_by or "created")
