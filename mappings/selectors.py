"""Selectors -> SQL WHERE clauses over the store's item tables (pure: builds text, runs nothing)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from okrsync.config.keyresults import Selector
from okrsync.engine.records import iso

TABLES = {"issue": "issues", "pull_request": "issues", "deployment": "deployments", "incident": "incidents"}

# Columns a where: key may name directly; anything else is a path into the raw payload.
COLUMNS = {
    "issues": {
        "id", "key", "title", "type", "status", "status_category", "created", "updated", "resolved",
        "project", "parent", "story_points", "assignee", "url", "is_pull_request", "merged_at", "merge_sha",
    },
    "deployments": {
        "id", "environment", "status", "created", "finished", "sha", "ref", "url", "repo", "origin", "updated",
    },
    "incidents": {
        "id", "number", "title", "status", "opened", "service", "priority", "severity", "urgency",
        "acknowledged", "resolved", "closed", "updated", "reassignment_count", "sla_breached",
        "assignment_group", "url",
    },
}
LIST_COLUMNS = {"issues": {"labels", "components"}}


def jql_key(source: str, jql: str) -> str:
    """Stable id of a JQL selector's member set (shared by KRs with the same JQL)."""
    return hashlib.sha1(f"{source}\x00{jql.strip()}".encode()).hexdigest()[:16]


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def raw_path(path: str) -> str:
    """'fields.customfield_10010.value' or 'a[0].b' -> a SQLite JSON path."""
    out = "$"
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if part.startswith("["):
            out += part
        else:
            out += '."' + part.replace('"', '""') + '"'
    return out


def field_expr(table: str, name: str, alias: str = "t") -> str:
    """A column, or a json_extract into the raw payload for any other name."""
    if name in COLUMNS[table] or name in LIST_COLUMNS.get(table, ()):
        return f"{alias}.{name}"
    name = name[4:] if name.startswith("raw.") else name
    return f"json_extract({alias}.raw, '{raw_path(name)}')"


@dataclass
class Selection:
    """A compiled selector: FROM table AS t WHERE sql (with params)."""

    table: str
    kind: str
    source: str
    where: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)
    jql_key: str | None = None
    sprint_names: list[str] = field(default_factory=list)
    sprint_mode: str | None = None  # name | active | closed-in-period

    def clause(self) -> str:
        return " AND ".join(self.where) if self.where else "1"

    def add(self, sql: str, *params: Any) -> None:
        self.where.append(sql)
        self.params.extend(params)


def _in(sel: Selection, expr: str, values: list, *, lower: bool = False) -> None:
    if not values:
        return
    marks = ", ".join("?" for _ in values)
    if lower:
        sel.add(f"lower({expr}) IN ({marks})", *[_str(v).lower() for v in values])
    else:
        sel.add(f"{expr} IN ({marks})", *[_str(v) for v in values])


def _priority_values(values: list) -> list[str]:
    """1 matches '1' and 'P1'; 'P2' matches 'P2' and '2' (ServiceNow vs PagerDuty)."""
    out: list[str] = []
    for v in values:
        s = _str(v).strip()
        out.append(s)
        if s.isdigit():
            out.append(f"P{s}")
        elif s[:1] in "pP" and s[1:].isdigit():
            out += [s.upper(), s[1:]]
    return list(dict.fromkeys(out))


