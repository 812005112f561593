"""PagerDuty REST v2 simulator: /incidents (since/until, filters, offset paging, the 10000 cap) and log entries."""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .model import DAY_MS, PdIncident, pd_id, pd_time, to_ms
from .server import App, BadRequest, Request, Response, json_response

JSON = "application/json; charset=utf-8"
OVERVIEW = ("trigger_log_entry", "acknowledge_log_entry", "resolve_log_entry", "escalate_log_entry",
            "assign_log_entry")
MAX_RANGE_MS = 183 * DAY_MS  # "6 months"
COLORS = {"P1": "a8171c", "P2": "eb6016", "P3": "f9b406"}


class PagerDutyApp(App):
    system = "pagerduty"

    def __init__(self, world: Any, token: str | None = None):
        super().__init__()
        self.w, self.token = world, token
        self.oauth_tokens: set[str] = set()  # OAuth access tokens granted to apps (sent as Bearer)
        self._cache: OrderedDict[tuple, list] = OrderedDict()
        self._lock = threading.Lock()
        # GET /incidents since/until: the API reference does not say whether either bound is inclusive
        # ("The start/end of the date range over which you want to search"); tests may flip these
        self.since_inclusive, self.until_inclusive = True, False
        self.route("GET", "/incidents", self.list_incidents)
        self.route("GET", "/incidents/{id}", self.get_incident)
        self.route("GET", "/incidents/{id}/log_entries", self.list_log_entries)
        self.route("GET", "/log_entries", self.list_account_log_entries)
        self.route("GET", "/services", self.list_services)
        self.route("GET", "/priorities", self.list_priorities)
        self.route("GET", "/abilities", self.abilities)

    # -- shapes, auth ------------------------------------------------------------------------------------
    def error(self, status: int, message: str, **extra: Any) -> Response:
        code = extra.get("code") or {400: 2001, 401: 2006, 404: 2100, 429: 2020}.get(status, 2000)
        err: dict[str, Any] = {"message": message, "code": code}
        if extra.get("errors"):
            err["errors"] = extra["errors"]
        return json_response(status, {"error": err}, content_type=JSON)

    def authenticate(self, req: Request) -> Response | None:
        """An API key as `Token token=<key>` ("Authentication"); an OAuth access token as `Bearer <token>` ("OAuth
        Functionality": "sent ... along with the Bearer token type"). Each scheme takes only its own kind of token."""
        auth = (req.header("Authorization") or "").strip()
        if auth.startswith("Token token="):
            key = auth[len("Token token="):].strip()
            if key and key not in self.oauth_tokens and (self.token is None or key == self.token):
                return None
        elif auth.startswith("Bearer ") and auth[7:].strip() in self.oauth_tokens:
            return None
        return self.error(401, "Unauthorized")

    def rate_limited(self, retry_after: float) -> Response:
        resp = self.error(429, "Rate Limit Exceeded")
        resp.headers += [("ratelimit-limit", "960"), ("ratelimit-remaining", "0"),
                         ("ratelimit-reset", str(max(1, round(retry_after))) if retry_after >= 1 else
                          f"{retry_after:g}")]
        return resp

    def ok(self, obj: Any) -> Response:
        return json_response(200, obj, content_type=JSON)

    def abilities(self, req: Request) -> Response:
        """GET /abilities: the account's abilities (the cheapest authenticated call: `validate --online`)."""
        return self.ok({"abilities": ["teams", "read_only_users", "urgencies", "service_support_hours"]})

    # -- references --------------------------------------------------------------------------------------
    def _ref(self, kind: str, id: str, summary: str, web: str | None = None) -> dict[str, Any]:
        return {"id": id, "type": f"{kind}_reference", "summary": summary, "self": f"{self.base_url}/{kind}s/{id}",
                "html_url": f"{self.base_url}/{web or kind + 's'}/{id}"}

    def service_ref(self, sid: str) -> dict[str, Any]:
        return self._ref("service", sid, self.w.pd_services[sid][0], "service-directory")

    def user_ref(self, n: int) -> dict[str, Any]:
        u = self.w.users[n]
        return self._ref("user", pd_id("P", "user", u.login, n=6), u.name)

    def priority(self, name: str | None, tz: ZoneInfo | None) -> dict[str, Any] | None:
        if name is None:
            return None
        pid = self.w.pd_priorities[name]
        return {"id": pid, "type": "priority", "summary": name, "self": f"{self.base_url}/priorities/{pid}",
                "html_url": None, "account_id": "PACME01", "color": COLORS[name],
                "created_at": pd_time(self.w.start_ms, tz), "description": "", "name": name,
                "order": {"P1": 500000000, "P2": 250000000, "P3": 125000000}[name], "schema_version": 0,
                "updated_at": pd_time(self.w.start_ms, tz)}

    def incident(self, x: PdIncident, tz: ZoneInfo | None) -> dict[str, Any]:
        name, team, policy = self.w.pd_services[x.service]
        trigger_id = x.log_id("trigger_log_entry", x.created)
        url = f"{self.base_url}/incidents/{x.id}"
        open_ack = x.status == "acknowledged"
        last_by = self.user_ref(x.assignee) if x.acked and x.status != "triggered" else self.service_ref(x.service)
        return {
            "incident_number": x.number, "title": x.title, "description": x.title,
            "created_at": pd_time(x.created, tz), "updated_at": pd_time(x.updated, tz), "status": x.status,
            "incident_key": x.key, "service": self.service_ref(x.service),
            "assignments": [] if x.status == "resolved" else [{"at": pd_time(x.created, tz),
                                                               "assignee": self.user_ref(x.assignee)}],
            "assigned_via": "escalation_policy", "last_status_change_at": pd_time(x.last_change, tz),
            "resolved_at": pd_time(x.resolved, tz),
            "first_trigger_log_entry": {"id": trigger_id, "type": "trigger_log_entry_reference",
                                        "summary": "Triggered through the API.",
                                        "self": f"{self.base_url}/log_entries/{trigger_id}",
                                        "html_url": f"{url}/log_entries/{trigger_id}"},
            "alert_counts": {"all": 1, "triggered": 0 if x.status == "resolved" else 1,
                             "resolved": 1 if x.status == "resolved" else 0},
            "is_mergeable": True,
            "escalation_policy": self._ref("escalation_policy", policy, self.w.pd_policies[policy]),
            "teams": [self._ref("team", team, self.w.pd_teams[team])], "pending_actions": [],
            # PagerDuty empties acknowledgements once an incident resolves
            "acknowledgements": [{"at": pd_time(x.acked, tz), "acknowledger": self.user_ref(x.assignee)}]
            if open_ack else [],
            "basic_alert_grouping": None, "alert_grouping": None, "last_status_change_by": last_by,
            "priority": self.priority(x.priority, tz), "resolve_reason": None, "incidents_responders": [],
            "responder_requests": [], "subscriber_requests": [], "urgency": x.urgency, "id": x.id,
            "type": "incident", "summary": f"[#{x.number}] {x.title}", "self": url, "html_url": url,
        }

    def log_entry(self, x: PdIncident, entry: tuple[str, int, int | None], tz: ZoneInfo | None) -> dict[str, Any]:
        typ, at, agent = entry
        lid = x.log_id(typ, at)
        incident = {"id": x.id, "type": "incident_reference", "summary": f"[#{x.number}] {x.title}",
                    "self": f"{self.base_url}/incidents/{x.id}", "html_url": f"{self.base_url}/incidents/{x.id}"}
        who = self.user_ref(agent) if agent is not None else self.service_ref(x.service)
        summary = {"trigger_log_entry": "Triggered through the API.",
                   "acknowledge_log_entry": f"Acknowledged by {who['summary']}.",
                   "resolve_log_entry": f"Resolved by {who['summary']}.",
                   "assign_log_entry": f"Assigned to {self.w.users[x.assignee].name}.",
                   "escalate_log_entry": "Escalated to level 2 by timeout.",
                   "notify_log_entry": f"Notified {self.w.users[x.assignee].name} by push notification."}[typ]
        out: dict[str, Any] = {
            "id": lid, "type": typ, "summary": summary, "self": f"{self.base_url}/log_entries/{lid}",
            "html_url": f"{self.base_url}/incidents/{x.id}/log_entries/{lid}" if typ == "trigger_log_entry" else None,
            "created_at": pd_time(at, tz), "agent": who,
            "channel": {"type": {"trigger_log_entry": "api", "acknowledge_log_entry": "website",
                                 "resolve_log_entry": "website" if agent is not None else "api"}.get(typ, "auto")},
            "service": self.service_ref(x.service), "incident": incident,
            "teams": [self._ref("team", self.w.pd_services[x.service][1],
                                self.w.pd_teams[self.w.pd_services[x.service][1]])],
            "contexts": [], "event_details": {"description": x.title} if typ == "trigger_log_entry" else {},
        }
        if typ in ("assign_log_entry", "notify_log_entry"):
            out["assignees" if typ == "assign_log_entry" else "user"] = (
                [self.user_ref(x.assignee)] if typ == "assign_log_entry" else self.user_ref(x.assignee))
        return out

    # -- parameters --------------------------------------------------------------------------------------
    def _tz(self, req: Request) -> ZoneInfo | None:
        name = req.arg("time_zone")
        if not name:
            return None
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise BadRequest("Invalid Input Provided", 400, errors=["Time Zone is not a valid time zone."]) from None

    def _time(self, req: Request, name: str, tz: ZoneInfo | None) -> int | None:
        value = req.arg(name)
        if not value:
            return None
        try:
            d = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise BadRequest("Invalid Input Provided", 400, errors=[f"{name.capitalize()} is not a valid date."]) \
                from None
        if d.tzinfo is None:  # read in time_zone, else in the account's time zone (not UTC)
            d = d.replace(tzinfo=tz or self.w.pd_tz)
        return to_ms(d)

    def _paging(self, req: Request) -> tuple[int, int]:
        try:
            limit = int(req.arg("limit") or 25)
            offset = int(req.arg("offset") or 0)
        except ValueError:
            raise BadRequest("Invalid Input Provided", 400, errors=["Limit and offset must be integers."]) from None
        limit = min(max(limit, 1), 100)
        offset = max(offset, 0)
        if offset + limit > 10000:
            raise BadRequest("Invalid Input Provided", 400,
                             errors=["Offset+limit must be less than or equal to 10000. Narrow the query with "
                                     "since/until."])
        return limit, offset

    def _page(self, req: Request, key: str, items: list, render: Any, limit: int, offset: int) -> Response:
        chunk = items[offset: offset + limit]
        with self.w.lock:
            body = {key: [render(x) for x in chunk], "limit": limit, "offset": offset,
                    "more": offset + limit < len(items),
                    "total": len(items) if (req.arg("total") or "").lower() == "true" else None}
        return self.ok(body)

    # -- endpoints ---------------------------------------------------------------------------------------
    def list_incidents(self, req: Request) -> Response:
        tz = self._tz(req)
        limit, offset = self._paging(req)
        since, until = self._time(req, "since", tz), self._time(req, "until", tz)
        if req.arg("date_range") == "all":
            since = until = None
        else:
            now = self.w.clock()
            if since is None and until is None:
                since, until = now - 30 * DAY_MS, now
            elif until is None:
                until = now
            elif since is None:
                since = until - 30 * DAY_MS
            if until < since:
                raise BadRequest("Invalid Input Provided", 400, errors=["Since must be before until."])
            if until - since > MAX_RANGE_MS:
                raise BadRequest("Invalid Input Provided", 400,
                                 errors=["The date range provided is larger than the 6 month limit."])
        statuses = set(req.args("statuses[]"))
        services, teams = set(req.args("service_ids[]")), set(req.args("team_ids[]"))
        urgencies, key = set(req.args("urgencies[]")), req.arg("incident_key")
        sort = [s.strip() for s in (req.arg("sort_by") or "created_at:asc").split(",") if s.strip()]
        if len(sort) > 2 or any(s.split(":")[0] not in ("created_at", "incident_number", "resolved_at", "urgency")
                                for s in sort):
            raise BadRequest("Invalid Input Provided", 400, errors=["Sort by is invalid."])
        inclusive = (self.since_inclusive, self.until_inclusive)
        cache_key = (since, until, inclusive, tuple(sorted(statuses)), tuple(sorted(services)), tuple(sorted(teams)),
                     tuple(sorted(urgencies)), key, tuple(sort), self.w.version)
        with self._lock:
            items = self._cache.get(cache_key)
        if items is None:
            with self.w.lock:
                items = [x for x in self.w.pd
                         if (since is None or x.created > since or (inclusive[0] and x.created == since))
                         and (until is None or x.created < until or (inclusive[1] and x.created == until))
                         and (not statuses or x.status in statuses) and (not services or x.service in services)
                         and (not teams or self.w.pd_services[x.service][1] in teams)
                         and (not urgencies or x.urgency in urgencies) and (not key or x.key == key)]
            for spec in reversed(sort):
                field, _, direction = spec.partition(":")
                keyfn = {"created_at": lambda x: x.created, "incident_number": lambda x: x.number,
                         "resolved_at": lambda x: x.resolved or 0, "urgency": lambda x: x.urgency}[field]
                items.sort(key=keyfn, reverse=direction == "desc")
            with self._lock:
                self._cache[cache_key] = items
                while len(self._cache) > 16:
                    self._cache.popitem(last=False)
        return self._page(req, "incidents", items, lambda x: self.incident(x, tz), limit, offset)

    def _incident(self, req: Request) -> PdIncident:
        x = self.w.pd_by_id.get(req.params["id"])
        if x is None:
            raise BadRequest("Not Found", 404)
        return x

    def get_incident(self, req: Request) -> Response:
        x = self._incident(req)
        tz = self._tz(req)
        with self.w.lock:
            return self.ok({"incident": self.incident(x, tz)})

    def list_log_entries(self, req: Request) -> Response:
        x = self._incident(req)
        tz = self._tz(req)
        limit, offset = self._paging(req)
        since, until = self._time(req, "since", tz), self._time(req, "until", tz)
        overview = (req.arg("is_overview") or "").lower() == "true"
        with self.w.lock:
            entries = [e for e in reversed(x.log) if (not overview or e[0] in OVERVIEW)
                       and (since is None or e[1] >= since) and (until is None or e[1] < until)]  # newest first
        return self._page(req, "log_entries", entries, lambda e: self.log_entry(x, e, tz), limit, offset)

    def list_account_log_entries(self, req: Request) -> Response:
        """GET /log_entries: every incident's log entries created in [since, until), newest first (the account's
        time zone reads times without an offset; default range: the last 30 days)."""
        tz = self._tz(req)
        limit, offset = self._paging(req)
        since, until = self._time(req, "since", tz), self._time(req, "until", tz)
        now = self.w.clock()
        until = now if until is None else until
        since = until - 30 * DAY_MS if since is None else since
        if until < since:
            raise BadRequest("Invalid Input Provided", 400, errors=["Since must be before until."])
        overview = (req.arg("is_overview") or "").lower() == "true"
        key = ("log_entries", since, until, overview, self.w.version)
        with self._lock:
            entries = self._cache.get(key)
        if entries is None:
            with self.w.lock:
                entries = [(x, e) for x in self.w.pd for e in x.log if (not overview or e[0] in OVERVIEW)
                           and since <= e[1] < until]
            entries.sort(key=lambda xe: (xe[1][1], xe[0].number), reverse=True)
            with self._lock:
                self._cache[key] = entries
                while len(self._cache) > 16:
                    self._cache.popitem(last=False)
        return self._page(req, "log_entries", entries, lambda xe: self.log_entry(xe[0], xe[1], tz), limit, offset)

    def list_services(self, req: Request) -> Response:
        limit, offset = self._paging(req)
        items = sorted(self.w.pd_services)

        def render(sid: str) -> dict[str, Any]:
            name, team, policy = self.w.pd_services[sid]
            ref = self.service_ref(sid)
            return dict(ref, type="service", name=name, description=f"{name} (production)", status="active",
                        escalation_policy=self._ref("escalation_policy", policy, self.w.pd_policies[policy]),
                        teams=[self._ref("team", team, self.w.pd_teams[team])], created_at=pd_time(self.w.start_ms))

        return self._page(req, "services", items, render, limit, offset)

    def list_priorities(self, req: Request) -> Response:
        limit, offset = self._paging(req)
        return self._page(req, "priorities", ["P1", "P2", "P3"], lambda p: self.priority(p, None), limit, offset)
