"""Requests vs the API minimum and initial-sync throughput vs a bare fetch loop, against the sandbox process."""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from okrsync.connectors.jira.client import CLOUD_ID_PAGE

from .procs import Measured, SandboxProcess, child, measure

JIRA_PAGE = 100  # /rest/api/3/search/jql with fields beyond id/key
GITHUB_PAGE = 100
ENV = {"OKRSYNC_SOURCES__JIRA__TOKEN": "bench", "OKRSYNC_SOURCES__GITHUB__TOKEN": "bench",
       "OKRSYNC_SECRETS_DIR": "/nonexistent-okrsync-bench"}


def period_of(now_iso: str) -> str:
    now = datetime.fromisoformat(now_iso)
    return f"{now.year}-Q{(now.month - 1) // 3 + 1}"


def workspace(system: str, sb: SandboxProcess) -> str:
    """A one-source workspace: Jira projects APP+OPS, or the GitHub issues stream of acme/web + acme/api."""
    url = sb.urls[system]
    if system == "jira":
        source = f"jira: {{type: jira, url: '{url}', email: bench@acme.example, projects: [APP, OPS]}}"
    else:
        source = (f"github: {{type: github, url: '{url}', repos: [acme/web, acme/api], pull_requests: false, "
                  f"deployments: false, releases: false}}")
    return (f"period: {period_of(sb.info['now'])}\nsources:\n  {source}\nobjectives:\n  - id: O1\n    title: bench\n"
            f"    key_results:\n      - {{id: KR1, title: items, metric: count, select: {{source: {system}}}, "
            f"target: 5}}\n")


@dataclass
class SyncRun:
    system: str
    n: int  # items the API lists for this stream (Jira issues; GitHub issues + PRs of the two repos)
    initial: Measured
    initial_requests: int
    minimum: int
    nochange_requests: int
    nochange_minimum: int
    bare: Measured | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    fixed: int = 0  # what the parallel reads add per stream whatever the size: Jira's id pages, GitHub's catch-ups

    @property
    def ratio(self) -> float:
        return self.initial_requests / self.minimum

    @property
    def items_per_s(self) -> float:
        return self.n / self.initial.result["wall"]

    @property
    def bare_items_per_s(self) -> float:
        return self.bare.result["items"] / self.bare.result["wall"] if self.bare else float("nan")

    @property
    def vs_bare(self) -> float:
        return self.initial.result["wall"] / self.bare.result["wall"] if self.bare else float("nan")


def run_system(sb: SandboxProcess, system: str, work: Path, bare_loop: bool = True) -> SyncRun:
    ws = work / f"{system}.yaml"
    ws.write_text(workspace(system, sb), encoding="utf-8")
    db = work / f"{system}.db"
    argv = child("sync", "--workspace", str(ws), "--db", str(db))
    sb.reset_log()
    cpu = sb.cpu()
    initial = measure(argv, env=ENV)
    server_cpu = sb.cpu() - cpu
    if initial.result.get("errors"):
        raise RuntimeError(f"{system} sync failed: {initial.result['errors']}")
    log = sb.requests(system)
    sb.reset_log()
    measure(argv, env=ENV)  # the no-change sync: only its request count matters
    nochange = len(sb.requests(system))
    if system == "jira":
        n = sb.info["jira_issues"]["APP"] + sb.info["jira_issues"]["OPS"]
        discovery = sum(1 for r in log if not r["path"].endswith("/search/jql"))
        minimum, streams = math.ceil(n / JIRA_PAGE) + 2, 1  # + serverInfo and field on a first run
        fixed = math.ceil(n / CLOUD_ID_PAGE)  # the id-only listing before the parallel bulkfetches
        detail = {"discovery_calls": discovery}
    else:
        repos = {r: sb.info["github_repos"][r] for r in ("acme/web", "acme/api")}
        n = sum(repos.values())
        minimum, streams = sum(math.ceil(c / GITHUB_PAGE) for c in repos.values()), len(repos)
        fixed = sum(1 for c in repos.values() if c > GITHUB_PAGE)  # a read of more than one page catches up
        detail = {}
    run = SyncRun(system, n, initial, len(log), minimum, nochange, streams, detail=detail, fixed=fixed)
    if bare_loop:
        sb.reset_log()
        cpu = sb.cpu()
        if system == "jira":
            first = next(r for r in log if r["path"].endswith("/search/jql"))
            if first["method"] == "POST":  # Cloud's search: JQL and fields in the JSON body
                body = json.loads(first["body"])
                jql, fields = body["jql"], ",".join(body["fields"])
            else:
                q = parse_qs(urlsplit("?" + first["query"]).query)
                jql, fields = q["jql"][0], q["fields"][0]
            run.bare = measure(child("bare", "--system", "jira", "--url", sb.urls["jira"], "--jql", jql,
                                     "--fields", fields))
        else:
            run.bare = measure(child("bare", "--system", "github", "--url", sb.urls["github"]))
        run.detail["server_cpu_bare"] = sb.cpu() - cpu
    run.detail["server_cpu_sync"] = server_cpu
    return run


def run_sizes(sizes: list[int], systems: tuple[str, ...] = ("jira", "github"), repeat: int = 1) -> list[SyncRun]:
    """Per size: a fresh sandbox process; per system an initial sync (best of `repeat` fresh stores), a
    no-change sync, and the bare loop (best of `repeat`)."""
    out: list[SyncRun] = []
    for n in sizes:
        with SandboxProcess(n) as sb, tempfile.TemporaryDirectory(prefix="okrsync-bench-") as tmp:
            for system in systems:
                best: SyncRun | None = None
                for i in range(repeat):
                    work = Path(tmp) / f"{system}-{i}"
                    work.mkdir()
                    run = run_system(sb, system, work)
                    if best is None:
                        best = run
                    else:
                        if run.initial.result["wall"] < best.initial.result["wall"]:
                            best.initial = run.initial
                        if run.bare and best.bare and run.bare.result["wall"] < best.bare.result["wall"]:
                            best.bare = run.bare
                assert best is not None
                out.append(best)
    return out
