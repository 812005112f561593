"""Jira HTTP client: auth, Cloud vs Server/DC detection, custom field discovery, search paging."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

from okrsync.config.settings import SourceCredentials, env_name
from okrsync.connectors.auth import credentials_problem
from okrsync.connectors.base import AuthError, ConnectorOptions, NotFoundError, QueryError, SourceError
from okrsync.connectors.http import HttpClient, HTTPStatusError
from okrsync.connectors.paging import Fetched, OffsetPaginator, Request, TokenPaginator, paginate
from okrsync.connectors.rawjson import parse_page
from okrsync.domain.records import RecordError, parse_time, utc

from .normalize import FieldMap

CLOUD_PAGE = 100  # /search/jql with fields: the most Cloud returns per page
CLOUD_ID_PAGE = 5000  # /search/jql with fields=id only
DC_PAGE = 1000  # /rest/api/2/search: the usual jira.search.views.default.max (servers may cap lower)
# Data Center's search platform refuses startAt + maxResults past jira.search.platform.max.result.window (10,000 by
# default) with a 500 "Search limit exceeded" (Atlassian KB "Handling JQL REST API searching exceeding
# max_result_window in Jira"): a longer read restarts with `created >= <last created>` before reaching it.
DC_WINDOW = 10_000
_WINDOW_EXCEEDED = re.compile(r"Search limit exceeded.*?search platform limit of ([\d,.]+)", re.I | re.S)
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ORDER_BY = re.compile(r"\s*\bORDER\s+BY\b.*$", re.I | re.S)

BASE_FIELDS = ("summary", "status", "issuetype", "project", "created", "updated", "resolutiondate", "labels",
               "components", "parent", "assignee", "priority")
STORY_POINTS_TYPE = "com.pyxis.greenhopper.jira:jsw-story-points"
SPRINT_TYPE = "com.pyxis.greenhopper.jira:gh-sprint"
EPIC_LINK_TYPE = "com.pyxis.greenhopper.jira:gh-epic-link"
STORY_POINTS_NAMES = ("story points", "story point estimate")  # company-managed / team-managed
_FIELD_ID = re.compile(r"customfield_\d+")
_MISSING_PROJECT = re.compile(r"The value '([^']+)' does not exist for the field 'project'", re.I)


def epoch_ms(value: datetime) -> int:
    """An absolute instant for JQL: JQL date literals are read in the searching user's time zone."""
    return (utc(value) - EPOCH) // timedelta(milliseconds=1)


def strip_order_by(jql: str | None) -> str:
    """The JQL without its ORDER BY (to AND more clauses to it)."""
    return _ORDER_BY.sub("", jql or "").strip()


class StaleDiscovery(SourceError):
    """What the stream state remembered about the site (Cloud or Data Center) no longer holds."""


class JqlRejected(QueryError):
    """HTTP 400 on a search: Jira's own messages in .detail."""

    def __init__(self, message: str, detail: str, projects: list[str]):
        super().__init__(message)
        self.detail = detail
        self.missing_projects = projects


def jira_messages(body: Any) -> str:
    """errorMessages (and field errors) of a Jira error body, one line."""
    if not isinstance(body, dict):
        return " ".join(str(body or "").split())[:300]
    msgs = [str(m) for m in body.get("errorMessages") or []]
    errs = body.get("errors")
    if isinstance(errs, dict):
        msgs += [f"{k}: {v}" for k, v in errs.items()]
    return " ".join("; ".join(msgs).split())[:500]


