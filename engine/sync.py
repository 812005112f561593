"""Sync: read every source's streams page by page, each page and its cursor in one transaction."""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone
from time import monotonic
from typing import Any, Callable, Iterator
from zoneinfo import ZoneInfo

from okrsync.config.settings import Settings
from okrsync.config.workspace import Workspace, default_kind
from okrsync.connectors.base import Connector, ConnectorOptions, Page, ReadContext, SourceError, Stream, redact
from okrsync.connectors.registry import build_connector
from okrsync.domain.records import iso, parse_iso
from okrsync.mappings.selectors import TABLES, RawIndex, jql_key, raw_text_where

from .readstate import PageState, ReadChain, StreamState, pending_read
from .store import Store, StoreRemoved

log = logging.getLogger("okrsync.sync")


class Reporter:
    """Progress callbacks; the CLI shows them on a terminal or as log lines."""

    def page(self, source: str, stream: str, fetched: int, requests: int) -> None: ...

    def wait(self, message: str, seconds: float) -> None: ...

    def source_done(self, source: str, outcome: "SourceOutcome") -> None: ...


@dataclass
class SourceOutcome:
    source: str
    fetched: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    deleted: int = 0
    skipped: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    streams: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    def summary(self) -> dict[str, Any]:
        return {"fetched": self.fetched, "new": self.new, "changed": self.changed, "unchanged": self.unchanged,
                "deleted": self.deleted, "skipped": len(self.skipped), "requests": self.requests,
                "streams": self.streams, "error": self.error}


def jql_selectors(ws: Workspace) -> dict[str, dict[str, tuple[str, list[str]]]]:
    """Per source: jql_key -> (jql, KR ids using it)."""
    out: dict[str, dict[str, tuple[str, list[str]]]] = {}

    for _, kr in ws.key_results():
        for _, sel in kr.leaves():
            if sel is not None and sel.jql:
                key = jql_key(sel.source, sel.jql)
                jql, ids = out.setdefault(sel.source, {}).get(key, (sel.jql.strip(), []))
                out[sel.source][key] = (jql, ids + [kr.id])
    return out


def raw_indexes_wanted(ws: Workspace) -> set[RawIndex]:
    """The raw-path indexes the workspace's where: entries can use (compute walks those the store has)."""
    out: set[RawIndex] = set()
    for _, kr in ws.key_results():
        for spec, sel in kr.leaves():
            source = ws.sources.get(sel.source) if sel is not None else None
            kind = default_kind(spec.metric, sel, source.type) if sel is not None and source is not None else None
            for s, k in ((sel, kind), (spec.incidents, "incident")):
                if s is None or k is None:
                    continue
                for name, value in (s.where or {}).items():
                    index = raw_text_where(TABLES[k], str(name), value)
                    if index is not None:
                        out.add(index)
    return out


def _sync_from(value: date | datetime | None, tz: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=ZoneInfo(tz))
    return datetime.combine(value, time(), tzinfo=ZoneInfo(tz)).astimezone(timezone.utc)


