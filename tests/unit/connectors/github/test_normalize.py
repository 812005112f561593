"""Pure payload -> record normalizers, table-driven, on synthetic and on real recorded GitHub payloads."""

from datetime import datetime, timezone

import pytest

from okrsync.connectors.github.normalize import (
    deployment_result,
    is_pull_request,
    normalize_deployment,
    normalize_issue,
    normalize_pull,
    normalize_release,
    normalize_run,
)
from okrsync.domain.records import RecordError

from .support import devlake_pulls, replay


def t(text):
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


BASE_ISSUE = {"id": 77, "number": 3, "title": "Fix login", "state": "open", "created_at": "2026-10-01T08:00:00Z",
              "updated_at": "2026-10-02T09:30:00Z", "closed_at": None, "labels": [{"name": "bug"}, {"name": "kr:KR1"}],
              "assignee": None, "assignees": [{"login": "ann"}, {"login": "bob"}],
              "html_url": "https://github.com/acme/web/issues/3"}


@pytest.mark.parametrize("patch, expected", [
    ({}, dict(status="open", status_category="todo", resolved=None, assignee="ann", type=None)),
    ({"state": "closed", "closed_at": "2026-10-05T10:00:00Z"},
     dict(status="closed", status_category="done", resolved=t("2026-10-05T10:00:00"))),
    # a reopened issue keeps no resolution even if a stale closed_at came along
    ({"state": "open", "closed_at": "2026-10-05T10:00:00Z"}, dict(status_category="todo", resolved=None)),
    ({"assignee": {"login": "cy"}}, dict(assignee="cy")),
    ({"type": {"id": 1, "name": "Bug"}}, dict(type="Bug")),
    ({"labels": ["plain", {"name": "x"}]}, dict(labels=("plain", "x"))),
])
def test_issue_fields(patch, expected):
    rec = normalize_issue({**BASE_ISSUE, **patch}, "github", "acme/web")
    assert (rec.id, rec.key, rec.project, rec.title, rec.source) == ("77", "acme/web#3", "acme/web", "Fix login", "github")
    assert rec.created == t("2026-10-01T08:00:00") and rec.updated == t("2026-10-02T09:30:00")
    assert rec.url == "https://github.com/acme/web/issues/3" and not rec.is_pull_request
    if "labels" not in patch:
        assert rec.labels == ("bug", "kr:KR1")
    for k, v in expected.items():
        assert getattr(rec, k) == v, k


@pytest.mark.parametrize("patch", [{"created_at": "yesterday"}, {"created_at": None}, {"id": None}, {"state": None}])
def test_issue_unparseable_raises_record_error(patch):
    with pytest.raises(RecordError):
        normalize_issue({**BASE_ISSUE, **patch}, "github", "acme/web")


BASE_PR = {**BASE_ISSUE, "id": 9001, "number": 12, "draft": False, "merged_at": None,
           "merge_commit_sha": "a" * 40, "html_url": "https://github.com/acme/web/pull/12"}


@pytest.mark.parametrize("patch, status, category, resolved, merge_sha", [
    ({}, "open", "in_progress", None, None),
    ({"draft": True}, "open", "in_progress", None, None),
    ({"state": "closed", "closed_at": "2026-10-03T00:00:00Z"}, "closed", "todo", t("2026-10-03T00:00:00"), None),
    ({"state": "closed", "closed_at": "2026-10-03T00:00:01Z", "merged_at": "2026-10-03T00:00:00Z"},
     "merged", "done", t("2026-10-03T00:00:00"), "a" * 40),
])
def test_pull_request_states(patch, status, category, resolved, merge_sha):
    rec = normalize_pull({**BASE_PR, **patch}, "github", "acme/web")
    assert (rec.id, rec.key, rec.is_pull_request) == ("9001", "acme/web#12", True)
    assert (rec.status, rec.status_category, rec.resolved, rec.merge_sha) == (status, category, resolved, merge_sha)
    assert rec.merged_at == (resolved if status == "merged" else None)


