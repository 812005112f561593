"""The sandbox and demo commands."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .app import Env, UsageError, cli, guarded, workspace_options


@cli.command()
@workspace_options
@click.option("--port", type=int, default=8711, show_default=True,
              help="First port: jira, github, servicenow, pagerduty get this and the next three (0: any free); "
                   "a workspace whose sources point at 127.0.0.1:PORT gets those ports.")
@click.option("--scale", type=click.IntRange(10, 2_000_000), default=1000, show_default=True,
              help="Issues per tracker (deployments and incidents scale with it).")
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--jira-mode", type=click.Choice(["cloud", "server"]), default="cloud", show_default=True)
@click.option("--require-token", is_flag=True,
              help="Accept only the tokens printed (fresh ones each start): a wrong token gets 401.")
@click.option("--latency", "latency_ms", type=click.FloatRange(0, 60_000), default=None, metavar="MS",
              help="Answer every request after MS milliseconds, like a remote API (env OKRSYNC_SANDBOX_LATENCY_MS).")
@click.option("--jitter", "jitter_ms", type=click.FloatRange(0, 60_000), default=None, metavar="MS",
              help="Add up to MS more milliseconds per request, uniformly (env OKRSYNC_SANDBOX_JITTER_MS).")
@click.pass_context
@guarded
def sandbox(ctx: click.Context, workspace: str | None, db: str | None, port: int, scale: int, seed: int,
            jira_mode: str, require_token: bool, latency_ms: float | None, jitter_ms: float | None) -> None:
    """Serve the simulated Jira, GitHub, ServiceNow and PagerDuty on localhost until Ctrl-C, and print the
    exports for the workspace's sources (-w, default ./okrsync.yaml when it exists)."""
    from okrsync.sandbox import serve_forever

    from .sandbox_exports import DEFAULT_NAMES, SYSTEMS, exports, sandbox_tokens, workspace_ports

    path = workspace or ctx.find_root().params.get("workspace")
    sources: dict = DEFAULT_NAMES
    ports: dict[str, int] | int = port
    if path or Path("okrsync.yaml").is_file():
        env = Env(ctx, workspace, db)
        sources = env.loaded.workspace.sources
        local, notes = workspace_ports(sources)
        for note in notes:
            click.echo(f"note: {note}", err=True)
        if local:
            ports = {s: local.get(s, port + n if port else 0) for n, s in enumerate(SYSTEMS)}
    tokens = sandbox_tokens(require_token)
    lines = exports(sources, tokens)
    if not lines:
        raise UsageError(f"{path or 'okrsync.yaml'}: no jira, github, servicenow or pagerduty source to serve")
    click.echo("Credentials the simulators accept (export them before `okrsync sync`):")
    for key, value in lines:
        click.echo(f"  export {key}={value}")
    try:
        serve_forever(ports=ports or None, scale=scale, seed=seed, jira_mode=jira_mode, out=click.echo,
                      require_token=tokens if require_token else None, latency_ms=latency_ms, jitter_ms=jitter_ms)
    except OSError as exc:
        where = ", ".join(map(str, ports.values())) if isinstance(ports, dict) else f"{port}-{port + 3}"
        raise UsageError(f"cannot listen on ports {where}: {exc.strerror or exc} (try --port 0)") from None


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