class JiraClient:
    """All Jira requests of a source go through one HttpClient (the one retry layer, counted)."""

    def __init__(self, name: str, config: Any, credentials: SourceCredentials, options: ConnectorOptions):
        if not config.url:
            raise SourceError(f"{name}: a jira source needs url: https://<site>.atlassian.net (or the DC URL)")
        self.name = name
        self.config = config
        self.site = config.url.rstrip("/")  # links (records, reports, write-back) always point at the site
        # API calls: the gateway (https://api.atlassian.com/ex/jira/<cloudId>) for scoped tokens and service
        # accounts, which the site URL answers with 401 (Atlassian: "Manage API tokens for service accounts").
        gateway = getattr(config, "gateway", None)
        self.api = (gateway or self.site).rstrip("/")
        self.token = credentials.token.get_secret_value() if credentials.token else ""
        self.email = config.email or credentials.email
        problem = credentials_problem(name, config, credentials)
        if problem:
            raise AuthError(problem)
        self.http = HttpClient.for_source(name, self.api, config, options, headers={"Accept": "application/json"},
                                          auth_hint=env_name(name, "token"), secrets=[self.token])
        self.http.final = _window_exceeded
        self.dc_window = DC_WINDOW
        self._cloud: bool | None = {"cloud": True, "server": False}.get(config.deployment)
        if self._cloud is not None:
            self._use_auth(self._cloud)
        self._fields: list[dict[str, Any]] | None = None
        self._field_map: FieldMap | None = None
        self._issue_fields: list[str] | None = None
        self._myself: dict[str, Any] | None = None
        self.verified: str | None = None  # when a remembered field map was last checked against GET /field
        self._cached_cloud = False  # the deployment type came from the stream state, not from serverInfo

    # -- auth and deployment -------------------------------------------------------------------
    def _use_auth(self, cloud: bool) -> None:
        """Cloud: basic email + API token. Server/DC: Authorization: Bearer <personal access token>."""
        session = self.http.session
        if cloud:
            if not self.email:
                raise AuthError(f"{self.name}: {self.site} is Jira Cloud, which needs an email with the API token: "
                                f"set email: in the source or {env_name(self.name, 'email')}")
            session.headers.pop("Authorization", None)
            session.auth = (self.email, self.token)
        else:
            session.auth = None
            session.headers["Authorization"] = f"Bearer {self.token}"

    @property
    def is_cloud(self) -> bool:
        if self._cloud is None:
            self._cloud = self._detect()
        return self._cloud

    def _detect(self) -> bool:
        """GET /rest/api/2/serverInfo: deploymentType == "Cloud".

        Sent with the auth the settings suggest (an email: Cloud basic auth, else a DC bearer token); when
        basic auth is refused, once more with the bearer token (a Data Center source that also names an email).
        """
        self._use_auth(bool(self.email))
        try:
            info = self.http.get("rest/api/2/serverInfo")
        except AuthError as exc:
            if not self.email:
                raise AuthError(f"{exc}; a Jira Cloud site also needs email: (or "
                                f"{env_name(self.name, 'email')})") from None
            self._use_auth(False)
            try:
                info = self.http.get("rest/api/2/serverInfo")
            except AuthError:
                raise exc from None
            if isinstance(info, dict) and info.get("deploymentType") == "Cloud":
                raise exc
        cloud = isinstance(info, dict) and info.get("deploymentType") == "Cloud"
        self._use_auth(cloud)
        return cloud

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """HttpClient.json once the auth is settled (detection first in deployment: auto)."""
        self.is_cloud  # noqa: B018
        return self.http.json(method, path, **kwargs)

    # -- fields --------------------------------------------------------------------------------
    def fields(self) -> list[dict[str, Any]]:
        if self._fields is None:
            body = self.json("GET", "rest/api/2/field")
            self._fields = [f for f in body if isinstance(f, dict)] if isinstance(body, list) else []
        return self._fields

    def field_map(self) -> FieldMap:
        """Story points / sprint / epic link field ids: the source settings, else discovered from /field."""
        if self._field_map is None:
            self._field_map = discover_fields(
                self.fields(), story_points=self.config.story_points_field, sprint=self.config.sprint_field,
                epic_link=self.config.epic_link_field, source=self.name,
            )
        return self._field_map

    def issue_fields(self) -> list[str]:
        """What the issues search asks for: the normalizer's fields, the discovered ones, the source's extras."""
        if self._issue_fields is None:
            extra = [fid for value in self.config.fields
                     for fid in resolve_field(self.fields(), value, "fields", self.name)]
            self._issue_fields = list(dict.fromkeys([*BASE_FIELDS, *self.field_map().ids(), *extra]))
        return self._issue_fields

    # -- discovery kept in the stream state (a no-change sync is then one search request) -------
    def discovery_key(self) -> str:
        """The settings discovery depends on: a change to any of them means discovering again."""
        c = self.config
        parts = [self.site, *([self.api] if self.api != self.site else []), c.deployment, bool(self.email),
                 c.story_points_field, c.sprint_field, c.epic_link_field, *c.fields]
        return hashlib.sha1(json.dumps(parts, default=str).encode()).hexdigest()[:16]

    def discovery(self) -> dict[str, Any]:
        """Deployment type, field map and the search's field list, discovering what is not known yet."""
        fmap = self.field_map()
        out = {"key": self.discovery_key(), "cloud": self.is_cloud, "fields": self.issue_fields(),
               "field_map": {"story_points": list(fmap.story_points), "sprint": list(fmap.sprint),
                             "epic_link": list(fmap.epic_link)}}
        if self.verified:
            out["verified"] = self.verified
        return out

    def fields_listed(self, ids: list[str]) -> bool:
        """Are these field ids still in GET /rest/api/2/field? (A search may leave out fields whose value is
        null: whether /search/jql does is not documented, so an absent field is checked here, not assumed gone.)"""
        listed = {str(f.get("id")) for f in self.fields()}
        return set(ids) <= listed

    def use_discovery(self, saved: Any) -> bool:
        """Take a previous run's discovery (False: unusable, or made with other settings)."""
        try:
            if saved["key"] != self.discovery_key():
                return False
            cloud = bool(saved["cloud"])
            fmap = FieldMap(**{k: tuple(str(x) for x in saved["field_map"][k])
                               for k in ("story_points", "sprint", "epic_link")})
            fields = [str(f) for f in saved["fields"]]
            verified = str(saved["verified"]) if saved.get("verified") else None
        except (KeyError, TypeError, ValueError, AttributeError):
            return False
        self.verified = verified
        if self._cloud is None:
            self._use_auth(cloud)
            self._cloud, self._cached_cloud = cloud, True
        self._field_map, self._issue_fields = fmap, fields
        return True

    def forget_discovery(self) -> None:
        """Discover again (serverInfo, and field unless it was read in this run) on the next use."""
        self._field_map = self._issue_fields = self.verified = None
        if self._cached_cloud:
            self._cloud, self._cached_cloud = None, False

    def myself(self) -> dict[str, Any]:
        if self._myself is None:
            body = self.json("GET", "rest/api/2/myself")
            self._myself = body if isinstance(body, dict) else {}
        return self._myself

    # -- search ------------------------------------------------------------------------------------------
    # Searches are POSTs with a JSON body (Cloud POST /rest/api/3/search/jql, Data Center POST /rest/api/2/search,
    # the body shapes of Atlassian's REST references): a long JQL never meets a URL length limit. They are reads,
    # so they are retried like GETs.
    def search(self, jql: str, fields: list[str], *, page_size: int | None = None) -> Iterator[list[dict[str, Any]]]:
        """Pages of issues for a JQL, in the server's order (ours: ORDER BY created ASC)."""
        id_only = list(fields) == ["id"]
        if self.is_cloud:
            limit = CLOUD_ID_PAGE if id_only else CLOUD_PAGE
            yield from self._search_cloud(jql, fields, min(page_size or limit, limit))
        else:
            yield from self._search_dc(jql, fields, min(page_size or DC_PAGE, DC_PAGE))

    def search_first(self, jql: str, fields: list[str], size: int) -> tuple[list[dict[str, Any]], bool]:
        """Cloud: the first page of a search and whether there are more (the token is not kept: it expires)."""
        body = {"jql": jql, "maxResults": size, "fields": list(fields)}
        page = self._search_page(Request("rest/api/3/search/jql", json=body, method="POST"), jql)
        more = bool(page.body.get("nextPageToken")) and page.body.get("isLast") is not True
        return page.items, more

    def search_dc_page(self, jql: str, fields: list[str], start: int, size: int) -> Fetched:
        """Data Center: the /rest/api/2/search page at startAt `start` (ordered by created ASC, with `created`)."""
        query, wanted = _dc_query(jql, fields)
        body = {"jql": query, "startAt": start, "maxResults": size, "fields": wanted}
        return self._search_page(Request("rest/api/2/search", json=body, method="POST"), jql)

    def search_ids(self, jql: str) -> set[str]:
        """The ids of every issue a JQL matches (id-only search, the largest pages)."""
        out: set[str] = set()
        for issues in self.search(jql, ["id"]):
            out.update(str(i["id"]) for i in issues if isinstance(i, dict) and i.get("id"))
        return out

    def _search_cloud(self, jql: str, fields: list[str], size: int) -> Iterator[list[dict[str, Any]]]:
        """/rest/api/3/search/jql: follow nextPageToken until it is absent (never persisted: it expires)."""
        body: dict[str, Any] = {"jql": jql, "maxResults": size, "fields": list(fields)}
        pager = TokenPaginator(Request("rest/api/3/search/jql", json=body, method="POST"))
        for page in paginate(self.http, pager, fetcher=lambda req: self._search_page(req, jql)):
            yield page.items

    def _search_dc(self, jql: str, fields: list[str], size: int) -> Iterator[list[dict[str, Any]]]:
        """/rest/api/2/search by startAt (advancing by the issues actually returned: servers cap maxResults).

        The search is ordered by created ASC (whatever the JQL's ORDER BY). Before startAt + maxResults would
        pass the search window it restarts at startAt 0 with `created >= <the last created time>`; the issues
        of that millisecond already read are left out of the restarted pages."""
        query, wanted = _dc_query(jql, fields)
        where = strip_order_by(jql)
        last_ms: int | None = None
        tail: set[str] = set()  # ids read whose created time is last_ms
        restart_ms: int | None = None

        def restart() -> None:
            nonlocal query, restart_ms
            if last_ms is None or last_ms == restart_ms:
                raise SourceError(f"{self.name}: more than {self.dc_window} issues share one created time; "
                                  f"Jira Data Center's search window cannot page past them (JQL: {jql})")
            query = f"({where}) AND created >= {last_ms} ORDER BY created ASC" if where else \
                f"created >= {last_ms} ORDER BY created ASC"
            restart_ms = last_ms

        def build(start: int, limit: int) -> Request:
            body = {"jql": query, "startAt": start, "maxResults": limit, "fields": wanted}
            return Request("rest/api/2/search", json=body, method="POST")

        pager = OffsetPaginator(build, size, by_items=True, total="total", window=self.dc_window, restart=restart)

        def fetcher(request: Request) -> Fetched:
            while True:
                try:
                    return self._search_page(request, jql)
                except HTTPStatusError as exc:
                    window = window_of(exc)
                    if window is None or window >= self.dc_window:
                        raise
                    self.dc_window = pager.window = window  # an administrator set a smaller window: page within it
                    request = pager.request() or request

        for page in paginate(self.http, pager, fetcher=fetcher):
            fresh = []
            for raw in page.items:
                iid = str(raw.get("id")) if isinstance(raw, dict) else ""
                if iid in tail:
                    continue
                fresh.append(raw)
                ms = _created_ms(raw)
                if ms is None:
                    continue
                if ms != last_ms:
                    last_ms, tail = ms, set()
                tail.add(iid)
            yield fresh

    def _search_page(self, request: Request, jql: str) -> Fetched:
        page = self._search_post(request.path, request.json, jql)
        return Fetched(request, page, None, _issues(page, self.name))

    def _search_post(self, path: str, body: dict[str, Any], jql: str) -> dict[str, Any]:
        try:
            # the issues keep their JSON text: the store saves it as the raw payload without re-encoding
            page = self.json("POST", path, json=body, parse=_issues_page, retry_unsafe=True)
        except NotFoundError:
            if self._cached_cloud:  # e.g. /search/jql on a site that is Data Center after all
                raise StaleDiscovery(f"{self.name}: {path} not found; the saved deployment type is stale") from None
            raise
        except HTTPStatusError as exc:
            if exc.status == 410 and self._cached_cloud:
                raise StaleDiscovery(f"{self.name}: {path} is gone; the saved deployment type is stale") from None
            if exc.status == 410:
                raise SourceError(
                    f"{self.name}: {self.api}/{path} answered 410 Gone: Jira Cloud removed this search endpoint; "
                    f"this site is Jira Cloud, so set deployment: cloud (or auto) for okrsync to use "
                    f"/rest/api/3/search/jql") from None
            if exc.status == 400:
                detail = jira_messages(exc.body) or "HTTP 400"
                missing = _MISSING_PROJECT.findall(detail)
                raise JqlRejected(f"{self.name}: JQL rejected by Jira: {detail} (JQL: {jql})", detail,
                                  missing) from None
            raise
        if not isinstance(page, dict):
            raise SourceError(f"{self.name}: unexpected response from {path} (not an object)")
        return page

    @property
    def requests_made(self) -> int:
        return self.http.requests_made

    def close(self) -> None:
        self.http.close()


