"""The validate command: the workspace file, every source's credentials and outputs, and (--online) one call each."""

from __future__ import annotations

import sys
import threading
from typing import Any

import click

from okrsync.config.settings import Settings
from okrsync.connectors.base import AuthError, ConnectorOptions, NotFoundError, SourceError, redact
from okrsync.connectors.registry import build_connector
from okrsync.domain.text import plural
from okrsync.engine.pipeline import OutputError, check_outputs, credential_problem
from okrsync.engine.selector_check import offline_warnings

from .app import Env, cli, guarded, workspace_options

PROBE_ATTEMPTS = 2  # validate --online: one retry at most (a check, not a sync)


@cli.command()
@workspace_options
@click.option("--online", is_flag=True,
              help="Also call each source's cheapest authenticated endpoint once and report per source.")
@click.pass_context
@guarded
def validate(ctx: click.Context, workspace: str | None, db: str | None, online: bool) -> None:
    """Check the workspace file, each source's credentials and the report paths; exit 0, or 2 naming the line,
    the source (and the variable to set) or the path."""
    env = Env(ctx, workspace, db)
    loaded = env.loaded
    ws = loaded.workspace
    problems = [p for name, cfg in ws.sources.items() if (p := credential_problem(name, cfg, env.settings))]
    try:
        check_outputs(loaded)
    except OutputError as exc:
        problems.append(str(exc))
    if problems:
        for p in problems:
            click.echo(f"okrsync: {p}", err=True)
        sys.exit(2)
    n_kr = sum(1 for _ in ws.key_results())
    click.echo(f"{env.workspace_path}: ok — period {ws.period.label}, {plural(len(ws.sources), 'source')}, "
               f"{plural(len(ws.objectives), 'objective')}, {plural(n_kr, 'key result')}")
    for warning in offline_warnings(ws):
        click.echo(f"warning: {warning}", err=True)
    if online:
        sys.exit(check_online(ws.sources, env.settings))


def check_online(sources: dict[str, Any], settings: Settings) -> int:
    """Probe every source concurrently; one line each (ok on stdout, failures on stderr). Returns the exit code:
    2 when credentials or addresses are wrong (configuration), 1 when a source failed otherwise, else 0."""
    results: dict[str, tuple[int, str]] = {}

    def one(name: str, cfg: Any) -> None:
        try:
            results[name] = (0, f"{name}: ok — {probe(name, cfg, settings)}")
        except (AuthError, NotFoundError) as exc:
            results[name] = (2, _line(str(exc), settings))
        except SourceError as exc:
            results[name] = (1, _line(str(exc), settings))
        except Exception as exc:  # an okrsync bug: still one line
            results[name] = (1, _line(f"{name}: unexpected error: {type(exc).__name__}: {exc}", settings))

    threads = [threading.Thread(target=one, args=(n, c), name=f"okrsync-probe-{n}", daemon=True)
               for n, c in sources.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name in sources:
        code, line = results.get(name, (1, f"{name}: no answer"))
        click.echo(line if code == 0 else f"okrsync: {line}", err=code != 0)
    return max((code for code, _ in results.values()), default=0)


def probe(name: str, cfg: Any, settings: Settings) -> str:
    """The source's cheapest authenticated call, through its connector's client (the one HTTP client)."""
    cfg = cfg.model_copy(update={"max_attempts": min(cfg.max_attempts, PROBE_ATTEMPTS)})
    options = ConnectorOptions(secrets=settings.secret_values(), ca_bundle=settings.ca_bundle)
    conn: Any = build_connector(name, cfg, settings.credentials(name), options)
    try:
        client = conn.client
        if cfg.type == "jira":
            me = client.myself()
            who = me.get("displayName") or me.get("emailAddress") or me.get("name") or "?"
            kind = "Jira Cloud" if client.is_cloud else "Jira Data Center"
            return f"authenticated as {who} ({kind}, GET /rest/api/2/myself)"
        if cfg.type == "github":
            body = client.get("/rate_limit", what="the rate limit") or {}
            core = (body.get("resources") or {}).get("core") or body.get("rate") or {}
            who = ("GitHub App installation token accepted" if cfg.auth == "app" else
                   "token accepted" if settings.credentials(name).token else "anonymous")
            return f"{who}, {core.get('remaining', '?')} of {core.get('limit', '?')} requests left (GET /rate_limit)"
        if cfg.type == "servicenow":
            client.get(f"api/now/table/{cfg.table}", params={"sysparm_limit": 1, "sysparm_fields": "sys_id"})
            via = f", OAuth {cfg.grant} grant" if cfg.auth == "oauth" else ""
            return f"read 1 row of {cfg.table} (GET /api/now/table/{cfg.table}?sysparm_limit=1{via})"
        if cfg.type == "pagerduty":
            client.get("abilities")
            return f"{'OAuth token' if cfg.auth == 'oauth' else 'token'} accepted (GET /abilities)"
        return "nothing to check"
    finally:
        conn.close()


def _line(text: str, settings: Settings) -> str:
    return " ".join(redact(text, settings.secret_values()).split())
