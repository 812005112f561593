"""Jira simulator: Cloud and Data Center search and paging, the JQL subset and its errors, write-back, auth."""

from __future__ import annotations

from datetime import datetime

import pytest

from okrsync.sandbox import Sandbox
from okrsync.sandbox.model import to_ms

from .conftest import NOW


def search_all(http, sb: Sandbox, jql: str, fields: str = "id", page: int = 100, post: bool = False) -> list[dict]:
    url = f"{sb.urls['jira']}/rest/api/3/search/jql"
    out, token, pages = [], None, 0
    while True:
        if post:
            body = {"jql": jql, "maxResults": page, "fields": fields.split(",")}
            if token:
                body["nextPageToken"] = token
            r = http.post(url, json=body)
        else:
            params = {"jql": jql, "maxResults": page, "fields": fields}
            if token:
                params["nextPageToken"] = token
            r = http.get(url, params=params)
        assert r.status_code == 200, r.text
        data = r.json()
        out += data["issues"]
        pages += 1
        token = data.get("nextPageToken")
        assert data["isLast"] is (token is None)
        if token is None:
            return out
        assert pages < 1000


def keys(jql: str, http, sb: Sandbox) -> set[str]:
    return {i["key"] for i in search_all(http, sb, jql)}


def expected(sb: Sandbox, pred) -> set[str]:
    return {i["key"] for i in sb.world.jira_issues() if pred(i)}


# -- paging ----------------------------------------------------------------------------------------------------
def test_next_page_token_walks_every_issue_once(sandbox, http):
    issues = search_all(http, sandbox, "project in (APP, OPS) ORDER BY created ASC, key ASC", "created", page=37)
    want = [i for i in sandbox.world.jira_issues() if i["project"] in ("APP", "OPS")]
    assert len(issues) == len(want) == len({i["id"] for i in issues})
    created = [datetime.strptime(i["fields"]["created"], "%Y-%m-%dT%H:%M:%S.%f%z") for i in issues]
    assert created == sorted(created)


def test_post_search_pages_like_get(sandbox, http):
    via_post = search_all(http, sandbox, "project = OPS ORDER BY created ASC", "summary", page=50, post=True)
    via_get = search_all(http, sandbox, "project = OPS ORDER BY created ASC", "summary", page=50)
    assert [i["key"] for i in via_post] == [i["key"] for i in via_get]


def test_max_results_caps_depend_on_fields(sandbox, http):
    url = f"{sandbox.urls['jira']}/rest/api/3/search/jql"
    rich = http.get(url, params={"jql": "project = APP", "maxResults": 5000, "fields": "summary,status"}).json()
    ids = http.get(url, params={"jql": "project in (APP, OPS)", "maxResults": 5000, "fields": "id,key"}).json()
    default = http.get(url, params={"jql": "project = APP"}).json()
    assert len(rich["issues"]) == 100 and "nextPageToken" in rich
    assert len(ids["issues"]) == len([i for i in sandbox.world.jira if i.project != "OKR"]) and ids["isLast"]
    assert len(default["issues"]) == 50 and default["issues"][0]["fields"] == {}  # default fields: id only


def test_token_survives_changes_between_pages(fresh, http):
    url = f"{fresh.urls['jira']}/rest/api/3/search/jql"
    jql = "project = APP ORDER BY created ASC"
    first = http.get(url, params={"jql": jql, "maxResults": 40}).json()
    fresh.advance()  # new issues (created now: at the end) and resolutions
    rest = search_all(http, fresh, jql)
    tail, token, seen = [], first["nextPageToken"], [i["key"] for i in first["issues"]]
    while token:
        page = http.get(url, params={"jql": jql, "maxResults": 40, "nextPageToken": token}).json()
        tail += [i["key"] for i in page["issues"]]
        token = page.get("nextPageToken")
    assert seen + tail == [i["key"] for i in rest]


def test_bad_token_is_a_400(sandbox, http):
    r = http.get(f"{sandbox.urls['jira']}/rest/api/3/search/jql",
                 params={"jql": "project = APP", "nextPageToken": "garbage"})
    assert r.status_code == 400 and r.json()["errorMessages"]


