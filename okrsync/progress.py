"""Sync progress: a live display on a terminal, structured log lines otherwise."""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Iterator

from rich.console import Console
from rich.live import Live
from rich.table import Table

from okrsync.domain.text import plural
from okrsync.engine.sync import Reporter, SourceOutcome

log = logging.getLogger("okrsync.progress")


class LogReporter(Reporter):
    """Non-interactive runs: one log line per page at info level, waits at warning."""

    def page(self, source: str, stream: str, fetched: int, requests: int) -> None:
        log.info("%s/%s: %d fetched, %s", source, stream, fetched, plural(requests, "request"),
                 extra={"event": "page", "source": source, "stream": stream, "fetched": fetched,
                        "requests": requests})

    def wait(self, message: str, seconds: float) -> None:
        log.warning("%s: waiting %.0f s", message, seconds, extra={"event": "wait", "seconds": seconds})

    def source_done(self, source: str, outcome: SourceOutcome) -> None:
        if outcome.error:
            return
        log.info("%s: done, %d fetched, %s", source, outcome.fetched, plural(outcome.requests, "request"),
                 extra={"event": "source_done", "source": source, "fetched": outcome.fetched,
                        "requests": outcome.requests})


class LiveReporter(LogReporter):
    """Terminal runs: a small live table of items fetched, requests and rate-limit waits per source."""

    def __init__(self, console: Console):
        self.console = console
        self.rows: dict[str, dict] = {}
        self.lock = threading.Lock()
        self.live = Live(self._table(), console=console, refresh_per_second=8, transient=True)

    def _table(self) -> Table:
        t = Table(box=None, show_header=True, header_style="dim")
        for col in ("source", "stream", "fetched", "requests", "state"):
            t.add_column(col)
        for name, r in sorted(self.rows.items()):
            t.add_row(name, r.get("stream", ""), str(r.get("fetched", 0)), str(r.get("requests", 0)),
                      r.get("state", "syncing"))
        return t

    def _update(self, source: str, **kw) -> None:
        with self.lock:
            self.rows.setdefault(source, {}).update(kw)
            self.live.update(self._table())

    def page(self, source: str, stream: str, fetched: int, requests: int) -> None:
        self._update(source, stream=stream, fetched=fetched, requests=requests)

    def wait(self, message: str, seconds: float) -> None:
        source = message.split(":")[0]
        self._update(source, state=f"waiting {seconds:.0f} s (rate limit)")
        super().wait(message, seconds)

    def source_done(self, source: str, outcome: SourceOutcome) -> None:
        self._update(source, state="failed" if outcome.error else "done", requests=outcome.requests)


@contextlib.contextmanager
def make_reporter(console: Console) -> Iterator[Reporter]:
    if console.is_terminal:
        reporter = LiveReporter(console)
        with reporter.live:
            yield reporter
    else:
        yield LogReporter()
