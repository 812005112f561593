"""The simulators serve the field paths our connectors read with the real JSON types and time formats."""

from __future__ import annotations

import json
import re

import pytest

from okrsync.sandbox import Sandbox

from .conftest import (
    FIXTURES,
    NOW,
    PD_HEADERS,
    SN_AUTH,
    assert_same_shape,
    devlake_rows,
    har_entries,
    har_header,
    json_type,
    pygithub,
)

JIRA_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d{4}$")
GH_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
SN_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
PD_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
SPRINT_STRING = re.compile(r"^com\.atlassian\.greenhopper\.service\.sprint\.Sprint@[0-9a-f]+\[id=\d+,rapidViewId=\d+,"
                           r"state=[A-Z]+,name=[^,]+,startDate=[^,]+,endDate=[^,]+,completeDate=[^,]+,")

JIRA_PATHS = [
    "id", "key", "self", "fields.summary", "fields.status.id", "fields.status.name", "fields.status.statusCategory.id",
    "fields.status.statusCategory.key", "fields.status.statusCategory.name", "fields.status.statusCategory.colorName",
    "fields.issuetype.id", "fields.issuetype.name", "fields.issuetype.subtask", "fields.issuetype.hierarchyLevel",
    "fields.project.id", "fields.project.key", "fields.project.name", "fields.created", "fields.updated",
    "fields.resolutiondate", "fields.resolution.name", "fields.labels", "fields.components",
    "fields.priority.id", "fields.priority.name", "fields.assignee.accountId", "fields.assignee.displayName",
    "fields.assignee.timeZone", "fields.statuscategorychangedate", "fields.customfield_10020[].id",
    "fields.customfield_10020[].name", "fields.customfield_10020[].state", "fields.customfield_10020[].boardId",
    "fields.customfield_10020[].startDate", "fields.customfield_10020[].endDate",
    "fields.customfield_10020[].completeDate", "fields.customfield_10024", "fields.customfield_10016",
]
PARENT_PATHS = ["fields.parent.id", "fields.parent.key", "fields.parent.self", "fields.parent.fields.summary",
                "fields.parent.fields.status.statusCategory.key", "fields.parent.fields.issuetype.name",
                "fields.parent.fields.priority.name", "fields.customfield_10014"]


def _jira_issue(http, sb: Sandbox, jql: str) -> dict:
    r = http.get(f"{sb.urls['jira']}/rest/api/3/search/jql", params={"jql": jql, "fields": "*all", "maxResults": 1})
    assert r.status_code == 200, r.text
    return r.json()["issues"][0]


def test_jira_cloud_issue_matches_recorded_cloud_issue(sandbox, http):
    real = devlake_rows("jira/_raw_jira_api_issues.csv")
    ours = _jira_issue(http, sandbox, "project = APP AND statusCategory = Done AND sprint is not EMPTY "
                                      "AND sprint in closedSprints() AND assignee is not EMPTY ORDER BY created ASC")
    done_real = next(i for i in real if i["fields"]["resolution"] and i["fields"]["customfield_10020"])
    assert_same_shape(done_real, ours, JIRA_PATHS)
    child = _jira_issue(http, sandbox, "parent = APP-100 ORDER BY created ASC")
    child_real = next(i for i in real if i["fields"].get("parent"))
    assert_same_shape(child_real, child, PARENT_PATHS)
    for value in (ours["fields"]["created"], ours["fields"]["updated"], ours["fields"]["resolutiondate"],
                  done_real["fields"]["created"]):
        assert JIRA_TIME.match(value), value


def test_jira_times_use_the_profile_zone_with_varying_offsets(sandbox, http):
    r = http.get(f"{sandbox.urls['jira']}/rest/api/3/search/jql",
                 params={"jql": "project in (APP, OPS)", "fields": "created", "maxResults": 100})
    offsets = {i["fields"]["created"][-5:] for i in r.json()["issues"]}
    assert offsets == {"+0100", "+0200"}  # Europe/Berlin: summer and winter time both occur in the history
    me = http.get(f"{sandbox.urls['jira']}/rest/api/2/myself").json()
    assert me["timeZone"] == "Europe/Berlin"


