"""Deployment metrics (DORA): frequency, change failure rate, lead time for changes, failed deployment
recovery time and deployment rework rate. A deploy recorded twice counts once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Callable

from okrsync.config.keyresults import Rework
from okrsync.domain.records import iso, parse_iso

from .aggregates import aggregate, ratio
from .plans import (
    Detail,
    MetricPlan,
    MetricResult,
    Params,
    Row,
    Window,
    _aggregate_plan,
    _in_window,
    _row_plan,
    _seconds,
    _where,
    fingerprint_of,
)
from .selectors import Selection

# A deploy recorded twice - a deployment and a workflow run of the same repository, environment and commit
# finishing within an hour of each other - counts once: the deployment record is kept (DESIGN §4).
TWIN_SECONDS = 3600.0
_TWIN = (
    "EXISTS (SELECT 1 FROM deployments d WHERE d.source = t.source AND d.sha = t.sha AND +d.deleted = 0 "
    "AND d.origin = 'deployment' AND d.repo IS t.repo AND d.environment IS t.environment "
    f"AND abs(julianday(d.finished) - julianday(t.finished)) * 86400.0 <= {TWIN_SECONDS})"
)
TWIN_SQL = f"(t.origin = 'workflow_run' AND t.sha IS NOT NULL AND t.finished IS NOT NULL AND {_TWIN})"


def _once(sel: Selection) -> list[str]:
    """Leave out workflow runs that twin a deployment record, unless the selector picks origins itself."""
    if sel.table != "deployments" or sel.names_origin:
        return []
    return [f"NOT {TWIN_SQL}"]


def _twins(sel: Selection, cond: list[str], params: Params) -> tuple[list[str], Params]:
    """A column counting the workflow runs left out as twins (for explain), and its parameters."""
    if not _once(sel):
        return ["0"], []
    return [f"(SELECT count(*) FROM deployments t WHERE {_where(sel, cond + [TWIN_SQL])})"], sel.params + params


def deployment_frequency(sel: Selection, window: Window, **_: object) -> MetricPlan:
    cond, params = _in_window("t.finished", window)
    cond += ["t.status = 'success'"]
    col, col_params = _twins(sel, cond, params)
    return _aggregate_plan(sel, col, cond + _once(sel), params,
                           lambda row, n: (ratio(float(n), window.weeks), {"merged_twins": int(row[0])}),
                           col_params)


def change_failure_rate(sel: Selection, window: Window, failures: str = "deployments",
                        attribution: Attribution | None = None, **_: object) -> MetricPlan:
    if failures != "deployments" and attribution is not None:
        return change_failure_rate_attributed(sel, window, failures, attribution)
    cond, params = _in_window("t.finished", window)
    cond += ["t.status IN ('success', 'failure', 'error')"]
    col, col_params = _twins(sel, cond, params)

    def value(row: Row, n: int) -> tuple[float | None, Detail]:
        return ratio(row[0], n), {"failed": row[0], "finished": n, "merged_twins": int(row[1])}

    return _aggregate_plan(sel, ["total(t.status IN ('failure', 'error'))", *col], cond + _once(sel), params,
                           value, col_params)


def lead_time(sel: Selection, window: Window, agg: str | None, **_: object) -> MetricPlan:
    assert agg is not None  # METRIC_DEFS gives it a default
    cond, params = _in_window("t.finished", window)
    where = _where(sel, ["t.status = 'success'"] + cond + _once(sel))
    sql = (
        f"SELECT p.rowid, {_seconds('p.merged_at', 'min(t.finished)')} FROM deployments t "
        # CROSS JOIN fixes the order: the deployments, their commits, then the PR of each commit
        "CROSS JOIN deployment_commits c ON c.source = t.source AND c.deployment_id = t.id "
        # unary + keeps is_pull_request/deleted out of index choice: the PR is found by its merge commit
        # (idx_issues_merge_sha), never by scanning every PR of the source for each deployment
        "CROSS JOIN issues p ON p.source = t.source AND p.merge_sha = c.sha AND +p.is_pull_request = 1 "
        "AND +p.deleted = 0 AND p.merged_at IS NOT NULL "
        "AND (t.repo IS NULL OR p.project IS NULL OR p.project = t.repo) "
        f"WHERE {where} GROUP BY p.rowid, p.merged_at"  # (merged_at: PostgreSQL asks for it by name)
    )
    return _row_plan(sel, [], [], params, lambda r: max(0.0, r[1]) / 3600.0,
                     lambda vals: (aggregate(vals, agg), {}), table="issues", sql=sql)


# -- DORA metrics computed over the deployment timeline (Python: each needs its neighbours) ---------------
LOOKBACK = timedelta(days=92)  # how far before the window a deployment can be a failure's cause
_FINISHED = ("success", "failure", "error")


@dataclass(frozen=True)
class Deploy:
    rowid: int
    id: str
    repo: str | None
    environment: str | None
    status: str
    finished: datetime
    sha: str | None
    ref: str | None

    @property
    def failed(self) -> bool:
        return self.status in ("failure", "error")


@dataclass(frozen=True)
class Attribution:
    """How incidents are tied to deployments: an incident field naming the deployment, else DevLake's rule
    (the latest successful deployment of the selection that finished before the incident opened)."""

    incidents: Selection
    field_sql: str | None = None  # SQL of the incident field naming the deployment (id, sha or ref)


Blame = tuple[datetime, Deploy]  # (incident opened, the deployment it is attributed to)
# reduce(deploys over the timeline, incidents attributed, rows of the extra side queries)
TimelineReduce = Callable[[list[Deploy], list[Blame], list[list[Row]]], MetricResult]


def _timeline_sql(sel: Selection, window: Window) -> tuple[str, Params]:
    cond = ["t.status IN ('success', 'failure', 'error')", "t.finished IS NOT NULL", "t.finished >= ?"] + _once(sel)
    sql = (f"SELECT t.rowid, t.id, t.repo, t.environment, t.status, t.finished, t.sha, t.ref FROM deployments t "
           f"WHERE {_where(sel, cond)} ORDER BY t.finished, t.rowid")
    return sql, sel.params + [iso(window.start - LOOKBACK)]


def _incidents_sql(att: Attribution, window: Window) -> tuple[str, Params]:
    sel = att.incidents
    col = att.field_sql or "NULL"
    cond = ["t.opened >= ?", "t.opened < ?", "t.status != 'cancelled'"]
    sql = f"SELECT t.opened, {col} FROM incidents t WHERE {_where(sel, cond)} ORDER BY t.opened"
    return sql, sel.params + [iso(window.start - LOOKBACK), iso(window.end)]


def _deploys(rows: list[Row]) -> list[Deploy]:
    return [Deploy(r[0], str(r[1]), r[2], r[3], r[4], parse_iso(r[5]), r[6], r[7]) for r in rows]


def attribute(deploys: list[Deploy], incidents: list[Row]) -> list[Blame]:
    """(incident opened, the deployment it is attributed to) for each incident that has one."""
    successes = [d for d in deploys if d.status == "success"]
    out: list[Blame] = []
    for opened_text, named in incidents:
        opened = parse_iso(opened_text)
        if named not in (None, ""):
            key = str(named).strip()
            hits = [d for d in deploys if d.id == key or d.ref == key
                    or (len(key) >= 7 and d.sha is not None and d.sha.startswith(key))]
            if hits:
                out.append((opened, max(hits, key=lambda d: d.finished)))
            continue
        before = [d for d in successes if d.finished <= opened]
        if before:
            out.append((opened, before[-1]))
    return out


def _next_success(deploys: list[Deploy], after: datetime, repo: str | None, env: str | None) -> Deploy | None:
    for d in deploys:  # sorted by finished
        if d.finished > after and d.status == "success" and d.repo == repo and d.environment == env:
            return d
    return None


def _in(d: Deploy, window: Window) -> bool:
    return window.start <= d.finished < window.end


def _result(value: float | None, counted: list[Deploy], detail: Detail) -> MetricResult:
    rowids = [d.rowid for d in counted]
    return MetricResult(value, len(rowids), fingerprint_of(rowids), detail, rowids=("deployments", rowids))


def _with_incidents(sel: Selection, window: Window, att: Attribution | None, reduce: TimelineReduce,
                    extra: list[tuple[str, Params]] | None = None) -> MetricPlan:
    """A plan over the deployment timeline, with the attributed incidents (and any extra side query)."""
    sql, params = _timeline_sql(sel, window)
    side = [_incidents_sql(att, window)] if att else []
    side += extra or []

    def reduce_with(rows: list[Row], sides: list[list[Row]]) -> MetricResult:
        deploys = _deploys(rows)
        pairs = attribute(deploys, sides[0]) if att else []
        return reduce(deploys, pairs, sides[1:] if att else sides)

    return MetricPlan(sql, params, lambda rows: reduce_with(rows, []), side=side, reduce_with=reduce_with)


def change_failure_rate_attributed(sel: Selection, window: Window, failures: str,
                                   attribution: Attribution | None) -> MetricPlan:
    """failures: incidents | both — a deployment an incident is attributed to failed too (DevLake's rule)."""

    def reduce(deploys: list[Deploy], pairs: list[Blame], _: list[list[Row]]) -> MetricResult:
        blamed = {d.rowid for _, d in pairs}
        counted = [d for d in deploys if _in(d, window)]
        failed = [d for d in counted if (d.failed and failures == "both") or d.rowid in blamed]
        return _result(ratio(len(failed), len(counted)), counted,
                       {"failed": len(failed), "finished": len(counted), "incidents_attributed": len(pairs)})

    return _with_incidents(sel, window, attribution, reduce)


def failed_deployment_recovery_time(sel: Selection, window: Window, agg: str | None,
                                    attribution: Attribution | None = None, **_: object) -> MetricPlan:
    """Hours from a failed deployment's finish to the next successful deployment of the same repository and
    environment (dora.dev, 2023); failures not yet recovered are left out until they are."""

    assert agg is not None  # METRIC_DEFS gives it a default

    def reduce(deploys: list[Deploy], pairs: list[Blame], _: list[list[Row]]) -> MetricResult:
        blamed = {d.rowid for _, d in pairs}
        hours: list[float] = []
        counted: list[Deploy] = []
        open_ = 0
        for d in deploys:
            if not _in(d, window) or not (d.failed or d.rowid in blamed):
                continue
            fix = _next_success(deploys, d.finished, d.repo, d.environment)
            if fix is None:
                open_ += 1
                continue
            hours.append((fix.finished - d.finished).total_seconds() / 3600.0)
            counted.append(d)
        return _result(aggregate(hours, agg), counted, {"unrecovered": open_})

    return _with_incidents(sel, window, attribution, reduce)


def _labelled_sql(sel: Selection, labels: list[str]) -> tuple[str, Params]:
    marks = ", ".join("?" for _ in labels) or "NULL"
    sql = ("SELECT DISTINCT c.deployment_id FROM deployment_commits c "
           "JOIN issues p ON p.source = c.source AND p.merge_sha = c.sha AND p.is_pull_request = 1 "
           "JOIN item_labels l ON l.source = p.source AND l.item_id = p.id "
           f"WHERE c.source = ? AND l.label IN ({marks})")
    return sql, [sel.source, *labels]


def deployment_rework_rate(sel: Selection, window: Window, rework: Rework | None = None,
                           attribution: Attribution | None = None, **_: object) -> MetricPlan:
    """Unplanned deployments (a hotfix/rollback ref or PR label, or the first success after an attributed
    incident of the same repository and environment) / successful deployments (dora.dev, 2024)."""
    labels = [str(x) for x in (rework.labels if rework else ["hotfix", "rollback", "revert"])]
    refs = [str(x) for x in (rework.refs if rework else ["hotfix/*", "hotfix-*", "rollback/*", "revert-*"])]

    def reduce(deploys: list[Deploy], pairs: list[Blame], sides: list[list[Row]]) -> MetricResult:
        labelled = {str(r[0]) for r in sides[0]} if sides else set()
        after_incident: set[int] = set()
        for opened, blamed in pairs:
            fix = _next_success(deploys, opened, blamed.repo, blamed.environment)
            if fix is not None:
                after_incident.add(fix.rowid)
        counted = [d for d in deploys if d.status == "success" and _in(d, window)]
        unplanned = [d for d in counted if d.id in labelled or d.rowid in after_incident
                     or any(fnmatchcase((d.ref or "").lower(), p.lower()) for p in refs)]
        return _result(ratio(len(unplanned), len(counted)), counted,
                       {"rework": len(unplanned), "successful": len(counted)})

    return _with_incidents(sel, window, attribution, reduce, [_labelled_sql(sel, labels)])
