"""The okrsync command line (click): every user error is one line and an exit code, never a traceback."""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import click
from rich.console import Console

from okrsync import __version__
from okrsync.config.settings import Settings
from okrsync.config.workspace import LoadedWorkspace, load_workspace
from okrsync.config.yamlfile import ConfigError
from okrsync.connectors.base import SourceError
from okrsync.engine.compute import compute
from okrsync.engine.lock import LockBusy
from okrsync.engine.pipeline import (
    Interrupted,
    RunSummary,
    check_output,
    check_outputs,
    output_paths,
    run_sync,
    store_url_for,
    thresholds_for,
)
from okrsync.engine.records import plural
from okrsync.engine.store import Store, StoreError, StoreRemoved, StoreUnreachable

from . import console as ui
from .logs import setup_logging

log = logging.getLogger("okrsync")


class UsageError(Exception):
    """Wrong usage (exit 2)."""


def refuse(first: str, second: str, why: str) -> None:
    """Conflicting flags: one line, exit 2."""
    raise UsageError(f"{first} and {second} cannot be used together ({why})")


def fail(message: str, code: int) -> None:
    click.echo(f"okrsync: {message}", err=True)
    sys.exit(code)


class StopOnSignal:
    """While active, SIGINT and SIGTERM set `event` instead of raising: a run stops at its next page boundary."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "StopOnSignal":
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def _handle(self, signum: int, _frame: Any) -> None:
        first = self.signum is None
        self.signum = self.signum or signum
        self.event.set()
        if first:
            try:
                click.echo(f"okrsync: {signal.Signals(signum).name}: finishing the current page, then stopping",
                           err=True)
            except RuntimeError:  # stderr was being written when the signal came: the message is not essential
                pass

    @property
    def exit_code(self) -> int:
        """128 + the signal: 130 for SIGINT (Ctrl-C), 143 for SIGTERM."""
        return 128 + (self.signum or signal.SIGINT)


def exit_now(code: int, abandon_threads: bool = False) -> None:
    """sys.exit, or os._exit after flushing when a source thread is still inside a request (the run is recorded;
    waiting for the request would break the promise to stop within seconds)."""
    if abandon_threads:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def guarded(fn: Callable) -> Callable:
    """Map every user-causable error to one line and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            fail(str(exc), 2)
        except UsageError as exc:
            fail(str(exc), 2)
        except StoreUnreachable as exc:  # (a StoreError: first)
            fail(str(exc), 1)
        except StoreError as exc:
            fail(str(exc), 2)
        except (LockBusy, StoreRemoved) as exc:
            fail(str(exc), 1)
        except Interrupted:
            fail("interrupted", 130)
        except SourceError as exc:
            fail(str(exc), 1)
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except Exception as exc:  # an okrsync bug: still one line, the traceback only with --debug
            log.debug("internal error", exc_info=True)
            fail(f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", 1)

    return wrapper


def workspace_options(fn: Callable) -> Callable:
    fn = click.option("--db", "db", type=click.Path(dir_okay=False), default=None,
                      help="Store: a file, sqlite:///path or postgresql://user@host/db (default: $OKRSYNC_DB, the "
                           "workspace's store:, or okrsync.db beside the workspace file).")(fn)
    fn = click.option("-w", "--workspace", "workspace", type=click.Path(dir_okay=False), default=None,
                      help="Workspace file (default: ./okrsync.yaml).")(fn)
    return fn


class Env:
    """Per-invocation context: workspace, settings, store."""

    def __init__(self, ctx: click.Context, workspace: str | None, db: str | None):
        root = ctx.find_root().params
        self.workspace_path = Path(workspace or root.get("workspace") or "okrsync.yaml")
        self.db_arg = db or root.get("db")
        self.debug = bool(root.get("debug"))
        self._settings: Settings | None = None
        self._lw: LoadedWorkspace | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = Settings()
            except Exception as exc:  # pydantic ValidationError on a bad env value
                raise ConfigError(f"environment: invalid OKRSYNC_* setting: {exc}".splitlines()[0]) from None
        return self._settings

    @property
    def lw(self) -> LoadedWorkspace:
        if self._lw is None:
            self._lw = load_workspace(self.workspace_path)
        return self._lw

    def now(self) -> datetime:
        try:
            return self.settings.as_of()
        except ValueError:
            raise ConfigError("OKRSYNC_NOW: expected an ISO time such as 2026-11-15T12:00:00Z, "
                              f"got {self.settings.now!r}") from None

    def store(self, *, create: bool = True) -> Store:
        ws = self.lw.workspace if self.workspace_path.exists() else None
        return Store(store_url_for(self.workspace_path, self.db_arg, self.settings, ws), create=create)


def _setup(ctx: click.Context) -> None:
    root = ctx.find_root().params
    level = "debug" if root.get("debug") else (root.get("log_level") or ("info" if root.get("verbose") else "warning"))
    secrets: list[str] = []
    try:
        secrets = Settings().secret_values()
    except Exception:
        pass
    setup_logging(level, root.get("log_format") or "text", secrets)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="okrsync")