def test_data_center_pages_with_start_at(http):
    with Sandbox(seed=5, scale=250, now=NOW, jira_mode="server") as sb:
        base = sb.urls["jira"]
        seen, start = [], 0
        while True:
            r = http.get(f"{base}/rest/api/2/search", params={"jql": "project = APP ORDER BY created ASC",
                                                               "startAt": start, "maxResults": 2000})
            data = r.json()
            assert data["maxResults"] == 1000  # capped
            seen += [i["key"] for i in data["issues"]]
            start += len(data["issues"])
            if start >= data["total"]:
                break
        assert len(seen) == data["total"] == len({i.key for i in sb.world.jira if i.project == "APP"})
        assert http.get(f"{base}/rest/api/2/search/jql", params={"jql": "project = APP"}).status_code == 404
        assert http.get(f"{base}/rest/api/3/search/jql").json()["status-code"] == 404
        # Data Center: epics keep their children through Epic Link; `parent` means a sub-task's parent
        children = {i["key"] for i in http.post(f"{base}/rest/api/2/search", json={
            "jql": '"Epic Link" = APP-100', "maxResults": 1000, "fields": ["customfield_10101"]}).json()["issues"]}
        assert children == expected(sb, lambda i: i["parent"] == "APP-100") and children
        none = http.post(f"{base}/rest/api/2/search", json={"jql": "parent = APP-100"}).json()
        assert none["total"] == 0


def test_cloud_old_search_is_gone(sandbox, http):
    for path in ("/rest/api/2/search", "/rest/api/3/search", "/rest/api/latest/search"):
        r = http.get(sandbox.urls["jira"] + path, params={"jql": "project = APP"})
        assert r.status_code == 410
        assert "CHANGE-2046" in r.json()["errorMessages"][0] and r.json()["errors"] == {}


@pytest.mark.parametrize("jql", ["", "ORDER BY created ASC", "   "])
def test_unbounded_jql_is_a_400(sandbox, http, jql):
    r = http.get(f"{sandbox.urls['jira']}/rest/api/3/search/jql", params={"jql": jql})
    assert r.status_code == 400 and "Unbounded" in r.json()["errorMessages"][0]


# -- the JQL subset --------------------------------------------------------------------------------------------
def _ms(i: dict, field: str) -> int | None:
    return None if i[field] is None else to_ms(i[field])


def test_jql_constructs(sandbox, http):
    w = sandbox.world
    cut = to_ms(datetime(2026, 10, 20, tzinfo=NOW.tzinfo))
    sprint = next(s for s in w.sprints if s.project == "APP" and s.state == "closed" and s.seq > 3)
    active = [s.id for s in w.sprints if s.state in ("active", "future")]
    cases = {
        "project = OPS": lambda i: i["project"] == "OPS",
        "project in (APP, OKR)": lambda i: i["project"] in ("APP", "OKR"),
        "key = APP-100": lambda i: i["key"] == "APP-100",
        "key in (APP-100, OPS-3, OKR-12)": lambda i: i["key"] in ("APP-100", "OPS-3", "OKR-12"),
        "parent = APP-100": lambda i: i["parent"] == "APP-100",
        "cf[10014] = APP-101": lambda i: i["parent"] == "APP-101",
        '"Epic Link" = APP-101': lambda i: i["parent"] == "APP-101",
        "labels = customer": lambda i: "customer" in i["labels"],
        "labels in (security, ux)": lambda i: {"security", "ux"} & set(i["labels"]),
        f"sprint = {sprint.id}": lambda i: sprint.id in i["sprints"],
        f'sprint = "{sprint.name}"': lambda i: sprint.id in i["sprints"],
        "sprint in openSprints()": lambda i: set(active) & set(i["sprints"]),
        "issuetype = Bug": lambda i: i["type"] == "Bug",
        'status = "In Progress"': lambda i: i["status"] == "In Progress",
        "statusCategory = Done": lambda i: i["status_category"] == "done",
        f"updated >= {cut}": lambda i: _ms(i, "updated") >= cut,
        f"created > {cut}": lambda i: _ms(i, "created") > cut,
        f"created >= {cut} AND project = APP": lambda i: _ms(i, "created") >= cut and i["project"] == "APP",
        "project = APP AND (issuetype = Bug OR labels = customer)":
            lambda i: i["project"] == "APP" and (i["type"] == "Bug" or "customer" in i["labels"]),
        "issuetype = Bug OR issuetype = Epic": lambda i: i["type"] in ("Bug", "Epic"),
        "project = APP AND labels != customer": lambda i: i["project"] == "APP" and i["labels"]
        and "customer" not in i["labels"],
        "project = OPS AND resolution = Unresolved": lambda i: i["project"] == "OPS" and i["resolved"] is None,
    }
    for jql, pred in cases.items():
        want = expected(sandbox, pred)
        assert want, jql
        assert keys(jql, http, sandbox) == want, jql


