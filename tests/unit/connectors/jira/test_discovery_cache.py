"""Jira discovery kept in the stream state: a no-change incremental read is one search request."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import responses

from okrsync.connectors.base import ReadContext
from okrsync.connectors.jira.connector import build

from .helpers import (
    CLOUD,
    CLOUD_FIELDS,
    EPIC,
    SPRINT,
    STORY_POINTS,
    body_matcher,
    cloud_config,
    creds,
    custom,
    fields_json,
    issue,
    options,
    path,
    query,
    stub_cloud,
)

SEARCH = f"{CLOUD}/rest/api/3/search/jql"
T0 = datetime(2026, 11, 15, 12, 0, tzinfo=timezone.utc)
SINCE = datetime(2026, 11, 15, 11, 50, tzinfo=timezone.utc)
CUSTOM = {"customfield_10016": 3.0, "customfield_10020": None, "customfield_10014": None}


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as r:
        yield r


def first_read(rsps, config=None) -> dict:
    """A first run: discovery (serverInfo, field) and one page; returns the state it leaves."""
    stub_cloud(rsps)
    rsps.post(SEARCH, json={"issues": [issue(1, **CUSTOM)], "isLast": True})
    conn = build("jira", config or cloud_config(), creds(), options())
    pages = list(conn.streams()[0].read(ReadContext(since=None, run_started=T0, first_run=True)))
    assert [path(c) for c in rsps.calls] == ["/rest/api/2/serverInfo", "/rest/api/2/field", "/rest/api/3/search/jql"]
    state = pages[0].state
    assert state["discovery"]["cloud"] is True
    assert state["discovery"]["field_map"] == {"story_points": ["customfield_10016"], "sprint": ["customfield_10020"],
                                               "epic_link": ["customfield_10014"]}
    rsps.calls.reset()
    return state


def incremental(conn, state, **kw) -> list:
    return list(conn.streams()[0].read(ReadContext(since=SINCE, run_started=T0, state=state, **kw)))


def test_an_incremental_read_reuses_the_saved_discovery(rsps):
    state = first_read(rsps)
    fields = state["discovery"]["fields"]
    conn = build("jira", cloud_config(), creds(), options())
    pages = incremental(conn, state)
    assert [path(c) for c in rsps.calls] == ["/rest/api/3/search/jql"]
    assert query(rsps.calls[0])["fields"] == ",".join(fields)
    assert rsps.calls[0].request.headers["Authorization"].startswith("Basic ")  # Cloud auth from the state
    assert pages[0].state is None  # nothing new to remember
    assert pages[0].records[0].story_points == 3.0
    assert conn.requests_made == 1


def test_a_no_change_read_is_one_request(rsps):
    state = first_read(rsps)
    rsps.replace(responses.POST, SEARCH, json={"issues": [], "isLast": True})
    conn = build("jira", cloud_config(), creds(), options())
    assert incremental(conn, state) == []
    assert conn.requests_made == 1


@pytest.mark.parametrize("kw", [{"full": True}, {"first_run": True}])
def test_full_and_first_runs_discover_again(rsps, kw):
    state = first_read(rsps)
    conn = build("jira", cloud_config(), creds(), options())
    incremental(conn, state, **kw)
    assert [path(c) for c in rsps.calls][:2] == ["/rest/api/2/serverInfo", "/rest/api/2/field"]


def test_changed_field_settings_discover_again(rsps):
    state = first_read(rsps)
    conn = build("jira", cloud_config(story_points_field="Story point estimate"), creds(), options())
    pages = incremental(conn, state)
    assert [path(c) for c in rsps.calls] == ["/rest/api/2/serverInfo", "/rest/api/2/field", "/rest/api/3/search/jql"]
    assert pages[0].state["discovery"]["key"] != state["discovery"]["key"]


def test_a_field_no_longer_returned_discovers_again_and_rereads(rsps):
    state = first_read(rsps)
    # the story points field was replaced: Jira omits the old id (unknown fields are not returned)
    rsps.replace(responses.GET, f"{CLOUD}/rest/api/2/field", json=fields_json(
        custom("customfield_10099", "Story Points", STORY_POINTS), custom("customfield_10020", "Sprint", SPRINT, "array"),
        custom("customfield_10014", "Epic Link", EPIC, "any")))
    old = {"customfield_10020": None, "customfield_10014": None}
    new = {**old, "customfield_10099": 8.0}
    rsps.replace(responses.POST, SEARCH, json={"issues": [issue(1, **old)], "isLast": True},
                 match=[body_matcher({"fields": ",".join(state["discovery"]["fields"])},
                                                               strict_match=False)])
    rsps.post(SEARCH, json={"issues": [issue(1, **new)], "isLast": True})
    conn = build("jira", cloud_config(), creds(), options())
    pages = incremental(conn, state)
    # one GET /field tells the field is gone (not just null); it is reused by the discovery that follows
    assert [path(c) for c in rsps.calls] == ["/rest/api/3/search/jql", "/rest/api/2/field", "/rest/api/2/serverInfo",
                                             "/rest/api/3/search/jql"]
    assert "customfield_10099" in query(rsps.calls[3])["fields"]
    [page] = pages  # the stale page was never handed over
    assert page.records[0].story_points == 8.0
    assert page.state["discovery"]["field_map"]["story_points"] == ["customfield_10099"]


def test_a_stale_deployment_type_discovers_again(rsps):
    state = first_read(rsps)
    state["discovery"]["cloud"] = True
    site = "https://jira.acme.test"
    config = cloud_config()
    dc = config.model_copy(update={"url": site})
    state_dc = {"discovery": {**state["discovery"], "key": build("jira", dc, creds(), options()).client.discovery_key()}}
    rsps.post(f"{site}/rest/api/3/search/jql", status=404, json={"errorMessages": ["null for uri"]})
    rsps.get(f"{site}/rest/api/2/serverInfo", json={"deploymentType": "Server", "baseUrl": site})
    rsps.get(f"{site}/rest/api/2/field", json=CLOUD_FIELDS)
    rsps.post(f"{site}/rest/api/2/search", json={"issues": [issue(1, **CUSTOM)], "total": 1, "startAt": 0})
    conn = build("jira", dc, creds(), options())
    pages = incremental(conn, state_dc)
    assert [path(c) for c in rsps.calls] == ["/rest/api/3/search/jql", "/rest/api/2/serverInfo", "/rest/api/2/field",
                                             "/rest/api/2/search"]
    assert pages[0].state["discovery"]["cloud"] is False
    assert len(pages[0].records) == 1


@pytest.mark.parametrize("hours_later, checks", [(1, 0), (23, 0), (25, 1)])
def test_fields_left_out_as_null_are_checked_once_a_day_and_never_reread(rsps, hours_later, checks):
    """Whether /search/jql omits null fields is not documented: an absent field is checked with one GET /field,
    the page is kept (no re-read, no re-discovery), and the check is not repeated for a day."""
    state = first_read(rsps)
    rsps.replace(responses.POST, SEARCH, json={"issues": [issue(1)], "isLast": True})  # no custom field at all
    conn = build("jira", cloud_config(), creds(), options())
    pages = incremental(conn, state)
    assert [path(c) for c in rsps.calls] == ["/rest/api/3/search/jql", "/rest/api/2/field"]
    assert len(pages) == 1 and pages[0].records[0].story_points is None
    saved = pages[0].state
    assert saved["discovery"]["verified"] == T0.isoformat()
    assert {k: v for k, v in saved["discovery"].items() if k != "verified"} == state["discovery"]
    rsps.calls.reset()
    later = build("jira", cloud_config(), creds(), options())
    run = ReadContext(since=SINCE, run_started=T0 + timedelta(hours=hours_later), state=saved)
    list(later.streams()[0].read(run))
    assert [path(c) for c in rsps.calls].count("/rest/api/2/field") == checks
    assert "/rest/api/2/serverInfo" not in [path(c) for c in rsps.calls]
