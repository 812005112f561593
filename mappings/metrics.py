"""Metric definitions: each metric is a SQL query over a selection plus a pure reduction of its rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from okrsync.engine.records import iso, parse_iso

from .aggregates import aggregate, ratio, union_seconds
from .selectors import Selection, field_expr

WEEK_DAYS = 7.0

# (default aggregate, unit) for the duration metrics
DURATION_DEFAULTS = {
    "resolution_time": ("median", "hours"),
    "time_to_restore": ("median", "hours"),
    "lead_time_for_changes": ("median", "hours"),
    "mtta": ("median", "minutes"),
}

FORMULAS = {
    "count": "number of selected items {date} in the window",
    "done_ratio": "done items / all selected items",
    "points_done_ratio": "story points of done items / story points of all selected items",
    "points_done": "sum of story points of done items",
    "sum": "sum of {field} over the selected items",
    "mean": "{aggregate} of {field} over the selected items",
    "throughput": "items resolved in the window / (window days / 7)",
    "resolution_time": "{aggregate} of (resolved - created) in hours, items resolved in the window",
    "deployment_frequency": "successful deployments finished in the window / (window days / 7)",
    "lead_time_for_changes": "{aggregate} hours from PR merge to the first successful deployment containing it",
    "change_failure_rate": "deployments finished in the window with status failure or error / all finished",
    "time_to_restore": "{aggregate} of (resolved - opened) in hours, incidents resolved in the window",
    "mtta": "{aggregate} of (first acknowledgement - opened) in minutes, incidents opened in the window",
    "first_contact_resolution": "resolved incidents with reassignment_count 0 / resolved incidents",
    "sla_compliance": "incidents resolved within their priority's SLA hours / resolved incidents",
    "availability": "1 - union of outage intervals clipped to the window / window length",
    "ratio": "numerator / denominator",
}


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime  # exclusive

    @property
    def seconds(self) -> float:
        return max(0.0, (self.end - self.start).total_seconds())

    @property
    def days(self) -> float:
        return self.seconds / 86400.0

    @property
    def weeks(self) -> float:
        return self.days / WEEK_DAYS


@dataclass
class MetricResult:
    value: float | None
    item_ids: list[str] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def items(self) -> int:
        return len(self.item_ids)


@dataclass
class MetricPlan:
    sql: str
    params: list[Any]
    reduce: Callable[[list[tuple]], MetricResult]


def _ids(rows: list[tuple]) -> list[str]:
    return [f"{r[0]}:{r[1]}" for r in rows]


def _hours(a: str | None, b: str | None) -> float | None:
    if a is None or b is None:
        return None
    return (parse_iso(b) - parse_iso(a)).total_seconds() / 3600.0


def _base(sel: Selection, cols: str, extra: list[str] | None = None, extra_params: list | None = None) -> tuple[str, list]:
    where = sel.clause()
    if extra:
        where += " AND " + " AND ".join(extra)
    return f"SELECT t.source, t.id{', ' + cols if cols else ''} FROM {sel.table} t WHERE {where}", sel.params + (extra_params or [])


def _in_window(col: str, window: Window) -> tuple[list[str], list]:
    return [f"{col} >= ?", f"{col} < ?"], [iso(window.start), iso(window.end)]


def _not_cancelled(sel: Selection) -> list[str]:
    """A cancelled incident was never restored, resolved or breached: resolution metrics skip it."""
    return ["t.status != 'cancelled'"] if sel.table == "incidents" else []


def _opened_col(sel: Selection) -> str:
    return "t.opened" if sel.table == "incidents" else "t.created"


def plan(metric: str, sel: Selection, window: Window, *, now: datetime, agg: str | None = None,
         field_name: str | None = None, weighting: str = "count", count_by: str | None = None,
         sla_hours: dict[str, float] | None = None) -> MetricPlan:
    """Build the query and reduction of one (non-ratio) metric."""
    builder = _BUILDERS[metric]
    return builder(sel=sel, window=window, now=now, agg=agg, field_name=field_name, weighting=weighting,
                   count_by=count_by, sla_hours=sla_hours)


def _count(sel, window, count_by, **_):
    col = {"resolved": "t.resolved", "updated": "t.updated"}.get(count_by or "", _opened_col(sel))
    cond, params = _in_window(col, window)
    sql, p = _base(sel, "", cond, params)
    return MetricPlan(sql, p, lambda rows: MetricResult(float(len(rows)), _ids(rows)))


def _done_ratio(sel, weighting, **_):
    sql, p = _base(sel, "t.status_category")
    weights = {"todo": 0.0, "in_progress": 0.5, "done": 1.0}

    def reduce(rows):
        if weighting == "status":
            done = sum(weights.get(r[2], 0.0) for r in rows)
        else:
            done = sum(1 for r in rows if r[2] == "done")
        return MetricResult(ratio(done, len(rows)), _ids(rows), {"done": done, "all": len(rows)})

    return MetricPlan(sql, p, reduce)


def _points(sel, ratio_of_all: bool):
    sql, p = _base(sel, "t.status_category, t.story_points")

    def reduce(rows):
        done = sum(float(r[3] or 0) for r in rows if r[2] == "done")
        total = sum(float(r[3] or 0) for r in rows)
        value = ratio(done, total) if ratio_of_all else done
        return MetricResult(value, _ids(rows), {"points_done": done, "points_all": total})

    return MetricPlan(sql, p, reduce)


def _field_values(sel, field_name, how):
    expr = field_expr(sel.table, field_name)
    sql, p = _base(sel, f"{expr}", [f"{expr} IS NOT NULL"])

    def reduce(rows):
        values = []
        counted = []
        for r in rows:
            try:
                values.append(float(r[2]))
                counted.append(r)
            except (TypeError, ValueError):
                continue  # non-numeric values are not counted
        if how == "sum":
            value = sum(values) if values else 0.0
        else:
            value = aggregate(values, how)
        return MetricResult(value, _ids(counted))

    return MetricPlan(sql, p, reduce)


def _throughput(sel, window, **_):
    cond, params = _in_window("t.resolved", window)
    sql, p = _base(sel, "", cond + _not_cancelled(sel), params)
    return MetricPlan(sql, p, lambda rows: MetricResult(ratio(float(len(rows)), window.weeks), _ids(rows)))


def _durations(sel, window, agg, start_col, end_col, window_col, scale, extra=None):
    cond, params = _in_window(window_col, window)
    cond = cond + [f"{start_col} IS NOT NULL", f"{end_col} IS NOT NULL"] + _not_cancelled(sel) + (extra or [])
    sql, p = _base(sel, f"{start_col}, {end_col}", cond, params)

    def reduce(rows):
        values = [_hours(r[2], r[3]) * scale for r in rows]
        return MetricResult(aggregate(values, agg), _ids(rows))

    return MetricPlan(sql, p, reduce)


def _resolution_time(sel, window, agg, **_):
    return _durations(sel, window, agg or "median", _opened_col(sel), "t.resolved", "t.resolved", 1.0)


def _time_to_restore(sel, window, agg, **_):
    return _durations(sel, window, agg or "median", _opened_col(sel), "t.resolved", "t.resolved", 1.0)


def _mtta(sel, window, agg, **_):
    return _durations(sel, window, agg or "median", "t.opened", "t.acknowledged", "t.opened", 60.0)


def _deployment_frequency(sel, window, **_):
    cond, params = _in_window("t.finished", window)
    sql, p = _base(sel, "", cond + ["t.status = 'success'"], params)
    return MetricPlan(sql, p, lambda rows: MetricResult(ratio(float(len(rows)), window.weeks), _ids(rows)))


def _change_failure_rate(sel, window, **_):
    cond, params = _in_window("t.finished", window)
    sql, p = _base(sel, "t.status", cond + ["t.status IN ('success', 'failure', 'error')"], params)

    def reduce(rows):
        failed = sum(1 for r in rows if r[2] in ("failure", "error"))
        return MetricResult(ratio(float(failed), len(rows)), _ids(rows), {"failed": failed, "finished": len(rows)})

    return MetricPlan(sql, p, reduce)


def _lead_time(sel, window, agg, **_):
    cond, params = _in_window("t.finished", window)
    where = " AND ".join([sel.clause(), "t.status = 'success'"] + cond)
    sql = (
        "SELECT p.source, p.id, p.merged_at, min(t.finished) FROM deployments t "
        "JOIN deployment_commits c ON c.source = t.source AND c.deployment_id = t.id "
        "JOIN issues p ON p.source = t.source AND p.merge_sha = c.sha AND p.is_pull_request = 1 "
        "AND p.deleted = 0 AND p.merged_at IS NOT NULL "
        "AND (t.repo IS NULL OR p.project IS NULL OR lower(p.project) = lower(t.repo)) "
        f"WHERE {where} GROUP BY p.source, p.id ORDER BY p.source, p.id"
    )

    def reduce(rows):
        values = [max(0.0, _hours(r[2], r[3])) for r in rows]
        return MetricResult(aggregate(values, agg or "median"), _ids(rows))

    return MetricPlan(sql, sel.params + params, reduce)


def _first_contact(sel, window, **_):
    cond, params = _in_window("t.resolved", window)
    sql, p = _base(sel, "t.reassignment_count", cond + ["t.reassignment_count IS NOT NULL"] + _not_cancelled(sel), params)

    def reduce(rows):
        first = sum(1 for r in rows if int(r[2]) == 0)
        return MetricResult(ratio(float(first), len(rows)), _ids(rows), {"first_contact": first, "resolved": len(rows)})

    return MetricPlan(sql, p, reduce)


def _sla(sel, window, sla_hours, **_):
    cond, params = _in_window("t.resolved", window)
    sql, p = _base(sel, "t.opened, t.resolved, t.priority, t.sla_breached", cond + _not_cancelled(sel), params)
    hours = {str(k).upper().removeprefix("P"): float(v) for k, v in (sla_hours or {}).items()}

    def reduce(rows):
        counted, met = [], 0
        for r in rows:
            if hours:
                prio = str(r[4] or "").upper().removeprefix("P")
                if prio not in hours:
                    continue
                ok = _hours(r[2], r[3]) <= hours[prio]
            else:
                if r[5] is None:
                    continue
                ok = not bool(r[5])
            counted.append(r)
            met += ok
        return MetricResult(ratio(float(met), len(counted)), _ids(counted), {"within_sla": met})

    return MetricPlan(sql, p, reduce)


def _availability(sel, window, now, **_):
    start = _opened_col(sel)
    end = "coalesce(t.resolved, t.closed)" if sel.table == "incidents" else "t.resolved"
    extra = [f"{start} < ?", f"({end} IS NULL OR {end} > ?)"]
    if sel.table == "incidents":
        extra.append("t.status != 'cancelled'")
    sql, p = _base(sel, f"{start}, {end}", extra, [iso(window.end), iso(window.start)])

    def reduce(rows):
        if window.seconds <= 0:
            return MetricResult(None, [])
        intervals = [(parse_iso(r[2]), parse_iso(r[3]) if r[3] else max(now, window.start)) for r in rows]
        down = union_seconds(intervals, window.start, window.end)
        return MetricResult(1.0 - down / window.seconds, _ids(rows), {"down_hours": down / 3600.0})

    return MetricPlan(sql, p, reduce)


_BUILDERS: dict[str, Callable[..., MetricPlan]] = {
    "count": _count,
    "done_ratio": _done_ratio,
    "points_done_ratio": lambda sel, **_: _points(sel, True),
    "points_done": lambda sel, **_: _points(sel, False),
    "sum": lambda sel, field_name, **_: _field_values(sel, field_name, "sum"),
    "mean": lambda sel, field_name, agg, **_: _field_values(sel, field_name, agg or "mean"),
    "throughput": _throughput,
    "resolution_time": _resolution_time,
    "deployment_frequency": _deployment_frequency,
    "lead_time_for_changes": _lead_time,
    "change_failure_rate": _change_failure_rate,
    "time_to_restore": _time_to_restore,
    "mtta": _mtta,
    "first_contact_resolution": _first_contact,
    "sla_compliance": _sla,
    "availability": _availability,
}

# Metrics whose value depends on a time window (the rest read the whole selection).
WINDOWED = {m for m in _BUILDERS if m not in ("done_ratio", "points_done_ratio", "points_done", "sum", "mean")}


def describe(metric: str, *, agg: str | None, field_name: str | None, count_by: str | None) -> str:
    default_agg = DURATION_DEFAULTS.get(metric, ("mean", ""))[0]
    return FORMULAS[metric].format(
        aggregate=agg or default_agg, field=field_name or "?", date=count_by or "created"
    )
