"""Reading OKRs: status (with --team and trends), explain, history (of a KR or an objective), check-ins."""

from __future__ import annotations

import json
import os
from datetime import timedelta

import click
from rich.console import Console

from okrsync.domain.records import parse_iso
from okrsync.engine.checkins import add_checkin, checkins, objective_history
from okrsync.engine.compute import Computation, ObjectiveResult, compute
from okrsync.engine.document import status_csv, status_document
from okrsync.engine.pipeline import thresholds_for
from okrsync.engine.store import Store

from . import console as ui
from .app import Env, UsageError, cli, guarded, refuse, workspace_options

TREND_DAYS = 7


def find_kr(env: Env, kr_id: str) -> str:
    """The KR's id as the workspace spells it (ids match case-insensitively), or a usage error."""
    found = env.loaded.workspace.kr(kr_id)
    if found is None:
        known = ", ".join(kr.id for _, kr in env.loaded.workspace.key_results())
        raise UsageError(f"unknown key result {kr_id!r} in {env.workspace_path} (known: {known})")
    return found.id


def only_team(comp: Computation, team: str) -> Computation:
    """The same computation with only the team's KRs and the objectives that hold them (or are the team's)."""
    objectives = []
    for o in comp.objectives:
        krs = [k for k in o.key_results if k.team == team]
        if krs or o.objective.team == team:
            objectives.append(ObjectiveResult(o.objective, o.score, o.status, krs))
    return Computation(comp.generated_at, comp.workspace, objectives)


def trends(comp: Computation, store: Store) -> dict[str, tuple[float | None, float | None]]:
    """Per KR: the change of its value since the previous recorded run and since 7 days ago."""
    out: dict[str, tuple[float | None, float | None]] = {}
    week_ago = comp.generated_at - timedelta(days=TREND_DAYS)
    for k in comp.all_krs():
        rows = [r for r in store.history(k.kr.id) if r["value"] is not None]
        if k.value is None or not rows:
            out[k.kr.id] = (None, None)
            continue
        last = rows[-1]["value"]
        old = [r["value"] for r in rows if parse_iso(r["computed_at"]) <= week_ago]
        out[k.kr.id] = (k.value - last, k.value - old[-1] if old else None)
    return out


@cli.command()
@workspace_options
@click.option("--json", "as_json", is_flag=True, help="The status document (JSON).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default=None)
@click.option("--team", default=None, help="Only this team's KRs and their objectives.")
@click.pass_context
@guarded
def status(ctx: click.Context, workspace: str | None, db: str | None, as_json: bool, fmt: str | None,
           team: str | None) -> None:
    """Recompute from the store (no API calls) and show the KR table."""
    if as_json and fmt not in (None, "json"):
        refuse("--json", f"--format {fmt}", "--json is --format json")
    env = Env(ctx, workspace, db)
    loaded = env.loaded
    if team is not None and team not in loaded.workspace.teams:
        raise UsageError(f"--team {team}: not in {env.workspace_path} "
                         f"(teams: {', '.join(loaded.workspace.teams) or 'none defined'})")
    store = env.store()
    comp = compute(loaded.workspace, store, env.now(), thresholds_for(loaded, env.settings))
    if team is not None:
        comp = only_team(comp, team)
    fmt = "json" if as_json else (fmt or "table")
    if fmt == "json":
        click.echo(json.dumps(status_document(comp), indent=2))
    elif fmt == "csv":
        click.echo(status_csv(comp), nl=False)
    else:
        ui.print_status(comp, Console(), trends(comp, store))
    for line in ui.warning_lines(comp):
        click.echo(line, err=True)


@cli.command()
@workspace_options
@click.argument("kr")
@click.option("--limit", type=int, default=50, show_default=True, help="Items to list.")
@click.pass_context
@guarded
def explain(ctx: click.Context, workspace: str | None, db: str | None, kr: str, limit: int) -> None:
    """The formula, window, items counted (links), what changed, and the history of one KR."""
    env = Env(ctx, workspace, db)
    kr_id = find_kr(env, kr)
    store = env.store()
    comp = compute(env.loaded.workspace, store, env.now(), thresholds_for(env.loaded, env.settings))
    result = comp.kr(kr_id)
    assert result is not None
    ui.explain(result, comp, store, Console(), limit=limit)


@cli.command()
@workspace_options
@click.argument("id_")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@guarded
def history(ctx: click.Context, workspace: str | None, db: str | None, id_: str, as_json: bool) -> None:
    """A KR's value over time (one row per sync run) and its check-ins, or an objective's score."""
    env = Env(ctx, workspace, db)
    ws = env.loaded.workspace
    store = env.store()
    objective = ws.objective(id_) if ws.kr(id_) is None else None
    if objective is not None:
        rows = objective_history(store, objective.id)
        if as_json:
            click.echo(json.dumps(rows, indent=2))
        elif not rows:
            click.echo(f"{objective.id}: no history yet (run 'okrsync sync')")
        else:
            Console().print(ui.objective_history_table(rows))
        return
    kr_id = find_kr(env, id_)
    rows = store.history(kr_id)
    notes = checkins(store, kr_id)
    if as_json:
        keys = ("computed_at", "run_id", "value", "baseline", "target", "progress", "score", "expected", "status",
                "items", "added_count", "removed_count")
        click.echo(json.dumps([{k: r[k] for k in keys} for r in rows], indent=2))
        return
    if not rows:
        click.echo(f"{kr_id}: no history yet (run 'okrsync sync')")
    else:
        kr = ws.kr(kr_id)
        assert kr is not None
        Console().print(ui.history_table(rows, ui.display_unit(kr.metric, kr.unit)))
    for c in notes:
        click.echo(f"check-in {c.line()}")


@cli.command()
@workspace_options
@click.argument("kr")
@click.option("--confidence", type=float, default=None, help="How likely the KR is met, 0 to 1 (e.g. 0.6).")
@click.option("--note", default=None, help="What changed, what blocks it.")
@click.option("--by", "by", default=None, help="Who checks in (default: $USER).")
@click.pass_context
@guarded
def checkin(ctx: click.Context, workspace: str | None, db: str | None, kr: str, confidence: float | None,
            note: str | None, by: str | None) -> None:
    """Record a dated check-in on a KR; it never changes the computed value."""
    env = Env(ctx, workspace, db)
    kr_id = find_kr(env, kr)
    if confidence is None and not note:
        raise UsageError("a check-in needs --confidence or --note")
    if confidence is not None and not 0.0 <= confidence <= 1.0:
        raise UsageError(f"--confidence {confidence}: expected a number between 0 and 1 (0.6 = 60%)")
    c = add_checkin(env.store(), kr_id, env.now(), by=by or os.environ.get("USER") or None,
                    confidence=confidence, note=note)
    click.echo(f"{kr_id}: checked in {c.line()}")