def compile_selector(
    sel: Selector,
    kind: str,
    *,
    kr_id: str | None = None,
    period: tuple[datetime, datetime] | None = None,
) -> Selection:
    table = TABLES[kind]
    out = Selection(table=table, kind=kind, source=sel.source)
    out.add("t.source = ?", sel.source)
    out.add("t.deleted = 0")
    if table == "issues":
        out.add("t.is_pull_request = ?", 1 if kind == "pull_request" else 0)
    if sel.jql:
        out.jql_key = jql_key(sel.source, sel.jql)
        out.add(
            "EXISTS (SELECT 1 FROM jql_members m WHERE m.jql_key = ? AND m.source = t.source AND m.item_id = t.id)",
            out.jql_key,
        )
    _in(out, "t.key", _as_list(sel.key))
    if table == "issues":
        _in(out, "t.project", _as_list(sel.project) + _as_list(sel.repo), lower=True)
    elif table == "deployments":
        _in(out, "t.repo", _as_list(sel.repo), lower=True)
    _in(out, "t.type", _as_list(sel.type), lower=True)
    _in(out, "t.status", _as_list(sel.status), lower=True)
    _in(out, "t.status_category", _as_list(sel.status_category))
    _in(out, "t.assignee", _as_list(sel.assignee), lower=True)
    _in(out, "t.parent", _as_list(sel.parent))
    _in(out, "t.environment", _as_list(sel.environment), lower=True)
    _in(out, "t.origin", _as_list(sel.origin))
    _in(out, "t.service", _as_list(sel.service), lower=True)
    _in(out, "t.urgency", _as_list(sel.urgency), lower=True)
    _in(out, "t.severity", _as_list(sel.severity), lower=True)
    _in(out, "t.priority", _priority_values(_as_list(sel.priority)))
    for label in _as_list(sel.labels):
        out.add("EXISTS (SELECT 1 FROM json_each(t.labels) WHERE lower(value) = ?)", _str(label).lower())
    if sel.linked:
        if kr_id is None:
            raise ValueError("linked: true needs the key result id")
        out.add("EXISTS (SELECT 1 FROM json_each(t.labels) WHERE lower(value) = ?)", f"kr:{kr_id}".lower())
    comps = _as_list(sel.components)
    if comps:
        marks = ", ".join("?" for _ in comps)
        out.add(f"EXISTS (SELECT 1 FROM json_each(t.components) WHERE lower(value) IN ({marks}))",
                *[_str(c).lower() for c in comps])
    _sprint(out, _as_list(sel.sprint), period)
    for name, value in (sel.where or {}).items():
        _where(out, table, str(name), value)
    return out


def _sprint(out: Selection, values: list, period: tuple[datetime, datetime] | None) -> None:
    if not values:
        return
    names = [_str(v) for v in values if _str(v) not in ("active", "closed-in-period")]
    parts: list[str] = []
    params: list[Any] = []
    if names:
        marks = ", ".join("?" for _ in names)
        parts.append(f"json_extract(s.value, '$.name') IN ({marks})")
        params += names
        out.sprint_names = names
        out.sprint_mode = "name"
    if "active" in values:
        parts.append("json_extract(s.value, '$.state') = 'active'")
        out.sprint_mode = out.sprint_mode or "active"
    if "closed-in-period" in values:
        lo, hi = period if period else (None, None)
        parts.append(
            "(json_extract(s.value, '$.state') = 'closed' AND "
            "coalesce(json_extract(s.value, '$.completed'), json_extract(s.value, '$.end')) >= ? AND "
            "coalesce(json_extract(s.value, '$.completed'), json_extract(s.value, '$.end')) < ?)"
        )
        params += [iso(lo) if lo else "", iso(hi) if hi else "9999"]
        out.sprint_mode = out.sprint_mode or "closed-in-period"
    out.add(f"EXISTS (SELECT 1 FROM json_each(t.sprints) s WHERE {' OR '.join(parts)})", *params)


def _where(out: Selection, table: str, name: str, value: Any) -> None:
    if name in LIST_COLUMNS.get(table, ()):
        vals = _as_list(value)
        marks = ", ".join("?" for _ in vals)
        out.add(f"EXISTS (SELECT 1 FROM json_each(t.{name}) WHERE value IN ({marks}))", *[_str(v) for v in vals])
        return
    expr = field_expr(table, name)
    if value is None:
        out.add(f"{expr} IS NULL")
        return
    vals = _as_list(value)
    if all(isinstance(v, bool) for v in vals):
        # JSON true/false come back from json_extract as 1/0; columns store 1/0 too
        _in_raw(out, expr, [1 if v else 0 for v in vals])
    elif all(isinstance(v, (int, float)) for v in vals):
        _in_raw(out, expr, vals)
    else:
        # compare as text so '1' (ServiceNow strings) matches 1
        marks = ", ".join("?" for _ in vals)
        out.add(f"CAST({expr} AS TEXT) IN ({marks})", *[_str(v) for v in vals])


def _in_raw(out: Selection, expr: str, vals: list) -> None:
    marks = ", ".join("?" for _ in vals)
    out.add(f"({expr} IN ({marks}) OR CAST({expr} AS TEXT) IN ({marks}))", *vals, *[_str(v) for v in vals])
