"""One sync run end to end: lock, pull, recompute, record history, write back, write outputs."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

from okrsync.config.keyresults import Thresholds
from okrsync.config.settings import Settings, env_name, remember_secret
from okrsync.config.sources import SourceConfig
from okrsync.config.workspace import LoadedWorkspace, Workspace
from okrsync.config.yamlfile import ConfigError
from okrsync.connectors.auth import credentials_problem
from okrsync.connectors.base import Connector, ConnectorOptions, SourceError, Writer, redact

from .checkins import record_objective_scores
from .compute import Computation, compute
from .dialect import POSTGRESQL, StoreURL, StoreURLError, parse_store_url
from .document import status_csv, status_document
from .history import history_rows
from .lock import store_lock
from .store import Store, StoreError, StoreRemoved
from .sync import Reporter, SourceOutcome, SyncRunner
from .writeback import WritebackDispatcher, WritebackSummary

log = logging.getLogger("okrsync.run")

STOP_GRACE = 1.5  # seconds the sources get to reach a page boundary after a stop before the run ends without them
INTERRUPTED = "interrupted"  # the message of Interrupted raised out of a wait


class Interrupted(SourceError):
    """A stop was asked for (SIGINT/SIGTERM): raised out of rate-limit, retry and lock waits so they end at once."""


class OutputError(ConfigError):
    """An output file of the workspace (report:) cannot be written; str() names the path."""


def stoppable_sleep(stop: threading.Event, inner: Callable[[float], None] | None = None) -> Callable[[float], None]:
    """A sleep that a stop ends at once (raising Interrupted); `inner` (tests) replaces the real wait."""

    def sleep(seconds: float) -> None:
        if stop.is_set():
            raise Interrupted(INTERRUPTED)
        if inner is not None:
            inner(seconds)
        elif stop.wait(max(0.0, seconds)):
            raise Interrupted(INTERRUPTED)
        if stop.is_set():
            raise Interrupted(INTERRUPTED)

    return sleep


@dataclass
class RunSummary:
    run_id: int
    started: datetime
    finished: datetime | None = None
    sources: dict[str, SourceOutcome] = field(default_factory=dict)
    config_errors: list[str] = field(default_factory=list)
    writeback: WritebackSummary = field(default_factory=WritebackSummary)
    computation: Computation | None = None
    outputs: list[str] = field(default_factory=list)
    output_errors: list[str] = field(default_factory=list)
    interrupted: bool = False  # a stop was asked for: the run ended early, what was read is saved
    interrupted_sources: list[str] = field(default_factory=list)  # sources stopped before they finished
    stragglers: bool = False  # a source was still inside a request when the run ended (the process should exit)
    crashed: bool = False  # ended by an unexpected exception (recorded as failed, then raised)

    @property
    def errors(self) -> list[str]:
        return (self.config_errors + [o.error for n, o in self.sources.items()
                                      if o.error and n not in self.interrupted_sources]
                + self.writeback.errors + self.output_errors)

    @property
    def skipped(self) -> list[dict[str, str]]:
        return [s for o in self.sources.values() for s in o.skipped]

    @property
    def requests(self) -> int:
        return sum(o.requests for o in self.sources.values())

    @property
    def status(self) -> str:
        if self.interrupted:
            return "interrupted"
        if self.crashed:
            return "failed"
        if not self.errors:
            return "ok"
        ok_sources = [o for o in self.sources.values() if not o.error]
        return "partial" if ok_sources or self.computation is not None else "failed"

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        if self.config_errors:
            return 2
        return 0 if not self.errors else 1


def thresholds_for(loaded: LoadedWorkspace, settings: Settings) -> Thresholds:
    ws_t = loaded.workspace.thresholds
    # the workspace file wins when it sets them; else settings (env OKRSYNC_THRESHOLDS__ON_TRACK ...)
    fields = loaded.workspace.thresholds.model_fields_set
    return Thresholds(
        on_track=ws_t.on_track if "on_track" in fields else settings.thresholds.on_track,
        at_risk=ws_t.at_risk if "at_risk" in fields else settings.thresholds.at_risk,
    )


def run_sync(
    loaded: LoadedWorkspace,
    settings: Settings,
    store: Store,
    *,
    sources: list[str] | None = None,
    full: bool = False,
    dry_run: bool = False,
    wait: float | None = None,
    reporter: Reporter | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    connector_factory: Callable[..., Connector] | None = None,
    writer_factory: Callable[..., Writer] | None = None,
    runner_hook: Callable[[SyncRunner], None] | None = None,
    sleep: Callable[[float], None] | None = None,
    render_html: Callable[[Computation, Store], str] | None = None,
    stop: threading.Event | None = None,
) -> RunSummary:
    """One run. Setting `stop` ends it at the next page boundary (waits end at once): the run is recorded as
    interrupted, nothing is computed or written back. Raises OutputError before anything is read when an output
    file cannot be written, Interrupted when stopped while waiting for the lock; never leaves a run running."""
    stop = stop if stop is not None else threading.Event()
    if not dry_run:
        check_outputs(loaded, html=render_html is not None)
    lock = store_lock(store, [f"source:{n}" for n in sources or loaded.workspace.sources])
    wait = settings.lock_wait if wait is None else wait
    lock.acquire(wait, sleep=stoppable_sleep(stop),
                 on_wait=lambda pid: log.warning("another sync is running (pid %s); waiting for it", pid))
    try:
        with lock.serial():
            for run_id in store.abandon_runs(lock.alive):
                log.info("run %s was left running by a process that ended: marked abandoned", run_id)
            started = now()
            summary = RunSummary(store.start_run("sync --full" if full else "sync", started), started)
            lock.hold(f"run:{summary.run_id}")
        try:
            _run(loaded, settings, store, summary, stop, sources=sources, full=full, dry_run=dry_run, reporter=reporter,
                 now=now, connector_factory=connector_factory, writer_factory=writer_factory,
                 runner_hook=runner_hook, sleep=sleep, render_html=render_html, wait=wait)
        except BaseException as exc:
            stop.set()  # sources still reading stop at their next page
            summary.interrupted = summary.interrupted or isinstance(exc, (KeyboardInterrupt, Interrupted))
            if not summary.interrupted:
                summary.crashed = True
                summary.config_errors.append(_one_line(f"{type(exc).__name__}: {exc}", settings))
            _finish(store, summary, now, best_effort=True)
            if not summary.interrupted and store.removed():  # "no such table": nothing left to record the run in
                raise StoreRemoved(store.path) from None
            raise
        _finish(store, summary, now)
        return summary
    finally:
        lock.release()


def _run(loaded: LoadedWorkspace, settings: Settings, store: Store, summary: RunSummary, stop: threading.Event, *,
         sources: list[str] | None, full: bool, dry_run: bool, reporter: Reporter | None,
         now: Callable[[], datetime], connector_factory: Callable[..., Connector] | None,
         writer_factory: Callable[..., Writer] | None, runner_hook: Callable[[SyncRunner], None] | None,
         sleep: Callable[[float], None] | None, render_html: Callable[[Computation, Store], str] | None,
         wait: float) -> None:
    ws = loaded.workspace
    names = list(sources or ws.sources)
    runnable = []
    for name in names:
        # (Jira Cloud's email is checked on its first call)
        problem = credentials_problem(name, ws.sources[name], settings.credentials(name))
        if problem:
            summary.config_errors.append(problem)
            summary.sources[name] = SourceOutcome(name, error=None)
        else:
            runnable.append(name)
    kwargs = {}
    if connector_factory is not None:
        kwargs["connector_factory"] = connector_factory
    runner = SyncRunner(ws, store, settings, run_id=summary.run_id, started=summary.started, full=full,
                        reporter=reporter, sleep=stoppable_sleep(stop, sleep), **kwargs)
    runner.stop_requested = stop
    if runner_hook:
        runner_hook(runner)
    summary.sources.update(_read(runner, runnable, stop, summary))
    if stop.is_set():
        summary.interrupted = True
        return
    failed = {n for n, o in summary.sources.items() if o.error} | {
        n for n in names if any(e.startswith(f"{n}:") for e in summary.config_errors)}
    # PostgreSQL: workers of other sources run at once; one recompute and write-back at a time
    stage = store_lock(store, ["recompute"]) if store.dialect == POSTGRESQL else None
    if stage is not None:
        stage.acquire(wait, sleep=stoppable_sleep(stop),
                      on_wait=lambda pid: log.info("a recompute is running (pid %s); waiting for it", pid))
    try:
        _publish(loaded, settings, store, summary, stop, failed, dry_run=dry_run, now=now,
                 writer_factory=writer_factory, sleep=sleep, render_html=render_html)
    finally:
        if stage is not None:
            stage.release()


def _publish(loaded: LoadedWorkspace, settings: Settings, store: Store, summary: RunSummary, stop: threading.Event,
             failed: set[str], *, dry_run: bool, now: Callable[[], datetime],
             writer_factory: Callable[..., Writer] | None, sleep: Callable[[float], None] | None,
             render_html: Callable[[Computation, Store], str] | None) -> None:
    """Recompute, record history, write back, write the output files (no source reads)."""
    ws = loaded.workspace
    comp = compute(ws, store, settings.as_of() if settings.now else now(), thresholds_for(loaded, settings))
    summary.computation = comp
    if stop.is_set():
        summary.interrupted = True
        return
    if not dry_run:
        rows, sets = history_rows(comp, store, summary.run_id)
        store.record_values(rows, sets)
        record_objective_scores(store, summary.run_id, comp.generated_at,
                                [(o.objective.id, o.score, o.status) for o in comp.objectives])
    wb_kwargs = {"writer_factory": writer_factory} if writer_factory is not None else {}
    options = ConnectorOptions(secrets=settings.secret_values(), ca_bundle=settings.ca_bundle,
                               sleep=stoppable_sleep(stop, sleep))  # a stop ends a write's retry wait too
    summary.writeback = WritebackDispatcher(ws, store, settings, run_id=summary.run_id, dry_run=dry_run,
                                            options=options, **wb_kwargs).run(comp, failed)
    if stop.is_set():
        summary.interrupted = True
        return
    if not dry_run:
        summary.outputs, summary.output_errors = write_outputs(loaded, comp, store, render_html)


def run_recompute(loaded: LoadedWorkspace, settings: Settings, store: Store, *, wait: float | None = None,
                  now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                  writer_factory: Callable[..., Writer] | None = None,
                  render_html: Callable[[Computation, Store], str] | None = None,
                  stop: threading.Event | None = None) -> RunSummary:
    """`okrsync recompute`: recompute from the store, record history, write back; no source is read. Takes the
    recompute lock (SQLite: the one store lock) and records a run."""
    stop = stop if stop is not None else threading.Event()
    check_outputs(loaded, html=render_html is not None)
    lock = store_lock(store, ["recompute"])
    lock.acquire(settings.lock_wait if wait is None else wait, sleep=stoppable_sleep(stop),
                 on_wait=lambda pid: log.warning("a recompute is running (pid %s); waiting for it", pid))
    try:
        with lock.serial():
            started = now()
            summary = RunSummary(store.start_run("recompute", started), started)
            lock.hold(f"run:{summary.run_id}")
        try:
            _publish(loaded, settings, store, summary, stop, set(), dry_run=False, now=now,
                     writer_factory=writer_factory, sleep=None, render_html=render_html)
        except BaseException as exc:
            summary.interrupted = isinstance(exc, (KeyboardInterrupt, Interrupted))
            summary.crashed = not summary.interrupted
            _finish(store, summary, now, best_effort=True)
            raise
        _finish(store, summary, now)
        return summary
    finally:
        lock.release()


def _read(runner: SyncRunner, names: list[str], stop: threading.Event,
          summary: RunSummary) -> dict[str, SourceOutcome]:
    """runner.run(names) in a thread; after a stop the sources get STOP_GRACE seconds to reach a page boundary.

    A source still inside a request then is left behind (summary.stragglers): its saved pages stay saved, a page
    not yet written is read again by the next run."""
    result: dict[str, SourceOutcome] = {}
    failure: list[BaseException] = []

    def read() -> None:
        try:
            result.update(runner.run(names))
        except BaseException as exc:  # raised in the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=read, name="okrsync-read", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.1)
        if stop.is_set():
            thread.join(STOP_GRACE)
            break
    summary.stragglers = thread.is_alive()
    if failure:
        raise failure[0]
    out = dict(result)
    for name in names:
        o = out.setdefault(name, SourceOutcome(name, error=f"{name}: {INTERRUPTED}"))
        if stop.is_set() and o.error and (o.error.endswith(INTERRUPTED) or " stopped before " in o.error):
            o.error = f"{name}: interrupted; the pages read are saved and the next run resumes"
            summary.interrupted_sources.append(name)
    return out


def _finish(store: Store, summary: RunSummary, now: Callable[[], datetime], best_effort: bool = False) -> None:
    summary.finished = now()
    try:
        store.finish_run(
            summary.run_id, status=summary.status, sources={n: o.summary() for n, o in summary.sources.items()},
            errors=summary.errors + [o.error for n, o in summary.sources.items()
                                     if n in summary.interrupted_sources and o.error],
            skipped=summary.skipped, requests=summary.requests,
        )
    except Exception:
        if not best_effort:
            raise
        log.debug("could not record the end of run %s", summary.run_id, exc_info=True)


def credential_problem(name: str, cfg: SourceConfig, settings: Settings) -> str | None:
    """One line naming what a source's auth mode lacks and the variable to set; None when it has it all."""
    problem = credentials_problem(name, cfg, settings.credentials(name))
    if cfg.type != "jira":
        return problem
    host = (urlparse(cfg.url or "").hostname or "").lower()
    cloud = cfg.deployment == "cloud" or (cfg.deployment == "auto" and host.endswith(".atlassian.net"))
    if not cloud or cfg.email or settings.credentials(name).email:
        return problem
    email = f"email: in the source or {env_name(name, 'email')}"
    if problem:
        return f"{problem}, and {email} (Jira Cloud signs in with an email and an API token)"
    return f"{name}: Jira Cloud needs an email with the API token: set {email}"


