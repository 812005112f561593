"""`jira` (the pycontribs library) against the sandbox's Jira Data Center: POST /rest/api/2/search by startAt."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from jira import JIRA, JIRAError

from okrsync.connectors.jira.client import DC_WINDOW
from okrsync.sandbox import Sandbox

from .conftest import TOKENS, logged
from .jira_contract import JiraContract, by_key, legacy_sprint_names

pytestmark = pytest.mark.e2e
JIRA_MODE = "server"
ALL = "project in (APP, OPS, OKR) ORDER BY created ASC"


class TestJiraDataCenter(JiraContract):
    MODE, DEPLOYMENT = "server", "Server"
    FIELDS: ClassVar[dict[str, tuple[str, ...]]] = {
        "story_points": ("customfield_10107",), "sprint": ("customfield_10105",), "epic_link": ("customfield_10101",)}
    SPRINT = "customfield_10105"

    @classmethod
    def connect(cls, sandbox: Sandbox, **kw: Any) -> JIRA:
        # Data Center: Authorization: Bearer <personal access token>
        return JIRA(sandbox.urls["jira"], token_auth=TOKENS["jira"], max_retries=0, **kw)

    def search_all(self, jira: JIRA, sandbox: Sandbox, jql: str, fields: list[str]) -> list[Any]:
        # maxResults=False: the library pages by startAt up to `total`
        return list(jira.search_issues(jql, maxResults=False, fields=list(fields), use_post=True))

    def sprint_names(self, value: Any) -> list[str]:
        return legacy_sprint_names(value)  # Data Center: greenhopper's legacy strings

    def points(self, issue: Any, view: dict[str, Any]) -> Any:
        return getattr(issue.fields, "customfield_10107", None)

    def check_parent(self, issue: Any, view: dict[str, Any], world: dict[str, dict[str, Any]]) -> None:
        # Data Center links stories to their epic through the Epic Link field (no `parent` field for them)
        epic = view["parent"] if view["parent"] and world[view["parent"]]["type"] == "Epic" else None
        assert getattr(issue.fields, "customfield_10101", None) == epic

    # -- Data Center search -------------------------------------------------------------------------------------
    def test_search_pages_by_start_at(self, jira: JIRA, sandbox: Sandbox) -> None:
        world = by_key(sandbox)
        sandbox.reset_log()
        page = jira.search_issues(ALL, startAt=100, maxResults=50, fields=["summary", "created"], use_post=True)
        assert (page.startAt, page.maxResults, page.total, len(page)) == (100, 50, len(world), 50)
        assert not page.isLast
        everything = jira.search_issues(ALL, startAt=0, maxResults=False, fields=["summary"], use_post=True)
        assert [i.key for i in everything][100:150] == [i.key for i in page]
        pages = 1 + -(-len(world) // 100)  # the slice, then the whole search in the library's batches of 100
        log = logged(sandbox, "jira", lambda e: e["path"] == "/rest/api/2/search", pages)
        assert len(log) == pages and all((e["method"], e["status"]) == ("POST", 200) for e in log)

    def test_search_by_get(self, jira: JIRA, sandbox: Sandbox) -> None:
        issues = jira.search_issues("project = OPS ORDER BY created ASC", maxResults=False, fields="summary,status")
        assert sorted(i.key for i in issues) == sorted(v["key"] for v in sandbox.world.jira_issues("OPS"))
        assert issues.total == len(issues)

    def test_search_window_is_refused_with_a_500(self, jira: JIRA) -> None:
        """Data Center refuses startAt + maxResults past the search platform's window (10,000 by default) with a
        500 "Search limit exceeded" (Atlassian KB "Handling JQL REST API searching exceeding max_result_window");
        okrsync restarts the search by created before reaching it."""
        with pytest.raises(JIRAError) as err:
            jira.search_issues(ALL, startAt=DC_WINDOW - 10, maxResults=50, fields="summary", json_result=True,
                               use_post=True)
        assert err.value.status_code == 500 and "Search limit exceeded" in err.value.text

    def test_permission_errors_are_not_rate_limits(self, jira: JIRA, sandbox: Sandbox) -> None:
        """With Data Center rate limiting on, every answer carries X-RateLimit-* and retry-after (0 while tokens
        are left): a 403 with retry-after: 0 is a permission error, which okrsync reports at once."""
        info = jira._session.get(f"{sandbox.urls['jira']}/rest/api/2/serverInfo")
        assert info.headers["retry-after"] == "0" and int(info.headers["X-RateLimit-Remaining"]) >= 0
        app = sandbox.apps["jira"]
        app.deny("OKR-2")  # type: ignore[attr-defined]
        try:
            with pytest.raises(JIRAError) as err:
                jira.add_issue_property("OKR-2", "okrsync.status", {"status": "on_track"})
            assert err.value.status_code == 403 and err.value.response.headers["retry-after"] == "0"
            with pytest.raises(JIRAError) as err:  # adding a comment answers 400 with Jira's message
                jira.add_comment("OKR-2", "okrsync:KR1")
            assert err.value.status_code == 400 and "permission" in err.value.text.lower()
        finally:
            app.denied.pop("OKR-2", None)  # type: ignore[attr-defined]

    def test_no_cloud_search_on_data_center(self, jira: JIRA) -> None:
        """No /rest/api/3 and no /search/jql on Data Center."""
        with pytest.raises(JIRAError) as err:
            jira._get_json("search/jql", params={"jql": ALL, "maxResults": 1}, use_post=True)
        assert err.value.status_code == 404
