"""Jira client: deployment detection, auth, field discovery, Cloud token paging, DC offset paging, errors."""

from __future__ import annotations

import base64

import pytest
import responses

from okrsync.connectors.base import AuthError, SourceError
from okrsync.connectors.jira.client import JiraClient, JqlRejected, discover_fields
from okrsync.connectors.jira.normalize import FieldMap

from .helpers import (
    CLOUD,
    CLOUD_FIELDS,
    DC,
    EPIC,
    SPRINT,
    STORY_POINTS,
    TOKEN,
    body,
    body_matcher,
    cloud_config,
    creds,
    custom,
    dc_config,
    devlake_fields,
    fields_json,
    har_body,
    options,
    path,
    query,
    stub_cloud,
)


def basic(user: str, token: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as r:
        yield r


def test_cloud_detected_from_server_info_uses_basic_auth_and_search_jql(rsps):
    stub_cloud(rsps)
    rsps.post(f"{CLOUD}/rest/api/3/search/jql", json={"issues": [{"id": "1"}], "isLast": True})
    client = JiraClient("jira", cloud_config(), creds(), options())
    pages = list(client.search("project = APP ORDER BY created ASC", ["summary", "status"]))
    assert pages == [[{"id": "1"}]]
    assert [path(c) for c in rsps.calls] == ["/rest/api/2/serverInfo", "/rest/api/3/search/jql"]
    assert all(c.request.headers["Authorization"] == basic("bot@acme.io", TOKEN) for c in rsps.calls)
    assert query(rsps.calls[1]) == {"jql": "project = APP ORDER BY created ASC", "maxResults": "100",
                                    "fields": "summary,status"}


def test_email_from_the_credentials_when_the_source_has_none(rsps):
    stub_cloud(rsps)
    client = JiraClient("jira", cloud_config(email=None), creds(email="env@acme.io"), options())
    assert client.is_cloud
    assert rsps.calls[0].request.headers["Authorization"] == basic("env@acme.io", TOKEN)


def test_server_detected_from_the_real_server_info_uses_bearer(rsps):
    rsps.get(f"{DC}/rest/api/2/serverInfo", json=har_body("GET", "/rest/api/2/serverInfo"))
    rsps.post(f"{DC}/rest/api/2/search", json={"startAt": 0, "maxResults": 1000, "total": 0, "issues": []})
    client = JiraClient("dc", dc_config(), creds(), options())
    list(client.search("project = SP", ["summary"]))
    assert [path(c) for c in rsps.calls] == ["/rest/api/2/serverInfo", "/rest/api/2/search"]
    assert rsps.calls[1].request.headers["Authorization"] == f"Bearer {TOKEN}"
    # POST /rest/api/2/search with Data Center's documented body; created order and the created field: a long
    # read restarts from the last created time before Data Center's search window
    assert body(rsps.calls[1]) == {"jql": "project = SP ORDER BY created ASC", "startAt": 0, "maxResults": 1000,
                                   "fields": ["summary", "created"]}


def test_configured_deployment_skips_detection(rsps):
    rsps.post(f"{DC}/rest/api/2/search", json={"startAt": 0, "total": 0, "issues": []})
    client = JiraClient("dc", dc_config(deployment="server"), creds(), options())
    list(client.search("project = SP", ["summary"]))
    assert [path(c) for c in rsps.calls] == ["/rest/api/2/search"]
    assert rsps.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"


def test_cloud_without_email_is_a_clear_error(rsps):
    stub_cloud(rsps)
    with pytest.raises(AuthError) as err:
        JiraClient("jira", cloud_config(email=None), creds(), options()).is_cloud
    assert str(err.value) == ("jira: https://acme.atlassian.net is Jira Cloud, which needs an email with the API "
                              "token: set email: in the source or OKRSYNC_SOURCES__JIRA__EMAIL")


def test_missing_token_names_the_variable():
    with pytest.raises(AuthError, match="^work-jira: no token: set OKRSYNC_SOURCES__WORK_JIRA__TOKEN$"):
        JiraClient("work-jira", cloud_config(), creds(token=""), options())


def test_401_names_the_token_variable_and_never_the_secret(rsps):
    rsps.get(f"{CLOUD}/rest/api/2/serverInfo", status=401, body=f"bad token {TOKEN}")
    with pytest.raises(AuthError) as err:
        JiraClient("jira", cloud_config(), creds(), options()).is_cloud
    msg = str(err.value)
    assert msg == ("jira: authentication failed for https://acme.atlassian.net "
                   "(check OKRSYNC_SOURCES__JIRA__TOKEN)")
    assert TOKEN not in msg and "\n" not in msg


def test_no_email_and_401_also_hints_at_the_email(rsps):
    rsps.get(f"{CLOUD}/rest/api/2/serverInfo", status=401)
    with pytest.raises(AuthError) as err:
        JiraClient("jira", cloud_config(email=None), creds(), options()).is_cloud
    assert str(err.value).endswith("(check OKRSYNC_SOURCES__JIRA__TOKEN); a Jira Cloud site also needs email: "
                                   "(or OKRSYNC_SOURCES__JIRA__EMAIL)")
    assert rsps.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"


def test_data_center_with_an_email_falls_back_to_bearer(rsps):
    rsps.get(f"{DC}/rest/api/2/serverInfo", status=401,
             match=[responses.matchers.header_matcher({"Authorization": basic("me@acme.io", TOKEN)})])
    rsps.get(f"{DC}/rest/api/2/serverInfo", json={"deploymentType": "DataCenter"},
             match=[responses.matchers.header_matcher({"Authorization": f"Bearer {TOKEN}"})])
    client = JiraClient("dc", dc_config(email="me@acme.io"), creds(), options())
    assert client.is_cloud is False
    assert client.http.session.headers["Authorization"] == f"Bearer {TOKEN}" and client.http.session.auth is None


def test_cloud_paging_follows_next_page_token_three_pages(rsps):
    stub_cloud(rsps)
    for token, nxt, ids in ((None, "t2", ["1", "2"]), ("t2", "t3", ["3", "4"]), ("t3", None, ["5"])):
        body = {"issues": [{"id": i} for i in ids], **({"nextPageToken": nxt} if nxt else {"isLast": True})}
        match = [body_matcher({"nextPageToken": token}, strict_match=False)] if token else []
        rsps.post(f"{CLOUD}/rest/api/3/search/jql", json=body, match=match)
    client = JiraClient("jira", cloud_config(deployment="cloud"), creds(), options())
    pages = list(client.search("project = APP", ["summary"]))
    assert [[i["id"] for i in p] for p in pages] == [["1", "2"], ["3", "4"], ["5"]]
    searches = [c for c in rsps.calls if path(c) == "/rest/api/3/search/jql"]
    assert [query(c).get("nextPageToken") for c in searches] == [None, "t2", "t3"]
    assert all(query(c)["jql"] == "project = APP" and query(c)["maxResults"] == "100" for c in searches)
    assert not any("startAt" in query(c) for c in searches)


def test_cloud_never_calls_the_removed_search_endpoint(rsps):
    stub_cloud(rsps)
    rsps.post(f"{CLOUD}/rest/api/3/search/jql", json={"issues": []})
    rsps.post(f"{CLOUD}/rest/api/2/search", status=410, json={"errorMessages": ["gone"]})
    client = JiraClient("jira", cloud_config(), creds(), options())
    list(client.search("project = APP", ["summary"]))
    assert client.search_ids("project = APP") == set()
    assert "/rest/api/2/search" not in [path(c) for c in rsps.calls]


def test_410_on_the_old_endpoint_is_a_clear_error(rsps):
    # deployment: server forced on what is really a Cloud site
    rsps.post(f"{CLOUD}/rest/api/2/search", status=410, json={"errorMessages": [
        "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API."]})
    client = JiraClient("jira", cloud_config(deployment="server"), creds(), options())
    with pytest.raises(SourceError) as err:
        list(client.search("project = APP", ["summary"]))
    assert str(err.value) == (
        "jira: https://acme.atlassian.net/rest/api/2/search answered 410 Gone: Jira Cloud removed this search "
        "endpoint; this site is Jira Cloud, so set deployment: cloud (or auto) for okrsync to use "
        "/rest/api/3/search/jql")
    assert len(rsps.calls) == 1  # a 410 is not retried


def test_dc_paging_advances_by_the_issues_returned(rsps):
    # the server caps maxResults at 2 although we ask for 1000
    for start, ids in ((0, ["1", "2"]), (2, ["3", "4"]), (4, ["5"])):
        rsps.post(f"{DC}/rest/api/2/search", json={"startAt": start, "maxResults": 2, "total": 5,
                                                   "issues": [{"id": i} for i in ids]},
                 match=[body_matcher({"startAt": str(start)}, strict_match=False)])
    client = JiraClient("dc", dc_config(deployment="server"), creds(), options())
    pages = list(client.search("project = SP", ["summary"]))
    assert [[i["id"] for i in p] for p in pages] == [["1", "2"], ["3", "4"], ["5"]]
    assert [(query(c)["startAt"], query(c)["maxResults"]) for c in rsps.calls] == [
        ("0", "1000"), ("2", "1000"), ("4", "1000")]


def test_dc_paging_stops_on_an_empty_page_even_if_total_lies(rsps):
    rsps.post(f"{DC}/rest/api/2/search", json={"startAt": 0, "total": 50, "issues": [{"id": "1"}]},
             match=[body_matcher({"startAt": "0"}, strict_match=False)])
    rsps.post(f"{DC}/rest/api/2/search", json={"startAt": 1, "total": 50, "issues": []},
             match=[body_matcher({"startAt": "1"}, strict_match=False)])
    client = JiraClient("dc", dc_config(deployment="server"), creds(), options())
    assert client.search_ids("project = SP") == {"1"}
    assert len(rsps.calls) == 2


@pytest.mark.parametrize("deployment, url, endpoint, sent", [
    ("cloud", CLOUD, "/rest/api/3/search/jql", {"jql": "labels = x", "maxResults": 5000, "fields": ["id"]}),
    ("server", DC, "/rest/api/2/search", {"jql": "labels = x ORDER BY created ASC", "startAt": 0,
                                          "maxResults": 1000, "fields": ["id", "created"]}),
])
def test_id_only_searches_use_the_largest_pages(rsps, deployment, url, endpoint, sent):
    rsps.post(f"{url}{endpoint}", json={"issues": [{"id": "7"}, {"id": "8"}], "total": 2})
    cfg = cloud_config(deployment=deployment) if url == CLOUD else dc_config(deployment=deployment)
    client = JiraClient("jira", cfg, creds(), options())
    assert client.search_ids("labels = x") == {"7", "8"}
    assert body(rsps.calls[0]) == sent


def test_page_size_setting_lowers_the_page(rsps):
    rsps.post(f"{CLOUD}/rest/api/3/search/jql", json={"issues": []})
    client = JiraClient("jira", cloud_config(deployment="cloud", page_size=25), creds(), options())
    list(client.search("project = APP", ["summary"], page_size=25))
    assert query(rsps.calls[0])["maxResults"] == "25"


def test_429_then_success_waits_retry_after_without_sleeping(rsps):
    sleeps = options().sleep
    rsps.post(f"{CLOUD}/rest/api/3/search/jql", status=429, headers={"Retry-After": "7"})
    rsps.post(f"{CLOUD}/rest/api/3/search/jql", json={"issues": [{"id": "1"}]})
    client = JiraClient("jira", cloud_config(deployment="cloud"), creds(), options(sleep=sleeps))
    assert client.search_ids("project = APP") == {"1"}
    assert client.requests_made == 2
    assert len(sleeps) == 1 and 7 <= sleeps[0] <= 7.25


def test_400_carries_jiras_messages(rsps):
    rsps.post(f"{CLOUD}/rest/api/3/search/jql", status=400, json={
        "errorMessages": ["The value 'NOPE' does not exist for the field 'project'."], "errors": {}})
    client = JiraClient("jira", cloud_config(deployment="cloud"), creds(), options())
    with pytest.raises(JqlRejected) as err:
        client.search_ids("project = NOPE")
    assert err.value.detail == "The value 'NOPE' does not exist for the field 'project'."
    assert err.value.missing_projects == ["NOPE"]
    assert len(rsps.calls) == 1


# -- field discovery -------------------------------------------------------------------------------
def test_discovery_on_the_real_server_field_list():
    fmap = discover_fields(har_body("GET", "/rest/api/2/field"))
    # Story Points is a plain float field found by name; "Original story points" is not a candidate
    assert fmap == FieldMap(story_points=("customfield_10107",), sprint=("customfield_10105",),
                            epic_link=("customfield_10101",))


def test_discovery_on_devlakes_dc_field_rows_finds_nothing():
    assert discover_fields(devlake_fields()) == FieldMap()


def test_discovery_of_team_managed_and_several_story_point_candidates():
    fields = fields_json(
        custom("customfield_10026", "Story Points", "com.atlassian.jira.plugin.system.customfieldtypes:float"),
        custom("customfield_10016", "Story point estimate", STORY_POINTS),
        custom("customfield_10090", "story points", "com.atlassian.jira.plugin.system.customfieldtypes:float"),
        custom("customfield_10020", "Sprint", SPRINT, "array"),
        custom("customfield_10014", "Epic Link", EPIC, "any"),
    )
    fmap = discover_fields(fields)
    # the Jira Software story points type first, then name matches in /field order
    assert fmap.story_points == ("customfield_10016", "customfield_10026", "customfield_10090")
    assert fmap.ids() == ["customfield_10016", "customfield_10026", "customfield_10090", "customfield_10020",
                          "customfield_10014"]


def test_settings_override_discovery_by_id_or_name():
    fmap = discover_fields(CLOUD_FIELDS, story_points="Progress", sprint="customfield_10999",
                           epic_link="customfield_10014")
    assert fmap == FieldMap(("customfield_10050",), ("customfield_10999",), ("customfield_10014",))
    with pytest.raises(SourceError, match=r"^jira: story_points_field: no Jira field has the id or name 'Effort'$"):
        discover_fields(CLOUD_FIELDS, story_points="Effort")


def test_field_map_is_fetched_once(rsps):
    stub_cloud(rsps)
    client = JiraClient("jira", cloud_config(), creds(), options())
    assert client.field_map() == client.field_map()
    assert [path(c) for c in rsps.calls] == ["/rest/api/2/serverInfo", "/rest/api/2/field"]
