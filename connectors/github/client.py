"""GitHub REST client over HttpClient: auth headers, Link paging, ETag conditional requests, one-line errors."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterator, cast
from urllib.parse import urlsplit

import requests

from okrsync.config.settings import env_name
from okrsync.connectors.auth import TokenRefused
from okrsync.connectors.base import AuthError, ConnectorOptions, NotFoundError, SourceError
from okrsync.connectors.http import HttpClient, HttpOptions
from okrsync.connectors.paging import (
    Fetched,
    LinkPaginator,
    PageNumberPaginator,
    Paginator,
    Request,
    fetch,
    next_link,
    paginate,
)
from okrsync.connectors.rawjson import parse_page

API_VERSION = "2022-11-28"
PER_PAGE = 100  # the API maximum for every list we read
COMPARE_MAX_PAGES = 100  # compare lists at most 10,000 commits


class RepoError(SourceError):
    """One repository (or workflow) of a source failed: the others still sync, the source fails at the end."""


class RepoNotFound(RepoError, NotFoundError):
    """404: the object does not exist or the token cannot see it."""


class RepoForbidden(RepoError, AuthError):
    """403 that is not a rate limit: the token lacks a permission for this repository."""


@dataclass
class ListPage(Fetched):
    """A page of a list: its items (of `body`, the whole JSON document, for wrapped lists such as workflow runs)."""

    next_url: str | None = None
    etag: str | None = None
    not_modified: bool = False


def since_param(value: datetime) -> str:
    """GitHub's `since`: UTC ISO-8601 with Z, whole seconds (floored: reading a little more is harmless)."""
    v = value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return v.strftime("%Y-%m-%dT%H:%M:%SZ")


