"""ServiceNow Table API simulator: encoded queries, dot-walked fields, reference links, Link/X-Total-Count paging."""

from __future__ import annotations

import base64
import binascii
import re
import threading
import time
from collections import OrderedDict
from datetime import datetime
from typing import Any, Callable, Iterable
from urllib.parse import urlencode

from .model import HOUR_MS, UTC, SnIncident, sn_time
from .oauth import ServiceNowOAuth
from .server import App, BadRequest, Request, Response, json_response

JSON = "application/json;charset=UTF-8"
# field -> (reference table or None, getter returning the raw value: a string, or a sys_id for references)
_REFS = {"business_service": "cmdb_ci_service", "cmdb_ci": "cmdb_ci", "assignment_group": "sys_user_group",
         "assigned_to": "sys_user", "caller_id": "sys_user", "opened_by": "sys_user", "resolved_by": "sys_user",
         "closed_by": "sys_user", "company": "core_company", "sys_domain": "sys_user_group"}
STATE_LABELS = {"1": "New", "2": "In Progress", "3": "On Hold", "6": "Resolved", "7": "Closed", "8": "Canceled"}
PRIORITY_LABELS = {"1": "1 - Critical", "2": "2 - High", "3": "3 - Moderate", "4": "4 - Low", "5": "5 - Planning"}
LEVEL_LABELS = {"1": "1 - High", "2": "2 - Medium", "3": "3 - Low"}
CHOICES = {"state": STATE_LABELS, "incident_state": STATE_LABELS, "priority": PRIORITY_LABELS,
           "impact": LEVEL_LABELS, "urgency": LEVEL_LABELS, "severity": LEVEL_LABELS}
DATES = {"opened_at", "resolved_at", "closed_at", "sys_created_on", "sys_updated_on", "activity_due", "sla_due",
         "reopened_time", "due_date", "business_duration", "calendar_duration"}
NUMERIC = {"state", "incident_state", "priority", "impact", "urgency", "severity", "reassignment_count",
           "reopen_count", "sys_mod_count", "calendar_stc", "business_stc", "escalation", "child_incidents", "notify",
           "order"}
_COND = re.compile(r"^([a-z0-9_.]+?)"
                   r"(ISNOTEMPTY|ISEMPTY|NOT IN|IN|STARTSWITH|ENDSWITH|NOT LIKE|LIKE|>=|<=|!=|=|>|<)(.*)$", re.S)
_DATE_GEN = re.compile(r"^javascript:gs\.dateGenerate\('(\d{4}-\d{2}-\d{2})',\s*'(\d{2}:\d{2}:\d{2})'\)$")
_DURATION_EPOCH = 0


def _duration(ms: int | None) -> str:
    """ServiceNow glide_duration raw value: a date-time counted from 1970-01-01 00:00:00."""
    return "" if ms is None else sn_time(_DURATION_EPOCH + ms)


