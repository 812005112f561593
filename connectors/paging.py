"""Paging in one place: paginators for the connectors' styles, one loop guard, one range-halving helper, paginate()."""

from __future__ import annotations

import json
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, TypeVar
from urllib.parse import parse_qs, urlsplit

from .base import SourceError

if TYPE_CHECKING:  # pragma: no cover
    import requests

    from .http import HttpClient

R = TypeVar("R", date, datetime)
T = TypeVar("T")
U = TypeVar("U")
F = TypeVar("F", bound="Fetched")


class PagingLoop(SourceError):
    """A paginator asked again for a page it had already asked for: stopping instead of looping."""


@dataclass(frozen=True)
class Request:
    """One page's request: a path (or a next link) with its query parameters and JSON body."""

    path: str
    params: Mapping[str, Any] | None = None
    json: Any = None
    method: str = "GET"

    def key(self) -> str:
        """The request as text: two requests asking for the same page have the same key."""
        return json.dumps([self.method, self.path, self.params, self.json], sort_keys=True, default=str)


@dataclass
class Fetched:
    """A page as received: the request sent, the parsed body, the final HTTP response (headers, links)."""

    request: Request
    body: Any = None
    response: requests.Response | None = None
    items: list[Any] = field(default_factory=list)


def fetch(client: HttpClient, request: Request, *, items: str | None = None,
          seen: list[requests.Response] | None = None, **kwargs: Any) -> Fetched:
    """One request through HttpClient.json (the one retry layer); the page keeps the final response.

    items: the key of the list in the body (None: the body is the list, or has none).
    seen: collects every response of the call, also when it raises (a 403's message is in the last one)."""
    seen = [] if seen is None else seen

    def grab(resp: requests.Response, *args: Any, **kw: Any) -> None:
        seen.append(resp)

    if request.json is not None:
        kwargs["json"] = request.json
    try:
        body = client.json(request.method, request.path, params=request.params, hooks={"response": [grab]}, **kwargs)
    finally:
        # each response's request holds the hook, which holds `seen`, which holds the response: a cycle that
        # only the cyclic collector frees, keeping every page's body alive until it runs
        for resp in seen:
            if resp.request is not None:
                resp.request.hooks = {"response": []}
    got = body.get(items) if items and isinstance(body, dict) else body
    return Fetched(request, body, seen[-1] if seen else None, got if isinstance(got, list) else [])


class Paginator:
    """first() is the first request; advance(page) the next one, or None at the end.

    The loop guard: a paginator asking for a page it has already asked for raises PagingLoop (the model is the
    Singer SDK's `advance`, which refuses a token equal to the previous one; this one remembers them all)."""

    what = "pages"
    source = ""  # the source's name, for the error line (paginate() sets it)

    def __init__(self) -> None:
        self._sent: set[str] = set()
        self.pages = 0

    def start(self) -> Request:
        raise NotImplementedError

    def next(self, page: Fetched) -> Request | None:
        raise NotImplementedError

    def first(self) -> Request:
        return self._guard(self.start())

    def advance(self, page: Fetched) -> Request | None:
        self.pages += 1
        nxt = self.next(page)
        return None if nxt is None else self._guard(nxt)

    def _guard(self, request: Request) -> Request:
        key = request.key()
        if key in self._sent:
            body = f" {json.dumps(request.json, default=str)}" if request.json else ""
            page = f"{request.method} {request.path} {dict(request.params or {})}{body}"
            raise PagingLoop(f"{self.source or 'source'}: paging {self.what} asked twice for the same page "
                             f"({page[:200]}); stopping to avoid a loop")
        self._sent.add(key)
        return request


