"""The report's view model: a Computation plus the store's items and history, ready for the template."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from okrsync.config.periods import expected_fraction
from okrsync.config.sources import SOURCES
from okrsync.domain import VERSION as __version__
from okrsync.domain.records import parse_iso
from okrsync.domain.text import STATUS_LABELS, fmt_number, fmt_pct, plural
from okrsync.engine.compute import Computation, KRResult, ObjectiveResult
from okrsync.engine.store import Store

from .chart import Bar, Chart, history_chart

ITEM_CAP = 25
STATUS_ORDER = ("achieved", "on_track", "at_risk", "off_track", "no_data", "not_started")
STATUS_COLOURS = {
    "achieved": "#0f766e",
    "on_track": "#16a34a",
    "at_risk": "#d97706",
    "off_track": "#dc2626",
    "no_data": "#64748b",
    "not_started": "#4f46e5",
}
PERCENT_UNITS = ("%", "percent")

# One query per table: (label column, time used to order the list newest first).
# per item table: (label, state, the time an item sorts by, newest first) of its rows
_ITEM_COLS = {
    "issues": ("key", "status_category", ("resolved", "updated", "created")),
    "incidents": ("number", "status", ("resolved", "updated", "opened")),
    "deployments": ("environment", "status", ("finished", "created")),
}


def _item_fields(table: str, row: dict) -> dict:
    """A stored item row in the report's terms: label, state, at, and sha/repo/ref for deployments."""
    label, state, times = _ITEM_COLS[table]
    out = {**row, "label": row.get(label), "state": row.get(state),
           "at": next((row[t] for t in times if row.get(t)), None)}
    if table != "deployments":
        out.update(sha=None, repo=None, ref=None)
    if table != "issues":
        out["is_pull_request"] = 0
    if table == "deployments":
        out["title"] = None
    return out


_KIND = {"issues": "issue", "incidents": "incident", "deployments": "deployment"}


@dataclass
class ItemView:
    ref: str  # source:id
    label: str
    title: str
    url: str | None
    kind: str  # issue | pull request | deployment | incident | unknown
    system: str
    status: str
    at: str
    deleted: bool = False


@dataclass
class KRView:
    id: str
    title: str
    description: str | None
    owner: str | None
    status: str
    status_label: str
    colour: str
    value: str  # numbers without the unit (a "%" unit stays on the number)
    target: str
    baseline: str
    unit: str  # shown under the numbers
    baseline_note: str
    warnings: list[str]
    projected: str  # cumulative metrics while the period runs, else ""
    progress: str
    score: str
    expected: str
    bar: Bar
    metric: str
    formula: str
    select: str
    window: str
    direction: str
    synced: str
    weight: float
    overridden: bool
    override_note: str
    checkin: str  # the latest check-in, "" when none
    owner_team: str  # "owner · team", "" when neither
    reason: str | None
    details: list[tuple[str, str]]
    items: list[ItemView]
    items_total: int
    items_more: int
    chart: Chart | None
    history_count: int
    history_note: str


@dataclass
class ObjectiveView:
    id: str
    title: str
    description: str | None
    owner: str | None
    parent: str | None
    status: str
    status_label: str
    colour: str
    score: str
    bar: Bar
    krs: list[KRView] = field(default_factory=list)
    team: str | None = None


@dataclass
class ReportView:
    title: str
    period: str
    period_range: str
    timezone: str
    generated_at: str
    elapsed: str
    counts: list[tuple[str, str, int, str]]  # status, label, count, colour
    objectives: list[ObjectiveView]
    sources: list[tuple[str, str, str]]  # name, system, last synced
    version: str = __version__
    colours: dict[str, str] = field(default_factory=lambda: dict(STATUS_COLOURS))


class _Clock:
    """Times as the workspace's readers expect them: in its time zone, labelled."""

    def __init__(self, tz: str):
        self.zone = ZoneInfo(tz)

    def __call__(self, value: datetime | str | None, with_time: bool = True) -> str:
        if isinstance(value, str):
            value = parse_iso(value)
        if value is None:
            return "—"
        local = value.astimezone(self.zone)
        return local.strftime("%Y-%m-%d %H:%M %Z" if with_time else "%Y-%m-%d")