def incident_getters(w: Any) -> dict[str, Callable[[SnIncident], str]]:
    stc = lambda x: str((x.resolved - x.opened) // 1000) if x.resolved else ""  # noqa: E731
    return {
        "sys_id": lambda x: x.sys_id, "number": lambda x: x.number, "task_effective_number": lambda x: x.number,
        "short_description": lambda x: x.short_description,
        "description": lambda x: f"{x.short_description}. Reported through the service portal.",
        "state": lambda x: x.state, "incident_state": lambda x: x.state, "priority": lambda x: x.priority,
        "impact": lambda x: x.impact, "urgency": lambda x: x.urgency, "severity": lambda x: x.severity,
        "opened_at": lambda x: sn_time(x.opened), "resolved_at": lambda x: sn_time(x.resolved),
        "closed_at": lambda x: sn_time(x.closed), "sys_created_on": lambda x: sn_time(x.opened),
        "sys_updated_on": lambda x: sn_time(x.updated), "sys_mod_count": lambda x: str(x.mod_count),
        "active": lambda x: "true" if x.state in ("1", "2", "3") else "false",
        "business_service": lambda x: x.service, "cmdb_ci": lambda x: x.ci, "assignment_group": lambda x: x.group,
        "assigned_to": lambda x: x.assigned_to, "caller_id": lambda x: x.caller, "opened_by": lambda x: x.caller,
        "resolved_by": lambda x: x.assigned_to if x.resolved else "",
        "closed_by": lambda x: x.assigned_to if x.closed else "",
        "company": lambda x: "31bea3d53790200044e0bfc8bcbe5dec", "sys_domain": lambda x: "global",
        "reassignment_count": lambda x: str(x.reassign), "reopen_count": lambda x: str(x.reopen),
        "made_sla": lambda x: "true" if x.made_sla else "false", "calendar_stc": stc,
        "business_stc": lambda x: str((x.resolved - x.opened) // 3000) if x.resolved else "",
        "calendar_duration": lambda x: _duration(x.resolved - x.opened) if x.resolved else "",
        "business_duration": lambda x: _duration((x.resolved - x.opened) // 3) if x.resolved else "",
        "close_code": lambda x: x.close_code,
        "close_notes": lambda x: "This incident is resolved." if x.resolved else "",
        "contact_type": lambda x: ("self-service", "phone", "email", "monitoring")[int(x.sys_id[:2], 16) % 4],
        "category": lambda x: x.category, "subcategory": lambda x: "",
        "hold_reason": lambda x: "1" if x.state == "3" else "", "escalation": lambda x: "0",
        "knowledge": lambda x: "false", "notify": lambda x: "1", "sys_class_name": lambda x: "incident",
        "sys_created_by": lambda x: "admin", "sys_updated_by": lambda x: "system", "parent_incident": lambda x: "",
        "problem_id": lambda x: "", "child_incidents": lambda x: "0", "upon_approval": lambda x: "proceed",
        "upon_reject": lambda x: "cancel", "approval": lambda x: "not requested", "location": lambda x: "",
        "sla_due": lambda x: "", "due_date": lambda x: "", "reopened_time": lambda x: "",
        "activity_due": lambda x: sn_time(x.opened + 8 * HOUR_MS) if x.state in ("1", "2", "3") else "",
        "work_notes": lambda x: "", "comments": lambda x: "", "watch_list": lambda x: "", "order": lambda x: "",
        "user_input": lambda x: "", "correlation_id": lambda x: "", "origin_table": lambda x: "",
    }


class ServiceNowApp(App):
    system = "servicenow"

    def __init__(self, world: Any, token: str | None = None):
        super().__init__()
        self.w, self.token = world, token
        self.getters = incident_getters(world)
        self._cache: OrderedDict[tuple, list] = OrderedDict()
        self._lock = threading.Lock()
        # ACLs: rows hidden from restricted API users (none by default); see restrict()
        self._hidden: Callable[[Any], bool] = lambda row: False
        self._restricted: set[str] | None = set()
        # OAuth: POST /oauth_token.do (password grant: the user's password is checked like Basic auth's)
        self.oauth = ServiceNowOAuth(lambda user, password: bool(user) and bool(password) and
                                     (self.token is None or password == self.token))
        self.route("POST", "/oauth_token.do", self.oauth.token_endpoint)
        for prefix in ("/api/now/table", "/api/now/v2/table"):
            self.route("GET", f"{prefix}/{{table}}", self.list_table)
            self.route("GET", f"{prefix}/{{table}}/{{sys_id}}", self.get_record)

    # -- shapes, auth ------------------------------------------------------------------------------------
    def error(self, status: int, message: str, **extra: Any) -> Response:
        detail = extra.get("detail")
        if status == 404 and message == "Not Found":
            message, detail = "Requested URI does not represent any resource", None
        return json_response(status, {"error": {"message": message, "detail": detail}, "status": "failure"})

    def authenticate(self, req: Request) -> Response | None:
        if req.path == "/oauth_token.do":
            return None  # the client authenticates in the form
        auth = req.header("Authorization") or ""
        scheme, _, value = auth.partition(" ")
        ok = False
        if scheme == "Basic":
            try:
                user, _, password = base64.b64decode(value).decode().partition(":")
                ok = bool(user) and (self.token is None or password == self.token)
            except (binascii.Error, UnicodeDecodeError):
                ok = False
        elif scheme == "Bearer":
            issued = self.oauth.tokens.check(value.strip())  # an OAuth access token: valid until it expires
            ok = issued if issued is not None else bool(value.strip()) and (self.token is None or
                                                                             value.strip() == self.token)
        if ok:
            return None
        resp = self.error(401, "User Not Authenticated", detail="Required to provide Auth information")
        resp.headers.append(("WWW-Authenticate", 'BASIC realm="Service-now"'))
        return resp

    def rate_limited(self, retry_after: float) -> Response:
        return json_response(429, {"error": {"message": "Rate limit exceeded",
                                             "detail": "Too many requests for the rate limit rule"},
                                   "status": "failure"},
                             [("Retry-After", str(int(retry_after)) if float(retry_after).is_integer()
                               else str(retry_after)), ("X-RateLimit-Limit", "1000"),
                              ("X-RateLimit-Reset", str(int(time.time() + retry_after))),
                              ("X-RateLimit-Rule", "okrsync-sandbox")])

    # -- ACLs --------------------------------------------------------------------------------------------
    def restrict(self, hidden: Iterable[str] | Callable[[Any], bool] | None,
                 users: Iterable[str] | None = None) -> None:
        """Hide incident rows from API users as read ACLs do: `hidden` is a set of sys_ids or a predicate on a
        row (None: nothing hidden); `users` the Basic user names it applies to (None: every user; a Bearer
        token's user has no name here, so only None covers it).

        ACLs are evaluated after the query ran: a page holds the rows of `sysparm_limit` query results that the
        user may read, so it can be short (even empty) before the end, and X-Total-Count still counts the hidden
        rows (ServiceNow KB3047115; "Only an empty page ends the read" in docs/api-notes.md).
        """
        if hidden is None:
            self._hidden = lambda row: False
        elif callable(hidden):
            self._hidden = hidden
        else:
            ids = frozenset(hidden)
            self._hidden = lambda row: getattr(row, "sys_id", None) in ids
        self._restricted = None if users is None else set(users)

    def _acl(self, req: Request, table: str) -> Callable[[Any], bool]:
        """The read ACL for this request's user: True when the row may be read."""
        if table != "incident":
            return lambda row: True
        if self._restricted is not None:
            scheme, _, value = (req.header("Authorization") or "").partition(" ")
            user = ""
            if scheme == "Basic":
                try:
                    user = base64.b64decode(value).decode().partition(":")[0]
                except (binascii.Error, UnicodeDecodeError):
                    user = ""
            if user not in self._restricted:
                return lambda row: True
        hidden = self._hidden
        return lambda row: not hidden(row)

    # -- tables ------------------------------------------------------------------------------------------
    def _table(self, name: str) -> tuple[list[Any], dict[str, Callable[[Any], str]]]:
        if name == "incident":
            return self.w.sn, self.getters
        rows = [(sys_id, display) for sys_id, (table, display) in self.w.sn_refs.items() if table == name]
        if not rows:
            raise BadRequest(f"Invalid table {name}", 400)
        getters: dict[str, Callable[[Any], str]] = {
            "sys_id": lambda r: r[0], "name": lambda r: r[1],
            "sys_created_on": lambda r: sn_time(self.w.start_ms), "sys_updated_on": lambda r: sn_time(self.w.start_ms)}
        if name == "sys_user":
            users = {u.name: u for u in self.w.users}
            getters.update({"user_name": lambda r: users[r[1]].login, "email": lambda r: users[r[1]].email,
                            "time_zone": lambda r: self.w.sn_tz.key, "active": lambda r: "true"})
        return rows, getters

    def list_table(self, req: Request) -> Response:
        table = req.params["table"]
        rows, getters = self._table(table)
        query = req.arg("sysparm_query") or ""
        limit = _int(req.arg("sysparm_limit"), 10000, "sysparm_limit")
        offset = _int(req.arg("sysparm_offset"), 0, "sysparm_offset")
        key = (table, query, self.w.version)
        with self._lock:
            matches = self._cache.get(key)
        if matches is None:
            matches = []
            seen: set[int] = set()
            # ^NQ groups are independent queries: each has its own conditions and its own ORDERBY, and the
            # documentation promises no ordering (nor any condition) across them (KB0564887 shows a condition
            # added to such a query applying to the first group only). Rows come group by group.
            for where, order in compile_groups(query, getters, self.w.sn_tz, self.w.sn_refs):
                with self.w.lock:
                    group = [r for r in rows if where(r) and id(r) not in seen]
                for field, desc in reversed(order):
                    get = getters[field]
                    group.sort(key=(lambda r: _sortable(field, get(r))), reverse=desc)
                seen.update(id(r) for r in group)
                matches += group
            with self._lock:
                self._cache[key] = matches
                while len(self._cache) > 16:
                    self._cache.popitem(last=False)
        page = matches[offset: offset + limit] if limit > 0 else []
        readable = self._acl(req, table)
        page = [r for r in page if readable(r)]  # ACLs filter the page after the query (KB3047115)
        render = self._renderer(req, table, getters)
        with self.w.lock:
            resp = json_response(200, {"result": [render(r) for r in page]}, content_type=JSON)
        total = len(matches)
        if req.arg("sysparm_no_count") != "true":
            resp.headers.append(("X-Total-Count", str(total)))
        if req.arg("sysparm_suppress_pagination_header") != "true" and limit > 0 and (total > limit or offset > 0):
            links = [(0, "first")]
            if offset > 0:
                links.append((max(0, offset - limit), "prev"))
            if offset + limit < total:
                links.append((offset + limit, "next"))
            links.append((max(0, (total - 1) // limit * limit), "last"))
            resp.headers.append(("Link", ",".join(f'<{self._url(req, o)}>;rel="{rel}"' for o, rel in links)))
        return resp

    def _url(self, req: Request, offset: int) -> str:
        pairs = [(k, v) for k, v in req.pairs if k != "sysparm_offset"]
        if not any(k == "sysparm_limit" for k, _ in pairs):
            pairs.append(("sysparm_limit", "10000"))
        return f"{self.base_url}{req.path}?{urlencode(pairs + [('sysparm_offset', str(offset))])}"

    def get_record(self, req: Request) -> Response:
        table = req.params["table"]
        rows, getters = self._table(table)
        sys_id = req.params["sys_id"]
        with self.w.lock:
            row = self.w.sn_by_id.get(sys_id) if table == "incident" else \
                next((r for r in rows if r[0] == sys_id), None)
            if row is None or not self._acl(req, table)(row):
                raise BadRequest("No Record found", 404,
                                 detail="Record doesn't exist or ACL restricts the record retrieval")
            return json_response(200, {"result": self._renderer(req, table, getters)(row)}, content_type=JSON)

    def _renderer(self, req: Request, table: str, getters: dict[str, Callable[[Any], str]]) -> Callable[[Any], dict]:
        fields = [f.strip() for f in (req.arg("sysparm_fields") or "").split(",") if f.strip()] or list(getters)
        display = (req.arg("sysparm_display_value") or "false").lower()
        no_links = (req.arg("sysparm_exclude_reference_link") or "false").lower() == "true"
        refs = _REFS if table == "incident" else {}
        tz = self.w.sn_tz
        base = self.base_url
        names = self.w.sn_refs

        def one(row: Any, f: str) -> Any:
            head, _, tail = f.partition(".")
            if head not in getters:
                return _MISSING
            raw = getters[head](row)
            if tail:  # dot-walked through a reference
                if head not in refs or not raw:
                    return "" if head in refs else _MISSING
                target = names.get(raw, ("", ""))[1]
                return {"name": target, "sys_id": raw, "user_name": target.split(" ")[0].lower()}.get(tail, "")
            shown = _display(f, raw, names, tz) if display in ("true", "all") else raw
            if head in refs and raw and display != "true" and not no_links:
                link = f"{base}/api/now/table/{refs[head]}/{raw}"
                return {"link": link, "value": raw} if display == "false" else \
                    {"display_value": shown, "link": link, "value": raw}
            if display == "all":
                return {"display_value": shown, "value": raw}
            return shown

        def render(row: Any) -> dict[str, Any]:
            out = {}
            for f in fields:
                v = one(row, f)
                if v is not _MISSING:
                    out[f] = v
            return out

        return render


_MISSING = object()


def _display(field: str, raw: str, names: dict[str, tuple[str, str]], tz: Any) -> str:
    if field in CHOICES:
        return CHOICES[field].get(raw, raw)
    if field in _REFS:
        return names.get(raw, ("", "global" if raw == "global" else ""))[1]
    if field in DATES and raw and field not in ("business_duration", "calendar_duration"):
        d = datetime.strptime(raw, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).astimezone(tz)
        return f"{d:%Y-%m-%d %H:%M:%S}"
    return raw


def _sortable(field: str, value: str) -> Any:
    if field in NUMERIC:
        try:
            return (0, float(value))
        except ValueError:
            return (1, 0.0)
    return value.lower()


def _int(value: str | None, default: int, name: str) -> int:
    if value in (None, ""):
        return default
    try:
        return max(0, int(value))
    except ValueError:
        raise BadRequest(f"Invalid value for {name}: {value}", 400) from None


def compile_groups(query: str, getters: dict[str, Callable[[Any], str]], tz: Any, names: dict[str, tuple[str, str]]
                   ) -> list[tuple[Callable[[Any], bool], list[tuple[str, bool]]]]:
    """An encoded query -> one (predicate, ORDER BY list) per ^NQ group. ^ is AND, ^OR binds to the previous term,
    ^NQ starts a new OR'ed group; an ORDERBY belongs to the group it is written in. Anything outside the subset is
    a 400 (a real instance may silently ignore it)."""
    out: list[tuple[Callable[[Any], bool], list[tuple[str, bool]]]] = []
    orders: list[tuple[str, bool]] = []  # of groups without conditions (they match nothing of their own)
    for group_text in query.split("^NQ") if query else []:
        order: list[tuple[str, bool]] = []
        terms: list[list[Callable[[Any], bool]]] = []
        for part in group_text.split("^"):
            part = part.strip()
            if not part or part == "EQ":
                continue
            if part.startswith("ORDERBYDESC") or part.startswith("ORDERBY"):
                desc = part.startswith("ORDERBYDESC")
                name = part[11:] if desc else part[7:]
                if name not in getters:
                    raise _invalid(query, f"unknown field '{name}' in ORDERBY")
                order.append((name, desc))
                continue
            if part.startswith("OR"):  # field names are lower case, so OR here is the operator
                if not terms:
                    raise _invalid(query, "^OR without a condition before it")
                terms[-1].append(_condition(part[2:], getters, tz, names, query))
                continue
            terms.append([_condition(part, getters, tz, names, query)])
        if terms:
            out.append((_all_of(terms), order))
        else:
            orders += order
    return out or [(lambda row: True, orders)]


def _all_of(terms: list[list[Callable[[Any], bool]]]) -> Callable[[Any], bool]:
    return lambda row: all(any(c(row) for c in alts) for alts in terms)


def _invalid(query: str, why: str) -> BadRequest:
    return BadRequest("Invalid query", 400, detail=f"{why} in sysparm_query '{query}'")


def _condition(text: str, getters: dict[str, Callable[[Any], str]], tz: Any, names: dict[str, tuple[str, str]],
               query: str) -> Callable[[Any], bool]:
    m = _COND.match(text)
    if not m:
        raise _invalid(query, f"cannot parse the condition '{text}'")
    field, op, value = m.group(1), m.group(2), m.group(3)
    head, _, tail = field.partition(".")
    if head not in getters or (tail and (head not in _REFS or tail not in ("name", "sys_id"))):
        raise _invalid(query, f"unknown field '{field}'")
    get = getters[head]
    if tail == "name":  # dot-walk to the referenced record's display name
        raw_get = get
        get = lambda r: names.get(raw_get(r), ("", ""))[1]  # noqa: E731
    if field in DATES:
        value = _date_literal(value, tz, query)
    low = value.lower()
    if head in NUMERIC and not tail and op not in ("ISEMPTY", "ISNOTEMPTY", "LIKE", "NOT LIKE", "STARTSWITH",
                                                   "ENDSWITH"):
        for v in value.split(",") if op in ("IN", "NOT IN") else [value]:
            if not re.fullmatch(r"-?\d+(\.\d+)?", v.strip()):
                raise _invalid(query, f"'{v}' is not a number")
    if op == "ISEMPTY":
        return lambda r: get(r) == ""
    if op == "ISNOTEMPTY":
        return lambda r: get(r) != ""
    if op in ("IN", "NOT IN"):
        wanted = {v.strip().lower() for v in value.split(",")}
        return (lambda r: get(r).lower() in wanted) if op == "IN" else (lambda r: get(r).lower() not in wanted)
    if op == "LIKE":
        return lambda r: low in get(r).lower()
    if op == "NOT LIKE":
        return lambda r: low not in get(r).lower()
    if op == "STARTSWITH":
        return lambda r: get(r).lower().startswith(low)
    if op == "ENDSWITH":
        return lambda r: get(r).lower().endswith(low)
    if op == "=":
        return lambda r: get(r).lower() == low
    if op == "!=":
        return lambda r: get(r).lower() != low
    if head in NUMERIC and not tail:
        target = float(value)
        cmp = {">": float.__gt__, ">=": float.__ge__, "<": float.__lt__, "<=": float.__le__}[op]
        return lambda r: (v := get(r)) != "" and cmp(float(v), target)
    scmp = {">": str.__gt__, ">=": str.__ge__, "<": str.__lt__, "<=": str.__le__}[op]
    return lambda r: (v := get(r)) != "" and scmp(v, value)


def _date_literal(value: str, tz: Any, query: str) -> str:
    """A plain date-time literal is UTC; gs.dateGenerate('d','t') is in the API user's time zone."""
    m = _DATE_GEN.match(value)
    if m:
        local = datetime.strptime(f"{m[1]} {m[2]}", "%Y-%m-%d %H:%M:%S").replace(tzinfo=tz)
        return f"{local.astimezone(UTC):%Y-%m-%d %H:%M:%S}"
    if value.startswith("javascript:"):
        raise _invalid(query, f"unsupported script '{value}'")
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return value + " 00:00:00"
    if value and not re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", value):
        raise _invalid(query, f"'{value}' is not a date-time")
    return value
