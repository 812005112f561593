"""Operational commands: run (the scheduler loop) and recompute (no source reads)."""

from __future__ import annotations

import signal

import click
from rich.console import Console

from okrsync.config.yamlfile import ConfigError
from okrsync.engine.lock import LockBusy
from okrsync.engine.pipeline import Interrupted, run_recompute, run_sync
from okrsync.engine.scheduler import Scheduler, parse_schedule
from okrsync.engine.store import StoreError, StoreRemoved, StoreUnreachable

from .app import (
    Env,
    StopOnSignal,
    UsageError,
    cli,
    exit_now,
    guarded,
    html_renderer,
    refuse,
    workspace_options,
)
from .commands_sync import print_summary


@cli.command()
@workspace_options
@click.option("--every", default=None, help="Run every interval, e.g. 15m, 1h.")
@click.option("--cron", default=None, help="Run on a cron expression (UTC), e.g. '*/15 * * * *'.")
@click.option("--once", is_flag=True, help="Run one sync and exit (for cron or a Kubernetes CronJob).")
@click.option("--wait", type=float, default=None, help="Seconds to wait for another sync's lock.")
@click.option("--max-runs", type=int, default=None, hidden=True)
@click.pass_context
@guarded
def run(ctx: click.Context, workspace: str | None, db: str | None, every: str | None, cron: str | None, once: bool,
        wait: float | None, max_runs: int | None) -> None:
    """Keep KRs current: sync on a schedule, one run at a time; SIGTERM/SIGINT stop it cleanly."""
    if once and (every or cron):
        refuse("--once", "--every" if every else "--cron", "--once runs one sync and exits")
    env = Env(ctx, workspace, db)
    out = Console()
    if once:
        schedule = None
    else:
        try:
            schedule = parse_schedule(every, cron)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    stopper = StopOnSignal()
    stragglers = False

    def one_run() -> int:
        nonlocal stragglers
        try:
            loaded = env.loaded if once else env.reload()
            store = env.store()
            summary = run_sync(loaded, env.settings, store, wait=wait, render_html=html_renderer(), stop=stopper.event)
        except (ConfigError, StoreError) as exc:
            click.echo(f"okrsync: {exc}", err=True)
            return 1 if isinstance(exc, StoreUnreachable) else 2
        except (LockBusy, StoreRemoved) as exc:
            click.echo(f"okrsync: {exc}", err=True)
            return 1
        except Interrupted:
            click.echo("okrsync: interrupted while waiting for another sync to finish; nothing was read", err=True)
            return 0
        stragglers = summary.stragglers
        print_summary(summary, out)
        for e in summary.errors:
            click.echo(f"okrsync: {e}", err=True)
        return summary.exit_code

    def stopped_code() -> int:
        """SIGTERM ends `run` cleanly (0); SIGINT (Ctrl-C) is 130."""
        return 130 if stopper.signum == signal.SIGINT else 0

    with stopper:
        if schedule is None:
            code = one_run()
        else:
            scheduler = Scheduler(schedule, one_run, on_next=lambda when, why: out.print(
                f"{why} at {when:%Y-%m-%d %H:%M:%S} UTC"), stop=stopper.event)
            code = scheduler.loop(max_runs=max_runs)
    exit_now(stopped_code() if stopper.event.is_set() else code, stragglers)


@cli.command()
@workspace_options
@click.option("--wait", type=float, default=None, help="Seconds to wait for another recompute's lock.")
@click.pass_context
@guarded
def recompute(ctx: click.Context, workspace: str | None, db: str | None, wait: float | None) -> None:
    """Recompute every KR from the store, record history and write back, without reading the sources."""
    env = Env(ctx, workspace, db)
    loaded = env.loaded
    store = env.store(create=False)
    with StopOnSignal() as stopper:
        try:
            summary = run_recompute(loaded, env.settings, store, wait=wait, render_html=html_renderer(),
                                    stop=stopper.event, now=env.now)
        except Interrupted:
            raise click.exceptions.Exit(stopper.exit_code) from None
    print_summary(summary, Console())
    for e in summary.errors:
        click.echo(f"okrsync: {e}", err=True)
    exit_now(stopper.exit_code if summary.interrupted else summary.exit_code, False)
