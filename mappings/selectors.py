"""Selectors -> SQL WHERE clauses over the store's item tables (pure: builds text, runs nothing)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from okrsync.config.keyresults import Selector, Team
from okrsync.domain.records import iso

TABLES = {"issue": "issues", "pull_request": "issues", "deployment": "deployments", "incident": "incidents"}

# The item tables' columns after the bookkeeping ones (source, id, stream, hash, deleted, first_run, last_run), in
# the order the store writes them (engine/items.py); declared once, here.
ITEM_COLUMNS: dict[str, tuple[str, ...]] = {
    "issues": ("key", "title", "type", "status", "status_category", "created", "updated", "resolved", "project",
               "labels", "components", "parent", "sprints", "story_points", "assignee", "url", "is_pull_request",
               "merged_at", "merge_sha"),
    "deployments": ("environment", "status", "created", "finished", "sha", "ref", "url", "repo", "origin",
                    "updated"),
    "incidents": ("number", "title", "status", "opened", "service", "priority", "severity", "urgency",
                  "acknowledged", "resolved", "closed", "updated", "reassignment_count", "sla_breached",
                  "assignment_group", "url"),
}
LIST_COLUMNS = {"issues": {"labels", "components"}}
# Columns a where: key may name directly (labels/components: their side tables; sprints: the sprint key);
# anything else is a path into the raw payload.
COLUMNS = {t: {"id", *cols} - LIST_COLUMNS.get(t, set()) - {"sprints"} for t, cols in ITEM_COLUMNS.items()}


def jql_key(source: str, jql: str) -> str:
    """Stable id of a JQL selector's member set (shared by KRs with the same JQL)."""
    return hashlib.sha1(f"{source}\x00{jql.strip()}".encode()).hexdigest()[:16]


def _as_list(value: object) -> list[object]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _str(value: object) -> str:
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
    # the raw payload lives in <table>_raw under the item's rowid (the item rows stay small)
    return f"json_extract((SELECT r.raw FROM {table}_raw r WHERE r.id = {alias}.rowid), {_literal(raw_path(name))})"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


RAW_INDEX_PREFIX = "rawpath:"


@dataclass(frozen=True)
class RawIndex:
    """An expression index over <table>_raw for one where: path compared as text (SQLite stores): the selector
    then walks the index instead of reading and parsing the raw payload of every candidate row. Its name says
    what it indexes, so the store can tell which exist."""

    table: str
    path: str  # the where: key without "raw."

    @property
    def name(self) -> str:
        return f"{RAW_INDEX_PREFIX}{self.table}:{self.path}"

    def expr(self, column: str = "raw") -> str:
        # json_valid first: a payload SQLite's JSON cannot read (NaN) gives NULL instead of failing the write
        return (f"CASE WHEN json_valid({column}) THEN CAST(json_extract({column}, {_literal(raw_path(self.path))}) "
                f"AS TEXT) END")

    @classmethod
    def from_name(cls, name: str) -> RawIndex | None:
        table, sep, path = name.removeprefix(RAW_INDEX_PREFIX).partition(":")
        if not name.startswith(RAW_INDEX_PREFIX) or not sep or table not in ITEM_COLUMNS or not path:
            return None
        return cls(table, path)


def raw_text_where(table: str, name: str, value: object) -> RawIndex | None:
    """The index a where: entry can use: a raw payload path compared with text values (numbers, booleans and
    null keep the per-row comparison, which also matches 1.0 for 1)."""
    vals = _as_list(value)
    if name in COLUMNS[table] or name in LIST_COLUMNS.get(table, ()) or value is None or not vals:
        return None
    if all(isinstance(v, (bool, int, float)) for v in vals):
        return None
    return RawIndex(table, name[4:] if name.startswith("raw.") else name)


@dataclass
class Condition:
    sql: str
    params: list[Any]
    probe: str | None = None  # a membership's per-row form (same params): EXISTS (... AND m.item_id = t.id)
    late: bool = False  # costly per row (a raw payload path): evaluated after everything else