@click.option("-w", "--workspace", type=click.Path(dir_okay=False), default=None,
              help="Workspace file (default: ./okrsync.yaml).")
@click.option("--db", type=click.Path(dir_okay=False), default=None,
              help="Store: a file, sqlite:///path or postgresql://user@host/db (also OKRSYNC_DB).")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", help="Log line format (stderr).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default=None)
@click.option("-v", "--verbose", is_flag=True, help="Log progress (info level).")
@click.option("--debug", is_flag=True, help="Debug logs and tracebacks for internal errors.")
@click.option("--ca-bundle", type=click.Path(exists=True, dir_okay=False), default=None,
              help="CA bundle (PEM) to verify the sources' TLS certificates (also OKRSYNC_CA_BUNDLE).")
@click.pass_context
def cli(ctx: click.Context, ca_bundle: str | None, **_: Any) -> None:
    """okrsync keeps key results honest: it computes them from Jira, GitHub, ServiceNow and PagerDuty."""
    if ca_bundle:
        os.environ["OKRSYNC_CA_BUNDLE"] = os.path.abspath(ca_bundle)
    _setup(ctx)


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


def _print_summary(summary: RunSummary, out: Console, dry_run: list[tuple[str, Path]] | None = None) -> None:
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
    lw = env.lw
    for s in sources:
        if s not in lw.workspace.sources:
            raise UsageError(f"--source {s}: not in {env.workspace_path} (sources: {', '.join(lw.workspace.sources)})")
    from .progress import make_reporter

    if not dry_run:
        check_outputs(lw)  # before the store is opened and anything is read (run_sync checks again)
    store = env.store()
    err = Console(stderr=True)
    with StopOnSignal() as stopper:
        try:
            with make_reporter(err) as reporter:
                summary = run_sync(lw, env.settings, store, sources=list(sources) or None, full=full,
                                   dry_run=dry_run, wait=wait, reporter=reporter, render_html=html_renderer(),
                                   stop=stopper.event)
        except Interrupted:
            fail("interrupted while waiting for another sync to finish; nothing was read", stopper.exit_code)
    _print_summary(summary, Console(), output_paths(lw) if dry_run else None)
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
    comp = compute(env.lw.workspace, store, env.now(), thresholds_for(env.lw, env.settings))
    try:
        Path(output).write_text(render_report(comp, store), encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"report -o: cannot write {output}: {exc.strerror or exc}") from None
    click.echo(f"wrote {output}")


def html_renderer():
    from okrsync.report import render_report

    return render_report


def main() -> None:
    cli(prog_name="okrsync")


from . import commands_demo, commands_okr, commands_ops, commands_serve, commands_validate  # noqa: E402,F401  (they register themselves on cli)