def _safe_url(url: str | None) -> str | None:
    if not url:
        return None
    return url if urlsplit(url).scheme in ("http", "https") else None


def lookup_items(store: Store, item_ids: list[str], systems: dict[str, str], clock: _Clock,
                 cap: int = ITEM_CAP) -> list[ItemView]:
    """The newest `cap` items of a KR (ids are "source:id"), looked up in issues/deployments/incidents."""
    by_source: dict[str, list[str]] = {}
    for ref in item_ids:
        source, _, iid = ref.partition(":")
        by_source.setdefault(source, []).append(iid)
    found: dict[str, ItemView] = {}
    sort_key: dict[str, str] = {}
    for source, ids in by_source.items():
        for table in _ITEM_COLS:
            pending = [i for i in ids if f"{source}:{i}" not in found]
            for stored in store.items(table, source, pending):
                row = _item_fields(table, stored)
                ref = f"{source}:{row['id']}"
                found[ref] = _item_view(ref, table, row, systems.get(source, source), clock)
                sort_key[ref] = row["at"] or ""
    ordered = sorted(item_ids, key=lambda r: (sort_key.get(r, ""), r), reverse=True)
    out = []
    for ref in ordered[:cap]:
        out.append(found.get(ref) or ItemView(ref, ref.partition(":")[2] or ref, "(not in the store)", None,
                                              "unknown", systems.get(ref.partition(":")[0], ""), "", ""))
    return out


def _item_view(ref: str, table: str, row: dict[str, Any], system: str, clock: _Clock) -> ItemView:
    kind = "pull request" if row["is_pull_request"] else _KIND[table]
    label, title = str(row["label"] or row["id"]), row["title"] or ""
    if table == "deployments":
        sha = (row["sha"] or "")[:7]
        label = f"{row['label']}" + (f" @ {sha}" if sha else "")
        title = " ".join(x for x in (row["repo"], row["ref"]) if x) or f"deployment {row['id']}"
    status = row["status"] or ""
    state = (row["state"] or "").replace("_", " ")
    if state and state.lower() != status.lower():
        # a workflow status name plus its category when they differ: "In Review (in progress)"
        status = f"{status} ({state})" if status else state
    return ItemView(ref, label, title, _safe_url(row["url"]), kind, system, status,
                    clock(row["at"], with_time=False) if row["at"] else "", bool(row["deleted"]))


def _num(value: float | None, unit: str | None) -> str:
    return fmt_number(value, unit if unit in PERCENT_UNITS else None)


def _reason(k: KRResult) -> str | None:
    if k.error:
        return k.error
    if "reason" in k.detail:
        return str(k.detail["reason"])
    if k.status == "no_data":
        if not k.items:
            return "no items matched the selection in the window"
        return "the metric has no value for these items (e.g. a division by zero or no numeric field)"
    return None


def _window_text(k: KRResult, clock: _Clock) -> str:
    if k.window is None:
        return "no window (" + str(k.detail.get("reason", "sprint dates unknown")) + ")"
    how = k.kr.window or "period"
    return f"{clock(k.window.start)} → {clock(k.window.end)} ({k.window.days:.1f} days; {how})"


def _details(k: KRResult) -> list[tuple[str, str]]:
    out = []
    for key, value in sorted(k.detail.items()):
        if key == "reason":
            continue
        if isinstance(value, float):
            value = fmt_number(value)
        elif isinstance(value, (list, dict)):
            value = json.dumps(value, default=str)
        out.append((key.replace("_", " "), str(value)))
    return out