def _one_line(text: str, settings: Settings) -> str:
    return " ".join(redact(text, settings.secret_values()).split())


def output_paths(loaded: LoadedWorkspace) -> list[tuple[str, Path]]:
    """(setting, path) of the files sync writes; relative paths resolve against the workspace file's directory."""
    rep = loaded.workspace.report
    base = loaded.path.parent
    return [(f"report.{key}", base / value) for key, value in (("json", rep.json_path), ("csv", rep.csv_path),
                                                              ("path", rep.path)) if value]


def check_output(path: Path, setting: str = "") -> None:
    """Raise OutputError (one line naming the path) unless `path` can be written. okrsync creates no directories."""
    what = f"{setting}: " if setting else ""
    parent = path.parent
    if path.is_dir():
        raise OutputError(f"{what}{path} is a directory; give a file name such as {path / 'report.html'}")
    if not parent.is_dir():
        raise OutputError(f"{what}cannot write {path}: directory {parent} does not exist "
                          f"(okrsync creates no directories)")
    try:
        if path.exists():
            with open(path, "ab"):
                pass
        else:
            fd, probe = tempfile.mkstemp(dir=parent, prefix=".okrsync-probe-")
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        hint = ("; relative report paths resolve against the workspace file's directory, give a path on a "
                "writable volume") if setting.startswith("report.") else ""
        raise OutputError(f"{what}cannot write {path}: {exc.strerror or exc}{hint}") from None


