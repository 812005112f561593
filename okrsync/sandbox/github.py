"""GitHub REST simulator: issues/pulls/deployments/releases/runs/compare, Link paging, ETag/304, a rate budget."""

from __future__ import annotations

import base64
import bisect
import hashlib
import re
import threading
import time
from collections import OrderedDict
from datetime import datetime
from typing import Any, Callable
from urllib.parse import urlencode

from .github_delivery import GitHubDelivery, _int
from .github_graphql import deployments as gql_deployments
from .github_render import DOCS, GhRenderer
from .github_writes import GitHubWrites
from .model import UTC, GhItem, to_ms
from .oauth import GitHubApps
from .server import App, BadRequest, Request, Response, dumps, json_response
from .world import Repo

JSON = "application/json; charset=utf-8"
GRAPHQL_PATHS = ("/graphql", "/api/graphql")  # github.com; GitHub Enterprise Server
_GQL_REPO = re.compile(r'(\w+)\s*:\s*repository\(\s*name:\s*"([^"]+)"\s*,\s*owner:\s*"([^"]+)"\s*\)')


class GitHubApp(GitHubWrites, GitHubDelivery, App):
    system = "github"

    def __init__(self, world: Any, token: str | None = None, rate_limit: int = 5000, rate_window: float = 3600.0):
        super().__init__()
        self.w, self.token = world, token
        self.r = GhRenderer(world, lambda: self.base_url)
        self.limit, self.window = rate_limit, rate_window
        self.used = 0
        self.reset_at = time.time() + rate_window
        self._budget = threading.Lock()
        self._cache: OrderedDict[tuple, list] = OrderedDict()
        self._cache_lock = threading.Lock()
        self.app_auth = GitHubApps()  # GitHub Apps: installation tokens (see register())
        self.route("POST", "/app/installations/{installation_id}/access_tokens", self.app_auth.access_tokens)
        rp = "/repos/{owner}/{repo}"
        for method, path, handler in (
            ("GET", "/rate_limit", self.rate_limit),
            *(("POST", path, self.graphql) for path in GRAPHQL_PATHS),
            ("GET", rp, self.get_repo),
            ("GET", f"{rp}/issues", self.list_issues),
            ("GET", f"{rp}/issues/{{number}}", self.get_issue),
            ("PATCH", f"{rp}/issues/{{number}}", self.edit_issue),
            ("GET", f"{rp}/issues/{{number}}/labels", self.list_labels),
            ("POST", f"{rp}/issues/{{number}}/labels", self.add_labels),
            ("PUT", f"{rp}/issues/{{number}}/labels", self.set_labels),
            ("DELETE", f"{rp}/issues/{{number}}/labels/{{name}}", self.remove_label),
            ("GET", f"{rp}/issues/{{number}}/comments", self.list_comments),
            ("POST", f"{rp}/issues/{{number}}/comments", self.add_comment),
            ("PATCH", f"{rp}/issues/comments/{{cid}}", self.edit_comment),
            ("GET", f"{rp}/pulls", self.list_pulls),
            ("GET", f"{rp}/pulls/{{number}}", self.get_pull),
            ("GET", f"{rp}/deployments", self.list_deployments),
            ("GET", f"{rp}/deployments/{{id}}", self.get_deployment),
            ("GET", f"{rp}/deployments/{{id}}/statuses", self.list_statuses),
            ("GET", f"{rp}/releases", self.list_releases),
            ("GET", f"{rp}/actions/workflows", self.list_workflows),
            ("GET", f"{rp}/actions/workflows/{{workflow}}", self.get_workflow),
            ("GET", f"{rp}/actions/runs/{{id}}", self.get_run),
            ("GET", f"{rp}/releases/latest", self.latest_release),
            ("GET", f"{rp}/commits/{{ref}}", self.get_commit),
            ("GET", f"{rp}/actions/workflows/{{workflow}}/runs", self.list_runs),
            ("GET", f"{rp}/actions/runs", self.list_runs),
            ("GET", f"{rp}/compare/{{basehead}}", self.compare),
        ):
            self.route(method, path, handler)

    # -- errors, auth, rate limits, conditional requests -------------------------------------------------
    def error(self, status: int, message: str, **extra: Any) -> Response:
        body = {"message": message, "documentation_url": extra.get("docs", DOCS), "status": str(status)}
        if "errors" in extra:
            body["errors"] = extra["errors"]
        return json_response(status, body, content_type=JSON)

    def authenticate(self, req: Request) -> Response | None:
        if req.path.startswith("/app/"):
            return None  # authenticated by the App's JWT (oauth.GitHubApps)
        auth = req.header("Authorization") or ""
        scheme, _, value = auth.partition(" ")
        issued = self.app_auth.tokens.check(value.strip()) if scheme.lower() in ("token", "bearer") else None
        if issued is not None:  # an installation token: valid for one hour
            return None if issued else self.error(401, "Bad credentials")
        if self.token is None:
            return None
        if scheme.lower() in ("token", "bearer") and value.strip() == self.token:
            return None
        return self.error(401, "Bad credentials")

    def set_budget(self, limit: int, window: float | None = None, used: int = 0) -> None:
        with self._budget:
            self.limit, self.used = limit, used
            if window is not None:
                self.window = window
            self.reset_at = time.time() + self.window

    def _roll(self) -> None:
        if time.time() >= self.reset_at:
            self.used, self.reset_at = 0, time.time() + self.window

    def _rate_headers(self) -> list[tuple[str, str]]:
        return [("X-RateLimit-Limit", str(self.limit)), ("X-RateLimit-Remaining", str(max(0, self.limit - self.used))),
                ("X-RateLimit-Reset", str(int(self.reset_at))), ("X-RateLimit-Used", str(self.used)),
                ("X-RateLimit-Resource", "core"), ("X-GitHub-Media-Type", "github.v3; format=json"),
                ("x-github-api-version-selected", "2022-11-28"),
                ("X-GitHub-Request-Id", hashlib.sha1(str(time.perf_counter_ns()).encode()).hexdigest()[:20].upper())]

    def handle(self, req: Request) -> Response:
        counted = req.path != "/rate_limit"  # GET /rate_limit is free
        with self._budget:
            self._roll()
            exhausted = counted and self.used >= self.limit
        if exhausted and req.path in GRAPHQL_PATHS:
            # GraphQL's primary limit is not an HTTP error: "the response status will still be 200, but you will
            # receive an error message, and the value of the x-ratelimit-remaining header will be 0" (GitHub docs,
            # "Rate limits and query limits for the GraphQL API", Exceeding the rate limit)
            resp = self.ok({"errors": [{"type": "RATE_LIMITED", "code": "graphql_rate_limit",
                                        "message": "API rate limit already exceeded for user ID 1000009."}]})
            counted = False
        elif exhausted:
            resp = self.error(403, "API rate limit exceeded for user ID 1000009. If you reach out to GitHub Support "
                              "for help, please include the request ID.",
                              docs="https://docs.github.com/rest/overview/rate-limits-for-the-rest-api")
            counted = False
        else:
            resp = self._conditional(req, super().handle(req))
            counted = counted and resp.status != 304  # a 304 does not cost budget
        with self._budget:
            if counted:
                self.used += 1
            resp.headers += self._rate_headers()
        return resp

    def _conditional(self, req: Request, resp: Response) -> Response:
        if req.method != "GET" or resp.status != 200:
            return resp
        etag = f'W/"{hashlib.sha256(resp.body).hexdigest()}"'
        resp.headers.append(("ETag", etag))
        resp.headers.append(("Cache-Control", "private, max-age=60, s-maxage=60"))
        wanted = req.header("If-None-Match")
        if wanted and (wanted.strip() == "*" or any(_bare(t) == _bare(etag) for t in wanted.split(","))):
            return Response(304, b"", [("ETag", etag), ("Cache-Control", "private, max-age=60, s-maxage=60")])
        return resp

    def rate_limited(self, retry_after: float) -> Response:
        resp = self.error(429, "You have exceeded a secondary rate limit. Please wait a few minutes before you try "
                          "again.", docs="https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
                                         "#about-secondary-rate-limits")
        resp.headers.append(("Retry-After", str(int(retry_after)) if float(retry_after).is_integer()
                             else str(retry_after)))
        with self._budget:
            resp.headers += self._rate_headers()
        return resp

    def server_error(self, status: int) -> Response:
        resp = super().server_error(status)
        with self._budget:
            resp.headers += self._rate_headers()
        return resp

    def rate_limit(self, req: Request) -> Response:
        with self._budget:
            self._roll()
            core = {"limit": self.limit, "used": self.used, "remaining": max(0, self.limit - self.used),
                    "reset": int(self.reset_at)}
        later = int(time.time()) + 60
        return self.ok({"resources": {"core": core,
                                      "search": {"limit": 30, "used": 0, "remaining": 30, "reset": later},
                                      "graphql": {"limit": 5000, "used": 0, "remaining": 5000, "reset": later}},
                        "rate": core})

    def graphql(self, req: Request) -> Response:
        """POST /graphql: a repository's deployments (github_graphql.py), or aliased `repository(name:, owner:)
        { nameWithOwner databaseId }` lookups (what Singer taps send first to resolve repository ids); an unknown
        repository is null, as on GitHub."""
        body = req.json() or {}
        query = str(body.get("query") or "") if isinstance(body, dict) else ""
        if "deployments(" in query:  # repository.deployments with their statuses (github_graphql.py)
            variables = body.get("variables") or {}
            return self.ok(gql_deployments(self, query, variables if isinstance(variables, dict) else {}))
        asks = _GQL_REPO.findall(query)
        if not asks:
            return self.ok({"errors": [{"message": "The sandbox answers repository(name:, owner:) lookups only"}]})
        data: dict[str, Any] = {}
        errors = []
        for alias, name, owner in asks:
            r = self.w.repos.get(f"{owner}/{name}")
            data[alias] = {"nameWithOwner": r.name, "databaseId": r.id} if r else None
            if r is None:
                errors.append({"type": "NOT_FOUND", "path": [alias],
                               "message": f"Could not resolve to a Repository with the name '{owner}/{name}'."})
        if "rateLimit" in query:
            data["rateLimit"] = {"cost": 1}
        return self.ok({"data": data, **({"errors": errors} if errors else {})})

    def ok(self, obj: Any, status: int = 200, headers: list[tuple[str, str]] | None = None) -> Response:
        return Response(status, dumps(obj), [("Content-Type", JSON)] + (headers or []))

    # -- helpers -----------------------------------------------------------------------------------------
    def _repo(self, req: Request, docs: str = DOCS) -> Repo:
        r = self.w.repos.get(f"{req.params['owner']}/{req.params['repo']}")
        if r is None:
            raise BadRequest("Not Found", 404, docs=docs)
        return r

    def _item(self, req: Request) -> tuple[Repo, GhItem]:
        r = self._repo(req)
        n = req.params["number"]
        it = r.by_number.get(int(n)) if n.isdigit() else None
        if it is None:
            raise BadRequest("Not Found", 404, docs="https://docs.github.com/rest/issues/issues#get-an-issue")
        return r, it

    def cached(self, key: tuple, build: Callable[[], list]) -> list:
        key = key + (self.w.version,)
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        with self.w.lock:
            value = build()
        with self._cache_lock:
            self._cache[key] = value
            while len(self._cache) > 32:
                self._cache.popitem(last=False)
        return value

    def paged(self, req: Request, items: list, render: Callable[[Any], Any], default: int = 30,
              maximum: int = 100) -> Response:
        """A page of a list with GitHub's Link header (rel prev/next/last/first, other parameters kept)."""
        per_page = _int(req.arg("per_page"), default)
        per_page = default if per_page < 1 else min(per_page, maximum)
        page = max(1, _int(req.arg("page"), 1))
        if req.arg("after"):  # a cursor from a rel="next" link (GitHub's cursor-paginated lists)
            page = _cursor_page(req.arg("after") or "")
        chunk = items[(page - 1) * per_page: page * per_page]
        with self.w.lock:
            resp = self.ok([render(x) for x in chunk])
        last = max(1, -(-len(items) // per_page))
        if last > 1:
            rels = []
            if page > 1:
                rels.append((min(page - 1, last), "prev"))
            if page < last:
                rels += [(page + 1, "next"), (last, "last")]
            if page > 1:
                rels.append((1, "first"))
            resp.headers.append(("Link", ", ".join(f'<{self._page_url(req, p, rel == "next")}>; rel="{rel}"'
                                                   for p, rel in rels)))
        return resp

    def _page_url(self, req: Request, page: int, cursor: bool = False) -> str:
        """A page link; rel="next" also carries an `after` cursor, for clients that page by cursor."""
        pairs = [(k, v) for k, v in req.pairs if k not in ("page", "after")]
        if cursor:
            pairs.append(("after", base64.urlsafe_b64encode(f"page:{page}".encode()).decode().rstrip("=")))
        return f"{self.base_url}{req.path}?{urlencode(pairs + [('page', str(page))])}"

    # -- repositories and issues -------------------------------------------------------------------------
    def get_repo(self, req: Request) -> Response:
        r = self._repo(req, "https://docs.github.com/rest/repos/repos#get-a-repository")
        with self.w.lock:
            return self.ok(self.r.repo(r))

    def list_issues(self, req: Request) -> Response:
        r = self._repo(req, "https://docs.github.com/rest/issues/issues#list-repository-issues")
        state = _choice(req, "state", "open", ("open", "closed", "all"))
        sort = _choice(req, "sort", "created", ("created", "updated", "comments"))
        direction = _choice(req, "direction", "desc", ("asc", "desc"))
        labels = tuple(x.strip() for x in (req.arg("labels") or "").split(",") if x.strip())
        since = _since(req.arg("since"))
        keyfn = {"created": lambda it: (it.created, it.number), "updated": lambda it: (it.updated, it.number),
                 "comments": lambda it: (len(it.comments), it.number)}[sort]

        def build() -> list:
            out = [it for it in r.items if (state == "all" or it.state == state)
                   and all(x in it.labels for x in labels)]
            out.sort(key=keyfn, reverse=direction == "desc")
            return out

        items = self.cached(("issues", r.name, state, sort, direction, labels), build)
        if since is not None:
            items = _since_filter(items, since, by_updated=sort == "updated", ascending=direction == "asc")
        return self.paged(req, items, lambda it: self.r.issue(r, it))

    def get_issue(self, req: Request) -> Response:
        r, it = self._item(req)
        with self.w.lock:
            return self.ok(self.r.issue(r, it))

    def list_comments(self, req: Request) -> Response:
        r, it = self._item(req)
        since = _since(req.arg("since"))
        comments = [c for c in it.comments if since is None or c[4] >= since]
        return self.paged(req, comments, lambda c: self.r.comment(r, it, c))

    # -- pull requests -----------------------------------------------------------------------------------
    def list_pulls(self, req: Request) -> Response:
        r = self._repo(req, "https://docs.github.com/rest/pulls/pulls#list-pull-requests")
        state = _choice(req, "state", "open", ("open", "closed", "all"))
        sort = _choice(req, "sort", "created", ("created", "updated", "popularity", "long-running"))
        direction = _choice(req, "direction", "desc" if sort == "created" else "asc", ("asc", "desc"))
        keyfn = {"updated": lambda it: (it.updated, it.number)}.get(sort, lambda it: (it.created, it.number))
        if sort == "long-running":
            keyfn = lambda it: (-(it.closed or self.w.now_ms) + it.created, it.number)  # noqa: E731

        def build() -> list:
            out = [it for it in r.items if it.is_pr and (state == "all" or it.state == state)]
            out.sort(key=keyfn, reverse=direction == "desc")
            return out

        items = self.cached(("pulls", r.name, state, sort, direction), build)
        return self.paged(req, items, lambda it: self.r.pull(r, it))

    def get_pull(self, req: Request) -> Response:
        r, it = self._item(req)
        if not it.is_pr:
            raise BadRequest("Not Found", 404)
        with self.w.lock:
            out = dict(self.r.pull(r, it))
            # One pull request is the full "pull-request" schema, the list's "pull-request-simple" plus merged,
            # mergeable, merged_by, comments, ... (https://docs.github.com/rest/pulls/pulls#get-a-pull-request);
            # mergeable stays null ("computed in the background"). The world does not know who merged: the author.
            out.update(merged=it.merged is not None, merged_by=self.r.user(it.user) if it.merged else None,
                       mergeable=None, rebaseable=None, mergeable_state="unknown", comments=len(it.comments),
                       review_comments=0, maintainer_can_modify=False)
            return self.ok(out)

def _since_filter(items: list, since: int, *, by_updated: bool, ascending: bool) -> list:
    """Items updated at or after `since` (compared in whole seconds, like GitHub); a list sorted by updated
    is cut with a binary search (keyset paging by `since` stays cheap at any size)."""
    def key(it: GhItem) -> int:
        return it.updated // 1000 * 1000

    if not by_updated:
        return [it for it in items if key(it) >= since]
    if ascending:
        return items[bisect.bisect_left(items, since, key=key):]
    return items[:bisect.bisect_right(items, -since, key=lambda it: -key(it))]


def _cursor_page(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        return max(1, int(text.removeprefix("page:")))
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("Bad cursor", 422) from None


def _bare(tag: str) -> str:
    tag = tag.strip()
    return tag[2:] if tag.startswith("W/") else tag


def _choice(req: Request, name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = req.arg(name) or default
    if value not in allowed:
        raise BadRequest("Validation Failed", 422, errors=[{"resource": "Search", "field": name, "code": "invalid"}])
    return value


def _since(value: str | None) -> int | None:
    if not value:
        return None
    try:
        d = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest("Validation Failed", 422, errors=[{"resource": "Issue", "field": "since",
                                                            "code": "invalid"}]) from None
    return to_ms(d if d.tzinfo else d.replace(tzinfo=UTC))