class TokenPaginator(Paginator):
    """Next-page token (Jira Cloud /search/jql): the body's token goes into the next request's JSON body (or query)
    until it is absent or the body says it is the last page."""

    what = "by next-page token"

    def __init__(self, request: Request, *, token: str = "nextPageToken", last: str | None = "isLast",
                 in_body: bool = True):
        super().__init__()
        self.request, self.token, self.last, self.in_body = request, token, last, in_body

    def start(self) -> Request:
        return self.request

    def next(self, page: Fetched) -> Request | None:
        body = page.body if isinstance(page.body, dict) else {}
        token = body.get(self.token)
        if not token or (self.last and body.get(self.last) is True):
            return None
        req = page.request
        if self.in_body:
            return Request(req.path, req.params, {**(req.json or {}), self.token: token}, req.method)
        return Request(req.path, {**(req.params or {}), self.token: token}, req.json, req.method)


class CursorPaginator(Paginator):
    """GraphQL cursor paging: page_info(page) is the connection's `pageInfo`; its `endCursor` goes into the next
    request's `variables[var]` while `hasNextPage` is true (GitHub's "Using pagination in the GraphQL API")."""

    what = "by GraphQL cursor"

    def __init__(self, request: Request, page_info: Callable[[Fetched], Mapping[str, Any] | None], *,
                 var: str = "after"):
        super().__init__()
        self.request, self.page_info, self.var = request, page_info, var

    def start(self) -> Request:
        return self.request

    def next(self, page: Fetched) -> Request | None:
        info = self.page_info(page) or {}
        if not info.get("hasNextPage") or not info.get("endCursor"):
            return None
        body = dict(page.request.json or {})
        body["variables"] = {**(body.get("variables") or {}), self.var: info["endCursor"]}
        return Request(page.request.path, page.request.params, body, page.request.method)


class OffsetPaginator(Paginator):
    """Offset/startAt paging. build(offset, limit) makes the request; the offset advances by the page size or by the
    items returned (servers that cap the page size). The end: an empty page, `more` false, or offset >= `total`.

    cap: offset + limit may not pass it (PagerDuty's 10,000): the paging stops with .capped set.
    window: the last page shrinks to fit it (Jira Data Center's search window); reaching it calls restart(), which
    moves build() to a new base (`created >= …`) read from offset 0 again, or raises; without restart it is a cap."""

    what = "by offset"

    def __init__(self, build: Callable[[int, int], Request], size: int, *, start: int = 0, by_items: bool = False,
                 more: str | None = None, total: str | None = None, need_total: bool = False,
                 cap: int | None = None, window: int | None = None, restart: Callable[[], None] | None = None):
        super().__init__()
        self.build, self.size, self.offset, self.by_items = build, size, start, by_items
        self.more, self.total, self.need_total = more, total, need_total
        self.cap, self.window, self.restart = cap, window, restart
        self.capped = False
        self.restarts = 0

    def start(self) -> Request:
        req = self.request()
        if req is None:
            raise SourceError(f"paging {self.what}: no page fits under the cap")
        return req

    def request(self) -> Request | None:
        """The request at the current offset (the window or cap applied); None when capped."""
        limit = self.size
        if self.window is not None:
            limit = min(self.size, self.window - self.offset)
            if limit <= 0:
                if self.restart is None:
                    self.capped = True
                    return None
                self.restart()
                self.offset, self.restarts = 0, self.restarts + 1
                limit = min(self.size, self.window)
        if self.cap is not None and self.offset + limit > self.cap:
            self.capped = True
            return None
        return self.build(self.offset, limit)

    def next(self, page: Fetched) -> Request | None:
        body = page.body if isinstance(page.body, dict) else {}
        self.offset += len(page.items) if self.by_items else self.size
        if not page.items or (self.more is not None and not body.get(self.more)):
            return None
        total = body.get(self.total) if self.total else None
        if isinstance(total, int) and not isinstance(total, bool) and self.offset >= total:
            return None
        if self.need_total and not isinstance(total, int):
            return None
        return self.request()


