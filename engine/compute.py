"""Recompute every KR from the store: windows, baselines, targets, status, objective roll-up."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Callable, TypedDict
from zoneinfo import ZoneInfo

from okrsync.config.keyresults import TRAITS, KeyResult, MetricSpec, Objective, Selector, Thresholds, parse_amount
from okrsync.config.periods import expected_fraction, parse_duration, planned_fraction
from okrsync.config.workspace import Workspace, default_kind
from okrsync.domain.records import iso, parse_iso
from okrsync.domain.text import PERCENT_UNITS
from okrsync.mappings import metrics
from okrsync.mappings.aggregates import ratio
from okrsync.mappings.plans import Detail, Params, Row
from okrsync.mappings.selectors import Selection, compile_selector, field_expr

from .checkins import Checkin, is_stale, latest_checkins
from .selector_check import SelectorChecker, selectors_of
from .status import evaluate, infer_direction, projected_value, resolve_target, roll_up
from .store import Store


@dataclass
class KRResult:
    objective_id: str
    kr: KeyResult
    value: float | None
    computed_value: float | None
    baseline: float | None
    target: float | None
    progress: float | None
    score: float | None
    expected: float
    status: str
    items: int
    fingerprint: str
    window: metrics.Window | None
    period: tuple[datetime, datetime]
    direction: str
    formula: str
    synced_at: str | None
    overridden: bool = False
    projected: float | None = None  # cumulative metrics: the value at the period end at the pace so far
    checkin: Checkin | None = None  # the latest check-in (never changes the computed value)
    stale: bool = False
    team: str | None = None
    warnings: list[str] = field(default_factory=list)
    detail: Detail = field(default_factory=dict)
    error: str | None = None
    ids_loader: Callable[[], list[str]] | None = field(default=None, repr=False)
    _ids: list[str] | None = field(default=None, repr=False)

    @property
    def unit(self) -> str | None:
        """The unit people read: fraction metrics are percentages everywhere (table, report, write-back)."""
        return display_unit(self.kr.metric, self.kr.unit)

    @property
    def item_ids(self) -> list[str]:
        """The counted items as "source:id", loaded from the store on first use."""
        if self._ids is None:
            self._ids = sorted(self.ids_loader()) if self.ids_loader else []
        return self._ids


@dataclass
class ObjectiveResult:
    objective: Objective
    score: float | None
    status: str
    key_results: list[KRResult]


@dataclass
class Computation:
    generated_at: datetime
    workspace: Workspace
    objectives: list[ObjectiveResult]

    def kr(self, kr_id: str) -> KRResult | None:
        for o in self.objectives:
            for k in o.key_results:
                if k.kr.id == kr_id:
                    return k
        return None

    def all_krs(self) -> list[KRResult]:
        return [k for o in self.objectives for k in o.key_results]


class QueryTrace(TypedDict):
    """One metric query as run (Computer.metric's explain list)."""

    sql: str
    params: Params
    kind: str
    table: str


COMPUTE_THREADS = min(4, os.cpu_count() or 1)


class Computer:
    def __init__(self, ws: Workspace, store: Store, now: datetime, thresholds: Thresholds | None = None):
        self.ws = ws
        self.store = store
        self.now = now.astimezone(timezone.utc)
        self.thresholds = thresholds or ws.thresholds
        self.period = ws.period.bounds(ws.timezone)
        self.synced = store.source_synced_at()
        self._cache: dict[tuple[str, tuple[Any, ...]], list[Row]] = {}
        self.checker = SelectorChecker(store, {name: src.type for name, src in ws.sources.items()})
        self.checkins = latest_checkins(store)
        self.raw_indexes = store.raw_indexes()

    # -- windows -------------------------------------------------------------------------------
    def _kind(self, spec: MetricSpec, sel: Selector) -> str:
        kind = default_kind(spec.metric, sel, self.ws.sources[sel.source].type)
        assert kind is not None, "validation guarantees a kind"
        return kind

    def _window(self, spec: MetricSpec, sel: Selector,
                sel_c: Selection) -> tuple[metrics.Window | None, tuple[datetime, datetime]]:
        """(window, the span 'expected' is measured on)."""
        lo, hi = self.period
        anchor = min(self.now, hi)
        how = spec.window or "period"
        if how == "period":
            return metrics.Window(lo, max(lo, anchor)), (lo, hi)
        if how.startswith("rolling"):
            length = parse_duration(how.removeprefix("rolling").strip())
            return metrics.Window(anchor - length, anchor), (lo, hi)
        # sprint
        sprint = self._sprint_span(sel_c)
        if sprint is None:
            return None, (lo, hi)
        s, e = sprint
        return metrics.Window(s, max(s, min(self.now, e))), (s, e)

    def _sprint_span(self, sel_c: Selection) -> tuple[datetime, datetime] | None:
        db = self.store.db
        if sel_c.sprint_mode == "name":
            marks = ",".join("?" for _ in sel_c.sprint_names)
            rows = db.execute(
                f"SELECT start, coalesce(completed, \"end\") FROM sprints WHERE source = ? AND name IN ({marks})",
                [sel_c.source, *sel_c.sprint_names],
            ).fetchall()
        elif sel_c.sprint_mode == "active":
            rows = db.execute(
                "SELECT start, \"end\" FROM sprints WHERE source = ? AND state = 'active'", [sel_c.source]
            ).fetchall()
        else:
            return self.period
        starts = [parse_iso(r[0]) for r in rows if r[0]]
        ends = [parse_iso(r[1]) for r in rows if r[1]]
        if not starts or not ends:
            return None
        return min(starts), max(ends)

    def _previous(self, spec: MetricSpec, window: metrics.Window) -> metrics.Window:
        how = spec.window or "period"
        if how.startswith("rolling"):
            span = parse_duration(how.removeprefix("rolling").strip())
            lo = self.period[0]
            return metrics.Window(lo - span, lo)
        return metrics.Window(*self.ws.period.previous_bounds(self.ws.timezone))

    # -- metric evaluation ---------------------------------------------------------------------
    def metric(self, spec: MetricSpec, sel: Selector | None, kr_id: str, *, previous: bool = False,
               explain: list[QueryTrace] | None = None,
               ) -> tuple[metrics.MetricResult, metrics.Window | None, tuple[datetime, datetime]]:
        if spec.metric == "ratio":
            parts: list[metrics.MetricResult] = []
            window: metrics.Window | None = None
            span = self.period
            for name in ("numerator", "denominator"):
                part = getattr(spec, name)
                if isinstance(part, MetricSpec):
                    part = _in_ratio(part, spec)
                    res, w, sp = self.metric(part, part.select or sel, kr_id, previous=previous, explain=explain)
                    window = window or w
                    span = sp
                    parts.append(res)
                else:
                    parts.append(metrics.MetricResult(float(part)))
            num, den = parts
            value = ratio(num.value, den.value)
            detail = {"numerator": num.value, "denominator": den.value, "denominator_items": den.items}
            result = metrics.MetricResult(value, num.items, num.fingerprint, detail, ids_sql=num.ids_sql,
                                          rowids=num.rowids)
            return result, window, span
        assert sel is not None
        kind = self._kind(spec, sel)
        sel_c = compile_selector(sel, kind, kr_id=kr_id, period=self.period, dialect=self.store.dialect,
                                 source_type=self.ws.sources[sel.source].type, teams=self.ws.teams,
                                 raw_indexes=self.raw_indexes)
        window, span = self._window(spec, sel, sel_c)
        if previous and window is not None:
            window = self._previous(spec, window)
        if window is None:
            return metrics.MetricResult(None, detail={"reason": "sprint dates unknown"}), None, span
        if sel_c.jql_key and not self.store.jql_evaluated(sel_c.jql_key):
            not_yet = {"reason": "JQL not evaluated yet (run okrsync sync)"}
            return metrics.MetricResult(None, detail=not_yet), window, span
        plan = metrics.plan(spec.metric, sel_c, window, now=self.now, agg=spec.aggregate, field_name=spec.field,
                            weighting=spec.weighting, count_by=spec.count_by, sla_hours=spec.sla_hours,
                            failures=spec.failures, attribution=self._attribution(spec), rework=spec.rework)
        rows = self._rows(plan.sql, plan.params)
        if plan.reduce_with is not None:
            result = plan.reduce_with(rows, [self._rows(sql, params) for sql, params in plan.side])
        else:
            result = plan.reduce(rows)
        if plan.order_stats is not None and plan.finish is not None:
            sql, params, positions = plan.order_stats
            wanted = positions(result.items)
            values: dict[int, float] = {}
            if wanted:
                lo, hi = min(wanted), max(wanted)
                for i, row in enumerate(self._rows(sql, params + [hi - lo + 1, lo])):
                    values[lo + i] = row[0]
            result = plan.finish(result, values)
        if explain is not None:
            explain.append({"sql": plan.sql, "params": plan.params, "kind": kind, "table": sel_c.table})
        return result, window, span

    def _attribution(self, spec: MetricSpec) -> metrics.Attribution | None:
        """The incidents a DORA metric attributes to deployments, when the KR names them."""
        if spec.incidents is None:
            return None
        inc = compile_selector(spec.incidents, "incident", source_type=self.ws.sources[spec.incidents.source].type,
                               dialect=self.store.dialect, raw_indexes=self.raw_indexes)
        return metrics.Attribution(inc, field_expr("incidents", spec.attribution) if spec.attribution else None)

    def _rows(self, sql: str, params: Params) -> list[Row]:
        """Run a metric query; identical queries in one recompute run once."""
        key = (sql, tuple(params))
        rows = self._cache.get(key)
        if rows is None:
            rows = self._cache[key] = self.store.db.execute(sql, params).fetchall()
        return rows

    def key_result(self, obj: Objective, kr: KeyResult) -> KRResult:
        sources = sources_of(kr)
        synced = [self.synced.get(s) for s in sources]
        known = [s for s in synced if s is not None]
        synced_at = None if len(known) < len(synced) or not known else min(known)
        never = [s for s, at in zip(sources, synced) if at is None]
        result, window, span = self.metric(kr, kr.select, kr.id)
        if never:
            # nothing read yet is no data, not a zero
            result = metrics.MetricResult(None, detail={"reason": f"not synced yet: {', '.join(never)}"})
        computed = result.value
        value = computed
        overridden = False
        if kr.override is not None and self._override_active(kr.override.until):
            value = float(kr.override.value)
            overridden = True
        baseline: float | None
        detail = dict(result.detail)
        if kr.baseline == "auto":
            prev, prev_window, _ = self.metric(kr, kr.select, kr.id, previous=True)
            # an empty or never-synced baseline window is no data, never a baseline of 0 (DESIGN §5)
            empty = prev.value is None or (prev.items == 0 and kr.metric not in ("ratio", "availability"))
            baseline = None if empty else prev.value
            if prev_window is not None:
                detail["baseline_window"] = [iso(prev_window.start), iso(prev_window.end)]
            detail["baseline_items"] = prev.items
        elif kr.baseline is None:
            baseline = None  # omitted: null in the document, 0 for scope and cumulative progress
        else:
            baseline = parse_amount(kr.baseline, relative_ok=False)[1]
        t_kind, t_amount = parse_amount(kr.target, relative_ok=True)
        target = resolve_target(t_kind, t_amount, baseline)
        direction = infer_direction(baseline, target, kr.direction, kr.metric, kr.baseline is not None)
        started = self.now >= span[0]
        ended = self.now >= span[1]
        expected = expected_fraction(span[0], span[1], self.now)
        if kr.plan:
            expected = planned_fraction(span[0], self._milestones({d: float(v) for d, v in kr.plan.items()}),
                                        self.now)
        projected = None
        if TRAITS[kr.metric].family == "cumulative":
            elapsed = (min(self.now, span[1]) - span[0]).total_seconds()
            length = (span[1] - span[0]).total_seconds()
            if (kr.window or "period") == "period" or kr.window == "sprint":
                projected = projected_value(value, length, elapsed)
            else:
                projected = value  # a rolling window is always whole
            if direction == "decrease" and elapsed < 86400 and not ended:
                started = False  # a day's count says nothing about a period's (DESIGN §5)
        ev = evaluate(value, baseline, target, direction=direction, expected=expected, started=started,
                      ended=ended, on_track_margin=self.thresholds.on_track, at_risk_margin=self.thresholds.at_risk,
                      projected=projected)
        if kr.baseline == "auto" and baseline is None and ev.status != "not_started":
            ev = type(ev)(None, None, "no_data")
            lo_hi = detail.get("baseline_window")
            span_text = f" {lo_hi[0]} .. {lo_hi[1]}" if lo_hi else ""
            detail.setdefault("reason", "no data in the baseline window" + span_text)
        return KRResult(
            objective_id=obj.id, kr=kr, value=value, computed_value=computed,
            baseline=baseline,
            target=target, progress=ev.progress, score=ev.score, expected=expected, status=ev.status,
            items=result.items, fingerprint=result.fingerprint, window=window, period=span, direction=direction,
            formula=_formula(kr), synced_at=synced_at, overridden=overridden, detail=detail, projected=projected,
            warnings=self.checker.warnings(kr), checkin=self.checkins.get(kr.id), team=self.ws.team_of(obj, kr),
            stale=kr.stale_after is not None and is_stale(self.store, kr.id, value, self.now,
                                                          parse_duration(kr.stale_after), self.checkins.get(kr.id)),
            ids_loader=self._ids_loader(result),
        )

    def _ids_loader(self, result: metrics.MetricResult) -> Callable[[], list[str]]:
        store = self.store

        def load() -> list[str]:
            if result.ids_sql is not None:
                sql, params = result.ids_sql
                return [r[0] for r in store.db.execute(sql, params)]
            if result.rowids is not None:
                return store.item_refs(*result.rowids)
            return []

        return load

    def _milestones(self, plan: dict[date, float]) -> list[tuple[datetime, float]]:
        """Each milestone is reached at the end of its day in the workspace time zone (as a period's end)."""
        zone = ZoneInfo(self.ws.timezone)
        return [(datetime.combine(day + timedelta(days=1), time(), tzinfo=zone).astimezone(timezone.utc), share)
                for day, share in plan.items()]

    def _override_active(self, until: date | datetime | None) -> bool:
        if until is None:
            return True
        if isinstance(until, datetime):
            limit = until if until.tzinfo else until.replace(tzinfo=ZoneInfo(self.ws.timezone))
        else:
            limit = datetime.combine(until + timedelta(days=1), time(), tzinfo=ZoneInfo(self.ws.timezone))
        return self.now < limit

    def run(self) -> Computation:
        results: dict[str, ObjectiveResult] = {}
        pairs = [(obj, kr) for obj in self.ws.objectives for kr in obj.key_results]
        workers = min(COMPUTE_THREADS, len(pairs))
        if workers > 1:
            # SQLite runs a query without the GIL and the store gives each thread its own connection: the
            # KRs' queries run side by side (results keep the workspace order)
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="okrsync-compute") as pool:
                computed = list(pool.map(lambda pair: self.key_result(*pair), pairs))
        else:
            computed = [self.key_result(obj, kr) for obj, kr in pairs]
        by_obj: dict[str, list[KRResult]] = {}
        for (obj, _), res in zip(pairs, computed):
            by_obj.setdefault(obj.id, []).append(res)
        for obj in self.ws.objectives:
            results[obj.id] = ObjectiveResult(obj, None, "no_data", by_obj.get(obj.id, []))
        # roll up: children before parents
        children: dict[str, list[str]] = {}
        for obj in self.ws.objectives:
            if obj.parent:
                children.setdefault(obj.parent, []).append(obj.id)
        done: set[str] = set()

        def settle(oid: str) -> None:
            if oid in done:
                return
            for c in children.get(oid, []):
                settle(c)
            res = results[oid]
            parts = [(k.kr.weight, k.score, k.status) for k in res.key_results]
            parts += [(results[c].objective.weight, results[c].score, results[c].status) for c in children.get(oid, [])]
            res.score, res.status = roll_up(parts)
            done.add(oid)

        for obj in self.ws.objectives:
            settle(obj.id)
        return Computation(self.now, self.ws, [results[o.id] for o in self.ws.objectives])


