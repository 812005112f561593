"""Recompute at scale: a 200-KR workspace over every metric kind against a large store (built by storefill)."""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path
from typing import Any, Iterator

import yaml

from .procs import child, measure
from .storefill import FORMAT, JQL, NOW, PD_SERVICES, PROJECTS, REPOS, SN_SERVICES, build_store

RESULTS = Path(__file__).resolve().parent / "results"


def _jira(p: str, epic: str | None, sprint: str) -> Iterator[dict]:
    yield {"metric": "count", "select": {"source": "jira", "project": p, "type": "Bug"}, "baseline": "auto",
           "target": "-20%"}
    yield {"metric": "mean", "field": "story_points", "aggregate": "median",
           "select": {"source": "jira", "project": p, "where": {"fields.customfield_10010.value": "Team A"}},
           "target": 3}
    yield {"metric": "ratio", "target": "-25%", "baseline": 0.3,
           "numerator": {"metric": "count", "select": {"source": "jira", "project": p, "type": "Bug"}},
           "denominator": {"metric": "points_done", "select": {"source": "jira", "project": p,
                                                               "type": ["Story", "Task"]}}}
    yield {"metric": "points_done_ratio", "window": "sprint", "select": {"source": "jira", "project": p,
                                                                         "sprint": "active"}, "target": 1.0}
    yield {"metric": "done_ratio", "weighting": "status", "window": "sprint",
           "select": {"source": "jira", "sprint": sprint}, "target": 1.0}
    yield {"metric": "resolution_time", "aggregate": "p90", "baseline": "auto", "target": "-20%",
           "select": {"source": "jira", "project": p, "type": "Bug", "labels": ["customer"]}}
    if epic:
        yield {"metric": "done_ratio", "select": {"source": "jira", "parent": epic}, "target": 1.0}
    yield {"metric": "throughput", "window": "rolling 30d", "select": {"source": "jira", "project": p},
           "baseline": "auto", "target": "+10%"}
    yield {"metric": "points_done", "select": {"source": "jira", "project": p, "sprint": "closed-in-period"},
           "target": 400}
    yield {"metric": "sum", "field": "story_points", "target": 500,
           "select": {"source": "jira", "project": p, "components": ["platform", "payments"]}}


def _github(repo: str) -> Iterator[dict]:
    prod = {"source": "github", "repo": repo, "environment": "production"}
    yield {"metric": "deployment_frequency", "select": prod, "baseline": "auto", "target": "+40%"}
    yield {"metric": "change_failure_rate", "select": prod, "target": "10%"}
    yield {"metric": "lead_time_for_changes", "select": prod, "baseline": 60, "target": 24}
    yield {"metric": "count", "count_by": "resolved", "target": 150,
           "select": {"source": "github", "repo": repo, "kind": "pull_request", "status_category": "done"}}
    yield {"metric": "resolution_time", "select": {"source": "github", "repo": repo, "kind": "issue",
                                                   "labels": ["bug"]}, "baseline": "auto", "target": "-15%"}
    yield {"metric": "throughput", "window": "rolling 30d", "target": 40,
           "select": {"source": "github", "repo": repo, "kind": "pull_request"}}


def _servicenow(service: str) -> Iterator[dict]:
    sel = {"source": "servicenow", "service": service}
    yield {"metric": "resolution_time", "aggregate": "mean", "select": {**sel, "priority": [1, 2]},
           "baseline": "auto", "target": "-20%"}
    yield {"metric": "first_contact_resolution", "select": sel, "baseline": "50%", "target": "90%"}
    yield {"metric": "sla_compliance", "sla_hours": {"1": 4, "2": 8}, "select": sel, "target": "95%"}
    yield {"metric": "sla_compliance", "select": sel, "target": "95%"}
    yield {"metric": "availability", "select": {**sel, "priority": 1}, "target": "99.9%",
           "direction": "maintain_above"}
    yield {"metric": "time_to_restore", "aggregate": "p90", "select": sel, "baseline": "auto", "target": "-15%"}


def _pagerduty(service: str) -> Iterator[dict]:
    sel = {"source": "pagerduty", "service": service}
    yield {"metric": "mtta", "select": {**sel, "urgency": "high"}, "target": 5, "baseline": 15}
    yield {"metric": "time_to_restore", "select": sel, "baseline": "auto", "target": "-15%"}
    yield {"metric": "availability", "select": sel, "window": "rolling 30d", "target": "99.9%",
           "direction": "maintain_above"}
    yield {"metric": "count", "select": {**sel, "priority": "P1"}, "baseline": "auto", "target": "-30%"}
    yield {"metric": "ratio", "target": 0.05, "baseline": 0.1,
           "numerator": {"metric": "count", "select": {"source": "pagerduty", "service": service}},
           "denominator": {"metric": "count", "select": {"source": "github", "environment": "production"}}}