def test_jira_legacy_story_points_sometimes_arrive_as_numeric_strings(sandbox, http):
    """Like the recorded Cloud payloads ("-1"): the connector must accept numbers and numeric strings."""
    r = http.get(f"{sandbox.urls['jira']}/rest/api/3/search/jql",
                 params={"jql": "project = OPS", "fields": "customfield_10024", "maxResults": 100})
    kinds = {json_type(i["fields"]["customfield_10024"]) for i in r.json()["issues"]}
    assert {"number", "string"} <= kinds
    real_kinds = {json_type(i["fields"]["customfield_10024"]) for i in devlake_rows("jira/_raw_jira_api_issues.csv")}
    assert {"number", "string"} <= real_kinds


def test_jira_field_catalogue_matches_real_entries(sandbox, http):
    dc_fields = json.loads(har_entries("jira/stepsDataCenter.recording.har")[4]["response"]["content"]["text"])
    cloud = http.get(f"{sandbox.urls['jira']}/rest/api/2/field").json()
    real_custom = next(f for f in dc_fields if f["custom"])
    ours_custom = next(f for f in cloud if f["id"] == "customfield_10016")
    assert set(real_custom) | {"key", "untranslatedName"} == set(ours_custom)
    assert_same_shape(real_custom, ours_custom, ["id", "name", "custom", "orderable", "navigable", "searchable",
                                                 "clauseNames", "schema.type", "schema.custom", "schema.customId"])
    assert ours_custom["schema"]["custom"] == "com.pyxis.greenhopper.jira:jsw-story-points"
    sprint = next(f for f in cloud if f["name"] == "Sprint")
    assert (sprint["id"], sprint["schema"]["custom"]) == ("customfield_10020", "com.pyxis.greenhopper.jira:gh-sprint")


def test_jira_data_center_matches_recorded_server(http):
    entries = har_entries("jira/stepsDataCenter.recording.har")
    real_info = json.loads(entries[0]["response"]["content"]["text"])
    real_fields = json.loads(entries[4]["response"]["content"]["text"])
    real_search = json.loads(entries[5]["response"]["content"]["text"])
    with Sandbox(seed=3, scale=200, now=NOW, jira_mode="server") as sb:
        base = sb.urls["jira"]
        info = http.get(f"{base}/rest/api/2/serverInfo").json()
        assert info["deploymentType"] == "Server" and set(real_info) <= set(info)
        fields = http.get(f"{base}/rest/api/2/field").json()
        assert all("key" not in f for f in fields)  # Data Center's catalogue has no `key`
        assert {f["name"] for f in real_fields} >= {"Sprint", "Epic Link", "Story Points"}
        for name in ("Sprint", "Epic Link", "Story Points"):
            assert [f["id"] for f in fields if f["name"] == name] == [f["id"] for f in real_fields if f["name"] == name]
        body = {"jql": "project = APP AND sprint is not EMPTY", "startAt": 0, "maxResults": 5}
        ours = http.post(f"{base}/rest/api/2/search", json=body).json()
        assert set(real_search) == set(ours)
        assert_same_shape(real_search["issues"][0], ours["issues"][0],
                          ["id", "key", "self", "fields.status.statusCategory.key", "fields.issuetype.name",
                           "fields.created", "fields.updated", "fields.customfield_10105", "fields.priority.name"])
        real_sprint = next(i for i in real_search["issues"] if i["fields"]["customfield_10105"])
        assert SPRINT_STRING.match(real_sprint["fields"]["customfield_10105"][0])
        assert SPRINT_STRING.match(ours["issues"][0]["fields"]["customfield_10105"][0])
        assert JIRA_TIME.match(ours["issues"][0]["fields"]["created"])