@pytest.mark.parametrize("payload, expected", [
    ({"pull_request": {"url": "https://api.github.com/repos/a/b/pulls/1"}}, True),
    ({"pull_request": {"html_url": "https://github.com/a/b/pull/1", "url": None}}, True),
    ({"pull_request": {"html_url": None, "diff_url": None, "patch_url": None}}, False),  # 2012 plain issues
    ({"pull_request": None}, False),
    ({}, False),
])
def test_is_pull_request(payload, expected):
    assert is_pull_request(payload) is expected


S = "2026-10-01T10:0{}:00Z"


@pytest.mark.parametrize("states, expected", [
    ([], ("in_progress", None, False)),
    (["queued"], ("in_progress", None, False)),
    (["queued", "pending", "in_progress"], ("in_progress", None, False)),
    (["queued", "in_progress", "success"], ("success", t("2026-10-01T10:02:00"), True)),
    (["in_progress", "failure"], ("failure", t("2026-10-01T10:01:00"), True)),
    (["in_progress", "error"], ("error", t("2026-10-01T10:01:00"), True)),
    # inactive (superseded by a newer deployment) is not a result: the success stands, with its own time
    (["in_progress", "success", "inactive"], ("success", t("2026-10-01T10:01:00"), True)),
    (["failure", "success"], ("success", t("2026-10-01T10:01:00"), True)),
    (["success", "error"], ("error", t("2026-10-01T10:01:00"), True)),
    # only inactive: never a result, and it will not change any more
    (["inactive"], ("in_progress", None, True)),
    (["pending", "inactive"], ("in_progress", None, True)),
])
def test_deployment_final_status(states, expected):
    statuses = [{"id": 10 + i, "state": s, "created_at": S.format(i)} for i, s in enumerate(states)]
    assert deployment_result(statuses) == expected
    assert deployment_result(list(reversed(statuses))) == expected  # the API lists newest first: order is ours


def test_deployment_status_order_ties_break_by_id():
    same = "2026-10-01T10:00:00Z"
    assert deployment_result([{"id": 2, "state": "failure", "created_at": same},
                              {"id": 1, "state": "success", "created_at": same}])[0] == "failure"


@pytest.mark.parametrize("payload, expected", [
    ({"status": "completed", "conclusion": "success"}, ("success", True)),
    ({"status": "completed", "conclusion": "failure"}, ("failure", True)),
    ({"status": "completed", "conclusion": "timed_out"}, ("failure", True)),
    ({"status": "completed", "conclusion": "startup_failure"}, ("failure", True)),
    ({"status": "in_progress", "conclusion": None}, ("in_progress", False)),
    ({"status": "queued", "conclusion": None}, ("in_progress", False)),
    ({"status": "completed", "conclusion": "cancelled"}, None),
    ({"status": "completed", "conclusion": "skipped"}, None),
    ({"status": "completed", "conclusion": "neutral"}, None),
    ({"status": "completed", "conclusion": "stale"}, None),
    ({"status": "completed", "conclusion": "action_required"}, None),
])
def test_workflow_run_mapping(payload, expected):
    base = {"id": 42, "head_sha": "c" * 40, "head_branch": "main", "created_at": "2026-10-01T10:00:00Z",
            "run_started_at": "2026-10-01T10:00:30Z", "updated_at": "2026-10-01T10:07:00Z",
            "html_url": "https://github.com/acme/web/actions/runs/42"}
    rec = normalize_run({**base, **payload}, "github", "acme/web", "production")
    if expected is None:
        assert rec is None
        return
    status, finished = expected
    assert (rec.id, rec.origin, rec.environment, rec.status) == ("run:42", "workflow_run", "production", status)
    assert (rec.sha, rec.ref, rec.repo) == ("c" * 40, "main", "acme/web")
    assert rec.created == t("2026-10-01T10:00:30")
    assert rec.finished == (t("2026-10-01T10:07:00") if finished else None)


