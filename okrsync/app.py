"""The command group, its per-invocation Env and the one table of exit codes every command maps errors to."""

from __future__ import annotations

import functools
import gc
import logging
import os
import signal
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import click

from okrsync.config.settings import Settings
from okrsync.config.workspace import LoadedWorkspace, load_workspace
from okrsync.config.yamlfile import ConfigError
from okrsync.connectors.base import SourceError
from okrsync.domain import VERSION as __version__
from okrsync.engine.lock import LockBusy
from okrsync.engine.pipeline import Interrupted, store_url_for
from okrsync.engine.store import Store, StoreError, StoreRemoved, StoreUnreachable

from .logs import setup_logging

log = logging.getLogger("okrsync")


# A sync allocates and frees millions of small JSON containers that refcounting frees (no cycles). CPython's
# default thresholds (700, 10, 10) run the cyclic collector every few hundred allocations, and its older
# generations walk everything the pages in flight hold: ~15% of the CPU of a 100k-issue Jira sync (4 of 28.6 s,
# python -m bench --only latency, issue 15). Cycles are still collected, every 100,000 net allocations.
GC_THRESHOLDS = (100_000, 50, 50)


def tune_collector() -> None:
    """The okrsync process's garbage-collector thresholds (the command sets them; a library caller keeps its own)."""
    gc.set_threshold(*GC_THRESHOLDS)


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


# One table: each user-causable error type and its exit code (DESIGN §8: 2 configuration, 1 failed run,
# 130 interrupted). The first matching row wins (Interrupted is a SourceError).
EXIT_CODES: tuple[tuple[tuple[type[BaseException], ...], int], ...] = (
    ((Interrupted, KeyboardInterrupt), 130),
    ((StoreUnreachable,), 1),  # (a StoreError: the server cannot be reached or refuses the login)
    ((ConfigError, UsageError, StoreError), 2),
    ((LockBusy, StoreRemoved, SourceError), 1),
)


def exit_code_for(exc: BaseException) -> int | None:
    for types, code in EXIT_CODES:
        if isinstance(exc, types):
            return code
    return None


def guarded(fn: Callable) -> Callable:
    """Map every user-causable error to one line and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except BaseException as exc:
            code = exit_code_for(exc)
            if code == 130:
                fail("interrupted", code)
            if code is not None:
                fail(str(exc), code)
            if not isinstance(exc, Exception):
                raise
            # an okrsync bug: still one line, the traceback only with --debug
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

    def reload(self) -> LoadedWorkspace:
        """Re-read the workspace file (the scheduler does before each run, so edits apply without a restart)."""
        self._lw = None
        return self.loaded

    @property
    def loaded(self) -> LoadedWorkspace:
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
        ws = self.loaded.workspace if self.workspace_path.exists() else None
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


def html_renderer():
    from okrsync.report import render_report

    return render_report
