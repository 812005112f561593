"""The state behind `okrsync serve`: syncs through run_sync, per-source health, the latest computation."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from okrsync.config.settings import Settings
from okrsync.config.workspace import LoadedWorkspace
from okrsync.config.yamlfile import ConfigError
from okrsync.domain.records import iso
from okrsync.engine.compute import Computation
from okrsync.engine.document import kr_document, status_document
from okrsync.engine.lock import LockBusy
from okrsync.engine.pipeline import Interrupted, RunSummary, run_sync
from okrsync.engine.store import Store, StoreError
from okrsync.engine.sync import Reporter

from .events import Deletion
from .worker import DEBOUNCE, SyncJob, SyncWorker

log = logging.getLogger("okrsync.serve")

DELIVERIES_KEPT = 10_000  # delivery ids remembered for de-duplication
ITEM_TABLES = {"issues": "key", "incidents": "number"}  # table -> the column holding the human key


@dataclass
class ServeOptions:
    every: float  # seconds between reconciliation polls
    debounce: float = DEBOUNCE
    max_body: int = 1 << 20  # 1 MiB
    token: str | None = None  # OKRSYNC_SERVE_TOKEN: bearer for the dashboard, API and metrics
    drain_timeout: float = 30.0


@dataclass
class SourceHealth:
    source: str
    type: str
    last_sync: datetime | None = None  # when its last sync ended (ok or not)
    last_success: datetime | None = None
    error: str | None = None
    syncs: int = 0
    requests: int = 0
    errors: int = 0
    rate_limit_wait_seconds: float = 0.0

    def document(self) -> dict[str, Any]:
        return {"type": self.type, "last_sync": iso(self.last_sync), "last_success": iso(self.last_success),
                "error": self.error, "syncs": self.syncs}


@dataclass
class SyncRecord:
    trigger: str
    sources: list[str]
    status: str  # ok | partial | failed | interrupted | busy
    started: datetime
    seconds: float
    requests: int
    events: int


@dataclass
class Counters:
    syncs: dict[tuple[str, str], int] = field(default_factory=dict)  # (trigger, status) -> runs
    webhooks: dict[tuple[str, str], int] = field(default_factory=dict)  # (source, result) -> requests
    sync_seconds: list[float] = field(default_factory=list)

    def bump(self, table: dict[tuple[str, str], int], key: tuple[str, str]) -> None:
        table[key] = table.get(key, 0) + 1


class WaitCounter(Reporter):
    """Adds up the rate-limit and retry waits the HTTP layer reports ("<source>: <why>") per source."""

    def __init__(self) -> None:
        self.waits: dict[str, float] = {}

    def wait(self, message: str, seconds: float) -> None:
        source = message.split(":", 1)[0]
        self.waits[source] = self.waits.get(source, 0.0) + max(0.0, seconds)


class Deliveries:
    """Delivery ids seen lately (bounded): a replayed delivery triggers nothing."""

    def __init__(self, keep: int = DELIVERIES_KEPT) -> None:
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._keep = keep
        self._lock = threading.Lock()

    def first_time(self, source: str, delivery: str) -> bool:
        key = f"{source}\0{delivery}"
        with self._lock:
            if key in self._seen:
                return False
            self._seen[key] = None
            while len(self._seen) > self._keep:
                self._seen.popitem(last=False)
            return True


class StreamFilter:
    """A connector with only some of its streams (a webhook names what changed); the others keep their cursors."""

    def __init__(self, inner: Any, keep: frozenset[str]):
        self.inner, self.keep = inner, keep

    def streams(self) -> list[Any]:
        return [s for s in self.inner.streams() if s.name in self.keep]

    @property
    def requests_made(self) -> int:
        return self.inner.requests_made

    def finish(self) -> None:
        self.inner.finish()

    def close(self) -> None:
        self.inner.close()


class Service:
    def __init__(self, loaded: LoadedWorkspace, settings: Settings, store: Store, options: ServeOptions,
                 render_html: Callable[[Computation, Store], str],
                 now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
        self.loaded, self.settings, self.store, self.options = loaded, settings, store, options
        self.render_html = render_html
        self.now = now
        self.health = {n: SourceHealth(n, cfg.type) for n, cfg in loaded.workspace.sources.items()}
        self.counters = Counters()
        self.history: list[SyncRecord] = []  # the last runs, newest last (bounded)
        self.deliveries = Deliveries()
        self.computation: Computation | None = None
        self.version = 0  # bumped when the status document changes (the dashboard refreshes)
        self.closing = threading.Event()  # shutting down: live streams end
        self._digest = ""
        self._html: tuple[int, str] | None = None
        self._lock = threading.RLock()
        self.worker = SyncWorker(self.run_job, every=options.every, debounce=options.debounce)

    # -- webhooks -----------------------------------------------------------------------------------
    def source_type(self, source: str) -> str | None:
        cfg = self.loaded.workspace.sources.get(source)
        return cfg.type if cfg is not None else None

    def secret(self, source: str) -> str | None:
        value = self.settings.credentials(source).webhook_secret
        return value.get_secret_value() if value is not None else None

    def count_webhook(self, source: str, result: str) -> None:
        with self._lock:
            self.counters.bump(self.counters.webhooks, (source, result))

    def mark_deleted(self, source: str, deletions: list[Deletion]) -> int:
        """A deletion event: the item is deleted in the store at once (the sync that follows recomputes)."""
        total = 0
        with self.store.write() as db:
            for d in deletions:
                column = ITEM_TABLES[d.table]
                total += db.execute(f"UPDATE {d.table} SET deleted = 1 WHERE source = ? AND deleted = 0 "
                                    f"AND (id = ? OR {column} = ?)", [source, d.item, d.item]).rowcount
        if total:
            log.info("%s: %d item(s) deleted by webhook", source, total)
        return total

    # -- syncing ------------------------------------------------------------------------------------
    def run_job(self, job: SyncJob) -> bool:
        started, waits = self.now(), WaitCounter()
        factory = self._factory(job)
        kwargs: dict[str, Any] = {"connector_factory": factory} if factory is not None else {}
        log.info("%s sync of %s", job.trigger, ", ".join(job.sources) if job.sources else "every source")
        try:
            summary = run_sync(self.loaded, self.settings, self.store, sources=job.sources, reporter=waits,
                               render_html=self.render_html, stop=self.worker.abort, **kwargs)
        except LockBusy as exc:
            log.warning("%s", exc)
            self._record(job, "busy", started, 0, [])
            return False
        except Interrupted:
            self._record(job, "interrupted", started, 0, [])
            return True
        except (ConfigError, StoreError) as exc:
            log.error("%s", exc)
            self._record(job, "failed", started, 0, [str(exc)])
            for h in self._sources(job):
                h.last_sync, h.error, h.errors = self.now(), str(exc), h.errors + 1
            return True
        self._absorb(job, summary, waits)
        return True

    def _factory(self, job: SyncJob) -> Callable[..., Any] | None:
        if not any(s is not None for s in job.streams.values()):
            return None
        from okrsync.connectors.registry import build_connector

        def factory(name: str, cfg: Any, creds: Any, options: Any) -> Any:
            inner = build_connector(name, cfg, creds, options)
            keep = job.streams.get(name)
            return inner if keep is None else StreamFilter(inner, keep)

        return factory

    def _sources(self, job: SyncJob) -> list[SourceHealth]:
        return [self.health[n] for n in (job.sources or list(self.health)) if n in self.health]

    def _absorb(self, job: SyncJob, summary: RunSummary, waits: WaitCounter) -> None:
        ended = summary.finished or self.now()
        with self._lock:
            for name, outcome in summary.sources.items():
                h = self.health.get(name)
                if h is None:
                    continue
                h.last_sync, h.syncs, h.requests = ended, h.syncs + 1, h.requests + outcome.requests
                h.rate_limit_wait_seconds += waits.waits.get(name, 0.0)
                problem = outcome.error or next((e for e in summary.config_errors if e.startswith(f"{name}:")), None)
                if problem:
                    h.error, h.errors = problem, h.errors + 1
                else:
                    h.error, h.last_success = None, ended
            if summary.computation is not None:
                self._publish(summary.computation)
        for e in summary.writeback.errors + summary.output_errors:
            log.warning("%s", e)
        self._record(job, summary.status, summary.started, summary.requests, summary.errors,
                     (ended - summary.started).total_seconds())

    def _publish(self, comp: Computation) -> None:
        doc = status_document(comp)
        doc.pop("generated_at", None)
        digest = hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()
        self.computation = comp
        if digest != self._digest:
            self._digest = digest
            self.version += 1

    def _record(self, job: SyncJob, status: str, started: datetime, requests: int, errors: list[str],
                seconds: float = 0.0) -> None:
        with self._lock:
            self.counters.bump(self.counters.syncs, (job.trigger, status))
            self.counters.sync_seconds.append(seconds)
            del self.counters.sync_seconds[:-1000]
            self.history.append(SyncRecord(job.trigger, job.sources or sorted(self.health), status, started,
                                           seconds, requests, job.events))
            del self.history[:-200]
        log.info("%s sync %s in %.1f s (%d requests%s)", job.trigger, status, seconds, requests,
                 f", {len(errors)} error(s)" if errors else "")

    # -- reads --------------------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return self.worker.first_done.is_set()

    def health_document(self) -> dict[str, Any]:
        with self._lock:
            return {"status": "ok" if self.ready else "starting", "syncing": self.worker.busy,
                    "sources": {n: h.document() for n, h in self.health.items()}}

    def status(self) -> dict[str, Any] | None:
        comp = self.computation
        return None if comp is None else status_document(comp)

    def explain(self, kr_id: str, limit: int = 50) -> dict[str, Any] | None:
        """GET /api/kr/<id>: what `okrsync explain` shows, as JSON (None: no such KR, or nothing computed)."""
        from okrsync.console import item_rows

        comp = self.computation
        k = comp.kr(kr_id) if comp is not None else None
        if comp is None or k is None:
            return None
        kr = k.kr
        items = [{"ref": ref, "label": str(row.get("_label")), "title": row.get("title") or "",
                  "url": row.get("url"), "deleted": bool(row.get("deleted"))}
                 for ref, row in zip(k.item_ids, item_rows(self.store, k.item_ids, limit))]
        keys = ("computed_at", "run_id", "value", "progress", "score", "status", "items")
        return {**kr_document(k), "objective": k.objective_id, "formula": k.formula,
                "select": kr.select.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
                if kr.select else None,
                "detail": {key: str(v) for key, v in k.detail.items()}, "generated_at": iso(comp.generated_at),
                "items_counted": items, "items_total": k.items,
                "history": [{key: r.get(key) for key in keys} for r in self.store.history(kr_id, limit=limit)]}

    def dashboard(self) -> tuple[int, str] | None:
        """(version, the HTML report) of the latest computation, rendered once per version."""
        comp, version = self.computation, self.version
        if comp is None:
            return None
        cached = self._html
        if cached is not None and cached[0] == version:
            return cached
        html = self.render_html(comp, self.store)
        self._html = (version, html)
        return self._html
