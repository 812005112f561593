"""GitHub REST client over HttpClient: auth headers, Link paging, ETag conditional requests, one-line errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

import requests

from okrsync.config.settings import env_name
from okrsync.connectors.auth import TokenRefused
from okrsync.connectors.base import AuthError, ConnectorOptions, NotFoundError, SourceError
from okrsync.connectors.http import HttpClient, HttpOptions
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
class ListPage:
    items: list[dict[str, Any]] = field(default_factory=list)
    next_url: str | None = None
    etag: str | None = None
    not_modified: bool = False
    body: Any = None  # the whole JSON document (wrapped lists such as workflow runs)


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
             retry_unsafe: bool = False, parse: Callable[[str], Any] | None = None
             ) -> tuple[Any, requests.Response | None]:
        """One request through HttpClient; returns (JSON body or None, the final response).

        `what` names the object for error lines: 'repository acme/web', 'issue acme/okrs#3'.
        """
        seen: list[requests.Response] = []

        def grab(resp: requests.Response, *args: Any, **kwargs: Any) -> None:
            seen.append(resp)

        kwargs: dict[str, Any] = {"params": params, "hooks": {"response": [grab]}}
        if parse is not None:
            kwargs["parse"] = parse
        if etag:
            kwargs["headers"] = {"If-None-Match": etag}
            expect = tuple(expect) + (304,)
        if json is not None:
            kwargs["json"] = json
        try:
            body = self.http.json(method, path, expect=expect, retry_unsafe=retry_unsafe, **kwargs)
        except TokenRefused:  # a GitHub App's installation token could not be minted: its own line
            raise
        except AuthError:
            resp = seen[-1] if seen else None
            if resp is not None and resp.status_code == 403:
                raise RepoForbidden(f"{self.source}: access denied to {what} "
                                    f"(HTTP 403: {_message(resp)}; check the token's permissions, {self.hint})") from None
            raise AuthError(f"{self.source}: authentication failed for {self.base_url} (check {self.hint})") from None
        except NotFoundError:
            raise RepoNotFound(f"{self.source}: {what} not found (or the token cannot see it)") from None
        return body, (seen[-1] if seen else None)

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
            return ListPage(not_modified=True, etag=etag)
        items = body.get(key) if key and isinstance(body, dict) else body
        if not isinstance(items, list):
            raise SourceError(f"{self.source}: unexpected response from {path.split('?')[0]} (expected a list)")
        next_url = resp.links.get("next", {}).get("url") if resp is not None else None
        return ListPage(items=items, next_url=next_url, etag=resp.headers.get("ETag") if resp is not None else None,
                        body=body)

    def pages(self, path: str, *, what: str, params: dict[str, Any] | None = None, etag: str | None = None,
              key: str | None = None) -> Iterator[ListPage]:
        """Follow Link rel="next" from the first page (sent conditionally when an ETag is given)."""
        page = self.list_page(path, what=what, params=params, etag=etag, key=key)
        yield page
        while page.next_url and not page.not_modified:
            page = self.list_page(page.next_url, what=what, key=key)
            yield page

    def list_all(self, path: str, *, what: str, params: dict[str, Any] | None = None,
                 etag: str | None = None) -> ListPage | None:
        """Every item of a (small) list; None when the conditional first page answered 304."""
        out = ListPage()
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
        for page in range(1, COMPARE_MAX_PAGES + 1):
            body = self.get(path, what=what, params={"per_page": PER_PAGE, "page": page}) or {}
            commits = [c["sha"] for c in body.get("commits") or [] if isinstance(c, dict) and c.get("sha")]
            before = len(shas)
            shas.update(dict.fromkeys(commits))
            if len(shas) >= int(body.get("total_commits") or 0) or len(shas) == before:
                break
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
