"""What a Jira site enforces around the API: the Cloud API gateway and scoped tokens, URL length, Data Center
rate limiting (headers on every response), the DC search window, and per-issue permissions."""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
import time
import uuid
from typing import Any

from .server import Request, Response, html_response, json_response

# Tomcat (Jira Data Center) answers a request line/headers over maxHttpHeaderSize (8 KB by default) with 400;
# Cloud's edge answers an over-long URL with 414. Long JQL belongs in a POST body (Atlassian: "use POST when the
# JQL query string is too large for a URL").
URL_LIMIT = 8192
GATEWAY = "/ex/jira/"
# Atlassian KB "Handling JQL REST API searching exceeding max_result_window in Jira" (Data Center only).
WINDOW_MESSAGE = ("Search limit exceeded. We couldn't complete your search because it requests {n:,} results which "
                  "exceeded the search platform limit of {w:,}. Try refining your query or contact your Jira "
                  "administrator. Repeating the same search may not work.")
NO_COMMENT = "You do not have the permission to comment on this issue."
NO_EDIT = "You do not have permission to edit this issue."


class TokenBucket:
    """Jira Data Center's rate limiter ("Improving instance stability with rate limiting"): a bucket per user of
    `limit` tokens, `fill` tokens added every `interval` seconds; each request takes one."""

    def __init__(self, limit: int = 1000, fill: int = 500, interval: int = 1):
        self.limit, self.fill, self.interval = limit, fill, interval
        self._tokens = float(limit)
        self._at = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> tuple[bool, int, float]:
        """(allowed, tokens left, seconds until the next token)."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.limit, self._tokens + (now - self._at) * self.fill / self.interval)
            self._at = now
            if self._tokens >= 1:
                self._tokens -= 1
                return True, int(self._tokens), 0.0
            return False, 0, (1 - self._tokens) * self.interval / self.fill

    def headers(self, left: int, wait: float) -> list[tuple[str, str]]:
        # "Adjusting your code for rate limiting" (Jira DC): these come with every response while rate limiting
        # is on; retry-after is 0 while tokens are left.
        retry = 0 if wait <= 0 else max(1, int(wait + 0.999))
        return [("X-RateLimit-Limit", str(self.limit)), ("X-RateLimit-Remaining", str(left)),
                ("X-RateLimit-Interval-Seconds", str(self.interval)), ("X-RateLimit-FillRate", str(self.fill)),
                ("retry-after", str(retry))]


def credential(req: Request) -> str | None:
    """The Bearer token, or the password of Basic auth."""
    auth = req.header("Authorization") or ""
    if auth.startswith("Bearer "):
        return auth[7:].strip()
    if auth.startswith("Basic "):
        try:
            return base64.b64decode(auth[6:]).decode().partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            return None
    return None


class JiraPolicy:
    """Mixin for JiraApp: wraps App.handle with the site's rules. Settings are plain attributes a test may set:

    search_window  Data Center: startAt + maxResults past it is a 500 "Search limit exceeded" (default 10,000)
    rate_limit     Data Center: a TokenBucket (headers on every response), or None for rate limiting off
    scoped_tokens  tokens that work only through the API gateway /ex/jira/<cloud_id>/ (Cloud; 401 on the site)
    denied         {issue or project key: {"comment", "edit"}}: what the API user may browse but not do
    """

    mode: str
    base_url: str

    def dispatch(self, req: Request) -> Response:  # JiraApp: the routes
        raise NotImplementedError

    def init_policy(self, seed: Any) -> None:
        self.search_window = 10_000
        self.rate_limit: TokenBucket | None = TokenBucket() if self.mode == "server" else None
        self.scoped_tokens: set[str] = set()
        self.denied: dict[str, set[str]] = {}
        self.cloud_id = str(uuid.UUID(bytes=hashlib.sha1(f"jira-cloud-{seed}".encode()).digest()[:16]))

    def deny(self, key: str, *actions: str) -> None:
        self.denied.setdefault(key.upper(), set()).update(actions or ("comment", "edit"))

    def allowed(self, issue: Any, action: str) -> bool:
        return not any(action in self.denied.get(k, ()) for k in (issue.key, issue.project))

    def window_exceeded(self, start: int, limit: int) -> Response | None:
        if start + limit <= self.search_window:
            return None
        return json_response(500, {
            "message": WINDOW_MESSAGE.format(n=start + limit, w=self.search_window), "status-code": 500,
            "stack-trace": f"Please contact your admin passing attached Log's referral number: {uuid.uuid4()}"})

    def tenant_info(self, req: Request) -> Response:
        return json_response(200, {"cloudId": self.cloud_id})

    def handle(self, req: Request) -> Response:
        path = req.path
        via_gateway = self.mode == "cloud" and path.startswith(GATEWAY)
        if via_gateway:
            cloud_id, _, rest = path[len(GATEWAY):].partition("/")
            if cloud_id != self.cloud_id:
                return json_response(404, {"code": 404, "message": "Not Found"})
            req.path = "/" + rest
        try:
            if len(req.path) + len(req.raw_query) > URL_LIMIT:
                return (html_response(400, "Bad Request") if self.mode == "server"
                        else html_response(414, "URI Too Long"))
            if not via_gateway and credential(req) in self.scoped_tokens:
                # Atlassian: scoped API tokens and service accounts must call api.atlassian.com/ex/jira/<cloudId>
                return json_response(401, {"errorMessages": ["You are not authenticated. Authentication required "
                                                             "to perform this operation."], "errors": {}})
            if self.rate_limit is None:
                return self.dispatch(req)
            ok, left, wait = self.rate_limit.take()
            if not ok:
                return json_response(429, {"errorMessages": ["Rate limit exceeded."], "errors": {}},
                                     self.rate_limit.headers(0, wait))
            resp = self.dispatch(req)
            resp.headers += self.rate_limit.headers(left, 0.0)
            return resp
        finally:
            req.path = path
