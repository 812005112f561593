"""Jira contract checks shared by the Cloud and the Data Center modules (collected through their Test* subclasses).

Every endpoint okrsync's Jira connector and writer call (connectors/jira/client.py, writer.py), through the `jira`
library instead of okrsync's HttpClient:

    GET  /rest/api/2/serverInfo                      deployment detection
    GET  /rest/api/2/field                           custom field discovery (story points, sprint, epic link)
    GET  /rest/api/2/myself                          whose comments are ours; `okrsync validate`
    GET  /rest/api/2/project/{key}                   service-desk projects get internal comments
    POST /rest/api/3/search/jql (Cloud)              issues and JQL membership, nextPageToken paging
    POST /rest/api/2/search (Data Center)            the same by startAt
    GET  /rest/api/2/issue/{key}/comment             find our comment (startAt, maxResults, orderBy)
    POST /rest/api/2/issue/{key}/comment             post it (with sd.public.comment on service desks)
    PUT  /rest/api/2/issue/{key}/comment/{id}        keep it up to date
    PUT  /rest/api/2/issue/{key}/properties/{prop}   okrsync.status
    PUT  /rest/api/2/issue/{key}                     a numeric progress field
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import pytest
from jira import JIRA, JIRAError

from okrsync.connectors.jira.client import BASE_FIELDS, discover_fields
from okrsync.sandbox import Sandbox
from okrsync.sandbox.jira_render import KR_PROGRESS

from .conftest import jira_time

KR_ISSUE = "OKR-1"  # where the workspace examples write back
PROPERTY = "okrsync.status"
_LEGACY_SPRINT_NAME = re.compile(r"[\[,]name=([^,\]]*)")


def by_key(sandbox: Sandbox) -> dict[str, dict[str, Any]]:
    return {v["key"]: v for v in sandbox.world.jira_issues()}


class JiraContract:
    MODE: str  # "cloud" or "server"
    DEPLOYMENT: str  # serverInfo deploymentType
    FIELDS: ClassVar[dict[str, tuple[str, ...]]]  # what discover_fields must find in GET /field
    SPRINT: str  # the sprint field id

    # -- clients ------------------------------------------------------------------------------------------------
    @classmethod
    def connect(cls, sandbox: Sandbox, **kw: Any) -> JIRA:
        raise NotImplementedError

    @pytest.fixture(scope="class")
    @classmethod
    def jira(cls, sandbox: Sandbox) -> JIRA:
        return cls.connect(sandbox)

    def search_all(self, jira: JIRA, sandbox: Sandbox, jql: str, fields: list[str]) -> list[Any]:
        """Every issue of a JQL, by the search this deployment serves, POST like okrsync."""
        raise NotImplementedError

    def user_ids(self, user: Any) -> set[str]:
        raw = user.raw if hasattr(user, "raw") else user
        return {str(raw[k]) for k in ("accountId", "key", "name") if raw.get(k)}

    # -- instance -----------------------------------------------------------------------------------------------
    def test_server_info_drives_deployment_detection(self, jira: JIRA, sandbox: Sandbox) -> None:
        info = jira.server_info()
        assert info["deploymentType"] == self.DEPLOYMENT
        assert jira._is_cloud is (self.MODE == "cloud")
        assert isinstance(jira._version, tuple) and all(isinstance(n, int) for n in jira._version)
        assert jira_time(info["serverTime"]) is not None  # parses as a Jira timestamp
        assert info["baseUrl"] == sandbox.urls["jira"]

    def test_fields_catalogue_discovers_custom_fields(self, jira: JIRA) -> None:
        fields = jira.fields()
        assert all(isinstance(f["id"], str) and isinstance(f["name"], str) for f in fields)
        fmap = discover_fields(fields)
        assert {k: getattr(fmap, k) for k in self.FIELDS} == self.FIELDS
        # the library's JQL-name -> id cache is built from clauseNames
        assert jira._fields_cache["Sprint"] == self.SPRINT
        assert jira._fields_cache["KR Progress"] == KR_PROGRESS
        progress = next(f for f in fields if f["id"] == KR_PROGRESS)
        assert progress["schema"]["type"] == "number"  # the writer picks numeric fields by name

    def test_myself_and_project(self, jira: JIRA, sandbox: Sandbox) -> None:
        me = jira.myself()
        assert me["displayName"] == "okrsync bot"
        assert self.user_ids(me)
        project = jira.project("OKR")
        assert project.key == "OKR" and project.projectTypeKey == "software"

    # -- search -------------------------------------------------------------------------------------------------
    def wanted_fields(self) -> list[str]:
        return [*BASE_FIELDS, *self.FIELDS["story_points"], self.SPRINT, *self.FIELDS["epic_link"]]

    def test_search_returns_every_issue_with_typed_fields(self, jira: JIRA, sandbox: Sandbox) -> None:
        world = by_key(sandbox)
        issues = self.search_all(jira, sandbox, "project in (APP, OPS, OKR) ORDER BY created ASC", self.wanted_fields())
        assert len(issues) == len(world) > 250  # several pages
        assert len({i.key for i in issues}) == len(issues) and {i.key for i in issues} == set(world)
        created = [jira_time(i.fields.created) for i in issues]
        assert created == sorted(created)  # ORDER BY created ASC held across pages
        for issue in issues:
            self.check_issue(issue, world[issue.key], world)

    def check_issue(self, issue: Any, view: dict[str, Any], world: dict[str, dict[str, Any]]) -> None:
        f = issue.fields
        assert issue.id == view["id"]
        assert f.summary == view["summary"]
        assert f.project.key == view["project"]
        assert f.issuetype.name == view["type"]
        assert (f.status.name, f.status.statusCategory.key) == (view["status"], view["status_category"])
        assert jira_time(f.created) == view["created"]
        assert jira_time(f.updated) == view["updated"]
        assert jira_time(f.resolutiondate) == view["resolved"]
        assert list(f.labels) == view["labels"]
        assert [c.name for c in f.components] == view["components"]
        assert f.priority.name == view["priority"]
        assert (f.assignee.displayName if f.assignee else None) == view["assignee"]
        if f.assignee:
            assert self.user_ids(f.assignee)
        assert self.sprint_names(getattr(f, self.SPRINT, None)) == view["sprint_names"]
        points = self.points(issue, view)
        assert (None if points is None else float(points)) == view["story_points"]
        self.check_parent(issue, view, world)

    def sprint_names(self, value: Any) -> list[str]:
        raise NotImplementedError

    def points(self, issue: Any, view: dict[str, Any]) -> Any:
        raise NotImplementedError

    def check_parent(self, issue: Any, view: dict[str, Any], world: dict[str, dict[str, Any]]) -> None:
        raise NotImplementedError

    def test_issue_by_key_with_all_fields(self, jira: JIRA, sandbox: Sandbox) -> None:
        world = by_key(sandbox)
        firsts = {v["project"]: k for k, v in reversed(world.items())}  # one issue of each project
        for key in (KR_ISSUE, *firsts.values()):
            issue = jira.issue(key)  # fields=*all
            self.check_issue(issue, world[key], world)
        with pytest.raises(JIRAError) as err:
            jira.issue("APP-999999")
        assert err.value.status_code == 404 and "does not exist" in err.value.text

    # -- write-back ---------------------------------------------------------------------------------------------
    def test_comment_add_list_update(self, jira: JIRA, sandbox: Sandbox) -> None:
        before = len(sandbox.world.jira_comments(KR_ISSUE))
        posted = jira.add_comment(KR_ISSUE, "*KR1 — contract*\nokrsync:KR1 first")
        assert posted.id.isdigit() and posted.body.endswith("first")
        assert self.user_ids(posted.author) == self.user_ids(jira.myself())  # _find_ours matches on these
        created = jira_time(posted.created)
        assert created == sandbox.world.now  # the sandbox's injected now: a fixed clock writes at it
        # the listing okrsync pages through (startAt, maxResults, orderBy=created)
        listed = jira.comments(KR_ISSUE, start_at=0, max_results=5000, order_by="created")
        assert [c.id for c in listed] == [c["id"] for c in sandbox.world.jira_comments(KR_ISSUE)]
        assert len(listed) == before + 1 and listed[-1].id == posted.id
        posted.update(body="*KR1 — contract*\nokrsync:KR1 second")  # PUT, then the library re-reads it (GET)
        assert posted.body.endswith("second")
        again = jira.comment(KR_ISSUE, posted.id)
        assert again.body == posted.body and jira_time(again.updated) >= jira_time(again.created)
        world = {c["id"]: c for c in sandbox.world.jira_comments(KR_ISSUE)}
        assert world[posted.id]["body"] == posted.body
        page = jira._get_json(f"issue/{KR_ISSUE}/comment", params={"startAt": 0, "maxResults": 5000,
                                                                   "orderBy": "created"})
        assert page["total"] == len(page["comments"]) == before + 1 and page["startAt"] == 0

    def test_internal_comment_on_a_service_desk(self, jira: JIRA, sandbox: Sandbox) -> None:
        desks = sandbox.apps["jira"].service_desks  # type: ignore[attr-defined]
        desks.add("OPS")
        try:
            assert jira.project("OPS").projectTypeKey == "service_desk"
            # the body okrsync's writer sends on service desks (the library's is_internal sends the same)
            posted = jira.add_comment("OPS-2", "okrsync:KR9 status", is_internal=True)
            if self.MODE == "cloud":
                assert posted.raw["jsdPublic"] is False  # Cloud's read-only flag for an internal comment
            prop = jira._get_json(f"comment/{posted.id}/properties/sd.public.comment")
            assert prop == {"key": "sd.public.comment", "value": {"internal": True}}
            landed = [w for w in sandbox.world.writes("jira") if w.get("comment_id") == posted.id]
            assert landed and landed[-1]["internal"] is True and landed[-1]["customer_notified"] is False
        finally:
            desks.discard("OPS")

    def test_issue_property_set_get(self, jira: JIRA, sandbox: Sandbox) -> None:
        value = {"kr": "KR1", "status": "on_track", "value": 0.42, "progress": 0.5, "items": 12}
        resp = jira.add_issue_property(KR_ISSUE, PROPERTY, value)
        assert resp.status_code in (200, 201)
        prop = jira.issue_property(KR_ISSUE, PROPERTY)
        assert prop.key == PROPERTY and prop.raw["value"] == value
        assert sandbox.world.jira_property(KR_ISSUE, PROPERTY) == value
        assert jira.add_issue_property(KR_ISSUE, PROPERTY, {**value, "status": "at_risk"}).status_code == 200
        assert jira.issue_property(KR_ISSUE, PROPERTY).raw["value"]["status"] == "at_risk"

    def test_issue_edit_numeric_field(self, jira: JIRA, sandbox: Sandbox) -> None:
        issue = jira.issue(KR_ISSUE, fields=f"summary,{KR_PROGRESS}")
        issue.update(fields={KR_PROGRESS: 42.5})  # PUT /issue/{key} (204), then the library re-reads it
        assert getattr(issue.fields, KR_PROGRESS) == 42.5
        assert sandbox.world.jira_fields(KR_ISSUE)[KR_PROGRESS] == 42.5
        with pytest.raises(JIRAError) as err:  # a non-number: Jira's field error, which the library reports
            issue.update(fields={KR_PROGRESS: "forty"})
        assert err.value.status_code == 400 and "number" in err.value.text  # the library joins errors' values
        assert KR_PROGRESS in err.value.response.json()["errors"]
        assert sandbox.world.jira_fields(KR_ISSUE)[KR_PROGRESS] == 42.5


def legacy_sprint_names(value: Any) -> list[str]:
    """Data Center's sprint field: 'com.atlassian.greenhopper.service.sprint.Sprint@1a2b[id=42,...,name=S 1,...]'."""
    out = []
    for text in value or []:
        m = _LEGACY_SPRINT_NAME.search(text)
        assert m, text
        out.append(m.group(1))
    return out