def sources_of(spec: MetricSpec, inherited: Selector | None = None) -> list[str]:
    """The sources a KR reads, in order, once each."""
    return list(dict.fromkeys(sel.source for sel in selectors_of(spec, inherited)))


def display_unit(metric: str, unit: str | None) -> str | None:
    """'%' for fraction metrics (unless a unit other than a percentage is set), else the KR's unit."""
    if TRAITS[metric].fraction and (unit is None or unit in PERCENT_UNITS):
        return "%"
    return unit


def _in_ratio(part: MetricSpec, ratio_spec: MetricSpec) -> MetricSpec:
    """A ratio is a rate over the KR's window: each part inherits the window, and a scope sum inside it
    (points_done, sum) counts the items resolved in the window (DESIGN §4)."""
    update: dict[str, Any] = {}
    if part.window is None and ratio_spec.window is not None:
        update["window"] = ratio_spec.window
    if part.metric in ("points_done", "sum") and part.count_by is None:
        update["count_by"] = "resolved"
    return part.model_copy(update=update) if update else part


def _formula(spec: MetricSpec) -> str:
    if spec.metric == "ratio":
        parts = []
        for part in (spec.numerator, spec.denominator):
            parts.append(f"({_formula(part)})" if isinstance(part, MetricSpec) else str(part))
        return " / ".join(parts)
    return metrics.describe(spec.metric, agg=spec.aggregate, field_name=spec.field, count_by=spec.count_by)


def compute(ws: Workspace, store: Store, now: datetime | None = None,
            thresholds: Thresholds | None = None) -> Computation:
    return Computer(ws, store, now or datetime.now(timezone.utc), thresholds).run()
