"""Issue 13, Jira: Data Center's search window, POST searches, the API gateway, permission errors, internal
comments on service desks (responses at the HTTP boundary; the sandbox tests run the same against the simulator)."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import pytest
import responses

from okrsync.config.keyresults import JiraTarget
from okrsync.connectors.base import SourceError
from okrsync.connectors.jira.client import JiraClient
from okrsync.connectors.jira.writer import build_writer

from .helpers import CLOUD, DC, body, cloud_config, creds, dc_config, options, path
from .test_writer import STATUS

T0 = datetime(2026, 10, 1, 10, 0, tzinfo=timezone.utc)
T0_MS = int(T0.timestamp() * 1000)
SEARCH = f"{DC}/rest/api/2/search"


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as r:
        yield r


def fake_dc(rsps, created: list[int], window: int) -> list[tuple[int | None, int, int]]:
    """POST /rest/api/2/search as Data Center answers it: created order, `created >= <ms>`, and a 500 when
    startAt + maxResults passes the window. Returns the log of (created >= ms or None, startAt, maxResults)."""
    issues = [{"id": str(n + 1), "key": f"SP-{n + 1}",
               "fields": {"created": (T0 + timedelta(milliseconds=c)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"}}
              for n, c in enumerate(created)]
    log: list[tuple[int | None, int, int]] = []

    def answer(request):
        b = json.loads(request.body)
        m = re.search(r"created >= (\d+)", b["jql"])
        since = int(m.group(1)) - T0_MS if m else None
        log.append((since, b["startAt"], b["maxResults"]))
        if b["startAt"] + b["maxResults"] > window:
            n = b["startAt"] + b["maxResults"]
            return 500, {}, json.dumps({"message": f"Search limit exceeded. We couldn't complete your search because "
                                                   f"it requests {n:,} results which exceeded the search platform "
                                                   f"limit of {window:,}.", "status-code": 500})
        match = [i for i, c in zip(issues, created) if since is None or c >= since]
        page = match[b["startAt"]:b["startAt"] + b["maxResults"]]
        return 200, {}, json.dumps({"startAt": b["startAt"], "maxResults": b["maxResults"], "total": len(match),
                                    "issues": page})

    rsps.add_callback(responses.POST, SEARCH, callback=answer)
    return log


@pytest.mark.parametrize("created, window, known, page, requests, pages", [
    # the window is known: restart before it, leaving out the ids of the restart millisecond already read
    ([1, 2, 3, 3, 3, 4, 5], 4, 4, 2,
     [(None, 0, 2), (None, 2, 2), (3, 0, 2), (3, 2, 2), (4, 0, 2)],
     [["1", "2"], ["3", "4"], [], ["5", "6"], ["7"]]),
    # an administrator's smaller window, learnt from the 500 (sent once, not retried)
    ([1, 2, 3, 4, 5, 6], 3, 10_000, 2,
     [(None, 0, 2), (None, 2, 2), (None, 2, 1), (3, 0, 2), (3, 2, 1), (5, 0, 2)],
     [["1", "2"], ["3"], ["4"], ["5"], ["6"]]),
    # the window never reached: plain startAt paging
    ([1, 2, 3], 10_000, 10_000, 2, [(None, 0, 2), (None, 2, 2)], [["1", "2"], ["3"]]),
])
def test_dc_search_restarts_with_created_before_the_window(rsps, created, window, known, page, requests, pages):
    log = fake_dc(rsps, created, window)
    client = JiraClient("dc", dc_config(deployment="server"), creds(), options())
    client.dc_window = known
    got = [[i["id"] for i in p] for p in client.search("project = SP ORDER BY created ASC", ["summary"],
                                                         page_size=page)]
    assert (log, got) == (requests, pages)


def test_dc_restart_keeps_the_selector_and_membership_orders_by_created(rsps):
    log = fake_dc(rsps, [1, 2, 3, 4, 5], 2)
    client = JiraClient("dc", dc_config(deployment="server"), creds(), options())
    client.dc_window = 2
    assert client.search_ids('"Epic Link" = SP-1 ORDER BY rank') == {"1", "2", "3", "4", "5"}
    jqls = [body(c)["jql"] for c in rsps.calls]
    assert jqls[0] == '"Epic Link" = SP-1 ORDER BY created ASC'
    assert jqls[1] == f'("Epic Link" = SP-1) AND created >= {T0_MS + 2} ORDER BY created ASC'
    assert [b for _, _, b in log] == [2] * len(log)


def test_more_issues_in_one_millisecond_than_the_window_is_a_clear_error(rsps):
    fake_dc(rsps, [7, 7, 7, 7, 7], 2)
    client = JiraClient("dc", dc_config(deployment="server"), creds(), options())
    client.dc_window = 2
    with pytest.raises(SourceError, match=r"^dc: more than 2 issues share one created time; Jira Data Center's "
                                          r"search window cannot page past them"):
        list(client.search("project = SP ORDER BY created ASC", ["summary"], page_size=2))


# -- POST searches with the documented bodies --------------------------------------------------------------------
@pytest.mark.parametrize("deployment, url, endpoint, sent", [
    ("cloud", CLOUD, "/rest/api/3/search/jql", {"jql": "project = APP ORDER BY created ASC", "maxResults": 100,
                                                "fields": ["summary", "status"]}),
    ("server", DC, "/rest/api/2/search", {"jql": "project = APP ORDER BY created ASC", "startAt": 0,
                                          "maxResults": 1000, "fields": ["summary", "status", "created"]}),
])
def test_searches_are_posts_with_the_documented_body(rsps, deployment, url, endpoint, sent):
    rsps.post(f"{url}{endpoint}", json={"issues": [], "total": 0, "isLast": True})
    cfg = cloud_config(deployment=deployment) if url == CLOUD else dc_config(deployment=deployment)
    list(JiraClient("jira", cfg, creds(), options()).search("project = APP ORDER BY created ASC",
                                                            ["summary", "status"]))
    [call] = rsps.calls
    assert (call.request.method, path(call), body(call)) == ("POST", endpoint, sent)
    assert call.request.url == f"{url}{endpoint}"  # nothing in the URL


def test_a_search_post_is_retried_like_a_read(rsps):
    rsps.post(f"{CLOUD}/rest/api/3/search/jql", status=502)
    rsps.post(f"{CLOUD}/rest/api/3/search/jql", body='{"issues": [', content_type="application/json")
    rsps.post(f"{CLOUD}/rest/api/3/search/jql", json={"issues": [{"id": "1"}], "isLast": True})
    client = JiraClient("jira", cloud_config(deployment="cloud"), creds(), options())
    assert client.search_ids("project = APP") == {"1"}
    assert client.requests_made == 3


# -- api_url: API calls go to the gateway, links stay on the site ------------------------------------------------
GATEWAY = "https://api.atlassian.com/ex/jira/11223344-a1b2-3b33-c444-def000000000"


def test_api_url_receives_the_calls_and_the_site_stays_in_links(rsps):
    from okrsync.connectors.jira.normalize import FieldMap, normalize_issue

    rsps.get(f"{GATEWAY}/rest/api/2/serverInfo", json={"deploymentType": "Cloud"})
    rsps.post(f"{GATEWAY}/rest/api/3/search/jql", json={"issues": [{"id": "1"}], "isLast": True})
    client = JiraClient("jira", cloud_config(api_url=GATEWAY), creds(), options())
    assert client.search_ids("project = APP") == {"1"}
    assert [c.request.url for c in rsps.calls] == [f"{GATEWAY}/rest/api/2/serverInfo",
                                                   f"{GATEWAY}/rest/api/3/search/jql"]
    raw = {"id": "1", "key": "APP-1", "fields": {"created": "2026-10-01T10:00:00.000+0000",
                                                  "status": {"statusCategory": {"key": "new"}}}}
    assert normalize_issue(raw, source="jira", site=client.site, fields=FieldMap()).url == \
        "https://acme.atlassian.net/browse/APP-1"


def test_api_url_in_the_workspace_file():
    from okrsync.config.workspace import load_workspace_text

    ws = load_workspace_text(f"""
