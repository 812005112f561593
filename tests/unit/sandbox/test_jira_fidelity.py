"""Documented Jira behaviours the sandbox models, and okrsync's Jira client and writer against them (issue 13):
the Data Center search window, DC rate-limit headers and permission errors, long JQL, the API gateway for scoped
tokens, and internal comments on Jira Service Management projects."""

from __future__ import annotations

from dataclasses import replace

import pytest

from okrsync.config.keyresults import JiraTarget
from okrsync.connectors.base import ConnectorOptions, ReadContext, SourceError
from okrsync.connectors.jira.client import JiraClient
from okrsync.connectors.jira.connector import build
from okrsync.connectors.jira.writer import build_writer
from okrsync.domain.status import KRStatus
from okrsync.sandbox import Sandbox

from ..connectors.jira.helpers import config, creds, options
from .conftest import NOW

STATUS = KRStatus(
    kr_id="KR1", title="Ship checkout v2", objective_id="O1", objective_title="Quality", metric="done_ratio",
    status="on_track", value=0.5, baseline=0.0, target=1.0, progress=0.5, score=0.5, expected=0.4, items=12,
    unit=None, period="2026-Q4", window_start="2026-10-01T00:00:00.000Z", window_end="2026-11-15T00:00:00.000Z",
    computed_at="2026-11-15T00:00:00.000Z",
)


@pytest.fixture(scope="module")
def dc():
    with Sandbox(seed=5, scale=250, now=NOW, jira_mode="server") as sb:
        yield sb


def app_ids(sb: Sandbox) -> set[str]:
    return {str(i.id) for i in sb.world.jira if i.project == "APP"}


def jira_searches(sb: Sandbox) -> list[dict]:
    return [r for r in sb.requests("jira") if r["path"].endswith("/search")]


# -- item 5: Data Center's search window ------------------------------------------------------------------------
@pytest.mark.parametrize("start, size, status", [(0, 50, 200), (30, 20, 200), (31, 20, 500), (50, 1, 500),
                                                 (40, 5000, 500)])  # maxResults is capped at 1000 first
def test_dc_refuses_start_at_plus_max_results_past_the_window(dc, http, start, size, status):
    dc.apps["jira"].search_window = 50
    try:
        r = http.post(f"{dc.urls['jira']}/rest/api/2/search",
                      json={"jql": "project = APP ORDER BY created ASC", "startAt": start, "maxResults": size})
    finally:
        dc.apps["jira"].search_window = 10_000
    assert r.status_code == status
    if status == 500:
        n = start + min(size, 1000)
        assert r.json()["message"] == (
            f"Search limit exceeded. We couldn't complete your search because it requests {n:,} results which "
            f"exceeded the search platform limit of 50. Try refining your query or contact your Jira "
            f"administrator. Repeating the same search may not work.")


@pytest.mark.parametrize("known_window, page", [(10_000, 20), (50, 20), (50, 50), (37, 1000)])
def test_the_client_reads_past_the_window_with_created_restarts(dc, known_window, page):
    """known_window 10,000: the client learns the smaller window from the 500; 50/37: it restarts before it."""
    dc.apps["jira"].search_window = known_window if known_window != 10_000 else 50
    dc.reset_log()
    try:
        client = JiraClient("jira", config(dc.urls["jira"]), creds(), options())
        client.dc_window = known_window
        pages = list(client.search("project = APP ORDER BY created ASC", ["summary"], page_size=page))
        members = client.search_ids("project = APP")
    finally:
        dc.apps["jira"].search_window = 10_000
    ids = [i["id"] for p in pages for i in p]
    assert len(ids) == len(set(ids)) == len(app_ids(dc)) and set(ids) == app_ids(dc) == members
    refused = [r for r in jira_searches(dc) if r["status"] == 500]
    assert len(refused) == (1 if known_window == 10_000 else 0)  # once (never retried), then the client knows