@dataclass
class Selection:
    """A compiled selector: FROM table AS t WHERE clause() with params."""

    table: str
    kind: str
    source: str
    conditions: list[Condition] = field(default_factory=list)
    jql_key: str | None = None
    sprint_names: list[str] = field(default_factory=list)
    sprint_mode: str | None = None  # name | active | closed-in-period
    source_type: str | None = None  # jira | github | servicenow | pagerduty
    names_severity: bool = False  # the selector itself names priority, severity or urgency
    names_origin: bool = False  # the selector itself picks deployment origins
    dialect: str = "sqlite"  # the store's SQL engine (sqlite | postgresql): where the two differ

    def _ordered(self) -> list[Condition]:
        return [c for c in self.conditions if not c.late] + [c for c in self.conditions if c.late]

    def clause(self, probe: bool = False) -> str:
        """probe=True: memberships as per-row probes (when a time window's index is the narrow part; a label
        or JQL member list can hold a third of a source), else as member lists to walk."""
        parts = [c.probe if probe and c.probe else c.sql for c in self._ordered()]
        return " AND ".join(parts) if parts else "1 = 1"

    @property
    def params(self) -> list[Any]:
        return [p for c in self._ordered() for p in c.params]

    def add(self, sql: str, *params: Any, late: bool = False) -> None:
        self.conditions.append(Condition(sql, list(params), late=late))

    def member(self, alias: str, table: str, where: str, *params: Any) -> None:
        """t.id is in `table` (alias) rows matching `where`."""
        self.conditions.append(Condition(
            f"t.id IN (SELECT {alias}.item_id FROM {table} WHERE {where})", list(params),
            probe=f"EXISTS (SELECT 1 FROM {table} WHERE ({where}) AND {alias}.item_id = t.id)"))


def _in(sel: Selection, expr: str, values: Sequence[object]) -> None:
    """expr IN (...); name columns are COLLATE NOCASE in the store, so this is case-insensitive."""
    if not values:
        return
    marks = ", ".join("?" for _ in values)
    sel.add(f"{expr} IN ({marks})", *[_str(v) for v in values])


def _priority_values(values: Sequence[object]) -> list[str]:
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
    source_type: str | None = None,
    teams: dict[str, Team] | None = None,
    dialect: str = "sqlite",
    raw_indexes: frozenset[RawIndex] = frozenset(),
) -> Selection:
    """`raw_indexes`: the raw-path indexes the store has (where: entries they cover walk them)."""
    table = TABLES[kind]
    out = Selection(table=table, kind=kind, source=sel.source, source_type=source_type, dialect=dialect,
                    names_severity=any(v is not None for v in (sel.priority, sel.severity, sel.urgency)),
                    names_origin=sel.origin is not None)
    out.add("t.source = ?", sel.source)
    out.add("t.deleted = 0")
    if table == "issues":
        out.add("t.is_pull_request = ?", 1 if kind == "pull_request" else 0)
    if sel.jql:
        out.jql_key = jql_key(sel.source, sel.jql)
        out.member("m", "jql_members m", "m.jql_key = ? AND m.source = ?", out.jql_key, sel.source)
    _in(out, "t.key", _as_list(sel.key))
    if table == "issues":
        _in(out, "t.project", _as_list(sel.project) + _as_list(sel.repo))
    elif table == "deployments":
        _in(out, "t.repo", _as_list(sel.repo))
    _in(out, "t.type", _as_list(sel.type))
    _in(out, "t.status", _as_list(sel.status))
    _in(out, "t.status_category", _as_list(sel.status_category))
    _in(out, "t.assignee", _as_list(sel.assignee))
    _in(out, "t.parent", _as_list(sel.parent))
    _in(out, "t.environment", _as_list(sel.environment))
    _in(out, "t.origin", _as_list(sel.origin))
    _in(out, "t.service", _as_list(sel.service))
    _in(out, "t.urgency", _as_list(sel.urgency))
    _in(out, "t.severity", _as_list(sel.severity))
    _in(out, "t.priority", _priority_values(_as_list(sel.priority)))
    labels = [_str(x) for x in _as_list(sel.labels)]
    if sel.linked:
        if kr_id is None:
            raise ValueError("linked: true needs the key result id")
        labels.append(f"kr:{kr_id}")
    for label in labels:  # all of them
        out.member("l", "item_labels l", "l.source = ? AND l.label = ?", sel.source, label)
    comps = [_str(c) for c in _as_list(sel.components)]
    if comps:  # any of them
        marks = ", ".join("?" for _ in comps)
        out.member("c", "item_components c", f"c.source = ? AND c.component IN ({marks})", sel.source, *comps)
    if sel.team is not None:
        _team(out, (teams or {}).get(sel.team))
    _sprint(out, _as_list(sel.sprint), period)
    narrowed = table == "issues" and bool(sel.project or sel.repo)
    for name, value in (sel.where or {}).items():
        _where(out, table, str(name), value, raw_indexes, narrowed)
    return out