class LinkPaginator(Paginator):
    """Link header rel="next" (GitHub): the next URL as it comes, with no query parameters of ours."""

    what = "by Link header"

    def __init__(self, request: Request, *, stop: Callable[[Fetched], bool] | None = None):
        super().__init__()
        self.request, self.stop = request, stop

    def start(self) -> Request:
        return self.request

    def next(self, page: Fetched) -> Request | None:
        url = next_link(page)
        if not url or (self.stop is not None and self.stop(page)):
            return None
        return Request(url, None, None, page.request.method)


def next_link(page: Fetched) -> str | None:
    resp = page.response
    return resp.links.get("next", {}).get("url") if resp is not None else None


class PageNumberPaginator(Paginator):
    """page=1, 2, … (GitHub compare) until stop(page) or `max_pages`."""

    what = "by page number"

    def __init__(self, build: Callable[[int], Request], *, stop: Callable[[Fetched], bool], first: int = 1,
                 max_pages: int | None = None):
        super().__init__()
        self.build, self.stop, self.number, self.first_number, self.max_pages = build, stop, first, first, max_pages

    def start(self) -> Request:
        return self.build(self.number)

    def next(self, page: Fetched) -> Request | None:
        if self.stop(page) or (self.max_pages is not None and self.number - self.first_number + 1 >= self.max_pages):
            return None
        self.number += 1
        return self.build(self.number)


class KeysetPaginator(Paginator):
    """Keyset paging: build(key) asks for the rows after `key`; key_of(page) is the key the page ends at.

    more(page) false ends the paging (default: an empty page does). A key that does not move forward is no
    progress: fallback(page) gives another way on (GitHub's Link rel="next"), else PagingLoop, not a repeat."""

    what = "by keyset"

    def __init__(self, build: Callable[[Any], Request], key_of: Callable[[Fetched], Any], start: Any = None, *,
                 more: Callable[[Fetched], bool] | None = None,
                 fallback: Callable[[Fetched], Request | None] | None = None):
        super().__init__()
        self.build, self.key_of, self.key, self.more, self.fallback = build, key_of, start, more, fallback

    def start(self) -> Request:
        return self.build(self.key)

    def next(self, page: Fetched) -> Request | None:
        if not (self.more(page) if self.more is not None else page.items):
            return None
        key = self.key_of(page)
        if key is not None and (self.key is None or key > self.key):
            self.key = key
            return self.build(key)
        request = self.fallback(page) if self.fallback is not None else None
        if request is not None:
            return request
        if key is None:
            return None
        raise PagingLoop(f"{self.source or 'source'}: paging {self.what} made no progress (the page ends at {key}, "
                         f"not after {self.key}); stopping to avoid a loop")


def paginate(client: HttpClient | None, paginator: Paginator, *, fetcher: Callable[[Request], Fetched] | None = None,
             source: str = "", **kwargs: Any) -> Iterator[Fetched]:
    """The pages of a paginator, each carrying its response; the next request is made when the consumer asks for
    the next page (after it has processed this one). fetcher: how to send a request (default: fetch(client, …))."""
    paginator.source = source or (client.source if client is not None else "")
    if fetcher is None:
        if client is None:
            raise ValueError("paginate needs a client or a fetcher")
        http = client

        def fetcher(request: Request) -> Fetched:
            return fetch(http, request, **kwargs)

    request: Request | None = paginator.first()
    while request is not None:
        page = fetcher(request)
        yield page
        request = paginator.advance(page)


def in_parallel(fn: Callable[[T], U], items: Iterable[T], workers: int, *, ahead: int | None = None,
                name: str = "okrsync-read") -> Iterator[U]:
    """fn(item) for each item on up to `workers` threads, the results in the items' order: pages are then written
    in order, so a checkpoint never passes a page that is not committed. At most `ahead` (default 2 x workers) are
    started beyond the one being waited for (memory stays bounded); the requests themselves are bounded by the
    source's limiter. An error is raised when its result's turn comes; stopping early cancels what has not started
    and waits for what has."""
    ahead = max(1, ahead or 2 * workers)
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix=name)
    pending: deque[Future[U]] = deque()
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            while len(pending) >= ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)  # the requests in flight end (no orphan outlives its read)