# -- GitHub -----------------------------------------------------------------------------------------------------
def _gh(http, sb: Sandbox, path: str, **params) -> list | dict:
    r = http.get(f"{sb.urls['github']}{path}", params=params)
    assert r.status_code == 200, r.text
    return r.json()


ISSUE_PATHS = ["id", "node_id", "number", "title", "state", "state_reason", "url", "html_url", "user.login",
               "labels[].name", "labels[].id", "created_at", "updated_at", "closed_at", "body", "comments", "assignees",
               "author_association", "locked"]
PULL_PATHS = ["id", "number", "state", "title", "html_url", "url", "created_at", "updated_at", "closed_at",
              "merged_at", "merge_commit_sha", "draft", "head.ref", "head.sha", "head.label", "base.ref", "base.sha",
              "user.login", "labels", "body", "_links.html.href"]


def test_github_issue_and_pull_match_recorded(sandbox, http):
    real_issue = pygithub("Issue.setUp.txt")[1]["body"]
    ours = next(i for i in _gh(http, sandbox, "/repos/acme/web/issues", state="closed", per_page=100)
                if "pull_request" not in i and i["state_reason"])
    assert_same_shape(real_issue, ours, ISSUE_PATHS)
    assert set(real_issue) - {"closed_by", "type", "issue_dependencies_summary"} <= set(ours)
    real_pull = next(x["body"] for x in pygithub("PullRequest.setUp.txt") if x["path"].endswith("/pulls/31"))
    merged = next(p for p in _gh(http, sandbox, "/repos/acme/web/pulls", state="closed", per_page=100)
                  if p["merged_at"])
    assert_same_shape(real_pull, merged, PULL_PATHS)
    for v in (ours["created_at"], ours["closed_at"], merged["merged_at"], real_issue["created_at"]):
        assert GH_TIME.match(v), v


def test_github_issue_list_marks_pull_requests(sandbox, http):
    items = _gh(http, sandbox, "/repos/acme/api/issues", state="all", per_page=100)
    prs = [i for i in items if "pull_request" in i]
    assert prs and len(prs) < len(items)
    assert set(prs[0]["pull_request"]) == {"url", "html_url", "diff_url", "patch_url", "merged_at"}


def test_github_deployments_statuses_releases_runs_match_recorded(sandbox, http):
    dep_real = pygithub("Repository.testGetDeployments.txt")[0]["body"][0]
    deps = _gh(http, sandbox, "/repos/acme/web/deployments", environment="production")
    assert_same_shape(dep_real, deps[0], ["id", "node_id", "sha", "ref", "task", "environment", "created_at",
                                          "updated_at", "statuses_url", "creator.login", "production_environment",
                                          "transient_environment", "original_environment", "payload"])
    st_real = pygithub("DeploymentStatus.testGetStatuses.txt")[0]["body"][0]
    statuses = _gh(http, sandbox, f"/repos/acme/web/deployments/{deps[-1]['id']}/statuses")
    assert_same_shape(st_real, statuses[0], ["id", "state", "created_at", "updated_at", "environment", "description",
                                             "target_url", "log_url", "environment_url", "deployment_url"])
    rel_real = pygithub("GitRelease.testGetReleaseByTag.txt")[1]["body"]
    releases = _gh(http, sandbox, "/repos/acme/web/releases")
    assert_same_shape(rel_real, releases[0], ["id", "tag_name", "name", "draft", "prerelease", "created_at",
                                              "published_at", "target_commitish", "html_url", "author.login"])
    runs_real = pygithub("Workflow.testGetRunsWithNoArguments.txt")[0]["body"]
    runs = _gh(http, sandbox, "/repos/acme/web/actions/workflows/deploy.yml/runs")
    assert set(runs_real) == set(runs)
    assert_same_shape(runs_real["workflow_runs"][0], runs["workflow_runs"][0],
                      ["id", "head_sha", "head_branch", "status", "conclusion", "created_at", "updated_at",
                       "event", "run_number", "workflow_id", "html_url", "head_commit.id", "head_commit.timestamp",
                       "repository.full_name"])


