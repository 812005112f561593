"""A small in-memory PagerDuty for `responses`: /incidents (windows, offset cap), /incidents/{id}, log entries
(per incident and account-wide)."""

from __future__ import annotations

import bisect
import json
import re
from urllib.parse import parse_qs, urlsplit

BASE = "https://api.pagerduty.com"
CAP = 10000


def pd(n: int, created: str, status: str = "triggered", **kw) -> dict:
    """A REST v2 incident object (2023 shape) created at `created` ('2026-07-02T10:00:00Z')."""
    inc = {
        "id": f"P{n:06d}", "incident_number": n, "title": f"incident {n}", "status": status, "urgency": "high",
        "created_at": created, "updated_at": created, "last_status_change_at": created, "resolved_at": None,
        "service": {"id": "PSVC1", "type": "service_reference", "summary": "Checkout"},
        "priority": {"id": "PRI1", "type": "priority", "summary": "P1"}, "teams": [],
        "html_url": f"https://acme.pagerduty.com/incidents/P{n:06d}", "type": "incident",
    }
    inc.update(kw)
    return inc


def entry(kind: str, at: str) -> dict:
    return {"type": kind, "created_at": at, "id": f"R{abs(hash((kind, at))) % 10**8}"}


class FakePagerDuty:
    def __init__(self, incidents: list[dict] = (), logs: dict[str, list[dict]] | None = None,
                 since_inclusive: bool = True, until_inclusive: bool = False):
        # /incidents since/until: the API reference does not say whether they are inclusive
        self.since_inclusive, self.until_inclusive = since_inclusive, until_inclusive
        self.incidents: dict[str, dict] = {}
        self.logs = dict(logs or {})
        self.calls: list[tuple[str, dict[str, list[str]]]] = []
        self.last_request = None
        self.fail_next: list[tuple[int, dict, dict]] = []  # (status, headers, body) served before anything else
        self._sorted: tuple[list[dict], list[str]] | None = None  # (incidents by creation, their created_at)
        for i in incidents:
            self.put(i)

    def put(self, incident: dict) -> None:
        self.incidents[incident["id"]] = incident
        self._sorted = None

    def _index(self) -> tuple[list[dict], list[str]]:
        # built whole, then set in one assignment: the connector reads windows from several threads at once (two
        # attributes set one after the other let a second thread see the first set and not the second)
        index = self._sorted
        if index is None:
            ordered = sorted(self.incidents.values(), key=lambda i: (i["created_at"], i["id"]))
            index = self._sorted = (ordered, [i["created_at"] for i in ordered])
        return index

    def register(self, rsps) -> None:
        rsps.add_callback("GET", re.compile(re.escape(BASE) + r"/log_entries(\?.*)?$"), self._account_logs)
        rsps.add_callback("GET", re.compile(re.escape(BASE) + r"/incidents/[^/?]+/log_entries(\?.*)?$"), self._logs)
        rsps.add_callback("GET", re.compile(re.escape(BASE) + r"/incidents/[^/?]+(\?.*)?$"), self._one)
        rsps.add_callback("GET", re.compile(re.escape(BASE) + r"/incidents(\?.*)?$"), self._list)

    # -- helpers -------------------------------------------------------------------------------
    def _record(self, request) -> tuple[str, dict[str, list[str]]]:
        self.last_request = request
        parts = urlsplit(request.url)
        q = parse_qs(parts.query, keep_blank_values=True)
        self.calls.append((parts.path, q))
        return parts.path, q

    def requests(self, path: str | None = None) -> list[dict[str, list[str]]]:
        return [q for p, q in self.calls if path is None or p == path]

    def _failure(self):
        if self.fail_next:
            status, headers, body = self.fail_next.pop(0)
            return status, headers, json.dumps(body)
        return None

    # -- endpoints -----------------------------------------------------------------------------
    def _list(self, request):
        _, q = self._record(request)
        if (f := self._failure()) is not None:
            return f
        offset, limit = int(q.get("offset", ["0"])[0]), int(q.get("limit", ["25"])[0])
        if limit > 100:
            return 400, {}, json.dumps({"error": {"message": "Invalid Input Provided", "errors": ["limit > 100"]}})
        if offset + limit > CAP:
            return 400, {}, json.dumps({"error": {"message": "Invalid Input Provided",
                                                  "errors": ["Offset must be less than 10000."]}})
        ordered, keys = self._index()
        if q.get("date_range") == ["all"]:
            items = list(ordered)
        else:
            lo = (bisect.bisect_left if self.since_inclusive else bisect.bisect_right)(keys, q["since"][0])
            hi = (bisect.bisect_right if self.until_inclusive else bisect.bisect_left)(keys, q["until"][0])
            items = ordered[lo:hi]
        if "statuses[]" in q:
            items = [i for i in items if i["status"] in q["statuses[]"]]
        if "service_ids[]" in q:
            items = [i for i in items if i["service"]["id"] in q["service_ids[]"]]
        page = items[offset:offset + limit]
        body = {"incidents": page, "limit": limit, "offset": offset, "more": offset + limit < len(items),
                "total": None}
        return 200, {}, json.dumps(body)

    def _one(self, request):
        path, _ = self._record(request)
        if (f := self._failure()) is not None:
            return f
        iid = path.rsplit("/", 1)[1]
        if iid not in self.incidents:
            return 404, {}, json.dumps({"error": {"message": "Not Found", "code": 2100}})
        return 200, {}, json.dumps({"incident": self.incidents[iid]})

    def _logs(self, request):
        path, q = self._record(request)
        if (f := self._failure()) is not None:
            return f
        iid = path.split("/")[-2]
        entries = self.logs.get(iid, [])
        offset, limit = int(q.get("offset", ["0"])[0]), int(q.get("limit", ["25"])[0])
        page = entries[offset:offset + limit]
        return 200, {}, json.dumps({"log_entries": page, "limit": limit, "offset": offset,
                                    "more": offset + limit < len(entries), "total": None})

    def _account_logs(self, request):
        """GET /log_entries: every incident's entries created in [since, until), newest first."""
        _, q = self._record(request)
        if (f := self._failure()) is not None:
            return f
        offset, limit = int(q.get("offset", ["0"])[0]), int(q.get("limit", ["25"])[0])
        if offset + limit > CAP:
            return 400, {}, json.dumps({"error": {"message": "Invalid Input Provided",
                                                  "errors": ["Offset must be less than 10000."]}})
        since, until = q["since"][0], q["until"][0]
        items = [{**e, "incident": {"id": iid, "type": "incident_reference"}}
                 for iid, entries in self.logs.items() for e in entries if since <= e["created_at"] < until]
        items.sort(key=lambda e: e["created_at"], reverse=True)
        page = items[offset:offset + limit]
        return 200, {}, json.dumps({"log_entries": page, "limit": limit, "offset": offset,
                                    "more": offset + limit < len(items),
                                    "total": len(items) if q.get("total") == ["true"] else None})
