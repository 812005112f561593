"""Deployment metrics (DORA): frequency, change failure rate, lead time for changes, failed deployment
recovery time and deployment rework rate. A deploy recorded twice counts once."""

from __future__ import annotations

from .aggregates import aggregate, ratio
from .plans import _aggregate_plan, _in_window, _row_plan, _seconds, _where
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


def _twins(sel: Selection, cond: list[str], params: list) -> tuple[list[str], list]:
    """A column counting the workflow runs left out as twins (for explain), and its parameters."""
    if not _once(sel):
        return ["0"], []
    return [f"(SELECT count(*) FROM deployments t WHERE {_where(sel, cond + [TWIN_SQL])})"], sel.params + params


def deployment_frequency(sel, window, **_):
    cond, params = _in_window("t.finished", window)
    cond += ["t.status = 'success'"]
    col, col_params = _twins(sel, cond, params)
    return _aggregate_plan(sel, col, cond + _once(sel), params,
                           lambda row, n: (ratio(float(n), window.weeks), {"merged_twins": int(row[0])}),
                           col_params)


def change_failure_rate(sel, window, **_):
    cond, params = _in_window("t.finished", window)
    cond += ["t.status IN ('success', 'failure', 'error')"]
    col, col_params = _twins(sel, cond, params)

    def value(row, n):
        return ratio(row[0], n), {"failed": row[0], "finished": n, "merged_twins": int(row[1])}

    return _aggregate_plan(sel, ["total(t.status IN ('failure', 'error'))", *col], cond + _once(sel), params,
                           value, col_params)


def lead_time(sel, window, agg, **_):
    cond, params = _in_window("t.finished", window)
    where = _where(sel, ["t.status = 'success'"] + cond + _once(sel))
    sql = (
        f"SELECT p.rowid, {_seconds('p.merged_at', 'min(t.finished)')} FROM deployments t "
        # CROSS JOIN fixes the order: the deployments, their commits, then the PR of each commit
        "CROSS JOIN deployment_commits c ON c.source = t.source AND c.deployment_id = t.id "
        # unary + keeps is_pull_request/deleted out of index choice: the PR is found by its merge commit
        # (idx_issues_merge_sha), never by scanning every PR of the source for each deployment
        "CROSS JOIN issues p ON p.source = t.source AND p.merge_sha = c.sha AND +p.is_pull_request = 1 "
        "AND +p.deleted = 0 AND p.merged_at IS NOT NULL AND (t.repo IS NULL OR p.project IS NULL OR p.project = t.repo) "
        f"WHERE {where} GROUP BY p.rowid"
    )
    return _row_plan(sel, [], [], params, lambda r: max(0.0, r[1]) / 3600.0,
                     lambda vals: (aggregate(vals, agg or "median"), {}), table="issues", sql=sql)
