"""Jira simulator: Cloud (/search/jql + nextPageToken) or Data Center (/search + startAt), and write-back endpoints."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import threading
from collections import OrderedDict
from datetime import datetime, timedelta
from typing import Any

from .jira_policy import JiraPolicy, TokenBucket
from .jira_render import Renderer
from .jira_writes import JiraWrites, _int
from .jql import JqlContext, JqlError, Query, parse
from .model import PROJECTS, UTC, JiraIssue
from .server import App, BadRequest, Request, Response, _secs, json_response

UNBOUNDED = "Unbounded JQL queries are not allowed here. Please add a search restriction to your query."
REMOVED = ("The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. A full migration "
           "guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046")
NO_ISSUE = "Issue does not exist or you do not have permission to see it."


class JiraApp(JiraPolicy, JiraWrites, App):
    system = "jira"

    def __init__(self, world: Any, mode: str = "cloud", token: str | None = None):
        super().__init__()
        if mode not in ("cloud", "server"):
            raise ValueError("jira_mode must be 'cloud' or 'server'")
        self.w, self.mode, self.token = world, mode, token
        self.r = Renderer(world, mode, lambda: self.base_url)
        self.init_policy(world.seed)
        # project keys of Jira Service Management projects (projectTypeKey "service_desk"): comments there are
        # public (mailed to the customer) unless they carry sd.public.comment {"internal": true}
        self.service_desks: set[str] = self.r.service_desks
        self.comment_properties: dict[int, dict[str, Any]] = self.r.comment_properties
        ids = self.r.ids
        self.ctx = JqlContext(world, mode, f"cf[{ids['epic_link'].split('_')[1]}]",
                              f"cf[{ids['sprint'].split('_')[1]}]")
        self._cache: OrderedDict[tuple[str, int], list[JiraIssue]] = OrderedDict()
        self._positions: dict[tuple[str, int], dict[int, int]] = {}
        self._cache_lock = threading.Lock()
        versions = ("2", "3", "latest") if mode == "cloud" else ("2", "latest")
        for v in versions:
            p = f"/rest/api/{v}"
            self.route("GET", f"{p}/serverInfo", self.server_info)
            self.route("GET", f"{p}/myself", self.myself)
            self.route("GET", f"{p}/field", lambda req: json_response(200, self.r.catalogue))
            self.route("GET", f"{p}/project", self.projects)
            self.route("GET", f"{p}/project/{{key}}", self.project)
            for m in ("GET", "POST"):
                self.route(m, f"{p}/search", self.search_v2 if mode == "server" else self.gone)
                if mode == "cloud":
                    self.route(m, f"{p}/search/jql", self.search_jql)
            if mode == "cloud" and v == "3":
                self.route("POST", f"{p}/issue/bulkfetch", self.bulkfetch)
            self.route("GET", f"{p}/issue/{{key}}", self.get_issue)
            self.route("PUT", f"{p}/issue/{{key}}", self.edit_issue)
            self.route("GET", f"{p}/issue/{{key}}/comment", self.list_comments)
            self.route("POST", f"{p}/issue/{{key}}/comment", self.add_comment)
            self.route("GET", f"{p}/issue/{{key}}/comment/{{cid}}", self.get_comment)
            self.route("PUT", f"{p}/issue/{{key}}/comment/{{cid}}", self.edit_comment)
            self.route("DELETE", f"{p}/issue/{{key}}/comment/{{cid}}", self.delete_comment)
            self.route("GET", f"{p}/issue/{{key}}/properties", self.list_properties)
            self.route("GET", f"{p}/issue/{{key}}/properties/{{prop}}", self.get_property)
            self.route("PUT", f"{p}/issue/{{key}}/properties/{{prop}}", self.put_property)
            self.route("DELETE", f"{p}/issue/{{key}}/properties/{{prop}}", self.delete_property)
            self.route("GET", f"{p}/comment/{{cid}}/properties", self.list_comment_properties)
            self.route("GET", f"{p}/comment/{{cid}}/properties/{{prop}}", self.get_comment_property)
        if mode == "cloud":
            self.route("GET", "/_edge/tenant_info", self.tenant_info)

    # -- system shapes -----------------------------------------------------------------------------------
    def error(self, status: int, message: str, **extra: Any) -> Response:
        if "errors" in extra:
            return json_response(status, {"errorMessages": [], "errors": extra["errors"]})
        return json_response(status, {"errorMessages": [message], "errors": {}})

    def dispatch(self, req: Request) -> Response:
        """App.handle, after JiraPolicy.handle's site rules."""
        if self.mode == "server":  # Data Center's Jersey answer for a REST path it does not have
            handler, _params, known = self.router.match(req.method, req.path)
            if handler is None and not known:
                return json_response(404, {"message": f"null for uri: {self.base_url}{req.path}",
                                           "status-code": 404})
        return App.handle(self, req)

    def authenticate(self, req: Request) -> Response | None:
        if self.token is None:
            return None
        auth = req.header("Authorization") or ""
        ok = False
        if auth.startswith("Bearer "):
            ok = auth[7:].strip() == self.token
        elif auth.startswith("Basic "):
            try:
                ok = base64.b64decode(auth[6:]).decode().partition(":")[2] == self.token
            except (binascii.Error, UnicodeDecodeError):
                ok = False
        if ok:
            return None
        resp = json_response(401, {"errorMessages": ["You are not authenticated. Authentication required to "
                                                     "perform this operation."], "errors": {}})
        resp.headers.append(("X-Seraph-LoginReason", "AUTHENTICATED_FAILED" if auth else "AUTHENTICATION_DENIED"))
        return resp

    def rate_limited(self, retry_after: float) -> Response:
        if self.mode == "server":  # Data Center's limiter: its own headers, no reset time
            bucket = self.rate_limit or TokenBucket()
            headers = [h for h in bucket.headers(0, 0.0) if h[0] != "retry-after"]
            return json_response(429, {"errorMessages": ["Rate limit exceeded."], "errors": {}},
                                 [*headers, ("retry-after", _secs(retry_after))])
        reset = datetime.now(UTC) + timedelta(seconds=retry_after)
        return json_response(429, {"errorMessages": ["Rate limit exceeded."], "errors": {}}, [
            ("Retry-After", str(int(retry_after)) if float(retry_after).is_integer() else str(retry_after)),
            ("X-RateLimit-Limit", "100"), ("X-RateLimit-Remaining", "0"),
            ("X-RateLimit-Reset", reset.strftime("%Y-%m-%dT%H:%M:%SZ")), ("RateLimit-Reason", "jira-burst-based")])

    # -- instance ----------------------------------------------------------------------------------------
    def server_info(self, req: Request) -> Response:
        now = datetime.now(UTC)
        if self.mode == "cloud":
            return json_response(200, {
                "baseUrl": self.base_url, "displayUrl": self.base_url, "version": "1001.0.0-SNAPSHOT",
                "versionNumbers": [1001, 0, 0], "deploymentType": "Cloud", "buildNumber": 100289,
                "buildDate": "2026-11-02T00:00:00.000+0000", "serverTime": f"{now:%Y-%m-%dT%H:%M:%S.000%z}",
                "scmInfo": "a1b2c3d4e5f6", "serverTitle": "Jira", "defaultLocale": {"locale": "en_US"},
                "serverTimeZone": "Etc/UTC"})
        return json_response(200, {
            "baseUrl": self.base_url, "version": "9.12.2", "versionNumbers": [9, 12, 2], "deploymentType": "Server",
            "buildNumber": 9120002, "buildDate": "2024-01-31T00:00:00.000+0000",
            "databaseBuildNumber": 9120002, "serverTime": f"{now:%Y-%m-%dT%H:%M:%S.000%z}",
            "scmInfo": "6d4b94dbcc29d26a5651b231dd69e39cd4357315", "serverTitle": "JIRA"})

    def myself(self, req: Request) -> Response:
        me = dict(self.r.user(self.w.bot))
        me.update({"emailAddress": self.w.users[self.w.bot].email, "locale": "en_US",
                   "groups": {"size": 1, "items": []}, "applicationRoles": {"size": 1, "items": []},
                   "expand": "groups,applicationRoles"})
        return json_response(200, me)

    def projects(self, req: Request) -> Response:
        return json_response(200, [self.r.project(k) for k in PROJECTS])

    def project(self, req: Request) -> Response:
        key = req.params["key"].upper()
        match = next((k for k, (pid, _n, _t) in PROJECTS.items() if key in (k, pid)), None)
        if match is None:
            raise BadRequest(f"No project could be found with key '{req.params['key']}'.", 404)
        return json_response(200, self.r.project(match))

    def gone(self, req: Request) -> Response:
        return json_response(410, {"errorMessages": [REMOVED], "errors": {}})

    # -- search ------------------------------------------------------------------------------------------
    def compile(self, jql: str) -> Query:
        try:
            return parse(jql, self.ctx)
        except JqlError as exc:
            raise BadRequest(str(exc)) from None

    def results(self, jql: str, query: Query) -> tuple[list[JiraIssue], tuple[str, int]]:
        """The sorted matches, cached per (jql, world version) so paging 100k issues stays cheap."""
        key = (jql.strip(), self.w.version)
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit, key
        with self.w.lock:
            items = [i for i in self.w.jira if query.where is None or query.where(i)]
        order = query.sort_key() or [(lambda i: (i.project, i.num), True)]  # Jira's default: key DESC
        for keyfn, desc in reversed(order):
            items.sort(key=keyfn, reverse=desc)
        with self._cache_lock:
            self._cache[key] = items
            while len(self._cache) > 16:
                old, _ = self._cache.popitem(last=False)
                self._positions.pop(old, None)
        return items, key

    def _position(self, key: tuple[str, int], items: list[JiraIssue], issue_id: int) -> int | None:
        with self._cache_lock:
            pos = self._positions.get(key)
            if pos is None:
                pos = self._positions[key] = {i.id: n for n, i in enumerate(items)}
        return pos.get(issue_id)

    def search_jql(self, req: Request) -> Response:
        body = req.json() if req.method == "POST" else None
        # POST body (Cloud "Search for issues using JQL enhanced search (POST)"): jql and nextPageToken strings,
        # maxResults an integer, fields/properties/reconcileIssues arrays, expand one comma-separated string
        _check_body(body, {"jql": str, "nextPageToken": str, "maxResults": int, "fields": list, "expand": str,
                           "properties": list, "fieldsByKeys": bool, "failFast": bool, "reconcileIssues": list})
        p = _params(req, body, ("jql", "nextPageToken", "maxResults", "fields", "expand", "properties"))
        jql = p.get("jql") or ""
        query = self.compile(jql)
        if query.where is None:
            raise BadRequest(UNBOUNDED)
        fields = self.r.wanted(p.get("fields"), "id")
        extra = [f for f in fields if f not in ("id", "key")]
        cap = 100 if extra else 5000
        limit = max(1, min(_int(p.get("maxResults"), 50, "maxResults"), cap))
        items, key = self.results(jql, query)
        start = 0
        token = p.get("nextPageToken")
        if token:
            start = self._decode_token(token, jql, key, items)
        page = items[start:start + limit]
        api = "3" if "/api/3/" in req.path else "2"
        expand, props = _csv(p.get("expand")), _csv(p.get("properties"))
        with self.w.lock:
            out: dict[str, Any] = {"issues": [self.r.issue(i, extra, api, ",".join(expand), props) for i in page]}
        end = start + len(page)
        if end < len(items) and page:
            out["nextPageToken"] = _token(jql, end, page[-1].id)
        out["isLast"] = "nextPageToken" not in out
        self._names_schema(out, expand, extra)
        return json_response(200, out)

    def _decode_token(self, token: str, jql: str, key: tuple[str, int], items: list[JiraIssue]) -> int:
        try:
            data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            if data["q"] != _digest(jql):
                raise ValueError("token of another query")
            after = self._position(key, items, int(data["l"]))
            return after + 1 if after is not None else int(data["p"])
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise BadRequest("The provided next page token is invalid or expired.") from None

    def search_v2(self, req: Request) -> Response:
        body = req.json() if req.method == "POST" else None
        # POST body (Data Center "Search for issues using JQL (POST)"): jql a string, startAt/maxResults integers,
        # fields/expand/properties arrays of strings
        _check_body(body, {"jql": str, "startAt": int, "maxResults": int, "fields": list, "expand": list,
                           "properties": list, "fieldsByKeys": bool, "validateQuery": (bool, str)})
        p = _params(req, body, ("jql", "startAt", "maxResults", "fields", "expand", "properties"))
        jql = p.get("jql") or ""
        query = self.compile(jql)
        fields = self.r.wanted(p.get("fields"), "*navigable")
        start = max(0, _int(p.get("startAt"), 0, "startAt"))
        limit = max(0, min(_int(p.get("maxResults"), 50, "maxResults"), 1000))
        refused = self.window_exceeded(start, limit)
        if refused is not None:
            return refused
        items, _key = self.results(jql, query)
        page = items[start:start + limit]
        expand, props = _csv(p.get("expand")), _csv(p.get("properties"))
        extra = [f for f in fields if f not in ("id", "key")]
        with self.w.lock:
            out: dict[str, Any] = {"expand": "schema,names", "startAt": start, "maxResults": limit,
                                   "total": len(items),
                                   "issues": [self.r.issue(i, extra, "2", ",".join(expand), props) for i in page]}
        self._names_schema(out, expand, extra)
        return json_response(200, out)

    def bulkfetch(self, req: Request) -> Response:
        """POST /rest/api/3/issue/bulkfetch (Cloud, "Bulk fetch issues"): {issueIdsOrKeys: 1-100 ids or keys, fields,
        expand, properties, fieldsByKeys} -> {issues, issueErrors}. Issues that do not exist or that the user cannot
        see are left out (not errors); the answer's order is not the request's (here: by id)."""
        body = req.json()
        _check_body(body, {"issueIdsOrKeys": list, "fields": list, "expand": list, "properties": list,
                           "fieldsByKeys": bool})
        wanted = (body or {}).get("issueIdsOrKeys") or []
        if not wanted:
            raise BadRequest("issueIdsOrKeys must not be empty.")
        if len(wanted) > 100:
            raise BadRequest("issueIdsOrKeys: the maximum number of issues that can be requested is 100.")
        extra = [f for f in self.r.wanted(body.get("fields"), "*navigable") if f not in ("id", "key")]
        expand, props = _csv(body.get("expand")), _csv(body.get("properties"))
        found = {i.id: i for i in (self.w.jira_issue(str(k)) for k in wanted) if i is not None}
        with self.w.lock:
            issues = [self.r.issue(found[n], extra, "3", ",".join(expand), props) for n in sorted(found)]
        return json_response(200, {"expand": "schema,names", "issues": issues, "issueErrors": []})

    def _names_schema(self, out: dict[str, Any], expand: list[str], fields: list[str]) -> None:
        if "names" in expand:
            out["names"] = {f: self.r.names.get(f, f) for f in fields}
        if "schema" in expand:
            out["schema"] = {f: self.r.schemas[f] for f in fields if f in self.r.schemas}

    # -- issues ------------------------------------------------------------------------------------------
    def _issue(self, req: Request) -> JiraIssue:
        issue = self.w.jira_issue(req.params["key"])
        if issue is None:
            raise BadRequest(NO_ISSUE, 404)
        return issue

    def get_issue(self, req: Request) -> Response:
        issue = self._issue(req)
        fields = [f for f in self.r.wanted(req.args("fields") or None, "*all") if f not in ("id", "key")]
        api = "3" if "/api/3/" in req.path else "2"
        with self.w.lock:
            return json_response(200, self.r.issue(issue, fields, api, req.arg("expand") or "",
                                                   _csv(req.arg("properties"))))

