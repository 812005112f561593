"""`jira` (the pycontribs library) against the sandbox's Jira Cloud: /rest/api/3/search/jql with nextPageToken."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
import requests
from jira import JIRA, JIRAError

from okrsync.connectors.jira.client import CLOUD_ID_PAGE, CLOUD_PAGE
from okrsync.sandbox import Sandbox

from .conftest import JIRA_EMAIL, TOKENS, logged
from .jira_contract import JiraContract, by_key

pytestmark = pytest.mark.e2e
JIRA_MODE = "cloud"
ALL = "project in (APP, OPS, OKR) ORDER BY created ASC"


class TestJiraCloud(JiraContract):
    MODE, DEPLOYMENT = "cloud", "Cloud"
    FIELDS: ClassVar[dict[str, tuple[str, ...]]] = {
        "story_points": ("customfield_10016", "customfield_10024"), "sprint": ("customfield_10020",),
        "epic_link": ("customfield_10014",)}
    SPRINT = "customfield_10020"

    @classmethod
    def connect(cls, sandbox: Sandbox, **kw: Any) -> JIRA:
        # Cloud: basic auth with the account's email and an API token
        return JIRA(sandbox.urls["jira"], basic_auth=(JIRA_EMAIL, TOKENS["jira"]), max_retries=0, **kw)

    @pytest.fixture(scope="class")
    @classmethod
    def jira3(cls, sandbox: Sandbox) -> JIRA:
        """The library on REST API 3, where okrsync searches (/rest/api/3/search/jql)."""
        return cls.connect(sandbox, options={"rest_api_version": "3"})

    def search_all(self, jira: JIRA, sandbox: Sandbox, jql: str, fields: list[str]) -> list[Any]:
        # on API 3 like okrsync; maxResults=0: the library follows nextPageToken until it is absent
        v3 = self.connect(sandbox, options={"rest_api_version": "3"})
        return list(v3.enhanced_search_issues(jql, maxResults=0, fields=list(fields), use_post=True))

    def sprint_names(self, value: Any) -> list[str]:
        return [s.name for s in value or []]  # Cloud: sprint objects

    def points(self, issue: Any, view: dict[str, Any]) -> Any:
        # each Cloud project keeps points in its own field (company-managed vs legacy "Story Points")
        return getattr(issue.fields, view["points_field"], None) if view["points_field"] else None

    def check_parent(self, issue: Any, view: dict[str, Any], world: dict[str, dict[str, Any]]) -> None:
        parent = getattr(issue.fields, "parent", None)  # Cloud leaves parent out when there is none
        assert (parent.key if parent else None) == view["parent"]
        if parent:
            assert parent.fields.issuetype.name == world[view["parent"]]["type"]

    # -- Cloud search -------------------------------------------------------------------------------------------
    def test_enhanced_search_pages_by_next_page_token(self, jira3: JIRA, sandbox: Sandbox) -> None:
        world = by_key(sandbox)
        keys, token, pages = [], None, 0
        sandbox.reset_log()
        while True:
            page = jira3.enhanced_search_issues(ALL, nextPageToken=token, maxResults=CLOUD_PAGE,
                                                fields=["summary", "created"], use_post=True)
            pages += 1
            assert 0 < len(page) <= CLOUD_PAGE
            keys += [i.key for i in page]
            token = page.nextPageToken
            if not token:
                break
        assert pages == -(-len(world) // CLOUD_PAGE) and sorted(keys) == sorted(world)
        assert len(set(keys)) == len(keys)
        log = logged(sandbox, "jira", lambda e: e["path"].endswith("/search/jql"), pages)
        assert [(e["method"], e["path"], e["status"]) for e in log] == [
            ("POST", "/rest/api/3/search/jql", 200)] * pages

    def test_enhanced_search_by_get(self, jira3: JIRA, sandbox: Sandbox) -> None:
        """The GET form parses the same (fields as repeated parameters)."""
        issues = jira3.enhanced_search_issues("project = OPS ORDER BY created ASC", maxResults=0,
                                              fields=["summary", "status"])
        assert sorted(i.key for i in issues) == sorted(by_key_project(sandbox, "OPS"))

    def test_id_only_search_is_one_big_page(self, jira3: JIRA, sandbox: Sandbox) -> None:
        """okrsync's JQL membership search: fields=["id"], up to 5,000 ids a page. Sent through the library's
        transport as okrsync sends it (enhanced_search_issues would rename "id" to "issuekey", a clause name)."""
        page = jira3._get_json("search/jql", params={"jql": ALL, "fields": ["id"], "maxResults": CLOUD_ID_PAGE},
                               use_post=True)
        world = by_key(sandbox)
        assert sorted(i["id"] for i in page["issues"]) == sorted(v["id"] for v in world.values())
        assert page["isLast"] is True and "nextPageToken" not in page
        # with fields, a page holds at most 100 issues whatever maxResults asks (okrsync's CLOUD_PAGE)
        page = jira3._get_json("search/jql", params={"jql": ALL, "fields": ["summary"], "maxResults": CLOUD_ID_PAGE},
                               use_post=True)
        assert len(page["issues"]) == CLOUD_PAGE and page["nextPageToken"] and page["isLast"] is False

    def test_bad_jql_is_a_400_with_error_messages(self, jira3: JIRA) -> None:
        with pytest.raises(JIRAError) as err:
            jira3.enhanced_search_issues("project = NOPE AND", maxResults=1, use_post=True)
        assert err.value.status_code == 400 and err.value.text  # errorMessages, which the library joins

    def test_old_search_endpoint_is_gone(self, jira: JIRA) -> None:
        """Cloud removed /rest/api/2|3/search (CHANGE-2046): 410 Gone, which okrsync turns into advice."""
        with pytest.raises(JIRAError) as err:
            jira._get_json("search", params={"jql": ALL, "startAt": 0, "maxResults": 1})
        assert err.value.status_code == 410 and "/rest/api/3/search/jql" in err.value.text

    def test_scoped_token_through_the_api_gateway(self, sandbox: Sandbox) -> None:
        """Scoped API tokens and service accounts call https://api.atlassian.com/ex/jira/<cloudId>/rest/... (the
        site answers them 401): the library, given the gateway URL as its server, reaches every endpoint there."""
        app = sandbox.apps["jira"]
        # (public on a real site; the sandbox asks for the token there too)
        cloud_id = requests.get(f"{sandbox.urls['jira']}/_edge/tenant_info", auth=(JIRA_EMAIL, TOKENS["jira"]),
                                timeout=10).json()["cloudId"]
        app.scoped_tokens.add(TOKENS["jira"])  # type: ignore[attr-defined]
        try:
            with pytest.raises(JIRAError) as err:
                self.connect(sandbox)  # serverInfo on the site
            assert err.value.status_code == 401
            gateway = JIRA(f"{sandbox.urls['jira']}/ex/jira/{cloud_id}", basic_auth=(JIRA_EMAIL, TOKENS["jira"]),
                           max_retries=0, options={"rest_api_version": "3"})
            assert gateway._is_cloud
            issues = gateway.enhanced_search_issues("project = OKR", maxResults=0, fields=["summary"],
                                                    use_post=True)
            assert sorted(i.key for i in issues) == sorted(by_key_project(sandbox, "OKR"))
            assert any(f["id"] == "customfield_10016" for f in gateway.fields())
        finally:
            app.scoped_tokens.discard(TOKENS["jira"])  # type: ignore[attr-defined]


def by_key_project(sandbox: Sandbox, project: str) -> list[str]:
    return [v["key"] for v in sandbox.world.jira_issues(project)]

