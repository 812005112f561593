"""The paginators of connectors/paging.py: exact request sequences, stop conditions, the loop guard, range halving."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable

import pytest
import requests
import responses

from okrsync.connectors.base import AuthError, SourceError
from okrsync.connectors.http import HttpClient, HttpOptions
from okrsync.connectors.paging import (
    Fetched,
    KeysetPaginator,
    LinkPaginator,
    OffsetPaginator,
    PageNumberPaginator,
    Paginator,
    PagingLoop,
    Ranges,
    Request,
    TokenPaginator,
    fetch,
    halve,
    paginate,
    read_ahead,
)

BASE = "https://api.example.test"


def response(link: str | None = None, headers: dict[str, str] | None = None) -> requests.Response:
    resp = requests.Response()
    resp.status_code = 200
    resp.headers.update(headers or {})
    if link:
        resp.headers["Link"] = f'<{link}>; rel="next"'
    return resp


def served(pages: list[tuple[Any, list[Any], str | None]]) -> tuple[Callable[[Request], Fetched], list[Request]]:
    """A fetcher replaying (body, items, next link) pages in order; the requests it was asked for."""
    sent: list[Request] = []
    queue = iter(pages)

    def fetcher(request: Request) -> Fetched:
        sent.append(request)
        body, items, link = next(queue)
        return Fetched(request, body, response(link), items)

    return fetcher, sent


def shape(request: Request) -> tuple[str, Any, Any]:
    return request.path, dict(request.params) if request.params is not None else None, request.json


def offsets(path: str = "items", **extra: Any) -> Callable[[int, int], Request]:
    return lambda offset, limit: Request(path, {"limit": limit, "offset": offset, **extra})


def full(n: int) -> list[int]:
    return list(range(n))


# name -> (paginator factory, pages served, the exact requests expected)
CASES: dict[str, tuple[Callable[[], Paginator], list[tuple[Any, list[Any], str | None]], list[tuple]]] = {
    "token until absent": (
        lambda: TokenPaginator(Request("search", json={"q": 1}, method="POST")),
        [({"nextPageToken": "a"}, [1], None), ({"nextPageToken": "b"}, [2], None), ({}, [3], None)],
        [("search", None, {"q": 1}), ("search", None, {"q": 1, "nextPageToken": "a"}),
         ("search", None, {"q": 1, "nextPageToken": "b"})],
    ),
    "token: isLast wins over a token": (
        lambda: TokenPaginator(Request("search", json={"q": 1}, method="POST")),
        [({"nextPageToken": "a", "isLast": True}, [1], None)],
        [("search", None, {"q": 1})],
    ),
    "token in the query": (
        lambda: TokenPaginator(Request("list", {"n": 2}), token="cursor", last=None, in_body=False),
        [({"cursor": "x"}, [1], None), ({"cursor": None}, [2], None)],
        [("list", {"n": 2}, None), ("list", {"n": 2, "cursor": "x"}, None)],
    ),
    "offset by page size until more is false": (
        lambda: OffsetPaginator(offsets(), 2, more="more"),
        [({"more": True}, full(2), None), ({"more": True}, full(2), None), ({"more": False}, full(1), None)],
        [("items", {"limit": 2, "offset": 0}, None), ("items", {"limit": 2, "offset": 2}, None),
         ("items", {"limit": 2, "offset": 4}, None)],
    ),
    "offset: an empty page ends it even when more says otherwise": (
        lambda: OffsetPaginator(offsets(), 2, more="more"),
        [({"more": True}, [], None)],
        [("items", {"limit": 2, "offset": 0}, None)],
    ),
    "offset under a cap (PagerDuty: offset + limit <= 10,000)": (
        lambda: OffsetPaginator(offsets(), 3, more="more", cap=7),
        [({"more": True}, full(3), None), ({"more": True}, full(3), None)],
        [("items", {"limit": 3, "offset": 0}, None), ("items", {"limit": 3, "offset": 3}, None)],
    ),
    "startAt by the items returned, up to total (a server capping maxResults)": (
        lambda: OffsetPaginator(offsets(), 5, by_items=True, total="total"),
        [({"total": 7}, full(3), None), ({"total": 7}, full(3), None), ({"total": 7}, full(1), None)],
        [("items", {"limit": 5, "offset": 0}, None), ("items", {"limit": 5, "offset": 3}, None),
         ("items", {"limit": 5, "offset": 6}, None)],
    ),
    "startAt: no total where one is needed ends it": (
        lambda: OffsetPaginator(offsets(), 2, by_items=True, total="total", need_total=True),
        [({}, full(2), None)],
        [("items", {"limit": 2, "offset": 0}, None)],
    ),
    "startAt: a missing total pages on to an empty page": (
        lambda: OffsetPaginator(offsets(), 2, by_items=True, total="total"),
        [({}, full(2), None), ({}, [], None)],
        [("items", {"limit": 2, "offset": 0}, None), ("items", {"limit": 2, "offset": 2}, None)],
    ),
    "a search window: the last page shrinks to fit it": (
        lambda: OffsetPaginator(offsets(), 4, by_items=True, total="total", window=6),
        [({"total": 99}, full(4), None), ({"total": 99}, full(2), None)],
        [("items", {"limit": 4, "offset": 0}, None), ("items", {"limit": 2, "offset": 4}, None)],
    ),
    "link header until there is no next": (
        lambda: LinkPaginator(Request("repos/a/pulls", {"per_page": 2})),
        [(None, [1, 2], f"{BASE}/p2"), (None, [3, 4], f"{BASE}/p3"), (None, [5], None)],
        [("repos/a/pulls", {"per_page": 2}, None), (f"{BASE}/p2", None, None), (f"{BASE}/p3", None, None)],
    ),
    "page numbers until stop": (
        lambda: PageNumberPaginator(lambda n: Request("cmp", {"page": n}), stop=lambda p: not p.items),
        [({}, [1], None), ({}, [2], None), ({}, [], None)],
        [("cmp", {"page": 1}, None), ("cmp", {"page": 2}, None), ("cmp", {"page": 3}, None)],
    ),
    "page numbers up to max_pages": (
        lambda: PageNumberPaginator(lambda n: Request("cmp", {"page": n}), stop=lambda p: False, max_pages=2),
        [({}, [1], None), ({}, [2], None)],
        [("cmp", {"page": 1}, None), ("cmp", {"page": 2}, None)],
    ),
    "keyset: after the last key until an empty page": (
        lambda: KeysetPaginator(lambda k: Request("rows", {"after": k}), lambda p: p.items[-1] if p.items else None),
        [({}, [1, 2], None), ({}, [3], None), ({}, [], None)],
        [("rows", {"after": None}, None), ("rows", {"after": 2}, None), ("rows", {"after": 3}, None)],
    ),
    "keyset: a key that does not move follows the fallback (GitHub's next link)": (
        lambda: KeysetPaginator(lambda k: Request("issues", {"since": k}), lambda p: p.items[-1], 5,
                                more=lambda p: p.response is not None and "next" in p.response.links,
                                fallback=lambda p: Request(p.response.links["next"]["url"])),
        [({}, [5], f"{BASE}/i2"), ({}, [5, 7], f"{BASE}/i3"), ({}, [8], None)],
        [("issues", {"since": 5}, None), (f"{BASE}/i2", None, None), ("issues", {"since": 7}, None)],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_request_sequence(name):
    make, pages, expected = CASES[name]
    fetcher, sent = served(pages)
    got = [page.items for page in paginate(None, make(), fetcher=fetcher)]
    assert [shape(r) for r in sent] == expected
    assert got == [items for _, items, _ in pages]


def test_the_cap_is_reported_so_the_caller_can_halve():
    pager = OffsetPaginator(offsets(), 3, more="more", cap=7)
    fetcher, _ = served([({"more": True}, full(3), None)] * 2)
    list(paginate(None, pager, fetcher=fetcher))
    assert pager.capped
    pager = OffsetPaginator(offsets(), 3, more="more", cap=7)
    fetcher, _ = served([({"more": False}, full(3), None)])
    list(paginate(None, pager, fetcher=fetcher))
    assert not pager.capped


def test_a_window_restarts_from_offset_zero_on_a_new_base():
    base = {"q": "all"}

    def restart() -> None:
        base["q"] = "created >= 7"

    pager = OffsetPaginator(lambda o, n: Request("search", json={**base, "startAt": o, "maxResults": n}), 4,
                            by_items=True, total="total", window=6, restart=restart)
    fetcher, sent = served([({"total": 9}, full(4), None), ({"total": 9}, full(2), None),
                            ({"total": 3}, full(3), None)])
    list(paginate(None, pager, fetcher=fetcher))
    assert [r.json for r in sent] == [{"q": "all", "startAt": 0, "maxResults": 4},
                                      {"q": "all", "startAt": 4, "maxResults": 2},
                                      {"q": "created >= 7", "startAt": 0, "maxResults": 4}]
    assert pager.restarts == 1


def test_a_window_without_restart_is_a_cap():
    pager = OffsetPaginator(offsets(), 4, by_items=True, window=4)
    fetcher, sent = served([({}, full(4), None)])
    list(paginate(None, pager, fetcher=fetcher))
    assert len(sent) == 1 and pager.capped


# -- the loop guard ---------------------------------------------------------------------------------------------
LOOPS: dict[str, tuple[Callable[[], Paginator], list[tuple[Any, list[Any], str | None]], int]] = {
    "the same token twice (not in a row)": (
        lambda: TokenPaginator(Request("search", json={}, method="POST")),
        [({"nextPageToken": "a"}, [1], None), ({"nextPageToken": "b"}, [2], None),
         ({"nextPageToken": "a"}, [3], None)], 3),
    "a next link back to the first page": (
        lambda: LinkPaginator(Request(f"{BASE}/p1")),
        [(None, [1], f"{BASE}/p2"), (None, [2], f"{BASE}/p1")], 2),
    "a next link to itself": (
        lambda: LinkPaginator(Request(f"{BASE}/p1")),
        [(None, [1], f"{BASE}/p1")], 1),
    "a keyset that does not move and has no fallback": (
        lambda: KeysetPaginator(lambda k: Request("rows", {"after": k}), lambda p: p.items[-1]),
        [({}, [1, 2], None), ({}, [2], None)], 2),
}


@pytest.mark.parametrize("name", list(LOOPS))
def test_loop_guard(name):
    make, pages, requests_before = LOOPS[name]
    fetcher, sent = served(pages)
    with pytest.raises(PagingLoop, match="stopping to avoid a loop") as err:
        list(paginate(None, make(), fetcher=fetcher, source="acme"))
    assert len(sent) == requests_before  # the repeated request is never sent
    assert str(err.value).startswith("acme: ")


def test_stuck_offset_is_caught():
    # an offset paginator whose build ignores the offset asks for the same page again: refused, not sent
    pager = OffsetPaginator(lambda o, n: Request("items", {"limit": n}), 2, more="more")
    fetcher, sent = served([({"more": True}, full(2), None)] * 3)
    with pytest.raises(PagingLoop):
        list(paginate(None, pager, fetcher=fetcher))
    assert len(sent) == 1


# -- fetch and paginate over a real HttpClient --------------------------------------------------------------------
def client() -> HttpClient:
    return HttpClient("acme", BASE, options=HttpOptions(max_attempts=1), sleep=lambda s: None)


@responses.activate
def test_paginate_over_the_client_keeps_each_response():
    responses.get(f"{BASE}/rows", json={"result": [1, 2]}, headers={"X-Total-Count": "3",
                                                                    "Link": f'<{BASE}/rows2>; rel="next"'})
    responses.get(f"{BASE}/rows2", json={"result": [3]}, headers={"X-Total-Count": "3"})
    pages = list(paginate(client(), LinkPaginator(Request("rows", {"a": "1"})), items="result"))
    assert [p.items for p in pages] == [[1, 2], [3]]
    assert [p.response.headers["X-Total-Count"] for p in pages] == ["3", "3"]
    assert [c.request.url for c in responses.calls] == [f"{BASE}/rows?a=1", f"{BASE}/rows2"]


@responses.activate
def test_fetch_hands_back_the_response_of_a_failed_call():
    responses.get(f"{BASE}/secret", status=403, json={"message": "Resource not accessible"})
    seen: list[requests.Response] = []
    with pytest.raises(AuthError):
        fetch(client(), Request("secret"), seen=seen)
    assert [r.status_code for r in seen] == [403]


@responses.activate
def test_a_fetched_response_is_freed_by_reference_counting():
    """No cycle through the response hook: a page's body goes when the page does, not at the next collection
    (with GitHub pages of ~1 MB, a sync with fewer collections held 80 MB more)."""
    import gc
    import weakref

    responses.get(f"{BASE}/rows", json={"result": [1, 2]})
    was = gc.isenabled()
    gc.disable()
    try:
        seen: list[requests.Response] = []
        page = fetch(client(), Request("rows"), items="result", seen=seen)
        ref = weakref.ref(page.response)
        responses.reset()  # the mock keeps its own references (its call lists)
        del page, seen
        assert ref() is None
    finally:
        if was:
            gc.enable()


# -- date ranges ----------------------------------------------------------------------------------------------------
def t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


@pytest.mark.parametrize("lo,hi,step,expected", [
    (t("2026-07-01 00:00:00"), t("2026-07-31 00:00:00"), None,
     ((t("2026-07-01 00:00:00"), t("2026-07-16 00:00:00")), (t("2026-07-16 00:00:00"), t("2026-07-31 00:00:00")))),
    (t("2026-07-01 00:00:00"), t("2026-07-01 00:00:03"), None,
     ((t("2026-07-01 00:00:00"), t("2026-07-01 00:00:01")), (t("2026-07-01 00:00:01"), t("2026-07-01 00:00:03")))),
    (t("2026-07-01 00:00:00"), t("2026-07-01 00:00:01"), None, None),
    (date(2026, 7, 1), date(2026, 7, 6), timedelta(days=1),
     ((date(2026, 7, 1), date(2026, 7, 3)), (date(2026, 7, 4), date(2026, 7, 6)))),
    (date(2026, 7, 1), date(2026, 7, 2), timedelta(days=1),
     ((date(2026, 7, 1), date(2026, 7, 1)), (date(2026, 7, 2), date(2026, 7, 2)))),
    (date(2026, 7, 1), date(2026, 7, 1), timedelta(days=1), None),
])
def test_halve(lo, hi, step, expected):
    assert halve(lo, hi, step) == expected


def test_ranges_read_a_split_range_as_its_halves_in_order():
    day = timedelta(days=1)
    ranges = Ranges([(date(2026, 7, 1), date(2026, 7, 8)), (date(2026, 7, 9), date(2026, 7, 9))], step=day)
    read = []
    for lo, hi in ranges:
        read.append((lo.day, hi.day))
        if hi > lo and (hi - lo).days >= 3:
            assert ranges.split(lo, hi)
    assert read == [(1, 8), (1, 4), (1, 2), (3, 4), (5, 8), (5, 6), (7, 8), (9, 9)]
    assert not Ranges([], step=day).split(date(2026, 7, 9), date(2026, 7, 9))


# -- read_ahead ---------------------------------------------------------------------------------------------------
def test_read_ahead_lists_the_next_page_while_the_caller_works_on_this_one():
    import threading
    asked = [threading.Event() for _ in range(3)]

    def listing():
        for n in range(3):
            asked[n].set()
            yield [n * 10, n * 10 + 1]

    got = []
    for page in read_ahead(listing()):
        got.append(page)
        if len(got) < 3:  # the next page is already being listed before this one is used up
            assert asked[len(got)].wait(5), "the next page was not asked for ahead"
    assert got == [[0, 1], [10, 11], [20, 21]]


def test_read_ahead_raises_an_error_at_its_turn():
    def listing():
        yield 1
        yield 2
        raise SourceError("jira: HTTP 500 on page 3")

    got = []
    with pytest.raises(SourceError, match="page 3"):
        for item in read_ahead(listing()):
            got.append(item)
    assert got == [1, 2]


def test_read_ahead_stopped_early_closes_the_listing():
    closed = []

    def listing():
        try:
            yield from range(100)
        finally:
            closed.append(True)

    reader = read_ahead(listing())
    assert [next(reader), next(reader)] == [0, 1]
    reader.close()
    assert closed == [True]