def _dc_query(jql: str, fields: list[str]) -> tuple[str, list[str]]:
    """The JQL ordered by created ASC (the order restarts and parallel pages rely on) and the fields with created."""
    where = strip_order_by(jql)
    return (f"{where} ORDER BY created ASC" if where else "ORDER BY created ASC",
            list(dict.fromkeys([*fields, "created"])))


def window_of(exc: HTTPStatusError) -> int | None:
    """The search window a 500 "Search limit exceeded … the search platform limit of 10,000" names."""
    body = exc.body
    text = json.dumps(body) if isinstance(body, (dict, list)) else str(body or "")
    m = _WINDOW_EXCEEDED.search(text) if exc.status == 500 else None
    if not m:
        return None
    digits = re.sub(r"[^0-9]", "", m.group(1))
    return int(digits) if digits else None


def _window_exceeded(resp: Any) -> bool:
    return resp.status_code == 500 and b"Search limit exceeded" in (resp.content or b"")[:2000]


def _created_ms(raw: Any) -> int | None:
    fields = raw.get("fields") if isinstance(raw, dict) else None
    try:
        created = parse_time(fields.get("created"), "created") if isinstance(fields, dict) else None
    except RecordError:
        return None
    return epoch_ms(created) if created is not None else None


def _issues_page(text: str) -> Any:
    return parse_page(text, "issues")