def test_github_compare_commits_match_recorded_commit(sandbox, http):
    real = pygithub("PullRequest.testGetCommits.txt")[0]["body"][0]
    commits = sandbox.world.github_commits("acme/api")
    out = _gh(http, sandbox, f"/repos/acme/api/compare/{commits[-6]['sha']}...{commits[-1]['sha']}")
    assert (out["status"], out["ahead_by"], out["total_commits"], len(out["commits"])) == ("ahead", 5, 5, 5)
    assert_same_shape(real, out["commits"][0], ["sha", "commit.author.date", "commit.committer.date",
                                                "commit.message", "parents[].sha", "url", "author.login"])
    assert GH_TIME.match(out["commits"][0]["commit"]["author"]["date"])


def test_github_rate_limit_document_and_headers_match_recorded(sandbox, http):
    real = pygithub("RateLimiting.testGetRateLimit.txt")[0]
    r = http.get(f"{sandbox.urls['github']}/rate_limit")
    assert_same_shape(real["body"], r.json(), ["resources.core.limit", "resources.core.used",
                                               "resources.core.remaining", "resources.core.reset", "rate.limit",
                                               "rate.remaining", "rate.reset", "rate.used"])
    for name in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "X-RateLimit-Used",
                 "X-RateLimit-Resource"):
        assert name in real["headers"] and name in r.headers
    etag_real = pygithub("Repository.testGetDeployments.txt")[0]["headers"]["ETag"]
    etag = http.get(f"{sandbox.urls['github']}/repos/acme/web/deployments").headers["ETag"]
    assert etag_real.startswith('W/"') and etag.startswith('W/"') and etag.endswith('"')


def test_github_link_header_has_the_real_format(sandbox, http):
    real = pygithub("Repository.testGetIssuesEvents.txt")[0]["headers"]["link"]
    ours = http.get(f"{sandbox.urls['github']}/repos/acme/web/issues", params={"state": "all"}).headers["Link"]
    pattern = re.compile(r'^<[^>]+[?&]page=\d+>; rel="next", <[^>]+[?&]page=\d+>; rel="last"$')
    assert pattern.match(real) and pattern.match(ours)


# -- ServiceNow -------------------------------------------------------------------------------------------------
SN_FIELDS = ["number", "sys_id", "short_description", "state", "incident_state", "priority", "impact", "urgency",
             "severity", "opened_at", "resolved_at", "closed_at", "sys_created_on", "sys_updated_on", "active",
             "business_service", "business_service.link", "business_service.value", "cmdb_ci.value",
             "assignment_group.value", "assigned_to.value", "reassignment_count", "reopen_count", "made_sla",
             "calendar_stc", "business_stc", "close_code", "contact_type", "category", "sys_mod_count"]


def test_servicenow_incident_matches_recorded(sandbox, http):
    real_all = json.loads((FIXTURES / "servicenow" / "incident_table_response.2024-04-16.json").read_text())["result"]
    real = next(x for x in real_all if x["resolved_at"] and x["business_service"] and x["closed_at"])
    r = http.get(f"{sandbox.urls['servicenow']}/api/now/table/incident",
                 params={"sysparm_query": "state=7^ORDERBYopened_at", "sysparm_limit": 1}, auth=SN_AUTH)
    ours = r.json()["result"][0]
    assert_same_shape(real, ours, SN_FIELDS)
    assert set(ours) <= set(real)  # no invented fields
    for k, v in ours.items():
        assert isinstance(v, (str, dict)), k  # every value a string (references: {link, value})
        if real[k] and v:
            assert type(real[k]) is type(v), k
    for v in (ours["opened_at"], ours["closed_at"], real["opened_at"]):
        assert SN_TIME.match(v), v