def test_the_issues_stream_and_membership_read_past_the_window(dc):
    dc.apps["jira"].search_window = 40
    try:
        conn = build("jira", config(dc.urls["jira"], projects=["APP"]), creds(),
                     ConnectorOptions(sleep=lambda s: None, jql_selectors={"k1": ("project = APP", ["KR9"])}))
        ctx = ReadContext(since=None, run_started=NOW, first_run=True)
        issues, members = conn.streams()
        records = [r.id for p in issues.read(ctx) for r in p.records]
        [page] = list(members.read(ReadContext(since=None, run_started=NOW)))
    finally:
        dc.apps["jira"].search_window = 10_000
    assert sorted(records) == sorted(app_ids(dc)) and len(records) == len(set(records))
    assert page.memberships[0].members == app_ids(dc)


# -- item 9: long JQL goes in a POST body -------------------------------------------------------------------------
@pytest.mark.parametrize("mode, status", [("cloud", 414), ("server", 400)])
def test_a_long_jql_in_the_url_is_refused_and_the_client_posts_it(http, mode, status):
    with Sandbox(seed=5, scale=250, now=NOW, jira_mode=mode) as sb:
        some = sorted(i.key for i in sb.world.jira if i.project == "APP")[:40]
        jql = f"key in ({', '.join(some * 30)}) ORDER BY created ASC"  # a long selector: > 8 KB
        assert len(jql) > 9000
        path = "/rest/api/3/search/jql" if mode == "cloud" else "/rest/api/2/search"
        assert http.get(sb.urls["jira"] + path, params={"jql": jql}).status_code == status
        sb.reset_log()
        cfg = config(sb.urls["jira"], email="bot@acme.io")
        client = JiraClient("jira", cfg, creds(), options())
        got = client.search_ids(jql)
        expected = {str(i.id) for i in sb.world.jira if i.key in some}
        assert got == expected and got
        assert {r["method"] for r in sb.requests("jira") if "search" in r["path"]} == {"POST"}


@pytest.mark.parametrize("mode, body", [
    ("cloud", {"jql": "project = APP", "fields": "summary,status"}),  # fields: an array in the body
    ("cloud", {"jql": "project = APP", "maxResults": "50"}),
    ("cloud", {"jql": "project = APP", "expand": ["names"]}),  # /search/jql: expand is one string
    ("server", {"jql": "project = APP", "fields": "summary"}),
    ("server", {"jql": "project = APP", "startAt": "0"}),
    ("server", {"jql": "project = APP", "expand": "names"}),  # /search (DC): expand is an array
])
def test_search_bodies_must_have_the_documented_shapes(http, mode, body):
    with Sandbox(seed=5, scale=60, now=NOW, jira_mode=mode) as sb:
        path = "/rest/api/3/search/jql" if mode == "cloud" else "/rest/api/2/search"
        r = http.post(sb.urls["jira"] + path, json=body)
        assert r.status_code == 400 and r.json()["errorMessages"] == [
            "Invalid request payload. Refer to the REST API documentation and try again."]


# -- item 7: DC rate-limit headers on every response; a 403 is a permission error -------------------------------
def test_dc_sends_rate_limit_headers_with_retry_after_0_on_every_response(dc, http):
    r = http.get(f"{dc.urls['jira']}/rest/api/2/myself")
    assert r.status_code == 200 and r.headers["retry-after"] == "0"
    assert {h: r.headers[h] for h in ("X-RateLimit-Limit", "X-RateLimit-Interval-Seconds", "X-RateLimit-FillRate")} \
        == {"X-RateLimit-Limit": "1000", "X-RateLimit-Interval-Seconds": "1", "X-RateLimit-FillRate": "500"}
    assert int(r.headers["X-RateLimit-Remaining"]) < 1000


@pytest.mark.parametrize("denied, field, message, sent", [
    ("edit", None, "jira: no permission to set the okrsync.status property of OKR-1 (HTTP 403: You do not have "
                   "permission to edit this issue.)", ("PUT", "/rest/api/2/issue/OKR-1/properties/okrsync.status")),
    ("comment", None, "jira: no permission to comment on OKR-1 (HTTP 400: You do not have the permission to "
                      "comment on this issue.)", ("POST", "/rest/api/2/issue/OKR-1/comment")),
])
def test_a_permission_error_is_one_line_and_sent_once(denied, field, message, sent):
    with Sandbox(seed=5, scale=60, now=NOW, jira_mode="server") as sb:
        sb.apps["jira"].deny("OKR-1", denied)
        w = build_writer("jira", config(sb.urls["jira"]), creds(), options())
        with pytest.raises(SourceError) as err:
            w.write(JiraTarget(to="jira", issue="OKR-1", field=field), STATUS, None)
        assert str(err.value) == message
        calls = [(r["method"], r["path"]) for r in sb.requests("jira")]
        assert calls.count(sent) == 1