def test_jql_dates_in_the_users_time_zone(sandbox, http):
    """'2026-10-20' means midnight in the profile zone (Europe/Berlin, +0200 then), not UTC."""
    local = to_ms(datetime.fromisoformat("2026-10-20T00:00:00+02:00"))
    got = keys('created >= "2026-10-20" AND project = APP', http, sandbox)
    assert got == expected(sandbox, lambda i: i["project"] == "APP" and _ms(i, "created") >= local)


def test_order_by_variants(sandbox, http):
    got = search_all(http, sandbox, "project = OPS ORDER BY updated DESC", "updated")
    stamps = [datetime.strptime(i["fields"]["updated"], "%Y-%m-%dT%H:%M:%S.%f%z") for i in got]
    assert stamps == sorted(stamps, reverse=True)
    by_key = [i["key"] for i in search_all(http, sandbox, "project = OPS ORDER BY key ASC")]
    assert by_key == sorted(by_key, key=lambda k: int(k.split("-")[1]))


@pytest.mark.parametrize("jql, fragment", [
    ("project = APP AND", "Error in the JQL Query: Expecting a field name"),
    ("project APP", "Error in the JQL Query: Expecting operator but got 'APP'"),
    ("project = APP ORDER created", "Error in the JQL Query: Expecting 'BY'"),
    ("project in (APP, OPS", "Error in the JQL Query"),
    ("(project = APP", "Error in the JQL Query: Expecting ')'"),
    ("project = AND", "Error in the JQL Query: Expecting either a value, list or function but got 'AND'"),
    ("nosuchfield = 1", "Field 'nosuchfield' does not exist or you do not have permission to view it."),
    ("project = NOPE", "The value 'NOPE' does not exist for the field 'project'."),
    ("key = APP-99999", "An issue with key 'APP-99999' does not exist for field 'key'."),
    ("project > APP", "The operator '>' is not supported by the 'project' field."),
    ('created >= "yesterday"', "Date value 'yesterday' for field 'created' is invalid."),
    ("sprint in fooSprints()", "Unable to find JQL function 'foosprints()'."),
    ("project = APP ORDER BY bogus", "Not able to sort using field 'bogus'."),
])
def test_jql_errors_have_jiras_shape(sandbox, http, jql, fragment):
    r = http.get(f"{sandbox.urls['jira']}/rest/api/3/search/jql", params={"jql": jql})
    assert r.status_code == 400
    body = r.json()
    assert body["errors"] == {} and fragment in body["errorMessages"][0], body


def test_expand_names_schema_changelog_and_properties(fresh, http):
    base = fresh.urls["jira"]
    http.put(f"{base}/rest/api/2/issue/APP-100/properties/okrsync.status", json={"status": "on_track"})
    r = http.post(f"{base}/rest/api/3/search/jql", json={
        "jql": "key = APP-100", "fields": ["summary", "status"], "expand": "names,schema,changelog",
        "properties": ["okrsync.status"]}).json()
    assert r["names"] == {"summary": "Summary", "status": "Status"} and r["schema"]["status"]["type"] == "status"
    issue = r["issues"][0]
    assert issue["properties"] == {"okrsync.status": {"status": "on_track"}}
    items = [it for h in issue["changelog"]["histories"] for it in h["items"]]
    assert items and items[0]["field"] == "status" and items[0]["fromString"] == "To Do"