def check_outputs(loaded: LoadedWorkspace, html: bool = True) -> None:
    for setting, path in output_paths(loaded):
        if setting != "report.path" or html:
            check_output(path, setting)


def write_outputs(loaded: LoadedWorkspace, comp: Computation, store: Store,
                  render_html: Callable[[Computation, Store], str] | None = None) -> tuple[list[str], list[str]]:
    """Files named under report: in the workspace (status JSON, CSV, HTML report): (written, one-line errors).

    The HTML renderer lives in the application shell (okrsync.report) and is passed in."""
    written, errors = [], []
    for setting, p in output_paths(loaded):
        if setting == "report.path" and render_html is None:
            continue
        try:
            if setting == "report.json":
                text = json.dumps(status_document(comp), indent=2) + "\n"
            elif setting == "report.csv":
                text = status_csv(comp)
            else:
                text = render_html(comp, store)  # type: ignore[misc]
            p.write_text(text, encoding="utf-8")
            written.append(str(p))
        except OSError as exc:
            errors.append(f"{setting}: cannot write {p}: {exc.strerror or exc}")
    return written, errors


def store_url_for(workspace_path: Path, explicit: str | None, settings: Settings,
                  workspace: Workspace | None = None) -> StoreURL:
    """The store: --db, else OKRSYNC_DB, else the workspace's `store:`, else okrsync.db beside the workspace
    file. Relative paths resolve against the working directory (--db, OKRSYNC_DB) or the workspace file's
    directory (`store:`). Raises StoreError (one line, no password) for a URL okrsync cannot use."""
    base = workspace_path.resolve().parent
    text, where = (explicit, Path.cwd()) if explicit else (settings.db, Path.cwd()) if settings.db else (
        (workspace.store, base) if workspace is not None and workspace.store else ("okrsync.db", base))
    password = settings.db_password.get_secret_value() if settings.db_password else None
    try:
        url = parse_store_url(text, where, password=password, name=workspace.name if workspace is not None else None)
    except StoreURLError as exc:
        raise StoreError(str(exc)) from None
    remember_secret(url.password)  # redacted from every log line and message from now on
    return url
