"""Reading one stream of a connector against a running sandbox, for the parallel-read tests."""

from __future__ import annotations

from typing import Any

from okrsync.connectors.base import Page, ReadContext
from okrsync.sandbox import Sandbox


def read_stream(sb: Sandbox, conn: Any, ctx: ReadContext, system: str,
                stop_after: int | None = None) -> tuple[list[Page], list[dict]]:
    """The pages of the connector's first stream (the first `stop_after` of them) and the sandbox's log of them."""
    sb.reset_log()
    pages: list[Page] = []
    for page in conn.streams()[0].read(ctx):
        pages.append(page)
        if stop_after is not None and len(pages) >= stop_after:
            break
    return pages, sb.requests(system)


def record_ids(pages: list[Page]) -> list[str]:
    return [r.id for p in pages for r in p.records]