_END = object()


def read_ahead(items: Iterable[T], *, name: str = "okrsync-read-ahead") -> Iterator[T]:
    """The items of `items`, the next one produced on a thread while the caller works on this one: a listing that
    feeds parallel reads (Jira's id-only search) is then never waited for between its pages. Errors are raised at
    their turn; stopping early waits for the item in the making (its request ends) and closes `items`."""
    it = iter(items)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
    try:
        upcoming: Future[Any] = pool.submit(next, it, _END)
        while (item := upcoming.result()) is not _END:
            upcoming = pool.submit(next, it, _END)
            yield item
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        close = getattr(it, "close", None)
        if close is not None:
            close()


def last_page(page: Fetched, param: str = "page") -> int | None:
    """The number of the last page from a Link header rel="last" (GitHub's numbered lists), None without one."""
    url = page.response.links.get("last", {}).get("url") if page.response is not None else None
    values = parse_qs(urlsplit(url).query).get(param) if url else None
    return int(values[-1]) if values and values[-1].isdigit() else None


def numbered(fetch_page: Callable[[int], F], first: int, workers: int) -> Iterator[tuple[int, F]]:
    """Pages first, first+1, ... up to the Link rel="last" of the first one, `workers` pages in flight, in order.

    For lists paged by number in an order that updates do not change (GitHub: sort=created, ascending); what is
    created while they are read lands after the last page, for a catch-up pass to read."""
    page = fetch_page(first)
    yield first, page
    yield from numbered_after(page, first, fetch_page, workers)


def numbered_after(page: F, n: int, fetch_page: Callable[[int], F], workers: int) -> Iterator[tuple[int, F]]:
    """The pages after page n (already read): up to its Link rel="last", `workers` in flight, in order; without
    rel="last", one at a time while there is a rel="next" (never stop while there is more)."""
    end = last_page(page)
    if end is None:
        while next_link(page):
            n += 1
            page = fetch_page(n)
            yield n, page
        return
    yield from zip(range(n + 1, end + 1), in_parallel(fetch_page, range(n + 1, end + 1), workers))


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Lists of `size` items (the last may be shorter)."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


# -- date ranges ----------------------------------------------------------------------------------------------------
def halve(lo: R, hi: R, step: timedelta | None = None) -> tuple[tuple[R, R], tuple[R, R]] | None:
    """Split a range in two at its middle; None when it cannot be split further.

    step None: a half-open [lo, hi) of datetimes cut at a whole second (UTC), the halves sharing the middle.
    step given: a closed [lo, hi] (of dates), the second half starting one step after the middle."""
    if step is None:
        assert isinstance(lo, datetime) and isinstance(hi, datetime)
        cut = (lo + (hi - lo) / 2).astimezone(timezone.utc).replace(microsecond=0)
        if cut <= lo or cut >= hi:
            return None
        return (lo, cut), (cut, hi)
    if not lo < hi:
        return None
    mid = lo + (hi - lo) // 2
    return (lo, mid), (mid + step, hi)


class Ranges:
    """Date-range slicing: the ranges in order; split() replaces the current one by its halves, read next."""

    def __init__(self, ranges: Iterable[tuple[R, R]], step: timedelta | None = None):
        self._queue: deque[tuple[Any, Any]] = deque(ranges)
        self.step = step

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        while self._queue:
            yield self._queue.popleft()

    def split(self, lo: Any, hi: Any) -> bool:
        """Read [lo, hi) as two halves instead (False: too small to split)."""
        parts = halve(lo, hi, self.step)
        if parts is None:
            return False
        self._queue.extendleft(reversed(parts))
        return True
