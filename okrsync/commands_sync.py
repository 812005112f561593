"""The commands that read sources or write files from them: init, sync and report."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from okrsync.domain.text import plural
from okrsync.engine.compute import compute
from okrsync.engine.pipeline import (
    Interrupted,
    RunSummary,
    check_output,
    check_outputs,
    output_paths,
    run_sync,
    thresholds_for,
)

from . import console as ui
from .app import Env, StopOnSignal, UsageError, cli, exit_now, fail, guarded, html_renderer, workspace_options

INIT_TEMPLATE = Path(__file__).parent / "templates" / "okrsync.yaml"


@cli.command()
@click.option("-w", "--workspace", type=click.Path(dir_okay=False), default=None,
              help="Where to write it (default: ./okrsync.yaml).")
@click.option("--db", type=click.Path(dir_okay=False), default=None,
              help="Accepted for symmetry; the store is created by the first sync.")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@click.pass_context
@guarded
def init(ctx: click.Context, workspace: str | None, db: str | None, force: bool) -> None:
    """Write a commented okrsync.yaml to start from."""
    path = Path(workspace or ctx.find_root().params.get("workspace") or "okrsync.yaml")
    if path.exists() and not force:
        raise UsageError(f"{path} exists (use --force to overwrite it)")
    path.write_text(INIT_TEMPLATE.read_text(encoding="utf-8"), encoding="utf-8")
    click.echo(f"wrote {path}: edit the sources and key results, then run 'okrsync validate'")


def print_summary(summary: RunSummary, out: Console, dry_run: list[tuple[str, Path]] | None = None) -> None:
    """The run's summary; dry_run: the output files (setting, path) a --dry-run did not write."""
    def say(text: str) -> None:  # plain text: a path or "[issues 12]" is neither wrapped nor taken for markup
        out.print(text, markup=False, highlight=False, soft_wrap=True)

    for name, o in summary.sources.items():
        if name in summary.interrupted_sources:
            saved = o.new + o.changed + o.unchanged
            say(f"{name}: interrupted after {saved} saved; the next run resumes")
            continue
        if o.error:
            continue
        if name in {e.split(":")[0] for e in summary.config_errors}:
            continue
        streams = ", ".join(f"{s} {n}" for s, n in o.streams.items())
        say(f"{name}: {o.fetched} fetched ({o.new} new, {o.changed} changed), {plural(o.requests, 'request')}"
            + (f", {o.deleted} deleted" if o.deleted else "") + (f", {len(o.skipped)} skipped" if o.skipped else "")
            + (f" [{streams}]" if streams else ""))
    for s in summary.skipped[:20]:
        say(f"  skipped {s['source']} {s['key']}: {s['reason']}")
    wb = summary.writeback
    if dry_run is not None:
        for line in dry_run_lines(summary, dry_run):
            say(line)
    elif wb.written or wb.unchanged:
        say(f"write-back: {wb.written} written, {wb.unchanged} unchanged")
    for path in summary.outputs:
        say(f"wrote {path}")
    if summary.computation is not None:
        for line in ui.warning_lines(summary.computation):
            say(line)
    status = summary.status
    say(f"run {summary.run_id}: {status}" + (f" ({plural(len(summary.errors), 'error')})" if summary.errors else ""))


def dry_run_lines(summary: RunSummary, files: list[tuple[str, Path]]) -> list[str]:
    """What --dry-run did (read the sources into the store, recorded the run) and each write it did not make."""
    wb = summary.writeback
    if summary.computation is None:  # stopped or failed before write-back was planned
        return [f"dry run: the sources were read into the store (run {summary.run_id}); nothing was written"]
    head = (f"dry run: the sources were read into the store and run {summary.run_id} recorded; "
            "nothing below was sent or written")
    planned = [f"  {line}" for line in wb.planned] + [f"  {setting}: write {path}" for setting, path in files]
    total = f"dry run: {wb.would_write + len(files)} would be written, {wb.unchanged} unchanged"
    if wb.errors:
        total += f", {len(wb.errors)} could not be planned"
    return [head, *planned, total]


@cli.command()
@workspace_options
@click.option("--source", "sources", multiple=True, help="Sync only this source (repeatable).")
@click.option("--full", is_flag=True, help="Re-read everything and mark vanished records deleted.")
@click.option("--dry-run", is_flag=True,
              help="Read the sources into the store and record the run as usual, but send no write-back and write "
                   "no files: print each write it would make.")
@click.option("--wait", type=float, default=None, help="Seconds to wait for another sync's lock (default 600).")
@click.pass_context
@guarded
def sync(ctx: click.Context, workspace: str | None, db: str | None, sources: tuple[str, ...], full: bool,
         dry_run: bool, wait: float | None) -> None:
    """Pull from the sources, recompute every KR, write the status back."""
    env = Env(ctx, workspace, db)
    loaded = env.loaded
    for s in sources:
        if s not in loaded.workspace.sources:
            known = ", ".join(loaded.workspace.sources)
            raise UsageError(f"--source {s}: not in {env.workspace_path} (sources: {known})")
    from .progress import make_reporter

    if not dry_run:
        check_outputs(loaded)  # before the store is opened and anything is read (run_sync checks again)
    store = env.store()
    err = Console(stderr=True)
    with StopOnSignal() as stopper:
        try:
            with make_reporter(err) as reporter:
                summary = run_sync(loaded, env.settings, store, sources=list(sources) or None, full=full,
                                   dry_run=dry_run, wait=wait, reporter=reporter, render_html=html_renderer(),
                                   stop=stopper.event)
        except Interrupted:
            fail("interrupted while waiting for another sync to finish; nothing was read", stopper.exit_code)
    print_summary(summary, Console(), output_paths(loaded) if dry_run else None)
    for e in summary.errors:
        click.echo(f"okrsync: {e}", err=True)
    exit_now(stopper.exit_code if summary.interrupted else summary.exit_code, summary.stragglers)


@cli.command()
@workspace_options
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="HTML file to write.")
@click.pass_context
@guarded
def report(ctx: click.Context, workspace: str | None, db: str | None, output: str) -> None:
    """Write the self-contained HTML report (progress bars, pace markers, history charts)."""
    from okrsync.report import render_report

    check_output(Path(output), "report -o")  # before anything is read; okrsync creates no directories
    env = Env(ctx, workspace, db)
    store = env.store()
    comp = compute(env.loaded.workspace, store, env.now(), thresholds_for(env.loaded, env.settings))
    try:
        Path(output).write_text(render_report(comp, store), encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"report -o: cannot write {output}: {exc.strerror or exc}") from None
    click.echo(f"wrote {output}")
