"""PagerDuty simulator: since/until windows, filters, offset/more paging and the 10000 cap, log entries, auth."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from okrsync.config.settings import SourceCredentials
from okrsync.config.sources import PagerDutySource
from okrsync.connectors.base import ConnectorOptions, ReadContext
from okrsync.connectors.pagerduty.connector import build
from okrsync.sandbox import Sandbox

from .conftest import NOW, PD_HEADERS

WINDOW = {"since": "2026-06-01T00:00:00Z", "until": "2026-11-30T00:00:00Z"}


def get(http, sb: Sandbox, path: str, **params):
    return http.get(f"{sb.urls['pagerduty']}{path}", params=params, headers=PD_HEADERS)


def test_offset_paging_to_the_end(sandbox, http):
    seen, offset = [], 0
    while True:
        r = get(http, sandbox, "/incidents", limit=17, offset=offset, **WINDOW)
        body = r.json()
        assert (body["limit"], body["offset"], body["total"]) == (17, offset, None)  # total only when asked
        seen += [x["id"] for x in body["incidents"]]
        if not body["more"]:
            break
        offset += 17
    assert len(seen) == len(set(seen)) == len(sandbox.world.pd)
    created = [x["created_at"] for x in get(http, sandbox, "/incidents", limit=100, **WINDOW).json()["incidents"]]
    assert created == sorted(created)
    counted = get(http, sandbox, "/incidents", limit=1, total="true", **WINDOW).json()
    assert counted["total"] == len(sandbox.world.pd) and counted["more"] is True


def test_offset_cap_and_limit_cap(sandbox, http):
    r = get(http, sandbox, "/incidents", offset=9950, limit=100, date_range="all")
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == 2001 and err["message"] == "Invalid Input Provided" and "10000" in err["errors"][0]
    assert get(http, sandbox, "/incidents", offset=9900, limit=100, date_range="all").status_code == 200
    assert get(http, sandbox, "/incidents", limit=500, date_range="all").json()["limit"] == 100


def test_date_window_rules(sandbox, http):
    w = sandbox.world
    too_wide = get(http, sandbox, "/incidents", since="2026-01-01T00:00:00Z", until="2026-11-01T00:00:00Z")
    assert too_wide.status_code == 400 and too_wide.json()["error"]["code"] == 2001
    default = get(http, sandbox, "/incidents", limit=100).json()["incidents"]  # the last 30 days
    month_ago = NOW - timedelta(days=30)
    assert {x["id"] for x in default} == {x["id"] for x in w.pagerduty_incidents() if x["created"] >= month_ago}
    everything = get(http, sandbox, "/incidents", date_range="all", total="true", limit=1).json()["total"]
    assert everything == len(w.pd)
    # a naive since/until is read in the account's time zone (America/New_York), unless time_zone says otherwise
    naive = get(http, sandbox, "/incidents", since="2026-10-01T00:00:00", until="2026-11-01T00:00:00",
                total="true", limit=1).json()["total"]
    ny = sum(1 for x in w.pagerduty_incidents()
             if datetime(2026, 10, 1, 4, tzinfo=timezone.utc) <= x["created"] < datetime(2026, 11, 1, 4,
                                                                                          tzinfo=timezone.utc))
    assert naive == ny
    utc = get(http, sandbox, "/incidents", since="2026-10-01T00:00:00", until="2026-11-01T00:00:00",
              time_zone="UTC", total="true", limit=1).json()
    assert utc["total"] == sum(1 for x in w.pagerduty_incidents()
                               if datetime(2026, 10, 1, tzinfo=timezone.utc) <= x["created"]
                               < datetime(2026, 11, 1, tzinfo=timezone.utc))
    berlin = get(http, sandbox, "/incidents", time_zone="Europe/Berlin", limit=1, **WINDOW).json()["incidents"][0]
    assert berlin["created_at"].endswith(("+01:00", "+02:00"))


def test_filters_and_sort(sandbox, http):
    w = sandbox.world.pagerduty_incidents()
    service = w[0]["service_id"]
    got = get(http, sandbox, "/incidents", limit=100, date_range="all", **{
        "statuses[]": ["resolved", "acknowledged"], "service_ids[]": [service], "urgencies[]": ["high"]}).json()
    want = {x["id"] for x in w if x["status"] in ("resolved", "acknowledged") and x["service_id"] == service
            and x["urgency"] == "high"}
    assert {x["id"] for x in got["incidents"]} == want and want
    newest = get(http, sandbox, "/incidents", limit=5, date_range="all", sort_by="created_at:desc").json()
    assert [x["created_at"] for x in newest["incidents"]] == sorted((x["created_at"] for x in newest["incidents"]),
                                                                    reverse=True)
    assert get(http, sandbox, "/incidents", sort_by="title").status_code == 400


def test_incident_and_log_entries(sandbox, http):
    x = next(i for i in sandbox.world.pagerduty_incidents() if i["status"] == "resolved" and i["acknowledged"])
    one = get(http, sandbox, f"/incidents/{x['id']}").json()["incident"]
    assert (one["id"], one["status"], one["acknowledgements"]) == (x["id"], "resolved", [])  # emptied on resolve
    full = get(http, sandbox, f"/incidents/{x['id']}/log_entries", limit=100).json()["log_entries"]
    overview = get(http, sandbox, f"/incidents/{x['id']}/log_entries", is_overview="true").json()["log_entries"]
    assert "notify_log_entry" in {e["type"] for e in full} and "notify_log_entry" not in {e["type"] for e in overview}
    types = [e["type"] for e in overview]
    assert types[0] == "resolve_log_entry" and types[-1] in ("trigger_log_entry", "assign_log_entry")  # newest first
    ack = next(e for e in overview if e["type"].startswith("acknowledge"))
    assert ack["created_at"] == x["acknowledged"].strftime("%Y-%m-%dT%H:%M:%SZ")
    assert get(http, sandbox, "/incidents/QNOTHERE").status_code == 404


def test_auth(http):
    with Sandbox(seed=1, scale=50, now=NOW, require_token="pd-token") as sb:
        url = f"{sb.urls['pagerduty']}/incidents"
        assert http.get(url).status_code == 401
        assert http.get(url, headers={"Authorization": "Token token=wrong"}).json()["error"]["code"] == 2006
        assert http.get(url, headers={"Authorization": "Token token=pd-token"}).status_code == 200
        # an API key is no OAuth token: sent as Bearer it is refused, and an OAuth token only goes as Bearer
        assert http.get(url, headers={"Authorization": "Bearer pd-token"}).status_code == 401
        sb.apps["pagerduty"].oauth_tokens.add("pdus+_oauth-1")
        assert http.get(url, headers={"Authorization": "Bearer pdus+_oauth-1"}).status_code == 200
        assert http.get(url, headers={"Authorization": "Token token=pdus+_oauth-1"}).status_code == 401


@pytest.mark.parametrize("since_inclusive,until_inclusive", [(True, False), (True, True), (False, False),
                                                              (False, True)])
def test_since_and_until_bounds_can_be_inclusive_or_not(fresh, http, since_inclusive, until_inclusive):
    """The API reference leaves it open: the sandbox can answer either way, and okrsync reads each incident once."""
    app = fresh.apps["pagerduty"]
    app.since_inclusive, app.until_inclusive = since_inclusive, until_inclusive
    objs = sorted(fresh.world.pd, key=lambda x: x.created)
    for x in (objs[2], objs[-3]):  # two incidents created on whole seconds: the bounds
        x.created -= x.created % 1000
    inc = sorted(fresh.world.pagerduty_incidents(), key=lambda x: x["created"])
    a, b = inc[2]["created"], inc[-3]["created"]
    z = lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    got = {x["id"] for x in get(http, fresh, "/incidents", since=z(a), until=z(b), limit=100).json()["incidents"]}
    want = {x["id"] for x in inc if (a < x["created"] < b) or (since_inclusive and x["created"] == a)
            or (until_inclusive and x["created"] == b)}
    assert got == want
    conn = build("pd", PagerDutySource(type="pagerduty", base_url=fresh.urls["pagerduty"], window_days=3),
                 SourceCredentials(token="pd-token"), ConnectorOptions(sleep=lambda s: None))
    try:
        pages = list(conn.streams()[0].read(ReadContext(since=inc[0]["created"] - timedelta(days=1),
                                                        run_started=NOW)))
    finally:
        conn.close()
    ids = [r.id for p in pages for r in p.records]
    assert sorted(ids) == sorted(x["id"] for x in inc if x["created"] < NOW)