period: 2026-Q4
sources:
  jira: {{type: jira, url: https://acme.atlassian.net, api_url: {GATEWAY}, email: bot@acme.io, projects: [APP]}}
objectives: []
""").workspace
    assert (ws.sources["jira"].url, ws.sources["jira"].api_url()) == ("https://acme.atlassian.net", GATEWAY)


# -- permission errors: one line, sent once ------------------------------------------------------------------------
ISSUE = f"{DC}/rest/api/2/issue/OKR-12"
DC_HEADERS = {"retry-after": "0", "X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "97",
              "X-RateLimit-Interval-Seconds": "1", "X-RateLimit-FillRate": "10"}


@pytest.mark.parametrize("fail, status, message", [
    ("property", 403, "dc: no permission to set the okrsync.status property of OKR-12 (HTTP 403: You do not have "
                      "permission to edit this issue.)"),
    ("field", 403, "dc: no permission to edit OKR-12 (HTTP 403: You do not have permission to edit this issue.)"),
    ("comment", 400, "dc: no permission to comment on OKR-12 (HTTP 400: You do not have the permission to comment "
                     "on this issue.)"),
])
def test_permission_errors_are_one_line_and_never_resent(rsps, fail, status, message):
    text = {403: "You do not have permission to edit this issue.",
            400: "You do not have the permission to comment on this issue."}[status]
    denied = dict(status=status, headers=DC_HEADERS, json={"errorMessages": [text], "errors": {}})
    ok = dict(headers=DC_HEADERS)
    rsps.get(f"{DC}/rest/api/2/project/OKR", json={"key": "OKR", "projectTypeKey": "software"}, **ok)
    rsps.put(f"{ISSUE}/comment/10001", **(denied if fail == "comment" else dict(json={"id": "10001"}, **ok)))
    rsps.put(f"{ISSUE}/properties/okrsync.status", **(denied if fail == "property" else dict(status=200, **ok)))
    rsps.put(ISSUE, **(denied if fail == "field" else dict(status=204, **ok)))
    sleeps = options().sleep
    w = build_writer("dc", dc_config(deployment="server"), creds(), options(sleep=sleeps))
    with pytest.raises(SourceError) as err:
        w.write(JiraTarget(to="jira", issue="OKR-12", field="customfield_10050"), STATUS, "10001")
    assert str(err.value) == message
    assert [c.response.status_code for c in rsps.calls].count(status) == 1 and list(sleeps) == []


# -- Jira Service Management: internal comments ---------------------------------------------------------------------
INTERNAL = [{"key": "sd.public.comment", "value": {"internal": True}}]


@pytest.mark.parametrize("project, expected", [
    ({"status": 200, "json": {"key": "OKR", "projectTypeKey": "service_desk"}}, INTERNAL),
    ({"status": 200, "json": {"key": "OKR", "projectTypeKey": "software"}}, None),
    ({"status": 200, "json": {"key": "OKR", "projectTypeKey": "business"}}, None),
    ({"status": 404, "json": {"errorMessages": ["No project could be found with key 'OKR'."]}}, INTERNAL),
])
def test_comments_on_service_desk_projects_are_internal(rsps, project, expected):
    base = f"{CLOUD}/rest/api/2/issue/OKR-12"
    rsps.get(f"{CLOUD}/rest/api/2/project/OKR", **project)
    rsps.get(f"{base}/comment", json={"startAt": 0, "total": 0, "comments": []})
    rsps.post(f"{base}/comment", status=201, json={"id": "10001"})
    rsps.put(f"{base}/comment/10001", json={"id": "10001"})
    rsps.put(f"{base}/properties/okrsync.status", status=200)
    w = build_writer("jira", cloud_config(deployment="cloud"), creds(), options())
    w.write(JiraTarget(to="jira", issue="OKR-12"), STATUS, None)
    w.write(JiraTarget(to="jira", issue="OKR-12"), STATUS, "10001")
    sent = [body(c) for c in rsps.calls if path(c).startswith("/rest/api/2/issue/OKR-12/comment")
            and c.request.method in ("POST", "PUT")]
    assert [b.get("properties") for b in sent] == [expected, expected]
    assert [path(c) for c in rsps.calls].count("/rest/api/2/project/OKR") == 1  # once per project
