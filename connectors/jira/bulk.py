"""Jira Cloud reads in parallel: the id-only search lists ids (5,000 a page), bulkfetch reads 100 issues each."""

from __future__ import annotations

from typing import Any, Iterator

from okrsync.connectors.base import SourceError
from okrsync.connectors.http import HTTPStatusError
from okrsync.connectors.paging import chunks, in_parallel, read_ahead
from okrsync.connectors.rawjson import parse_page

from .client import DC_PAGE, window_of

BULK = 100  # POST /rest/api/3/issue/bulkfetch takes at most 100 ids or keys
BULKFETCH = "rest/api/3/issue/bulkfetch"


def read_issues(client: Any, jql: str, fields: list[str], *,
                page_size: int | None = None) -> Iterator[list[dict[str, Any]]]:
    """Pages of issues in the search's order (created ASC). Data Center (or concurrency 1): the search as it is.
    Cloud: the first page as usual (a small read stays one request); when there is more, the ids of the rest from
    the id-only search, then their issues by bulkfetch, `concurrency` batches at a time, yielded in order
    (Atlassian, "Bulk fetch issues": with the id-only search it lets pages of issues be fetched in parallel)."""
    workers = client.http.options.concurrency
    if workers <= 1:  # one request at a time: the search's own pages, no id listing
        yield from client.search(jql, fields, page_size=page_size)
        return
    if not client.is_cloud:
        yield from read_dc(client, jql, fields, min(page_size or DC_PAGE, DC_PAGE), workers)
        return
    size = min(page_size or BULK, BULK)
    first, more = client.search_first(jql, fields, size)
    yield first
    if not more:
        return
    seen = {str(i.get("id")) for i in first if isinstance(i, dict)}
    # the next page of ids (5,000) is listed while the bulkfetches of this one run: no stall between them
    listing = read_ahead(client.search(jql, ["id"]), name=f"okrsync-{client.name}-ids")
    ids = (iid for page in listing for i in page if isinstance(i, dict)
           if (iid := str(i.get("id") or "")) and iid not in seen)
    yield from in_parallel(lambda batch: bulkfetch(client, batch, fields), chunks(ids, size), workers,
                           name=f"okrsync-{client.name}-bulkfetch")


def read_dc(client: Any, jql: str, fields: list[str], size: int, workers: int) -> Iterator[list[dict[str, Any]]]:
    """Data Center: the first startAt page tells the total and the page size the server allows; when all of it lies
    within the search window (10,000 by default), the other pages are read `concurrency` at a time, in order (the
    order is created ASC: an update moves nothing). Past the window, or when the server's window proves smaller,
    the search's own read (restarting by `created`) goes on, leaving out the issues already read."""
    try:
        first = client.search_dc_page(jql, fields, 0, min(size, client.dc_window))
    except HTTPStatusError as exc:
        if not _smaller_window(client, exc):
            raise
        yield from client.search(jql, fields, page_size=size)
        return
    seen = {str(i.get("id")) for i in first.items if isinstance(i, dict)}
    yield first.items
    total, step = (first.body or {}).get("total"), len(first.items)
    if not step or not isinstance(total, int) or total <= step:
        return
    window = client.dc_window
    if total <= window:
        starts = range(step, total, step)
        try:
            for issues in in_parallel(lambda start: client.search_dc_page(
                    jql, fields, start, min(step, window - start)).items, starts, workers):
                seen.update(str(i.get("id")) for i in issues if isinstance(i, dict))
                yield issues
            return
        except HTTPStatusError as exc:
            if not _smaller_window(client, exc):
                raise
    for issues in client.search(jql, fields, page_size=size):
        yield [i for i in issues if not (isinstance(i, dict) and str(i.get("id")) in seen)]


def _smaller_window(client: Any, exc: HTTPStatusError) -> bool:
    """A 500 naming a search window smaller than the client's: an administrator set it; the serial read pages
    within it from now on."""
    smaller = window_of(exc)
    if smaller is None or smaller >= client.dc_window:
        return False
    client.dc_window = smaller
    return True


def bulkfetch(client: Any, ids: list[str], fields: list[str]) -> list[dict[str, Any]]:
    """The issues of up to 100 ids, in the ids' order (the answer's order is not documented). Issues deleted or
    hidden since they were listed are left out by Jira; issueErrors (retriable, the docs say) are asked once more."""
    order = {iid: n for n, iid in enumerate(ids)}
    found: dict[str, dict[str, Any]] = {}
    todo = ids
    for attempt in (1, 2):
        body = client.json("POST", BULKFETCH, json={"issueIdsOrKeys": todo, "fields": list(fields)},
                           parse=lambda text: parse_page(text, "issues"), retry_unsafe=True)
        body = body if isinstance(body, dict) else {}
        issues = body.get("issues") or []
        if not isinstance(issues, list):
            raise SourceError(f"{client.name}: unexpected bulkfetch response (issues is not a list)")
        found.update((str(i.get("id")), i) for i in issues if isinstance(i, dict))
        errors = body.get("issueErrors") or []
        todo = [i for i in ids if i not in found]
        if not errors or not todo:
            break
        if attempt == 2:
            raise SourceError(f"{client.name}: bulkfetch could not return {len(errors)} issue(s): "
                              f"{str(errors[0])[:200]}")
    return sorted(found.values(), key=lambda i: order.get(str(i.get("id")), len(order)))
