"""Terminal rendering (rich): the KR status table, explain, history and run summaries."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from okrsync.domain.text import STATUS_LABELS, fmt_number, fmt_pct
from okrsync.engine.compute import Computation, KRResult, display_unit  # noqa: F401 (display_unit: for commands)
from okrsync.engine.store import Store

COLOURS = {
    "achieved": "bold green",
    "on_track": "green",
    "at_risk": "yellow",
    "off_track": "red",
    "no_data": "dim",
    "not_started": "dim",
}


def bar(progress: float | None, expected: float | None, width: int = 20) -> Text:
    """A progress bar with the expected-pace marker '|'."""
    text = Text()
    if progress is None:
        return Text("·" * width, style="dim")
    filled = int(round(max(0.0, min(1.0, progress)) * width))
    mark = None if expected is None else min(width - 1, int(round(expected * width)))
    for i in range(width):
        ch = "█" if i < filled else "░"
        style = "cyan" if i < filled else "grey50"
        if mark is not None and i == mark:
            ch, style = "│", "bold white"
        text.append(ch, style=style)
    return text


def status_text(status: str) -> Text:
    return Text(STATUS_LABELS.get(status, status), style=COLOURS.get(status, ""))


TITLE_WIDTH = 48


def _trend(k: KRResult, delta: float | None) -> str:
    if delta is None:
        return ""
    return ("+" if delta > 0 else "") + fmt_number(delta, k.unit) if delta else "="


def status_table(comp: Computation, trend: dict[str, tuple[float | None, float | None]] | None = None) -> Table:
    trend = trend or {}
    table = Table(title=f"OKRs {comp.workspace.period.label}", title_justify="left", expand=False)
    table.add_column("KR", no_wrap=True)
    table.add_column("title", max_width=TITLE_WIDTH, no_wrap=True, overflow="ellipsis")  # full in explain
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    table.add_column("progress")
    table.add_column("", justify="right")
    table.add_column("status")
    table.add_column("items", justify="right")
    table.add_column("trend", justify="right")  # since the previous run / since 7 days ago
    table.add_column("owner", no_wrap=True, overflow="ellipsis", max_width=20)
    for o in comp.objectives:
        table.add_row(Text(o.objective.id, style="bold"), Text(o.objective.title, style="bold"), "", "",
                      bar(o.score, None), fmt_pct(o.score), status_text(o.status), "", "",
                      " · ".join(x for x in (o.objective.owner, o.objective.team) if x))
        for k in o.key_results:
            title = k.kr.title + (" (override)" if k.overridden else "") + (" (stale)" if k.stale else "")
            last, week = trend.get(k.kr.id, (None, None))
            moves = " / ".join(x for x in (_trend(k, last), _trend(k, week) and f"{_trend(k, week)} 7d") if x)
            table.add_row(f"  {k.kr.id}", title, fmt_number(k.value, k.unit, k.target), fmt_number(k.target, k.unit),
                          bar(k.progress, k.expected), fmt_pct(k.progress), status_text(k.status), str(k.items),
                          moves, " · ".join(x for x in (k.kr.owner, k.team if k.team != o.objective.team else None)
                                            if x))
    return table


def print_status(comp: Computation, console: Console,
                 trend: dict[str, tuple[float | None, float | None]] | None = None) -> None:
    if not console.is_terminal:
        console.width = max(console.width, 160)
    console.print(status_table(comp, trend))
    console.print(Text(f"computed {comp.generated_at:%Y-%m-%d %H:%M} UTC from the store; │ marks the expected pace",
                       style="dim"))


def stamp(value: str | None) -> str:
    """A stored time ("2026-12-03T04:41:08.123Z") as people read it in a table: "2026-12-03 04:41:08"."""
    return (value or "")[:19].replace("T", " ")


def warning_lines(comp: Computation) -> list[str]:
    """One line per KR warning (a selector value that matches no record), for sync and status."""
    return [f"warning: {k.kr.id}: {w}" for k in comp.all_krs() for w in k.warnings]


def _label(table: str, row: dict[str, Any]) -> str:
    if table == "issues":
        return row.get("key") or ""
    if table == "incidents":
        return row.get("number") or ""
    sha = (row.get("sha") or "")[:7]
    title = " ".join(x for x in (row.get("repo"), row.get("environment"), sha and f"@{sha}") if x)
    row.setdefault("title", f"{row.get('status')} {(row.get('finished') or row.get('created') or '')[:16]}")
    return title


def item_rows(store: Store, ids: list[str], limit: int) -> list[dict[str, Any]]:
    out = []
    for item in ids[:limit]:
        source, _, iid = item.partition(":")
        row = None
        for table in ("issues", "incidents", "deployments"):
            rows = store.items(table, source, [iid])
            if rows:
                row = rows[0]
                row["_label"] = _label(table, row) or iid
                break
        out.append(row or {"_label": item, "_t": "?", "url": None, "title": ""})
    return out


def explain(k: KRResult, comp: Computation, store: Store, console: Console, *, limit: int = 50) -> None:
    kr = k.kr
    console.print(Text(f"{kr.id} — {kr.title}", style="bold"))
    console.print(f"objective   {k.objective_id}")
    console.print(f"metric      {kr.metric}: {k.formula}")
    sel = kr.select.model_dump(exclude_none=True, exclude_defaults=True) if kr.select else {}
    if sel:
        console.print(f"select      {json.dumps(sel)}")
    if k.window:
        console.print(f"window      {k.window.start:%Y-%m-%d %H:%M} → {k.window.end:%Y-%m-%d %H:%M} UTC "
                      f"({k.window.days:.2f} days; {kr.window or 'period'})")
    console.print(f"value       {fmt_number(k.value, k.unit, k.target)}" + (
        f"  (override: {kr.override.reason}; computed {fmt_number(k.computed_value, k.unit)})"
        if k.overridden and kr.override is not None else ""))
    base_note = " (auto: same metric over the previous period)" if kr.baseline == "auto" else ""
    console.print(f"baseline    {fmt_number(k.baseline, k.unit) if k.baseline is not None else 'none'}{base_note}")
    console.print(f"target      {fmt_number(k.target, k.unit)}  (written as {kr.target}; {k.direction})")
    if k.projected is not None:
        console.print(f"projected   {fmt_number(k.projected, k.unit, k.target)}  (value x period length / elapsed)")
    console.print(f"progress    {fmt_pct(k.progress)}   score {fmt_pct(k.score)}   expected {fmt_pct(k.expected)}")
    if k.checkin is not None:
        console.print(f"check-in    {k.checkin.line()}", markup=False, highlight=False)
    if k.stale:
        console.print(f"stale       the value has not changed for {kr.stale_after} and nobody checked in")
    console.print(Text.assemble("status      ", status_text(k.status)))
    for key, value in sorted(k.detail.items()):
        console.print(f"  {key}: {value}", markup=False, highlight=False)
    for w in k.warnings:
        console.print(f"  warning: {w}", markup=False, highlight=False)
    console.print(Text(f"\nitems counted: {k.items}", style="bold"))
    for row in item_rows(store, sorted(k.item_ids), limit):
        url = row.get("url")
        label = Text(str(row["_label"]), style=f"link {url}" if url else "")
        console.print(Text.assemble("  ", label, f"  {row.get('title') or ''}", (f"  {url}" if url else "")))
    if k.items > limit:
        console.print(f"  … and {k.items - limit} more")
    last = store.last_value(kr.id)
    if last is not None:
        prev_ids = set(store.item_set(last["item_set"]))
        now_ids = set(k.item_ids)
        added, removed = sorted(now_ids - prev_ids), sorted(prev_ids - now_ids)
        console.print(Text(f"\nsince the last run ({last['computed_at']}):", style="bold"))
        console.print(f"  value {fmt_number(last['value'], k.unit)} → {fmt_number(k.value, k.unit)}; "
                      f"items +{len(added)} −{len(removed)}")
        for item in added[:10]:
            console.print(f"  + {item}")
        for item in removed[:10]:
            console.print(f"  − {item}")
    hist = store.history(kr.id, limit=10)
    if hist:
        console.print(Text("\nhistory (latest 10):", style="bold"))
        console.print(history_table(hist, k.unit))


def history_table(rows: list[dict], unit: str | None) -> Table:
    table = Table()
    for col, just in (("computed at (UTC)", "left"), ("run", "right"), ("value", "right"), ("progress", "right"),
                      ("status", "left"), ("items", "right"), ("+/−", "right")):
        # the timestamp is never wrapped or cut (it fits 80 columns as "YYYY-MM-DD HH:MM:SS")
        table.add_column(col, justify=just, no_wrap=col.startswith("computed"))  # type: ignore[arg-type]
    for r in rows:
        table.add_row(stamp(r["computed_at"]), str(r["run_id"] or ""), fmt_number(r["value"], unit),
                      fmt_pct(r["progress"]), status_text(r["status"]), str(r["items"]),
                      f"+{r['added_count']} −{r['removed_count']}")
    return table


def objective_history_table(rows: list[dict]) -> Table:
    table = Table()
    for col, just in (("computed at (UTC)", "left"), ("run", "right"), ("score", "right"), ("status", "left")):
        table.add_column(col, justify=just, no_wrap=col.startswith("computed"))  # type: ignore[arg-type]
    for r in rows:
        table.add_row(stamp(r["computed_at"]), str(r["run_id"] or ""), fmt_pct(r["score"]), status_text(r["status"]))
    return table
