"""Write-back dispatch: render each KR's status, send it only when it changed, log every write."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Callable

from okrsync.config.keyresults import WritebackTarget
from okrsync.config.settings import Settings
from okrsync.config.workspace import Workspace
from okrsync.connectors.base import ConnectorOptions, SourceError, Writer, redact
from okrsync.connectors.registry import build_writer
from okrsync.domain.records import iso
from okrsync.domain.status import KRStatus

from .compute import Computation, KRResult, sources_of
from .store import Store

log = logging.getLogger("okrsync.writeback")


def kr_status(comp: Computation, k: KRResult) -> KRStatus:
    obj = next(o.objective for o in comp.objectives if o.objective.id == k.objective_id)
    return KRStatus(
        kr_id=k.kr.id, title=k.kr.title, objective_id=obj.id, objective_title=obj.title, metric=k.kr.metric,
        status=k.status, value=k.value, baseline=k.baseline, target=k.target, progress=k.progress, score=k.score,
        expected=k.expected, items=k.items, unit=k.unit, period=comp.workspace.period.label,
        window_start=iso(k.window.start) if k.window else None, window_end=iso(k.window.end) if k.window else None,
        overridden=k.overridden, computed_at=iso(comp.generated_at),
        checkin=k.checkin.line() if k.checkin is not None else None,
    )


def target_id(target: WritebackTarget) -> str:
    """A stable id for a target; a webhook URL can hold a secret, so only its redacted form and a hash show."""
    if target.to == "webhook":
        if target.url is None:
            return f"webhook:${target.url_env}"
        from okrsync.connectors.webhook.payload import display_url

        shown, _ = display_url(target.url, target.format)
        return f"webhook:{shown}#{hashlib.sha1(target.url.encode()).hexdigest()[:8]}"
    return f"{target.to}:{target.issue}"


@dataclass
class WritebackSummary:
    written: int = 0
    unchanged: int = 0
    planned: list[str] = field(default_factory=list)  # --dry-run: one line per change a target would get
    would_write: int = 0  # --dry-run: targets that would be written
    errors: list[str] = field(default_factory=list)
    skipped: int = 0


class WritebackDispatcher:
    def __init__(self, ws: Workspace, store: Store, settings: Settings, *, run_id: int | None, dry_run: bool = False,
                 writer_factory: Callable[..., Writer] = build_writer, options: ConnectorOptions | None = None):
        self.ws = ws
        self.store = store
        self.settings = settings
        self.run_id = run_id
        self.dry_run = dry_run
        self.factory = writer_factory
        self.options = options or ConnectorOptions(secrets=settings.secret_values(), ca_bundle=settings.ca_bundle)
        self._writers: dict[tuple[str, str | None], Writer] = {}

    def _writer(self, target: WritebackTarget) -> Writer:
        key: tuple[str, str | None]
        if target.to == "webhook":
            key = ("webhook", None)
            if key not in self._writers:
                self._writers[key] = self.factory("webhook", None, None, None, self.options)
            return self._writers[key]
        name = target.source or next(n for n, s in self.ws.sources.items() if s.type == target.to)
        key = (target.to, name)
        if key not in self._writers:
            self._writers[key] = self.factory(target.to, name, self.ws.sources[name], self.settings.credentials(name),
                                              self.options)
        return self._writers[key]

    def run(self, comp: Computation, failed_sources: set[str] | None = None) -> WritebackSummary:
        summary = WritebackSummary()
        failed_sources = failed_sources or set()
        for k in comp.all_krs():
            if not k.kr.writeback:
                continue
            if failed_sources.intersection(sources_of(k.kr)):
                summary.skipped += len(k.kr.writeback)
                log.warning("%s: write-back skipped: its source failed in this run", k.kr.id)
                continue
            status = kr_status(comp, k)
            fp = status.fingerprint()
            for target in k.kr.writeback:
                self._one(k.kr.id, target, status, fp, summary)
        for w in self._writers.values():
            close = getattr(w, "close", None)
            if close:
                close()
        return summary

    def _one(self, kr_id: str, target: WritebackTarget, status: KRStatus, fp: str, summary: WritebackSummary) -> None:
        tid = target_id(target)
        prev = self.store.writeback_state(kr_id, tid)
        if prev is not None and prev["rendered_hash"] == fp:
            summary.unchanged += 1
            return
        try:
            writer = self._writer(target)
            if self.dry_run:
                lines = writer.plan(target, status)
                summary.planned += [f"{kr_id} -> {tid}: {line}" for line in lines]
                summary.would_write += 1
                self.store.save_writeback(kr_id, tid, rendered_hash=None, remote_ref=None, run_id=self.run_id,
                                          actions=[("plan", "dry_run", "; ".join(lines))])
                return
            result = writer.write(target, status, prev["remote_ref"] if prev else None)
        except SourceError as exc:
            msg = redact(str(exc), self.settings.secret_values())
            summary.errors.append(f"write-back {kr_id} -> {tid}: {msg}")
            self.store.save_writeback(kr_id, tid, rendered_hash=None, remote_ref=None, run_id=self.run_id,
                                      actions=[("write", "failed", msg)])
            log.info("write-back %s -> %s failed: %s", kr_id, tid, msg)  # the run summary prints it once
            return
        summary.written += 1
        self.store.save_writeback(kr_id, tid, rendered_hash=fp, remote_ref=result.remote_ref, run_id=self.run_id,
                                  actions=[(a, "ok", d) for a, d in result.actions] or [("write", "ok", "")])