def test_servicenow_paging_headers_have_the_real_format(sandbox, http):
    entry = har_entries("servicenow/step-incidents.recording.har")[0]
    real_link = har_header(entry, "link")
    r = http.get(f"{sandbox.urls['servicenow']}/api/now/table/incident", params={"sysparm_limit": 20}, auth=SN_AUTH)
    fmt = re.compile(r'^<[^>]+sysparm_offset=\d+>;rel="first",<[^>]+sysparm_offset=\d+>;rel="next",'
                     r'<[^>]+sysparm_offset=\d+>;rel="last"$')
    assert fmt.match(real_link) and fmt.match(r.headers["Link"]), (real_link, r.headers["Link"])
    assert har_header(entry, "x-total-count") and int(r.headers["X-Total-Count"]) == len(sandbox.world.sn)


# -- PagerDuty --------------------------------------------------------------------------------------------------
PD_PATHS = ["id", "type", "incident_number", "title", "status", "urgency", "created_at", "updated_at", "resolved_at",
            "last_status_change_at", "incident_key", "html_url", "self", "summary", "service.id", "service.summary",
            "service.type", "priority.id", "priority.name", "priority.summary", "assignments[].at",
            "assignments[].assignee.id", "assignments[].assignee.summary", "escalation_policy.id", "teams",
            "acknowledgements", "first_trigger_log_entry.id", "alert_counts.all", "last_status_change_by.type"]


def test_pagerduty_incident_and_log_entries_match_recorded(sandbox, http):
    lines = (FIXTURES / "pagerduty" / "airbyte_expected_records.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    real = next(r["data"] for r in records if r["stream"] == "incidents")
    base = sandbox.urls["pagerduty"]
    r = http.get(f"{base}/incidents", headers=PD_HEADERS,
                 params={"date_range": "all", "statuses[]": "triggered", "limit": 1})
    ours = r.json()["incidents"][0]
    assert_same_shape(real, ours, PD_PATHS)
    assert PD_TIME.match(ours["created_at"]) and PD_TIME.match(real["created_at"])
    devlake = devlake_rows("pagerduty/_raw_pagerduty_incidents.csv")
    acked_real = next(x for x in devlake if x["acknowledgements"])
    acked = http.get(f"{base}/incidents", headers=PD_HEADERS,
                     params={"date_range": "all", "statuses[]": "acknowledged", "limit": 1}).json()["incidents"][0]
    assert_same_shape(acked_real, acked, ["acknowledgements[].at", "acknowledgements[].acknowledger.id",
                                          "acknowledgements[].acknowledger.summary"])
    entry_real = next(e for e in devlake[0]["log_entries"] if e["type"] == "acknowledge_log_entry")
    entries = http.get(f"{base}/incidents/{acked['id']}/log_entries", headers=PD_HEADERS,
                       params={"is_overview": "true", "time_zone": "UTC"}).json()["log_entries"]
    ack = next(e for e in entries if e["type"] == "acknowledge_log_entry")
    assert_same_shape(entry_real, ack, ["id", "type", "summary", "self", "created_at", "agent.id", "agent.type",
                                        "agent.summary", "channel.type", "incident.id", "teams", "event_details"])
    assert PD_TIME.match(entry_real["created_at"]) and PD_TIME.match(ack["created_at"])


@pytest.mark.parametrize("system", ["jira", "github", "servicenow", "pagerduty"])
def test_error_bodies_have_the_systems_shape(sandbox, http, system):
    url = {"jira": "/rest/api/2/issue/NOPE-1", "github": "/repos/acme/nope",
           "servicenow": "/api/now/table/nope", "pagerduty": "/incidents/QNOPE"}[system]
    r = http.get(sandbox.urls[system] + url, auth=SN_AUTH if system == "servicenow" else None,
                 headers=PD_HEADERS if system == "pagerduty" else None)
    body = r.json()
    if system == "jira":
        assert r.status_code == 404 and set(body) == {"errorMessages", "errors"}
    elif system == "github":
        assert r.status_code == 404 and body["message"] == "Not Found" and "documentation_url" in body
    elif system == "servicenow":
        assert r.status_code == 400 and body["status"] == "failure" and set(body["error"]) == {"message", "detail"}
    else:
        assert r.status_code == 404 and set(body["error"]) >= {"message", "code"}
