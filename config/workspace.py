"""The workspace file (okrsync.yaml): model, loading, and cross-checks with line numbers."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import ErrorDetails

from .keyresults import TRAITS, KeyResult, MetricSpec, Objective, Selector, Team, Thresholds, parse_amount
from .periods import Period, parse_period
from .sources import SOURCES, SourceConfig
from .yamlfile import ConfigError, LoadedYaml, YamlPath, load_yaml_file, load_yaml_text

MetricSpec.model_rebuild()

# Which record kinds a metric reads, first = the default when the selector names none.
METRIC_KINDS: dict[str, tuple[str, ...]] = {name: t.kinds for name, t in TRAITS.items() if t.kinds}

# Selector keys and the record kinds they apply to (source and where fit every kind).
SELECTOR_KINDS: dict[str, tuple[str, ...]] = {
    "key": ("issue", "pull_request"),
    "project": ("issue", "pull_request"),
    "repo": ("issue", "pull_request", "deployment"),
    "type": ("issue",),
    "labels": ("issue", "pull_request"),
    "components": ("issue",),
    "parent": ("issue",),
    "sprint": ("issue",),
    "status_category": ("issue", "pull_request"),
    "assignee": ("issue", "pull_request"),
    "linked": ("issue", "pull_request"),
    "environment": ("deployment",),
    "origin": ("deployment",),
    "service": ("incident",),
    "priority": ("incident",),
    "severity": ("incident",),
    "urgency": ("incident",),
    "status": ("issue", "pull_request", "deployment", "incident"),
    "team": ("issue", "pull_request", "deployment", "incident"),
}


class ReportSettings(BaseModel):
    """Files sync writes after each run (paths relative to the workspace file)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    path: str | None = None  # the HTML report
    json_path: str | None = Field(default=None, alias="json")  # the status document
    csv_path: str | None = Field(default=None, alias="csv")


class Workspace(BaseModel):
    model_config = ConfigDict(extra="forbid")

    period: Period
    timezone: str = "UTC"
    # the store (a path, sqlite:///path or postgresql://user@host/db; --db and OKRSYNC_DB win) and the name that
    # keeps this workspace's rows apart in a shared PostgreSQL database (its schema, unless the URL says ?schema=)
    store: str | None = None
    name: str | None = None
    sources: dict[str, SourceConfig] = Field(default_factory=dict)
    objectives: list[Objective] = Field(default_factory=list)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    report: ReportSettings = Field(default_factory=ReportSettings)
    teams: dict[str, Team] = Field(default_factory=dict)

    @field_validator("period", mode="before")
    @classmethod
    def _period(cls, v: Any) -> Period:
        if isinstance(v, Period):
            return v
        if isinstance(v, int):
            v = str(v)
        return parse_period(v)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (expected an IANA name such as Europe/Berlin)") from None
        return v

    def team_of(self, obj: Objective, kr: KeyResult) -> str | None:
        """A KR's team is its own `team:`, else its objective's."""
        return kr.team or obj.team

    def key_results(self) -> Iterator[tuple[Objective, KeyResult]]:
        for obj in self.objectives:
            for kr in obj.key_results:
                yield obj, kr

    def kr(self, kr_id: str) -> KeyResult | None:
        """The key result with this id; ids are matched case-insensitively (kr5 is KR5)."""
        exact = next((kr for _, kr in self.key_results() if kr.id == kr_id), None)
        return exact or next((kr for _, kr in self.key_results() if kr.id.lower() == kr_id.lower()), None)

    def objective(self, objective_id: str) -> Objective | None:
        exact = next((o for o in self.objectives if o.id == objective_id), None)
        return exact or next((o for o in self.objectives if o.id.lower() == objective_id.lower()), None)


@dataclass
class LoadedWorkspace:
    workspace: Workspace
    path: Path
    yaml: LoadedYaml


def _known_keys() -> set[str]:
    from .keyresults import GitHubTarget, JiraTarget, Override, WebhookTarget

    models = [Workspace, Thresholds, ReportSettings, Objective, KeyResult, Selector, Override, JiraTarget,
              GitHubTarget, WebhookTarget, *(spec.model for spec in SOURCES.values())]
    out: set[str] = set()
    for m in models:
        for name, f in m.model_fields.items():  # type: ignore[attr-defined]
            out.add(f.alias or name)
    return out


def _describe(err: ErrorDetails) -> str:
    kind = err.get("type", "")
    msg = err.get("msg", "invalid value")
    if kind == "extra_forbidden":
        import difflib

        key = str(err["loc"][-1]) if err.get("loc") else ""
        close = difflib.get_close_matches(key, sorted(_known_keys()), n=1, cutoff=0.75)
        return f"unknown key (did you mean {close[0]!r}?)" if close else "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind == "literal_error":
        return msg.replace("Input should be", "expected")
    msg = msg.replace("Value error, ", "").replace("Input should be", "expected")
    return msg