class SyncRunner:
    def __init__(self, ws: Workspace, store: Store, settings: Settings, *, run_id: int, started: datetime,
                 full: bool = False, reporter: Reporter | None = None,
                 connector_factory: Callable[..., Connector] = build_connector,
                 sleep: Callable[[float], None] | None = None):
        self.ws = ws
        self.store = store
        self.settings = settings
        self.run_id = run_id
        self.started = started
        self.full = full
        self.reporter = reporter or Reporter()
        self.factory = connector_factory
        self.sleep = sleep
        self.jql = jql_selectors(ws)
        self.stop_requested = threading.Event()

    def first_since(self, name: str, stream: Stream) -> datetime | None:
        cfg = self.ws.sources[name]
        explicit = _sync_from(cfg.sync_from, self.ws.timezone)
        if explicit is not None:
            return explicit
        if getattr(stream, "default_from", "all") == "previous_period":
            return self.ws.period.previous_bounds(self.ws.timezone)[0]
        return None

    def context(self, name: str, stream: Stream) -> tuple[ReadContext, ReadChain]:
        saved = self.store.get_state(name, stream.name)
        pending = saved["pending"]
        cfg = self.ws.sources[name]
        run_started, run_id = iso(self.started), self.run_id
        if pending and bool(pending.get("full")) == self.full:
            # an interrupted read: resume it; the cursor becomes the interrupted run's start
            since = parse_iso(pending["since"]) if pending.get("since") else None
            run_started, run_id = pending["run_started"], pending["run_id"]
            checkpoint = pending.get("checkpoint")
            ctx = ReadContext(since=since, run_started=self.started, full=self.full,
                              first_run=saved["cursor"] is None,
                              checkpoint=dict(checkpoint) if checkpoint is not None else None,
                              state=saved["state"])
        elif self.full or saved["cursor"] is None:
            ctx = ReadContext(since=self.first_since(name, stream), run_started=self.started, full=self.full,
                              first_run=saved["cursor"] is None, state=saved["state"])
        else:
            since = parse_iso(saved["cursor"]) - cfg.lookback_delta
            ctx = ReadContext(since=since, run_started=self.started, state=saved["state"])
        chain: ReadChain = {"run_started": run_started, "run_id": run_id, "full": self.full, "since": iso(ctx.since)}
        return ctx, chain

    def sync_source(self, name: str) -> SourceOutcome:
        out = SourceOutcome(name)
        cfg = self.ws.sources[name]
        creds = self.settings.credentials(name)
        options = ConnectorOptions(
            jql_selectors=self.jql.get(name, {}),
            on_wait=self.reporter.wait,
            sleep=self.sleep,
            secrets=self.settings.secret_values(),
            ca_bundle=self.settings.ca_bundle,
        )
        connector: Connector | None = None
        try:
            connector = self.factory(name, cfg, creds, options)
            for stream in connector.streams():
                if self.stop_requested.is_set():
                    break
                self._sync_stream(name, stream, connector, out)
            if not self.stop_requested.is_set():
                connector.finish()  # every stream read: the checks that span them
        except SourceError as exc:
            out.error = _one_line(str(exc), self.settings.secret_values())
            log.info("%s", out.error)  # the run summary prints it once; the log repeats it only with -v
        except Exception as exc:  # a bug or an unexpected payload: the source fails, the run goes on
            log.debug("%s: unexpected error", name, exc_info=True)  # the traceback only with --debug
            out.error = _one_line(f"{name}: unexpected error: {type(exc).__name__}: {exc}",
                                  self.settings.secret_values())
            log.info("%s", out.error)
        finally:
            if connector is not None:
                out.requests = connector.requests_made
                try:
                    connector.close()
                except Exception:  # pragma: no cover
                    pass
        self.reporter.source_done(name, out)
        return out

    def _sync_stream(self, name: str, stream: Stream, connector: Connector, out: SourceOutcome) -> None:
        ctx, chain = self.context(name, stream)
        fetched = 0
        state = ctx.state
        for batch in prefetched(stream.read(ctx), f"okrsync-{name}-{stream.name}"):
            # the pages already read are written in one transaction (group commit): a writer that falls behind
            # the parallel reads pays one commit per batch, not per page; each batch still ends with its state
            with self.store.write():
                for page in batch:
                    if page.state is not None:
                        state = page.state
                    self._write_page(name, stream.name, page, {"pending": pending_read(chain, page.checkpoint),
                                                               "state": state}, out)
                    fetched += len(page.records)
                    if self.stop_requested.is_set():
                        break  # a stop ends the batch at this page; the pages after it are read again next run
            self.reporter.page(name, stream.name, fetched, connector.requests_made)
            if self.stop_requested.is_set():
                # graceful stop: the pages written are saved; the pending checkpoint resumes the rest next run
                raise SourceError(f"{name}: stopped before {stream.name} finished (resumes next run)")
        if chain["full"] or self.full:
            out.deleted += self.store.mark_deleted(name, stream.name, int(chain["run_id"]), since=ctx.since)
        done: StreamState = {"cursor": chain["run_started"], "pending": None, "state": state}
        self.store.save_state(name, stream.name, done)
        out.fetched += fetched
        out.streams[stream.name] = fetched

    def _write_page(self, name: str, stream: str, page: Page, state: PageState, out: SourceOutcome) -> None:
        """One page's records, memberships and checkpoint (inside the batch's transaction), counted in `out`."""
        counts = self.store.write_page(name, stream, page.records, run_id=self.run_id, state=state,
                                       memberships=[(m.jql_key, m.checked, m.members, m.jql) for m in page.memberships])
        out.new += counts.new
        out.changed += counts.changed
        out.unchanged += counts.unchanged
        for s in page.skipped:
            out.skipped.append({"source": name, "stream": stream, "key": s.key, "reason": s.reason})
            log.warning("%s: skipped %s: %s", name, s.key, s.reason)

    def run(self, names: list[str]) -> dict[str, SourceOutcome]:
        if not names:
            return {}
        with ThreadPoolExecutor(max_workers=min(8, len(names)), thread_name_prefix="okrsync-source") as pool:
            futures = {n: pool.submit(self.sync_source, n) for n in names}
            out = {n: f.result() for n, f in futures.items()}
        if self.store.removed():  # each source failed on "no such table": say what happened, once
            raise StoreRemoved(self.store.path)
        try:
            created, dropped = self.store.prepare_raw_indexes(raw_indexes_wanted(self.ws))
            if created or dropped:
                log.info("raw-path indexes: created %s, dropped %s", created or "none", dropped or "none")
            self.store.refresh_stats()  # after a large read, so the recompute that follows plans well
        except Exception as exc:  # indexes and statistics are optimisations: never fail a sync over them
            log.debug("planner statistics", exc_info=True)
            log.warning("could not refresh the store's indexes or planner statistics: %s: %s",
                        type(exc).__name__, exc)
        return out