def test_release_mapping():
    rel = {"id": 5, "tag_name": "v1.2.0", "draft": False, "created_at": "2026-10-01T10:00:00Z",
           "published_at": "2026-10-01T12:00:00Z", "target_commitish": "main", "html_url": "https://x/r/5"}
    rec = normalize_release(rel, "github", "acme/web", "release")
    assert (rec.id, rec.origin, rec.environment, rec.status, rec.ref, rec.sha) == (
        "release:5", "release", "release", "success", "v1.2.0", None)
    # created_at is the commit's date: the release happened when published
    assert (rec.created, rec.finished) == (t("2026-10-01T12:00:00"), t("2026-10-01T12:00:00"))
    assert rec.raw["created_at"] == "2026-10-01T10:00:00Z"
    assert normalize_release({**rel, "target_commitish": "d" * 40}, "github", "acme/web", "release").sha == "d" * 40
    assert normalize_release({**rel, "draft": True}, "github", "acme/web", "release") is None


# -- real recorded payloads ----------------------------------------------------------------------
def test_real_issues_list_2012_items_are_issues_not_prs():
    items = replay("Repository.testGetIssues.txt")[0]["body"]
    assert len(items) == 16 and all("pull_request" in i for i in items)
    assert not any(is_pull_request(i) for i in items)
    recs = [normalize_issue(i, "github", "PyGithub/PyGithub") for i in items]
    first = recs[0]
    assert (first.id, first.key, first.title, first.status, first.status_category) == (
        "4769659", "PyGithub/PyGithub#30", "Issue also created by PyGithub", "open", "todo")
    assert first.labels == ("Question",) and first.assignee == "jacquev6"
    assert first.created == t("2012-05-27T05:40:15") and first.resolved is None
    assert first.url == "https://github.com/PyGithub/PyGithub/issues/30"
    by_key = {r.key: r for r in recs}
    assert by_key["PyGithub/PyGithub#3"].updated == t("2012-05-19T06:42:43")


def test_real_single_issue_with_type_closed():
    body = replay("Issue.setUp.txt")[1]["body"]
    rec = normalize_issue(body, "github", "PyGithub/PyGithub")
    assert (rec.id, rec.key, rec.type, rec.status, rec.status_category) == (
        "4653757", "PyGithub/PyGithub#28", "Bug", "closed", "done")
    assert rec.resolved == t("2012-05-26T14:59:33")
    assert rec.labels == ("bug", "question") and rec.assignee == "jacquev6"


def test_real_pulls_2012():
    open_pr = replay("Repository.testGetPulls.txt")[0]["body"][0]
    rec = normalize_pull(open_pr, "github", "PyGithub/PyGithub")
    assert (rec.id, rec.key, rec.status, rec.status_category, rec.merge_sha) == (
        "1436310", "PyGithub/PyGithub#32", "open", "in_progress", None)
    merged = replay("Repository.testGetPullsWithArguments.txt")[0]["body"]
    recs = {r.key: r for r in (normalize_pull(p, "github", "PyGithub/PyGithub") for p in merged)}
    r31 = recs["PyGithub/PyGithub#31"]
    assert (r31.status, r31.status_category, r31.merged_at, r31.resolved) == (
        "merged", "done", t("2012-05-27T10:29:07"), t("2012-05-27T10:29:07"))
    assert r31.merge_sha is None  # 2012 payloads have no merge_commit_sha