def _data_path(data: Any, loc: tuple[int | str, ...]) -> YamlPath:
    """Pydantic locations include union tags; keep only the steps present in the data."""
    out: list[Hashable] = []
    cur = data
    for step in loc:
        if isinstance(cur, dict) and step in cur:
            out.append(step)
            cur = cur[step]
        elif isinstance(cur, list) and isinstance(step, int) and 0 <= step < len(cur):
            out.append(step)
            cur = cur[step]
        elif isinstance(cur, dict) and step in (cur.get("type"), cur.get("to")):
            continue  # a discriminated union's tag
        elif not isinstance(step, str) or step in _TAGS or not step[:1].islower() or "[" in step:
            continue  # a union member's name
        else:
            out.append(step)  # a missing or unknown key: name it and stop
            break
    return tuple(out)


_TAGS = {"spec", "number", "str", "float", "int", "bool", "function-after", "function-before"}


def _fmt_path(path: YamlPath) -> str:
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else str(step))
    return out or "(top level)"


class _Errors:
    def __init__(self, loaded: LoadedYaml):
        self.loaded = loaded
        self.items: list[tuple[int, str]] = []

    def add(self, path: YamlPath, message: str) -> None:
        line = self.loaded.line_for(path) or 0
        self.items.append((line, f"{self.loaded.where(path)}: {_fmt_path(path)}: {message}"))

    def raise_if_any(self) -> None:
        if self.items:
            lines = [m for _, m in sorted(self.items, key=lambda t: t[0])]
            # first line is the one-line message; more follow when there are several
            raise ConfigError("\n".join(dict.fromkeys(lines)))


def _validate_sources(raw: Any, errors: _Errors) -> None:
    if not isinstance(raw, dict):
        return
    for name, spec in raw.items():
        path = ("sources", name)
        if not isinstance(spec, dict):
            errors.add(path, "expected a mapping with type: jira | github | servicenow | pagerduty")
            continue
        kind = spec.get("type")
        if kind not in SOURCES:
            errors.add(path + (("type",) if "type" in spec else ()),
                       f"expected type: jira, github, servicenow or pagerduty, got {kind!r}")


def parse_workspace(loaded: LoadedYaml) -> Workspace:
    data = loaded.data
    errors = _Errors(loaded)
    if not isinstance(data, dict):
        errors.add((), "expected a mapping with period, sources and objectives")
        errors.raise_if_any()
    _validate_sources(data.get("sources"), errors)
    errors.raise_if_any()
    try:
        ws = Workspace.model_validate(data)
    except ValidationError as exc:
        seen: set[YamlPath] = set()
        found = [(_data_path(data, tuple(e["loc"])), e) for e in exc.errors()]
        # a typo'd key also makes the real key "missing": report the typo only
        suggested = {path[:-1] + (_describe(e).split("'")[1],) for path, e in found
                     if e.get("type") == "extra_forbidden" and "did you mean" in _describe(e)}
        for path, err in found:
            if path in seen or (err.get("type") == "missing" and path in suggested):
                continue  # one message per place (unions report each member)
            seen.add(path)
            errors.add(path, _describe(err))
        errors.raise_if_any()
        raise  # pragma: no cover
    _cross_check(ws, data, errors)
    errors.raise_if_any()
    return ws


def default_kind(metric: str, sel: Selector, source_type: str) -> str | None:
    """The selector's kind, else the first kind the metric reads, the source has, and the selector keys fit."""
    if sel.kind:
        return sel.kind
    supported = SOURCES[source_type].kinds
    candidates = [k for k in METRIC_KINDS.get(metric, ()) if k in supported]
    keys = [k for k in sel.model_fields_set if k in SELECTOR_KINDS]
    for kind in candidates:
        if all(kind in SELECTOR_KINDS[k] for k in keys):
            return kind
    return candidates[0] if candidates else None