def kr_view(k: KRResult, store: Store, systems: dict[str, str], clock: _Clock) -> KRView:
    kr, unit = k.kr, k.unit
    note = ""
    if k.overridden and kr.override is not None:
        until = f" until {kr.override.until}" if kr.override.until else ""
        note = f"set by hand to {fmt_number(k.value, unit)}{until} — {kr.override.reason}; " \
               f"computed value {fmt_number(k.computed_value, unit)}"
    rows = store.history(kr.id)
    chart = history_chart(rows, unit=unit, baseline=k.baseline, target=k.target, span=k.period,
                          direction=k.direction, fmt_time=clock)
    valued = [r for r in rows if r.get("value") is not None]
    if chart is not None:
        history_note = plural(len(rows), "recorded value")
    elif valued:
        r = valued[-1]
        history_note = (f"One recorded value so far: {fmt_number(r['value'], unit)} at {clock(r['computed_at'])}. "
                        "The chart appears after the next sync.")
    elif rows:
        history_note = f"No value in the {plural(len(rows), 'recorded run')} yet."
    else:
        history_note = "No recorded values yet: every sync adds one."
    select = kr.select.model_dump(exclude_none=True, exclude_defaults=True) if kr.select else {}
    items = lookup_items(store, k.item_ids, systems, clock)
    return KRView(
        id=kr.id, title=kr.title, description=kr.description, owner=kr.owner,
        status=k.status, status_label=STATUS_LABELS.get(k.status, k.status),
        colour=STATUS_COLOURS.get(k.status, "#64748b"),
        value=fmt_number(k.value, unit if unit in PERCENT_UNITS else None, k.target),
        target=_num(k.target, unit), baseline="" if k.baseline is None else _num(k.baseline, unit),
        warnings=list(k.warnings),
        projected="" if k.projected is None or k.projected == k.value else fmt_number(
            k.projected, unit if unit in PERCENT_UNITS else None, k.target),
        unit="" if unit in PERCENT_UNITS else (unit or ""),
        baseline_note="auto: the same metric over the previous period" if kr.baseline == "auto" else "",
        progress=fmt_pct(k.progress), score=fmt_pct(k.score), expected=fmt_pct(k.expected),
        bar=Bar.of(k.progress, k.expected), metric=kr.metric, formula=k.formula,
        select=", ".join(f"{key}={json.dumps(v) if not isinstance(v, str) else v}" for key, v in select.items()),
        window=_window_text(k, clock), direction=k.direction.replace("_", " "),
        synced=clock(k.synced_at) if k.synced_at else "never", weight=kr.weight,
        overridden=k.overridden, override_note=note,
        checkin=k.checkin.line() if k.checkin is not None else "",
        owner_team=" · ".join(x for x in (kr.owner, k.team and f"team {k.team}") if x),
        reason=_reason(k),
        details=_details(k), items=items, items_total=k.items, items_more=max(0, k.items - len(items)),
        chart=chart, history_count=len(rows), history_note=history_note,
    )


def objective_view(o: ObjectiveResult, expected: float, store: Store, systems: dict[str, str],
                   clock: _Clock) -> ObjectiveView:
    obj = o.objective
    return ObjectiveView(
        id=obj.id, title=obj.title, description=obj.description, owner=obj.owner, parent=obj.parent,
        status=o.status, status_label=STATUS_LABELS.get(o.status, o.status),
        colour=STATUS_COLOURS.get(o.status, "#64748b"), score=fmt_pct(o.score), bar=Bar.of(o.score, expected),
        krs=[kr_view(k, store, systems, clock) for k in o.key_results], team=obj.team,
    )


def report_view(comp: Computation, store: Store) -> ReportView:
    ws = comp.workspace
    clock = _Clock(ws.timezone)
    lo, hi = ws.period.bounds(ws.timezone)
    expected = expected_fraction(lo, hi, comp.generated_at)
    systems = {name: SOURCES[src.type].label for name, src in ws.sources.items()}
    # grouped by team (objectives without one last), the workspace order within a team
    ordered = sorted(comp.objectives, key=lambda o: (o.objective.team is None, o.objective.team or ""))
    objectives = [objective_view(o, expected, store, systems, clock) for o in ordered]
    counts: dict[str, int] = {}
    for k in comp.all_krs():
        counts[k.status] = counts.get(k.status, 0) + 1
    synced = store.source_synced_at()
    return ReportView(
        title=f"OKR report {ws.period.label}",
        period=ws.period.label,
        period_range=f"{ws.period.start:%d %b %Y} – {ws.period.end:%d %b %Y}",
        timezone=ws.timezone,
        generated_at=clock(comp.generated_at),
        elapsed=fmt_pct(expected),
        counts=[(s, STATUS_LABELS[s], counts[s], STATUS_COLOURS[s]) for s in STATUS_ORDER if counts.get(s)],
        objectives=objectives,
        sources=[(name, systems[name], clock(synced[name]) if name in synced else "never") for name in ws.sources],
    )
