"""The serve command: the long-running server (webhooks, polling, dashboard, API, health, metrics)."""

from __future__ import annotations

import functools
import os
import signal
from typing import Any

import click

from .app import Env, UsageError, cli, exit_now, guarded, html_renderer, workspace_options


@cli.command()
@workspace_options
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but loopback needs OKRSYNC_SERVE_TOKEN.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="Port (0: any free).")
@click.option("--every", default="15m", show_default=True, help="Poll every source this often (reconciliation).")
@click.option("--debounce", type=click.FloatRange(0, 60), default=2.0, show_default=True, hidden=True,
              help="Seconds webhooks are gathered into one sync.")
@click.pass_context
@guarded
def serve(ctx: click.Context, workspace: str | None, db: str | None, host: str, port: int, every: str,
          debounce: float) -> None:
    """Long-running: webhooks in (POST /webhooks/<source>), polling, dashboard (/), /api/status, /api/kr/<id>,
    /healthz, /metrics. SIGTERM drains the sync in flight and exits 0."""
    from okrsync.config.settings import env_name
    from okrsync.engine.scheduler import parse_schedule
    from okrsync.serve.server import BindError, ServeProcess, bind, is_loopback
    from okrsync.serve.service import ServeOptions, Service

    try:
        interval = parse_schedule(every, None).interval_hint.total_seconds()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    env = Env(ctx, workspace, db)
    settings = env.settings
    token = settings.serve_token.get_secret_value() if settings.serve_token is not None else None
    if not is_loopback(host) and not token:
        raise UsageError(f"--host {host} is reachable from other machines: set OKRSYNC_SERVE_TOKEN (the bearer "
                         f"token the dashboard, API and metrics ask for), or listen on 127.0.0.1")
    loaded = env.loaded
    unsigned = [n for n in loaded.workspace.sources if settings.credentials(n).webhook_secret is None]
    try:
        sock = bind(host, port)
    except BindError as exc:
        raise UsageError(str(exc)) from None
    service = Service(loaded, settings, env.store(), ServeOptions(every=interval, debounce=debounce, token=token),
                      render_html=html_renderer())
    proc = ServeProcess(service, sock)
    click.echo(f"okrsync serve listening on {proc.url} (polling every {every}; webhooks at "
               f"{proc.url}/webhooks/<source>)")
    for name in unsigned:
        click.echo(f"okrsync: {name}: no webhook secret ({env_name(name, 'webhook_secret')}): "
                   f"its webhooks are refused; polling still syncs it", err=True)
    stopped = proc.run()
    exit_now(130 if stopped.signum == signal.SIGINT else 0)


def _sandbox_webhooks_option() -> None:
    """`okrsync sandbox --webhooks URL`: the simulators announce every change with a signed webhook (the URL
    reaches serve_forever as OKRSYNC_SANDBOX_WEBHOOKS, so the sandbox command itself stays as it is)."""
    cmd = cli.commands.get("sandbox")
    if cmd is None or cmd.callback is None or any(p.name == "webhooks" for p in cmd.params):
        return
    cmd.params.append(click.Option(["--webhooks"], metavar="URL", default=None,
                                   help="Send a signed webhook for every change to URL/webhooks/<system> "
                                        "(okrsync serve), e.g. http://127.0.0.1:8080."))
    inner = cmd.callback

    @functools.wraps(inner)
    def callback(*args: Any, webhooks: str | None = None, **kwargs: Any) -> Any:
        if webhooks:
            os.environ["OKRSYNC_SANDBOX_WEBHOOKS"] = webhooks
        return inner(*args, **kwargs)

    cmd.callback = callback


_sandbox_webhooks_option()