# -- item 8: scoped tokens go through the API gateway; links keep the site -----------------------------------------
def test_scoped_tokens_work_through_the_gateway_and_links_point_at_the_site(http):
    with Sandbox(seed=5, scale=60, now=NOW) as sb:
        app = sb.apps["jira"]
        app.scoped_tokens.add("scoped-tok")
        site = sb.urls["jira"]
        cloud_id = http.get(f"{site}/_edge/tenant_info").json()["cloudId"]
        assert http.get(f"{site}/rest/api/2/myself", auth=("bot@acme.io", "scoped-tok")).status_code == 401
        gateway = f"{site}/ex/jira/{cloud_id}"
        assert http.get(f"{gateway}/rest/api/2/myself", auth=("bot@acme.io", "scoped-tok")).status_code == 200
        cfg = config(site, email="bot@acme.io", projects=["APP"], api_url=gateway)
        sb.reset_log()
        conn = build("jira", cfg, creds("scoped-tok"), ConnectorOptions(sleep=lambda s: None))
        ctx = ReadContext(since=None, run_started=NOW, first_run=True)
        records = [r for p in conn.streams()[0].read(ctx) for r in p.records]
        assert len(records) == len(app_ids(sb))
        assert records[0].url == f"{site}/browse/{records[0].key}"  # links: the site, never the gateway
        assert sb.requests("jira") and all(r["path"].startswith(f"/ex/jira/{cloud_id}/") for r in sb.requests("jira"))


# -- item 10: internal comments on service-desk projects ------------------------------------------------------------
@pytest.mark.parametrize("mode, desk, internal", [("cloud", True, True), ("server", True, True),
                                                  ("cloud", False, None)])
def test_comments_on_service_desk_projects_are_internal(http, mode, desk, internal):
    with Sandbox(seed=5, scale=60, now=NOW, jira_mode=mode) as sb:
        if desk:
            sb.apps["jira"].service_desks.add("OKR")
        project = http.get(f"{sb.urls['jira']}/rest/api/2/project/OKR").json()
        assert project["projectTypeKey"] == ("service_desk" if desk else "software")
        w = build_writer("jira", config(sb.urls["jira"], email="bot@acme.io"), creds(), options())
        first = w.write(JiraTarget(to="jira", issue="OKR-2"), STATUS, None)
        w.write(JiraTarget(to="jira", issue="OKR-2"), replace(STATUS, value=0.75, progress=0.75), first.remote_ref)
        writes = [x for x in sb.world.writes("jira") if x["action"] in ("comment", "comment_edit")]
        assert [x["action"] for x in writes] == ["comment", "comment_edit"]
        assert [x.get("internal") for x in writes] == [internal, internal]
        assert not any(x.get("customer_notified") for x in writes)
        cid = first.remote_ref
        prop = http.get(f"{sb.urls['jira']}/rest/api/2/comment/{cid}/properties/sd.public.comment")
        assert (prop.json()["value"] if prop.status_code == 200 else None) == (
            {"internal": True} if desk else None)
        if mode == "cloud":
            shown = http.get(f"{sb.urls['jira']}/rest/api/2/issue/OKR-2/comment/{cid}").json()
            assert shown["jsdPublic"] is (not desk)


def test_a_public_comment_on_a_service_desk_is_recorded_as_mailed(http):
    """What the check above guards against: the platform API's default on a service desk is public."""
    with Sandbox(seed=5, scale=60, now=NOW) as sb:
        sb.apps["jira"].service_desks.add("OKR")
        http.post(f"{sb.urls['jira']}/rest/api/2/issue/OKR-3/comment", json={"body": "status"})
        [write] = sb.world.writes("jira")
        assert (write["internal"], write["customer_notified"]) == (False, True)
