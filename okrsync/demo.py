"""`okrsync demo`: the simulators, the sample workspace, two syncs, the status, explain, write-back, report."""

from __future__ import annotations

import os
import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.rule import Rule

from okrsync.config.settings import Settings
from okrsync.config.workspace import load_workspace
from okrsync.domain.text import plural
from okrsync.engine.compute import compute
from okrsync.engine.pipeline import RunSummary, run_sync, thresholds_for
from okrsync.engine.store import Store

from . import console as ui

TEMPLATE = Path(__file__).parent / "templates" / "demo.yaml"
# The sandbox accepts any token; ServiceNow and PagerDuty, like the real ones, want some credential.
CREDENTIALS = {
    "OKRSYNC_SOURCES__JIRA__TOKEN": "demo-jira-token",
    "OKRSYNC_SOURCES__GITHUB__TOKEN": "demo-github-token",
    "OKRSYNC_SOURCES__SERVICENOW__USER": "okrsync",
    "OKRSYNC_SOURCES__SERVICENOW__PASSWORD": "demo-servicenow-password",
    "OKRSYNC_SOURCES__PAGERDUTY__TOKEN": "demo-pagerduty-token",
}
DEFAULT_PORTS = {"jira": 8711, "github": 8712, "servicenow": 8713, "pagerduty": 8714}


def current_quarter(now: datetime) -> str:
    return f"{now.year}-Q{(now.month - 1) // 3 + 1}"


def render_workspace(urls: dict[str, str], period: str, template: str | None = None) -> str:
    """The sample workspace pointed at these simulator URLs, for this period."""
    text = template if template is not None else TEMPLATE.read_text(encoding="utf-8")
    for system, port in DEFAULT_PORTS.items():
        text = text.replace(f"http://127.0.0.1:{port}", urls[system])
    return re.sub(r"(?m)^period: .*$", f"period: {period}", text, count=1)


def _summary_lines(summary: RunSummary) -> list[str]:
    lines = []
    for name, o in summary.sources.items():
        state = f"failed: {o.error}" if o.error else (
            f"{plural(o.fetched, 'record'):>13} ({o.new} new, {o.changed} changed) in {plural(o.requests, 'request')}")
        lines.append(f"  {name:<11} {state}")
    wb = summary.writeback
    lines.append(f"  write-back  {wb.written} written, {wb.unchanged} unchanged" + (
        f", {len(wb.errors)} failed" if wb.errors else ""))
    return lines


def _sync(loaded: Any, store: Store, out: Console, title: str) -> RunSummary:
    from okrsync.report import render_report

    started = time.perf_counter()
    summary = run_sync(loaded, Settings(), store, render_html=render_report)
    out.print(f"[bold]{title}[/bold] ({time.perf_counter() - started:.1f} s, exit {summary.exit_code})")
    for line in _summary_lines(summary):
        out.print(line)
    for err in summary.errors:
        out.print(f"  [red]{err}[/red]")
    return summary


def _show_writeback(sb: Any, out: Console) -> None:
    out.print(Rule("What landed in the simulated Jira and GitHub"))
    comments = sb.world.jira_comments("OKR-1")
    if comments:
        body = comments[-1].get("body", "")
        out.print(Panel(body, title=f"Jira OKR-1: okrsync's comment ({plural(len(comments), 'comment')} in all)",
                        expand=False))
    prop = sb.world.jira_property("OKR-1", "okrsync.status")
    if isinstance(prop, dict):
        short = {k: prop.get(k) for k in ("kr", "status", "value", "target", "progress") if k in prop}
        out.print(f"Jira OKR-1 issue property okrsync.status = {short or prop}")
    fields = sb.world.jira_fields("OKR-1") or {}
    if fields:
        out.print(f"Jira OKR-1 fields set by okrsync: {fields}")
    issue = sb.world.github_issue("acme/okrs", 1)
    if issue:
        body = issue.get("body") or ""
        start = body.find("<!-- okrsync:KR1 -->")
        section = body[start:] if start >= 0 else body
        labels = [lab["name"] if isinstance(lab, dict) else lab for lab in issue.get("labels", [])]
        out.print(Panel(section[:1500], title=f"GitHub acme/okrs#1 body section; labels: {', '.join(labels)}",
                        expand=False))


def run_demo(workdir: Path, *, scale: int = 1000, seed: int = 42, out: Console | None = None) -> int:
    """The whole tour; returns the exit code of the last sync."""
    from okrsync.sandbox import Sandbox

    out = out or Console()
    started = time.perf_counter()
    workdir.mkdir(parents=True, exist_ok=True)
    for old in workdir.glob("okrsync.db*"):
        old.unlink()
    os.environ.update(CREDENTIALS)
    now = datetime.now(timezone.utc)
    with Sandbox(seed=seed, scale=scale) as sb:
        urls = sb.start()
        out.print(Rule("okrsync demo"))
        out.print("Local simulators of Jira, GitHub, ServiceNow and PagerDuty (a seeded organisation, "
                  f"{scale} issues per tracker):")
        for system, url in urls.items():
            out.print(f"  {system:<11} {url}")
        ws_path = workdir / "okrsync.yaml"
        ws_path.write_text(render_workspace(urls, current_quarter(now)), encoding="utf-8")
        out.print(f"Workspace: {ws_path} (the classic IT OKRs; see examples/demo/okrsync.yaml)\n")
        loaded = load_workspace(ws_path)
        store = Store(workdir / "okrsync.db")
        try:
            _sync(loaded, store, out, "1. First sync: full history of issues, previous + current quarter of the rest")
            changed = sb.advance()
            out.print(f"\n[bold]2. The world changes[/bold]: {_describe(changed)}")
            summary = _sync(loaded, store, out, "3. Incremental sync: only what changed since the first")
            out.print()
            comp = compute(loaded.workspace, store, datetime.now(timezone.utc), thresholds_for(loaded, Settings()))
            ui.print_status(comp, out)
            out.print(Rule("okrsync explain KR1"))
            kr1 = comp.kr("KR1")
            if kr1 is not None:
                ui.explain(kr1, comp, store, out, limit=8)
            _show_writeback(sb, out)
            out.print(Rule())
            for path in summary.outputs:
                out.print(f"wrote {path}")
            out.print(f"Try: okrsync status -w {ws_path} | okrsync explain KR6 -w {ws_path} | "
                      f"okrsync history KR1 -w {ws_path}")
            out.print(f"demo finished in {time.perf_counter() - started:.1f} s")
            return summary.exit_code
        finally:
            store.close()


def _describe(changed: Any) -> str:
    if not isinstance(changed, dict):
        return "new issues, resolutions, deployments and incidents"
    parts = []
    for system, what in changed.items():
        if isinstance(what, dict):
            items = ", ".join(f"{k} {v}" for k, v in what.items() if isinstance(v, (int, float)) and v)
            if items:
                parts.append(f"{system}: {items}")
    return "; ".join(parts) or "new issues, resolutions, deployments and incidents"