class GitHubClient:
    """Every GitHub call of okrsync goes through here (and so through HttpClient's one retry layer)."""

    def __init__(self, source: str, base_url: str, token: str | None, *, options: ConnectorOptions | None = None,
                 http_options: HttpOptions | None = None, clock: Callable[[], float] | None = None):
        options = options or ConnectorOptions()
        self.source = source
        self.base_url = base_url.rstrip("/")
        self.hint = env_name(source, "token")
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.http = HttpClient(
            source, self.base_url, options=http_options, headers=headers, auth_hint=self.hint,
            secrets=[token or "", *options.secrets], sleep=options.sleep, clock=clock, on_wait=options.on_wait,
        )
        self._host = urlsplit(self.base_url).netloc

    @property
    def requests_made(self) -> int:
        return self.http.requests_made

    def close(self) -> None:
        self.http.close()

    # -- one call -----------------------------------------------------------------------------
    def call(self, method: str, path: str, *, what: str, params: dict[str, Any] | None = None,
             etag: str | None = None, json: Any = None, expect: tuple[int, ...] = (200,),
             retry_unsafe: bool = False, parse: Callable[[str], Any] | None = None,
             check_body: Callable[[Any, requests.Response], None] | None = None
             ) -> tuple[Any, requests.Response | None]:
        """One request through HttpClient; returns (JSON body or None, the final response).

        `what` names the object for error lines: 'repository acme/web', 'issue acme/okrs#3'.
        """
        kwargs: dict[str, Any] = {}
        if parse is not None:
            kwargs["parse"] = parse
        if check_body is not None:
            kwargs["check_body"] = check_body
        if etag:
            kwargs["headers"] = {"If-None-Match": etag}
            expect = tuple(expect) + (304,)
        seen: list[requests.Response] = []  # the responses of this call: a 403's message is in the last one
        try:
            page = fetch(self.http, Request(path, params, json, method), expect=expect, retry_unsafe=retry_unsafe,
                         seen=seen, **kwargs)
        except TokenRefused:  # a GitHub App's installation token could not be minted: its own line
            raise
        except AuthError:
            resp = seen[-1] if seen else None
            if resp is not None and resp.status_code == 403:
                raise RepoForbidden(f"{self.source}: access denied to {what} (HTTP 403: {_message(resp)}; "
                                    f"check the token's permissions, {self.hint})") from None
            raise AuthError(f"{self.source}: authentication failed for {self.base_url} (check {self.hint})") from None
        except NotFoundError:
            raise RepoNotFound(f"{self.source}: {what} not found (or the token cannot see it)") from None
        return page.body, page.response

    def get(self, path: str, *, what: str, params: dict[str, Any] | None = None) -> Any:
        return self.call("GET", path, what=what, params=params)[0]

    # -- lists --------------------------------------------------------------------------------
    def list_page(self, path: str, *, what: str, params: dict[str, Any] | None = None, etag: str | None = None,
                  key: str | None = None) -> ListPage:
        """One page of a list; `key` names the array inside a wrapped document (workflow_runs)."""
        self._same_host(path)
        # listed items keep their JSON text: the store saves it as the raw payload without re-encoding
        body, resp = self.call("GET", path, what=what, params=params, etag=etag,
                               parse=lambda text: parse_page(text, key))
        if resp is not None and resp.status_code == 304:
            return ListPage(Request(path, params), not_modified=True, etag=etag)
        items = body.get(key) if key and isinstance(body, dict) else body
        if not isinstance(items, list):
            raise SourceError(f"{self.source}: unexpected response from {path.split('?')[0]} (expected a list)")
        etag_now = resp.headers.get("ETag") if resp is not None else None
        page = ListPage(Request(path, params), body, resp, items, etag=etag_now)
        page.next_url = next_link(page)
        return page

    def pages(self, path: str, *, what: str, params: dict[str, Any] | None = None, etag: str | None = None,
              key: str | None = None) -> Iterator[ListPage]:
        """Follow Link rel="next" from the first page (sent conditionally when an ETag is given)."""
        return self.pages_of(LinkPaginator(Request(path, params)), what=what, etag=etag, key=key)

    def pages_of(self, pager: Paginator, *, what: str, etag: str | None = None,
                 key: str | None = None) -> Iterator[ListPage]:
        """The list pages a paginator asks for; the first is sent conditionally when an ETag is given."""
        def fetcher(request: Request) -> ListPage:
            return self.list_page(request.path, what=what, params=dict(request.params) if request.params else None,
                                  key=key, etag=etag if not pager.pages else None)

        for page in paginate(self.http, pager, fetcher=fetcher):
            yield cast(ListPage, page)

    def list_all(self, path: str, *, what: str, params: dict[str, Any] | None = None,
                 etag: str | None = None) -> ListPage | None:
        """Every item of a (small) list; None when the conditional first page answered 304."""
        out = ListPage(Request(path, params))
        for i, page in enumerate(self.pages(path, what=what, params=params, etag=etag)):
            if page.not_modified:
                return None
            if i == 0:
                out.etag = page.etag
            out.items.extend(page.items)
        return out

    def compare(self, repo: str, base: str, head: str) -> list[str]:
        """SHAs reachable from head but not from base, oldest first.

        https://docs.github.com/rest/commits/commits#compare-two-commits: "When calling this endpoint without
        any paging parameter (per_page or page), the returned list is limited to 250 commits, and the last
        commit in the list is the most recent of the entire comparison." Paged answers run from the earliest
        commit instead, so every call pages explicitly (page 1, 2, ...) up to `total_commits`: the unpaged
        list is never used (mixing it in would lose the oldest commits of a long comparison).
        """
        path = f"repos/{repo}/compare/{base}...{head}"
        what = f"comparison {base[:12]}...{head[:12]} in {repo}"
        shas: dict[str, None] = {}
        grew = True

        def fetcher(request: Request) -> Fetched:
            body = self.get(path, what=what, params=dict(request.params or {})) or {}
            commits = [c["sha"] for c in body.get("commits") or [] if isinstance(c, dict) and c.get("sha")]
            return Fetched(request, body, None, commits)

        def done(page: Fetched) -> bool:
            return len(shas) >= int(page.body.get("total_commits") or 0) or not grew

        pager = PageNumberPaginator(lambda n: Request(path, {"per_page": PER_PAGE, "page": n}), stop=done,
                                    max_pages=COMPARE_MAX_PAGES)
        for page in paginate(self.http, pager, fetcher=fetcher):
            before = len(shas)
            shas.update(dict.fromkeys(page.items))
            grew = len(shas) > before
        return list(shas)

    def _same_host(self, url: str) -> None:
        # a next link pointing elsewhere would carry our token to another host
        if url.startswith(("http://", "https://")) and urlsplit(url).netloc != self._host:
            raise SourceError(f"{self.source}: refusing to follow a page link to another host ({urlsplit(url).netloc})")


def _message(resp: requests.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.reason or "forbidden"
    msg = body.get("message") if isinstance(body, dict) else None
    return " ".join(str(msg or resp.reason or "forbidden").split())[:200]