PREFETCH = 8  # pages a stream may read ahead of the page being written
BATCH_RECORDS = 2000  # at most this many records in one group-commit batch (a batch always takes its first page)


def prefetched(pages: Iterator[Page], thread_name: str, depth: int = PREFETCH,
               batch_records: int = BATCH_RECORDS) -> Iterator[list[Page]]:
    """The pages of a stream in batches, read ahead in a background thread so fetching overlaps writing.

    A batch is the next page plus those already read behind it (up to `batch_records` records): the caller
    writes a batch (records + checkpoint + state) in one transaction, in order; a page read ahead but not
    written is simply read again on resume. The stream's errors are raised here, in the caller's thread, after
    the pages read before them. When the caller stops early the reader stops after its page."""
    slots: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for page in pages:
                if not put(page):
                    break
            else:
                put(done)
        except BaseException as exc:  # handed to the caller, raised in its thread
            put(_Failure(exc))
        finally:
            close = getattr(pages, "close", None)
            if close is not None:
                close()

    reader = threading.Thread(target=read, name=thread_name, daemon=True)
    reader.start()
    try:
        while True:
            item = slots.get()
            batch: list[Page] = []
            size = 0
            while item is not done and not isinstance(item, _Failure):
                batch.append(item)
                size += len(item.records)
                try:
                    item = slots.get_nowait() if size < batch_records else None
                except queue.Empty:
                    item = None
                if item is None:
                    break
            if batch:
                yield batch
            if item is done:
                return
            if isinstance(item, _Failure):
                raise item.exc
    finally:
        stop.set()
        # unblock the reader; a request it is still waiting on is not waited for long (it is a daemon)
        deadline = monotonic() + 5.0
        while reader.is_alive() and monotonic() < deadline:
            try:
                slots.get(timeout=0.05)
            except queue.Empty:
                pass


@dataclass
class _Failure:
    exc: BaseException


def _one_line(text: str, secrets: list[str]) -> str:
    return " ".join(redact(text, secrets).split())