def _check_spec(spec: MetricSpec, path: YamlPath, ws: Workspace, errors: _Errors,
                parent_select: Selector | None) -> None:
    if spec.metric == "ratio":
        for part in ("numerator", "denominator"):
            sub = getattr(spec, part)
            if isinstance(sub, MetricSpec):
                if sub.metric == "ratio":
                    errors.add(path + (part, "metric"), "a ratio's parts cannot be ratios")
                    continue
                _check_spec(sub, path + (part,), ws, errors, sub.select or spec.select or parent_select)
        return
    sel = spec.select or parent_select
    if sel is None:
        errors.add(path, "select: is required (which items the metric counts)")
        return
    sel_path = path + ("select",) if spec.select is not None else path
    source = ws.sources.get(sel.source)
    if source is None:
        known = ", ".join(ws.sources) or "none defined"
        errors.add(sel_path + ("source",), f"unknown source {sel.source!r} (sources: {known})")
        return
    kind = default_kind(spec.metric, sel, source.type)
    supported = SOURCES[source.type].kinds
    if kind is None or kind not in supported:
        errors.add(sel_path + (("kind",) if sel.kind else ("source",)),
                   f"metric {spec.metric} needs {' or '.join(METRIC_KINDS[spec.metric])} items; "
                   f"source {sel.source!r} ({source.type}) has {', '.join(supported)}")
        return
    if kind not in METRIC_KINDS[spec.metric]:
        errors.add(sel_path + ("kind",), f"metric {spec.metric} does not apply to {kind} items")
        return
    for key in sel.model_fields_set:
        if key in ("source", "kind", "where"):
            continue
        if key == "jql":
            if source.type != "jira":
                errors.add(sel_path + ("jql",), f"jql applies to jira sources only; {sel.source!r} is {source.type}")
            continue
        allowed = SELECTOR_KINDS.get(key, ())
        if kind not in allowed:
            errors.add(sel_path + (key,),
                       f"selector key {key!r} does not fit {kind} items (it applies to {', '.join(allowed)})")
    if sel.team is not None and sel.team not in ws.teams:
        errors.add(sel_path + ("team",), f"unknown team {sel.team!r} (teams: {', '.join(ws.teams) or 'none defined'})")
    if spec.incidents is not None:
        inc_source = ws.sources.get(spec.incidents.source)
        if inc_source is None:
            errors.add(path + ("incidents", "source"), f"unknown source {spec.incidents.source!r}")
        elif "incident" not in SOURCES[inc_source.type].kinds:
            errors.add(path + ("incidents", "source"),
                       f"source {spec.incidents.source!r} ({inc_source.type}) has no incidents")
    if spec.window == "sprint" and not sel.sprint:
        errors.add(path + ("window",), "window: sprint needs select.sprint (a sprint name, active or closed-in-period)")
    if spec.metric == "sla_compliance" and spec.sla_hours is not None:
        for prio, hours in spec.sla_hours.items():
            if hours <= 0:
                errors.add(path + ("sla_hours", prio), "expected a positive number of hours")


def _cross_check(ws: Workspace, data: dict[str, Any], errors: _Errors) -> None:
    obj_ids: dict[str, int] = {}
    kr_ids: dict[str, YamlPath] = {}
    for i, obj in enumerate(ws.objectives):
        opath = ("objectives", i)
        if obj.id in obj_ids:
            errors.add(opath + ("id",), f"duplicate objective id {obj.id!r}")
        obj_ids[obj.id] = i
        for j, kr in enumerate(obj.key_results):
            kpath = opath + ("key_results", j)
            if kr.id in kr_ids:
                first = errors.loaded.line_for(kr_ids[kr.id] + ("id",))
                errors.add(kpath + ("id",), f"duplicate key result id {kr.id!r} (first on line {first})")
            else:
                kr_ids[kr.id] = kpath
            _check_spec(kr, kpath, ws, errors, None)
            if kr.baseline == "auto" and kr.override is None and kr.window == "sprint":
                errors.add(kpath + ("baseline",), "baseline: auto is not defined for window: sprint")
            if kr.direction in ("maintain_above", "maintain_below"):
                if parse_amount(kr.target, relative_ok=True)[0] == "relative" and kr.baseline is None:
                    errors.add(kpath + ("target",), "a relative target needs a baseline")
            for k, target in enumerate(kr.writeback):
                tpath = kpath + ("writeback", k)
                if target.to in ("jira", "github"):
                    names = [n for n, s in ws.sources.items() if s.type == target.to]
                    if target.source is not None:
                        src = ws.sources.get(target.source)
                        if src is None or src.type != target.to:
                            errors.add(tpath + ("source",), f"{target.source!r} is not a {target.to} source")
                    elif len(names) != 1:
                        errors.add(tpath, f"write-back to {target.to} needs exactly one {target.to} source, "
                                          f"or source: naming one (found {len(names)})")
                if target.to == "webhook" and target.url is not None:
                    from .sources import check_url

                    try:
                        check_url(target.url)
                    except ValueError as exc:
                        errors.add(tpath + ("url",), str(exc))
    for i, obj in enumerate(ws.objectives):
        for path, team in [(("objectives", i, "team"), obj.team)] + [
                (("objectives", i, "key_results", j, "team"), kr.team) for j, kr in enumerate(obj.key_results)]:
            if team is not None and team not in ws.teams:
                errors.add(path, f"unknown team {team!r} (teams: {', '.join(ws.teams) or 'none defined'})")
        if obj.parent is not None and obj.parent not in obj_ids:
            errors.add(("objectives", i, "parent"), f"unknown parent objective {obj.parent!r}")
    # parent cycles
    parents = {o.id: o.parent for o in ws.objectives}
    for i, obj in enumerate(ws.objectives):
        seen = {obj.id}
        cur = obj.parent
        while cur is not None and cur in parents:
            if cur in seen:
                errors.add(("objectives", i, "parent"), f"objective {obj.id!r} is its own ancestor")
                break
            seen.add(cur)
            cur = parents[cur]


def load_workspace(path: str | Path) -> LoadedWorkspace:
    loaded = load_yaml_file(path)
    return LoadedWorkspace(parse_workspace(loaded), Path(path), loaded)


def load_workspace_text(text: str, path: str = "okrsync.yaml") -> LoadedWorkspace:
    loaded = load_yaml_text(text, path)
    return LoadedWorkspace(parse_workspace(loaded), Path(path), loaded)
