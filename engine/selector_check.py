"""Selector values that match no record of their source: a typo must not score perfectly in silence."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from okrsync.config.keyresults import MetricSpec, Selector

if TYPE_CHECKING:  # annotations only: the offline check loads no store
    from okrsync.config.workspace import Workspace

    from .store import Store

# selector key -> the (table, column) pairs a value may be found in, and the SQL that lists known values
_LOOKUPS: dict[str, tuple[tuple[str, str], ...]] = {
    "project": (("issues", "project"),),
    "repo": (("issues", "project"), ("deployments", "repo")),
    "service": (("incidents", "service"),),
    "environment": (("deployments", "environment"),),
    "labels": (("item_labels", "label"),),
    "components": (("item_components", "component"),),
    "sprint": (("sprints", "name"),),
    "parent": (("issues", "parent"), ("issues", "key")),  # parent first: indexed (skip-scan); key is not
}
_SPRINT_MODES = {"active", "closed-in-period"}
KNOWN_SHOWN = 5


@dataclass(frozen=True)
class _Probe:
    source: str
    key: str
    value: str


def _values(sel: Selector, key: str) -> list[str]:
    raw: object = getattr(sel, key)
    values = raw if isinstance(raw, list) else ([] if raw is None else [raw])
    out = [str(v) for v in values]
    return [v for v in out if v.lower() not in _SPRINT_MODES] if key == "sprint" else out


def selectors_of(spec: MetricSpec, inherited: Selector | None = None) -> list[Selector]:
    """The selectors a KR reads: its own, or each part's of a ratio."""
    return [sel for _, sel in spec.leaves(inherited) if sel is not None]


class SelectorChecker:
    """Answers, with one cache for a whole recompute, which selector values match nothing."""

    def __init__(self, store: Store, source_types: dict[str, str]):
        self.store = store  # store.db is the calling thread's connection (recompute runs KRs in threads)
        self.types = source_types
        self._hit: dict[_Probe, bool] = {}
        self._known: dict[tuple[str, str], list[str]] = {}
        self._has_records: dict[str, bool] = {}

    def warnings(self, spec: MetricSpec) -> list[str]:
        out: list[str] = []
        for sel in selectors_of(spec):
            if not self._source_has_records(sel.source):
                continue  # nothing synced yet: the KR says "not synced", not "no match"
            for key in _LOOKUPS:
                for value in _values(sel, key):
                    if not self._matches(_Probe(sel.source, key, value)):
                        out.append(self._message(sel.source, key, value))
        return list(dict.fromkeys(out))

    def _message(self, source: str, key: str, value: str) -> str:
        known = self._known_values(source, key)
        shown = ", ".join(known[:KNOWN_SHOWN]) + (", …" if len(known) > KNOWN_SHOWN else "")
        system = self.types.get(source, source)
        return f"select.{key} '{value}' matches no {system} record" + (f" (known: {shown})" if known else "")

    def _source_has_records(self, source: str) -> bool:
        if source not in self._has_records:
            self._has_records[source] = any(
                self.store.db.execute(f"SELECT 1 FROM {table} WHERE source = ? LIMIT 1", [source]).fetchone()
                for table in ("issues", "deployments", "incidents"))
        return self._has_records[source]

    def _matches(self, probe: _Probe) -> bool:
        if probe not in self._hit:
            self._hit[probe] = any(
                self.store.db.execute(f"SELECT 1 FROM {table} WHERE source = ? AND {column} = ? LIMIT 1",
                                [probe.source, probe.value]).fetchone()
                for table, column in _LOOKUPS[probe.key])
        return self._hit[probe]

    def _known_values(self, source: str, key: str) -> list[str]:
        if (source, key) not in self._known:
            names: set[str] = set()
            for table, column in _LOOKUPS[key]:
                rows = self.store.db.execute(
                    f"SELECT DISTINCT {column} FROM {table} WHERE source = ? AND {column} IS NOT NULL "
                    f"ORDER BY {column} LIMIT 50", [source]).fetchall()
                names.update(str(r[0]) for r in rows)
            self._known[(source, key)] = sorted(names, key=str.lower)
        return self._known[(source, key)]


def offline_warnings(ws: Workspace) -> list[str]:
    """What `validate` can tell without the store: a selector's project or repo that its source does not read."""
    out: list[str] = []
    for _, kr in ws.key_results():
        for sel in selectors_of(kr):
            src = ws.sources.get(sel.source)
            if src is None:
                continue  # an unknown source is the workspace check's to report
            read = {"jira": list(getattr(src, "projects", None) or []),
                    "github": list(getattr(src, "repos", None) or [])}.get(getattr(src, "type", ""), [])
            if not read:
                continue  # a Jira source without projects: reads what the JQL or the token sees
            known = {r.lower() for r in read}
            for key in ("project", "repo"):
                for value in _values(sel, key):
                    if value.lower() not in known and value.lower() not in {r.split("/")[-1].lower() for r in read}:
                        out.append(f"{kr.id}: select.{key} '{value}' is not among the {sel.source} source's "
                                   f"{'projects' if src.type == 'jira' else 'repos'} ({', '.join(read)}): "
                                   "it will match nothing")
    return list(dict.fromkeys(out))