# -- write-back ------------------------------------------------------------------------------------------------
def test_comments_post_list_edit(fresh, http):
    base = f"{fresh.urls['jira']}/rest/api/2/issue/OKR-12"
    before = fresh.world.jira_issue("OKR-12").updated
    posted = http.post(f"{base}/comment", json={"body": "<!-- okrsync:KR1 --> on track"})
    assert posted.status_code == 201
    cid = posted.json()["id"]
    edited = http.put(f"{base}/comment/{cid}", json={"body": "<!-- okrsync:KR1 --> at risk"})
    assert edited.status_code == 200 and edited.json()["body"].endswith("at risk")
    listing = http.get(f"{base}/comment").json()
    assert (listing["total"], listing["startAt"], [c["id"] for c in listing["comments"]]) == (1, 0, [cid])
    assert fresh.world.jira_comments("OKR-12")[0]["body"].endswith("at risk")
    assert fresh.world.jira_issue("OKR-12").updated >= before
    assert http.post(f"{base}/comment", json={"body": ""}).json()["errors"] == {
        "comment": "Comment body can not be empty!"}
    assert http.put(f"{base}/comment/999999", json={"body": "x"}).status_code == 404
    assert [w["action"] for w in fresh.world.writes("jira")] == ["comment", "comment_edit"]


def test_properties_put_get(fresh, http):
    url = f"{fresh.urls['jira']}/rest/api/2/issue/OKR-3/properties/okrsync.status"
    assert http.get(url).status_code == 404
    assert http.put(url, json={"kr": "KR2", "score": 0.4}).status_code == 201
    assert http.put(url, json={"kr": "KR2", "score": 0.5}).status_code == 200
    assert http.get(url).json() == {"key": "okrsync.status", "value": {"kr": "KR2", "score": 0.5}}
    assert fresh.world.jira_property("OKR-3", "okrsync.status") == {"kr": "KR2", "score": 0.5}
    keys_ = http.get(url.rsplit("/", 1)[0]).json()["keys"]
    assert [k["key"] for k in keys_] == ["okrsync.status"]


def test_issue_edit_fields_and_errors(fresh, http):
    url = f"{fresh.urls['jira']}/rest/api/2/issue/OKR-2"
    r = http.put(url, params={"notifyUsers": "false"},
                 json={"fields": {"customfield_10050": 62.5}, "update": {"labels": [{"add": "okr-at-risk"}]}})
    assert r.status_code == 204 and r.content == b""
    issue = http.get(url, params={"fields": "customfield_10050,labels"}).json()
    assert issue["fields"] == {"customfield_10050": 62.5, "labels": ["okr-at-risk"]}
    assert fresh.world.jira_fields("OKR-2") == {"customfield_10050": 62.5}
    bad = http.put(url, json={"fields": {"customfield_99999": 1, "status": "Done"}})
    assert bad.status_code == 400 and set(bad.json()["errors"]) == {"customfield_99999", "status"}
    assert http.put(url, json={"fields": {"customfield_10050": "lots"}}).json()["errors"] == {
        "customfield_10050": "Operation value must be a number"}
    assert http.get(f"{fresh.urls['jira']}/rest/api/2/issue/NOPE-1").status_code == 404


def test_required_token(http):
    with Sandbox(seed=1, scale=50, now=NOW, require_token="s3cret") as sb:
        url = f"{sb.urls['jira']}/rest/api/2/myself"
        assert http.get(url, auth=("bot@acme.io", "wrong")).status_code == 401
        assert http.get(url).status_code == 401
        assert http.get(url, auth=("bot@acme.io", "s3cret")).status_code == 200
        assert http.get(url, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert http.get(url, auth=("x", "wrong")).json()["errorMessages"]


def test_server_info_and_myself(sandbox, http):
    info = http.get(f"{sandbox.urls['jira']}/rest/api/2/serverInfo").json()
    assert (info["deploymentType"], info["versionNumbers"][0], info["baseUrl"]) == (
        "Cloud", 1001, sandbox.urls["jira"])
    me = http.get(f"{sandbox.urls['jira']}/rest/api/3/myself").json()
    assert me["accountId"] and me["timeZone"] == "Europe/Berlin"
