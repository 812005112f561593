"""The sandbox and demo commands."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .cli import UsageError, cli, guarded


@cli.command()
@click.option("--port", type=int, default=8711, show_default=True,
              help="First port: jira, github, servicenow, pagerduty get this and the next three (0: any free).")
@click.option("--scale", type=click.IntRange(10, 2_000_000), default=1000, show_default=True,
              help="Issues per tracker (deployments and incidents scale with it).")
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--jira-mode", type=click.Choice(["cloud", "server"]), default="cloud", show_default=True)
@guarded
def sandbox(port: int, scale: int, seed: int, jira_mode: str) -> None:
    """Serve the simulated Jira, GitHub, ServiceNow and PagerDuty on localhost until Ctrl-C."""
    from okrsync.sandbox import serve_forever

    from .demo import CREDENTIALS

    click.echo("Credentials the simulators accept (export them before `okrsync sync`):")
    for key, value in CREDENTIALS.items():
        click.echo(f"  export {key}={value}")
    try:
        serve_forever(ports=port or None, scale=scale, seed=seed, jira_mode=jira_mode, out=click.echo)
    except OSError as exc:
        raise UsageError(f"cannot listen on ports {port}-{port + 3}: {exc.strerror or exc} (try --port 0)") from None


@cli.command()
@click.option("--dir", "workdir", type=click.Path(file_okay=False), default="okrsync-demo", show_default=True,
              help="Where the demo writes its workspace, store and report.")
@click.option("--scale", type=click.IntRange(10, 100_000), default=1000, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@guarded
def demo(workdir: str, scale: int, seed: int) -> None:
    """Simulators + sample workspace + two syncs + status + explain + write-back + HTML report."""
    from .demo import run_demo

    sys.exit(run_demo(Path(workdir), scale=scale, seed=seed))
