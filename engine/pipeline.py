"""One sync run end to end: lock, pull, recompute, record history, write back, write outputs."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from okrsync.config.settings import Settings
from okrsync.config.workspace import LoadedWorkspace

from .compute import Computation, Thresholds, compute, history_rows
from .document import status_csv, status_document
from .lock import StoreLock
from .store import Store
from .sync import Reporter, SourceOutcome, SyncRunner, missing_credentials
from .writeback import WritebackDispatcher, WritebackSummary

log = logging.getLogger("okrsync.run")


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

    @property
    def errors(self) -> list[str]:
        return self.config_errors + [o.error for o in self.sources.values() if o.error] + self.writeback.errors

    @property
    def skipped(self) -> list[dict]:
        return [s for o in self.sources.values() for s in o.skipped]

    @property
    def requests(self) -> int:
        return sum(o.requests for o in self.sources.values())

    @property
    def status(self) -> str:
        if not self.errors:
            return "ok"
        ok_sources = [o for o in self.sources.values() if not o.error]
        return "partial" if ok_sources or self.computation is not None else "failed"

    @property
    def exit_code(self) -> int:
        if self.config_errors:
            return 2
        return 0 if not self.errors else 1


def thresholds_for(lw: LoadedWorkspace, settings: Settings) -> Thresholds:
    ws_t = lw.workspace.thresholds
    # the workspace file wins when it sets them; else settings (env OKRSYNC_THRESHOLDS__ON_TRACK ...)
    fields = lw.workspace.thresholds.model_fields_set
    return Thresholds(
        ws_t.on_track if "on_track" in fields else settings.thresholds.on_track,
        ws_t.at_risk if "at_risk" in fields else settings.thresholds.at_risk,
    )


def run_sync(
    lw: LoadedWorkspace,
    settings: Settings,
    store: Store,
    *,
    sources: list[str] | None = None,
    full: bool = False,
    dry_run: bool = False,
    wait: float | None = None,
    reporter: Reporter | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    connector_factory=None,
    writer_factory=None,
    runner_hook: Callable[[SyncRunner], None] | None = None,
    sleep: Callable[[float], None] | None = None,
    render_html: Callable[[Computation, Store], str] | None = None,
) -> RunSummary:
    ws = lw.workspace
    lock = StoreLock(store.path)
    lock.acquire(settings.lock_wait if wait is None else wait,
                 on_wait=lambda pid: log.warning("another sync is running (pid %s); waiting for it", pid))
    try:
        started = now()
        run_id = store.start_run("sync --full" if full else "sync", started)
        summary = RunSummary(run_id, started)
        names = list(sources or ws.sources)
        runnable = []
        for name in names:
            problem = missing_credentials(name, ws.sources[name], settings)
            if problem:
                summary.config_errors.append(problem)
                summary.sources[name] = SourceOutcome(name, error=None)
            else:
                runnable.append(name)
        kwargs = {}
        if connector_factory is not None:
            kwargs["connector_factory"] = connector_factory
        runner = SyncRunner(ws, store, settings, run_id=run_id, started=started, full=full, reporter=reporter,
                            sleep=sleep, **kwargs)
        if runner_hook:
            runner_hook(runner)
        summary.sources.update(runner.run(runnable))
        failed = {n for n, o in summary.sources.items() if o.error} | {
            n for n in names if any(e.startswith(f"{n}:") for e in summary.config_errors)}
        comp = compute(ws, store, settings.as_of() if settings.now else now(), thresholds_for(lw, settings))
        summary.computation = comp
        if not dry_run:
            rows, sets = history_rows(comp, store, run_id)
            store.record_values(rows, sets)
        wb_kwargs = {"writer_factory": writer_factory} if writer_factory is not None else {}
        summary.writeback = WritebackDispatcher(ws, store, settings, run_id=run_id, dry_run=dry_run,
                                                **wb_kwargs).run(comp, failed)
        if not dry_run:
            summary.outputs = write_outputs(lw, comp, store, render_html)
        summary.finished = now()
        store.finish_run(
            run_id, status=summary.status, sources={n: o.summary() for n, o in summary.sources.items()},
            errors=summary.errors, skipped=summary.skipped, requests=summary.requests,
        )
        return summary
    finally:
        lock.release()


def write_outputs(lw: LoadedWorkspace, comp: Computation, store: Store,
                  render_html: Callable[[Computation, Store], str] | None = None) -> list[str]:
    """Files named under report: in the workspace (HTML report, status JSON, CSV).

    The HTML renderer lives in the application shell (okrsync.report) and is passed in."""
    rep = lw.workspace.report
    base = lw.path.parent
    written = []
    if rep.json_path:
        p = base / rep.json_path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(status_document(comp), indent=2) + "\n", encoding="utf-8")
        written.append(str(p))
    if rep.csv_path:
        p = base / rep.csv_path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(status_csv(comp), encoding="utf-8")
        written.append(str(p))
    if rep.path and render_html is not None:
        p = base / rep.path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(render_html(comp, store), encoding="utf-8")
        written.append(str(p))
    return written


def db_path_for(workspace_path: Path, explicit: str | None, settings: Settings) -> Path:
    if explicit:
        return Path(explicit)
    if settings.db:
        return Path(settings.db)
    return workspace_path.resolve().parent / "okrsync.db"