def _jql() -> Iterator[dict]:
    yield {"metric": "points_done", "select": {"source": "jira", "sprint": "closed-in-period"}, "target": 4000}
    yield {"metric": "sum", "field": "story_points", "target": 5000,
           "select": {"source": "jira", "components": ["platform", "payments"]}}
    for q in JQL:
        yield {"metric": "done_ratio", "select": {"source": "jira", "jql": q}, "target": 1.0}
        yield {"metric": "count", "count_by": "resolved", "select": {"source": "jira", "jql": q}, "target": 50}
    yield {"metric": "done_ratio", "select": {"source": "jira", "linked": True}, "target": 1.0}


def workspace(db: Path, n_krs: int = 200) -> str:
    """The workspace text: KRs cycled over the kinds and entities until n_krs, 10 per objective."""
    conn = sqlite3.connect(db)
    try:
        epics = {p: conn.execute("SELECT key FROM issues WHERE source = 'jira' AND project = ? AND type = 'Epic' "
                                 "ORDER BY rowid LIMIT 1", [p]).fetchone() for p in PROJECTS}
        sprints = {p: conn.execute("SELECT name FROM sprints WHERE source = 'jira' AND name LIKE ? AND state = "
                                   "'closed' ORDER BY \"end\" DESC LIMIT 1", [f"{p} Sprint %"]).fetchone()
                   for p in PROJECTS}
    finally:
        conn.close()
    families = [_jql()] + [_jira(p, (epics[p] or [None])[0], (sprints[p] or [f"{p} Sprint 1"])[0]) for p in PROJECTS]
    families += [_github(r) for r in REPOS] + [_servicenow(s) for s in SN_SERVICES]
    families += [_pagerduty(s) for s in PD_SERVICES]
    # round robin over the families, so every kind and entity is represented at any n_krs
    specs = [s for group in itertools.zip_longest(*families) for s in group if s is not None][:n_krs]
    objectives = []
    for i in range(0, len(specs), 10):
        krs = [{"id": f"KR{i + j + 1}", "title": f"{s['metric']} {i + j + 1}", **s} for j, s in enumerate(specs[i:i + 10])]
        objectives.append({"id": f"O{i // 10 + 1}", "title": f"Objective {i // 10 + 1}", "key_results": krs})
    doc = {"period": "2026-Q4", "sources": {
        "jira": {"type": "jira", "url": "https://acme.atlassian.net", "projects": list(PROJECTS)},
        "github": {"type": "github", "repos": list(REPOS)},
        "servicenow": {"type": "servicenow", "url": "https://acme.service-now.com"},
        "pagerduty": {"type": "pagerduty"}}, "objectives": objectives}
    return yaml.safe_dump(doc, sort_keys=False)


def store_for(n: int) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    return build_store(RESULTS / f"store-{n}-f{FORMAT}.db", n)


def run(n: int, n_krs: int = 200) -> dict[str, Any]:
    """The store prepared as a sync leaves it, then a full recompute (okrsync status) and a sync's recompute +
    history after a 1% change, each in a child."""
    db = store_for(n)
    work = RESULTS / f"recompute-{n}"
    work.mkdir(parents=True, exist_ok=True)
    ws = work / "okrsync.yaml"
    ws.write_text(workspace(db, n_krs), encoding="utf-8")
    copy = work / "store.db"  # the 1% change writes: keep the cached store pristine
    # as a sync leaves the store: the raw-path indexes of the workspace (built on the first run, kept after)
    prepared = measure(child("prepare", "--workspace", str(ws), "--db", str(db)))
    status = measure(child("recompute", "--workspace", str(ws), "--db", str(db), "--now", NOW.isoformat()))
    _copy(db, copy)
    sync = measure(child("recompute", "--workspace", str(ws), "--db", str(copy), "--now", NOW.isoformat(),
                         "--change", "0.01"))
    for suffix in ("", "-wal", "-shm"):
        Path(str(copy) + suffix).unlink(missing_ok=True)
    return {"n": n, "krs": n_krs, "status": status, "sync": sync, "prepare": prepared}


def _copy(src: Path, dst: Path) -> None:
    a, b = sqlite3.connect(src), sqlite3.connect(dst)
    try:
        a.backup(b)
    finally:
        a.close()
        b.close()