def test_real_devlake_pull_requests():
    prs = devlake_pulls()
    assert len(prs) == 50
    recs = {}
    for p in prs:
        rec = normalize_pull(p, "github", "panjf2000/ants")
        recs[rec.key] = rec  # PR #4 is in the dump twice: same record
    assert len(recs) == 49
    r4 = recs["panjf2000/ants#4"]
    assert (r4.id, r4.status, r4.status_category, r4.labels) == ("203756736", "merged", "done", ("enhancement",))
    assert r4.merged_at == t("2018-07-26T02:32:41") and r4.merge_sha == "3ddd58c390b0f928a5782c235f90ad0c9c21312c"
    r8 = recs["panjf2000/ants#8"]  # closed unmerged: not done, resolved at close, its test-merge sha dropped
    assert (r8.status, r8.status_category, r8.resolved, r8.merge_sha, r8.merged_at) == (
        "closed", "todo", t("2018-10-30T00:12:13"), None, None)
    r53 = recs["panjf2000/ants#53"]
    assert r53.assignee == "panjf2000" and r53.labels == ("enhancement", "pending merged")
    r210 = recs["panjf2000/ants#210"]  # merged one second before it was closed: resolved = merged_at
    assert r210.resolved == t("2022-02-14T13:51:40")
    r158 = recs["panjf2000/ants#158"]
    assert (r158.status, r158.status_category, r158.resolved) == ("open", "in_progress", None)
    assert sum(r.status == "merged" for r in recs.values()) == 26
    assert sum(r.status_category == "in_progress" for r in recs.values()) == 4


def test_real_deployment_with_queued_statuses():
    dep = replay("Repository.testGetDeployments.txt")[0]["body"][0]
    statuses = replay("DeploymentStatus.testGetStatuses.txt")[0]["body"]
    rec = normalize_deployment(dep, statuses, "github", "PyGithub/PyGithub")
    assert (rec.id, rec.environment, rec.status, rec.finished) == ("d263877258", "test", "in_progress", None)
    assert (rec.sha, rec.ref, rec.repo) == ("743f5a58b0bce91c4eab744ff7e39dfca9e6e8a5",) * 2 + ("PyGithub/PyGithub",)
    assert rec.created == t("2020-08-26T11:44:53") and rec.url == "https://example.com/deployment.log"
    assert rec.updated == t("2020-08-26T14:32:51")
    # the same real statuses with a success appended
    done = statuses + [{**statuses[0], "id": 388454999, "state": "success", "created_at": "2020-08-26T15:00:00Z"}]
    rec = normalize_deployment(dep, done, "github", "PyGithub/PyGithub")
    assert (rec.status, rec.finished) == ("success", t("2020-08-26T15:00:00"))


def test_real_workflow_runs():
    runs = replay("Workflow.testGetRunsWithNoArguments.txt")[0]["body"]["workflow_runs"]
    recs = [normalize_run(r, "github", "PyGithub/PyGithub", "production") for r in runs]
    assert [(r.id, r.status) for r in recs] == [("run:109950033", "success"), ("run:109168419", "success"),
                                                ("run:108934155", "failure"), ("run:108817672", "success")]
    first = recs[0]  # 2020 runs have no run_started_at: created_at is the start
    assert (first.created, first.finished) == (t("2020-05-20T02:37:57"), t("2020-05-20T02:40:25"))
    assert (first.sha, first.ref) == ("61b610926a023d80486ce1115e7331a4c714cfcb", "master")
    newer = normalize_run(replay("WorkflowRun.setUp.txt")[1]["body"], "github", "PyGithub/PyGithub", "production")
    assert (newer.id, newer.created, newer.finished) == (
        "run:3881497935", t("2023-01-10T08:24:19"), t("2023-01-10T08:28:20"))


def test_real_release():
    rel = replay("GitRelease.testGetReleaseByTag.txt")[1]["body"]
    rec = normalize_release(rel, "github", "EnricoMi/PyGithub", "release")
    assert (rec.id, rec.ref, rec.sha, rec.status) == ("release:197548596", "v1.55", None, "success")
    # a real release: created_at (its commit, 2021) is years before its publication
    assert rel["created_at"] == "2021-04-26T04:43:40Z"
    assert (rec.created, rec.finished) == (t("2025-01-30T11:12:00"), t("2025-01-30T11:12:00"))
