"""Operational commands: run (the scheduler loop)."""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

import click
from rich.console import Console

from okrsync.config.yamlfile import ConfigError
from okrsync.engine.lock import LockBusy
from okrsync.engine.pipeline import run_sync
from okrsync.engine.scheduler import Scheduler, parse_schedule
from okrsync.engine.store import StoreError

from .cli import Env, UsageError, _print_summary, cli, guarded, html_renderer, workspace_options


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
    env = Env(ctx, workspace, db)
    out = Console()
    if once:
        schedule = None
    else:
        try:
            schedule = parse_schedule(every, cron)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    stop = threading.Event()
    current: dict[str, Any] = {}

    def on_signal(signum, _frame):
        stop.set()
        runner = current.get("runner")
        if runner is not None:
            runner.stop_requested.set()
        if scheduler is not None:
            scheduler.stop.set()
        click.echo(f"okrsync: {signal.Signals(signum).name}: finishing the current page, then stopping", err=True)

    def one_run() -> int:
        try:
            lw = env.lw if once else _reload(env)
            store = env.store()
            summary = run_sync(lw, env.settings, store, wait=wait,
                               runner_hook=lambda r: current.__setitem__("runner", r), render_html=html_renderer())
            current.pop("runner", None)
            _print_summary(summary, out)
            for e in summary.errors:
                click.echo(f"okrsync: {e}", err=True)
            if stop.is_set():
                return 0
            return summary.exit_code
        except (ConfigError, StoreError) as exc:
            click.echo(f"okrsync: {exc}", err=True)
            return 2
        except LockBusy as exc:
            click.echo(f"okrsync: {exc}", err=True)
            return 1

    scheduler: Scheduler | None = None
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if schedule is None:
        code = one_run()
        sys.exit(0 if stop.is_set() else code)
    scheduler = Scheduler(schedule, one_run, on_next=lambda when, why: out.print(
        f"{why} at {when:%Y-%m-%d %H:%M:%S} UTC"))
    sys.exit(scheduler.loop(max_runs=max_runs))


def _reload(env: Env):
    """Re-read the workspace file before each scheduled run, so edits apply without a restart."""
    env._lw = None
    return env.lw