def _check_body(body: Any, shape: dict[str, Any]) -> None:
    """Jira's JSON binding: a value of the wrong type (a comma-separated string for an array, a string for a
    number) is a 400, like the real endpoint's."""
    if body is None:
        return
    if not isinstance(body, dict):
        raise BadRequest("Invalid request payload. Refer to the REST API documentation and try again.")
    for key, kind in shape.items():
        value = body.get(key)
        if value is None:
            continue
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if ok and kind is list:
            ok = all(isinstance(v, str) for v in value) or key == "reconcileIssues"
        if not ok:
            raise BadRequest("Invalid request payload. Refer to the REST API documentation and try again.")


def _params(req: Request, body: Any, names: tuple[str, ...]) -> dict[str, Any]:
    if body is not None:
        if not isinstance(body, dict):
            raise BadRequest("Invalid request payload. Refer to the REST API documentation and try again.")
        return {n: body.get(n) for n in names}
    out: dict[str, Any] = {}
    for n in names:
        values = req.args(n)
        if values:
            out[n] = values if n == "fields" else values[-1]
    return out


def _csv(value: Any) -> list[str]:
    if not value:
        return []
    parts = value if isinstance(value, list) else [value]
    return [s.strip() for p in parts for s in str(p).split(",") if s.strip()]


def _digest(jql: str) -> str:
    return hashlib.sha1(jql.strip().encode()).hexdigest()[:12]


def _token(jql: str, position: int, last_id: int) -> str:
    raw = json.dumps({"q": _digest(jql), "p": position, "l": last_id}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")