def _team(out: Selection, team: Team | None) -> None:
    """A record belongs to a team when it matches any of the team's lists (for its kind)."""
    parts: list[str] = []
    params: list[Any] = []

    def any_of(expr: str, values: list[str]) -> None:
        if values:
            parts.append(f"{expr} IN ({', '.join('?' for _ in values)})")
            params.extend(values)

    if team is not None:
        if out.table == "issues":
            any_of("t.project", team.repos + team.projects)
            if team.components:
                marks = ", ".join("?" for _ in team.components)
                parts.append(f"EXISTS (SELECT 1 FROM item_components c WHERE c.source = t.source AND "
                             f"c.item_id = t.id AND c.component IN ({marks}))")
                params.extend(team.components)
        elif out.table == "deployments":
            any_of("t.repo", team.repos)
        else:
            any_of("t.service", team.services)
            any_of("t.assignment_group", team.groups)
    out.add("(" + (" OR ".join(parts) or "1 = 0") + ")", *params)


def _sprint(out: Selection, values: Sequence[object], period: tuple[datetime, datetime] | None) -> None:
    if not values:
        return
    names = [_str(v) for v in values if _str(v) not in ("active", "closed-in-period")]
    parts: list[str] = []
    params: list[Any] = []
    if names:
        marks = ", ".join("?" for _ in names)
        parts.append(f"p.name IN ({marks})")
        params += names
        out.sprint_names = names
        out.sprint_mode = "name"
    if "active" in values:
        parts.append("p.state = 'active'")
        out.sprint_mode = out.sprint_mode or "active"
    if "closed-in-period" in values:
        lo, hi = period if period else (None, None)
        parts.append("(p.state = 'closed' AND coalesce(p.completed, p.\"end\") >= ? AND "
                     "coalesce(p.completed, p.\"end\") < ?)")
        params += [iso(lo) if lo else "", iso(hi) if hi else "9999"]
        out.sprint_mode = out.sprint_mode or "closed-in-period"
    # the (few) matching sprints first, then their items by idx_item_sprints_sprint
    out.member("s", "sprints p CROSS JOIN item_sprints s ON s.source = p.source AND s.sprint_id = p.id",
               f"p.source = ? AND ({' OR '.join(parts)})", out.source, *params)


def _where(out: Selection, table: str, name: str, value: object, raw_indexes: frozenset[RawIndex],
           narrowed: bool = False) -> None:
    """`narrowed`: the selector also names projects or repositories (idx_issues_project_*)."""
    if name in LIST_COLUMNS.get(table, ()):
        texts = [_str(v) for v in _as_list(value)]
        side, col = ("item_labels", "label") if name == "labels" else ("item_components", "component")
        marks = ", ".join("?" for _ in texts)
        out.member("x", f"{side} x", f"x.source = ? AND x.{col} IN ({marks})", out.source, *texts)
        return
    expr = field_expr(table, name)
    late = expr.startswith("json_extract")
    if value is None:
        out.add(f"{expr} IS NULL", late=late)
        return
    vals = _as_list(value)
    if late and out.dialect == "postgresql":
        # PostgreSQL's json_extract (dialect.PRELUDE) answers text: numbers without trailing zeros, booleans 1/0
        vals = [(1 if v else 0) if isinstance(v, bool) else v for v in vals]
        out.add(f"{expr} IN ({', '.join('?' for _ in vals)})", *[_str(v) for v in vals], late=late)
    elif all(isinstance(v, bool) for v in vals):
        # JSON true/false come back from json_extract as 1/0; columns store 1/0 too
        _in_raw(out, expr, [1 if v else 0 for v in vals], late)
    elif all(isinstance(v, (int, float)) for v in vals):
        _in_raw(out, expr, vals, late)
    else:
        # compare as text so '1' (ServiceNow strings) matches 1
        marks = ", ".join("?" for _ in vals)
        texts = [_str(v) for v in vals]
        index = raw_text_where(table, name, value) if out.dialect == "sqlite" else None
        if index is not None and index in raw_indexes:
            # the same test through the index: the matching rowids are read from it once, instead of every
            # candidate's payload being read and parsed. With projects named, `+` keeps the planner on the
            # project index, checking each row against the set: SQLite rates a fetch by rowid as cheap, but for
            # a common value (a team: a third of the issues) they are random page reads. Measured at 1M issues:
            # 0.14 s -> 0.04-0.07 s per KR for a project of 30k, 0.15 -> 0.03 s with a time window; 0.15 ->
            # 0.16-0.19 s for a project of 107k (a quarter of the source); a value matching nothing, 0.01 s
            rowid = "+t.rowid" if narrowed else "t.rowid"
            out.add(f"{rowid} IN (SELECT r.id FROM {table}_raw r WHERE {index.expr('r.raw')} IN ({marks}))", *texts)
            return
        out.add(f"CAST({expr} AS TEXT) IN ({marks})", *texts, late=late)


def _in_raw(out: Selection, expr: str, vals: Sequence[object], late: bool) -> None:
    marks = ", ".join("?" for _ in vals)
    out.add(f"({expr} IN ({marks}) OR CAST({expr} AS TEXT) IN ({marks}))", *vals, *[_str(v) for v in vals], late=late)
