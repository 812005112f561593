"""An initial sync against real-world latency: wall time vs the limit each API's manners leave, and vs one at a time.

The sandbox answers every request after `latency_ms`. A source with `concurrency` c that needs r requests cannot
finish before r / c x latency (its manners' limit); sources sync side by side, so the run's limit is the largest of
theirs. Requests are compared with the minimum the data needs (one page of 100 per request); the sandbox counts
the peak of requests in flight per source, which must never pass the setting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .procs import Measured, SandboxProcess, child, measure
from .syncbench import ENV, period_of

CONCURRENCY = {"jira": 8, "github": 3}  # the defaults (DESIGN §2)
PAGE = 100


SYSTEMS = ("jira", "github")


def workspace(sbs: dict[str, SandboxProcess], repos: list[str], concurrency: dict[str, int],
              systems: tuple[str, ...] = SYSTEMS) -> str:
    lines = {"jira": (f"jira: {{type: jira, url: '{sbs['jira'].urls['jira']}', email: bench@acme.example, "
                      f"projects: [APP, OPS], concurrency: {concurrency['jira']}}}"),
             "github": (f"github: {{type: github, url: '{sbs['github'].urls['github']}', "
                        f"repos: [{', '.join(repos)}], releases: false, concurrency: {concurrency['github']}}}")}
    sources = "".join(f"  {lines[s]}\n" for s in systems)
    return (f"period: {period_of(sbs['jira'].info['now'])}\nsources:\n{sources}objectives:\n  - id: O1\n"
            f"    title: bench\n    key_results:\n      - {{id: KR1, title: items, metric: count, "
            f"select: {{source: {systems[0]}}}, target: 5}}\n")


@dataclass
class LatencyRun:
    latency_ms: float
    concurrency: dict[str, int]
    measured: Measured
    requests: dict[str, int]
    minimum: dict[str, int]
    peaks: dict[str, int]
    items: dict[str, int] = field(default_factory=dict)

    @property
    def wall(self) -> float:
        return self.measured.result["wall"]

    def limit(self, system: str) -> float:
        return self.requests[system] / self.concurrency[system] * self.latency_ms / 1000

    @property
    def run_limit(self) -> float:
        return max(self.limit(s) for s in self.requests)

    @property
    def vs_limit(self) -> float:
        return self.wall / self.run_limit if self.run_limit else float("inf")

    def ratio(self, system: str) -> float:
        return self.requests[system] / self.minimum[system]


def minimum(sbs: dict[str, SandboxProcess], repos: list[str]) -> dict[str, int]:
    """Jira: a page of 100 issues per request, plus serverInfo and field; GitHub, per repository: the issues list
    (issues and pull requests), the pulls list, and the deployments of the window, 100 a request (run() adds the
    commit comparisons lead time needs)."""
    jira = sbs["jira"].info["jira_issues"]["APP"] + sbs["jira"].info["jira_issues"]["OPS"]
    gh = sbs["github"].info
    github = sum(math.ceil(gh["github_repos"][r] / PAGE) + math.ceil(gh["github_prs"][r] / PAGE)
                 + math.ceil(gh["github_deploys"][r] / PAGE) for r in repos)
    return {"jira": math.ceil(jira / PAGE) + 2, "github": github}


def run(sbs: dict[str, SandboxProcess], work: Path, repos: list[str], latency_ms: float,
        concurrency: dict[str, int] | None = None, systems: tuple[str, ...] = SYSTEMS) -> LatencyRun:
    """One initial sync of the sources (both by default; each served by its own sandbox process, sized for it)
    into a fresh store, at `latency_ms` per request."""
    conc = concurrency or CONCURRENCY
    work.mkdir(parents=True, exist_ok=True)
    ws = work / "latency.yaml"
    ws.write_text(workspace(sbs, repos, conc, systems), encoding="utf-8")
    for sb in sbs.values():
        sb.set_latency(latency_ms)
        sb.reset_log()
    try:
        measured = measure(child("sync", "--workspace", str(ws), "--db", str(work / "latency.db")), env=ENV)
    finally:
        for sb in sbs.values():
            sb.set_latency(0)
    if measured.result.get("errors"):
        raise RuntimeError(f"latency sync failed: {measured.result['errors']}")
    logs = {s: sbs[s].requests(s) for s in systems}
    requests = {s: len(log) for s, log in logs.items()}
    # lead time: one comparison per pair of successive successful deployments (REST has no bulk form), each
    # needed once: counted in the minimum as made
    compares = sum(1 for e in logs.get("github", []) if "/compare/" in e["path"])
    peaks = {s: sbs[s].peak_in_flight().get(s, 0) for s in systems}
    gh = sbs["github"].info
    items = {"jira": sbs["jira"].info["jira_issues"]["APP"] + sbs["jira"].info["jira_issues"]["OPS"],
             "github": sum(gh["github_repos"][r] for r in repos),
             "github_deploys": sum(gh["github_deploys"][r] for r in repos)}
    least = {s: n for s, n in minimum(sbs, repos).items() if s in systems}
    if "github" in least:
        least["github"] += compares
    items["github_compares"] = compares
    return LatencyRun(latency_ms, conc, measured, requests, least, peaks, items)


def rows(table: Any, fast: LatencyRun, serial: LatencyRun | None, alone: dict[str, LatencyRun]) -> dict[str, Any]:
    """Table rows and the JSON figures of a latency run (and of each source alone and the one-at-a-time run,
    when measured)."""
    lat = f"{fast.latency_ms:g} ms/request"
    table.add(f"latency {lat}: initial sync, Jira {fast.items['jira']:,} + GitHub {fast.items['github']:,} items "
              f"({fast.items['github_deploys']:,} deployments, {fast.items['github_compares']:,} comparisons)",
              f"{fast.wall:.1f} s vs manners' limit {fast.run_limit:.1f} s = {fast.vs_limit:.2f}x", "<= 1.5x",
              fast.vs_limit <= 1.5)
    for s in ("jira", "github"):
        table.add(f"  {s}: requests, limit ({fast.concurrency[s]} in flight)",
                  f"{fast.requests[s]} vs min {fast.minimum[s]} = {fast.ratio(s):.3f}x; {fast.limit(s):.1f} s",
                  "<= 1.05x", fast.ratio(s) <= 1.05)
        table.add(f"  {s}: peak requests in flight (sandbox)", f"{fast.peaks.get(s, 0)}",
                  f"<= {fast.concurrency[s]}", fast.peaks.get(s, 0) <= fast.concurrency[s])
    table.add("  peak RSS of the sync", f"{fast.measured.peak_rss_mb:.0f} MB")
    out: dict[str, Any] = {"latency_ms": fast.latency_ms, "wall": fast.wall, "limit": fast.run_limit,
                           "limits": {s: fast.limit(s) for s in fast.requests}, "requests": fast.requests,
                           "minimum": fast.minimum, "peaks": fast.peaks, "items": fast.items,
                           "peak_rss_mb": fast.measured.peak_rss_mb}
    for s, one in alone.items():
        table.add(f"  {s} alone (the other source not syncing)",
                  f"{one.wall:.1f} s vs its limit {one.limit(s):.1f} s = {one.vs_limit:.2f}x", "<= 1.5x",
                  one.vs_limit <= 1.5)
        out.setdefault("alone", {})[s] = {"wall": one.wall, "limit": one.limit(s), "requests": one.requests[s],
                                          "peak": one.peaks.get(s, 0), "peak_rss_mb": one.measured.peak_rss_mb}
    if serial is not None:
        table.add(f"latency {lat}: one request at a time (concurrency 1)",
                  f"{serial.wall:.1f} s = {serial.wall / fast.wall:.1f}x the parallel sync")
        out["serial"] = {"wall": serial.wall, "requests": serial.requests, "peaks": serial.peaks}
    return out