def _issues(body: dict[str, Any], name: str) -> list[dict[str, Any]]:
    issues = body.get("issues")
    if issues is None:
        return []
    if not isinstance(issues, list):
        raise SourceError(f"{name}: unexpected search response (issues is not a list)")
    return issues


def _custom_type(field: dict[str, Any]) -> str | None:
    schema = field.get("schema")
    return schema.get("custom") if isinstance(schema, dict) else None


def resolve_field(fields: list[dict[str, Any]], value: str, setting: str, source: str) -> tuple[str, ...]:
    """A field setting given as an id or a name -> the ids (a name may be used by several fields)."""
    value = value.strip()
    if any(f.get("id") == value for f in fields):
        return (value,)
    named = tuple(str(f["id"]) for f in fields if str(f.get("name", "")).lower() == value.lower() and f.get("id"))
    if named:
        return named
    if _FIELD_ID.fullmatch(value):
        return (value,)  # not listed (hidden from this user?): request it anyway
    raise SourceError(f"{source}: {setting}: no Jira field has the id or name {value!r}")


def discover_fields(fields: list[dict[str, Any]], *, story_points: str | None = None, sprint: str | None = None,
                    epic_link: str | None = None, source: str = "jira") -> FieldMap:
    """Candidates from GET /rest/api/2/field, the story points type before name matches."""
    def by_type(custom: str) -> tuple[str, ...]:
        return tuple(str(f["id"]) for f in fields if _custom_type(f) == custom and f.get("id"))

    if story_points:
        sp = resolve_field(fields, story_points, "story_points_field", source)
    else:
        named = tuple(str(f["id"]) for f in fields
                      if str(f.get("name", "")).strip().lower() in STORY_POINTS_NAMES and f.get("id"))
        sp = tuple(dict.fromkeys([*by_type(STORY_POINTS_TYPE), *named]))
    return FieldMap(
        story_points=sp,
        sprint=resolve_field(fields, sprint, "sprint_field", source) if sprint else by_type(SPRINT_TYPE),
        epic_link=resolve_field(fields, epic_link, "epic_link_field", source) if epic_link else by_type(EPIC_LINK_TYPE),
    )
