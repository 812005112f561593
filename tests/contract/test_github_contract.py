"""PyGithub against the sandbox's GitHub: every endpoint okrsync's GitHub connector and writer call.

    GET    /rate_limit                                     `okrsync validate`
    GET    /repos/{o}/{r}                                  (PyGithub's entry point to the rest)
    GET    /repos/{o}/{r}/issues?state=all&sort=updated&direction=asc&since=   issues stream (PRs included)
    GET    /repos/{o}/{r}/pulls?state=all&sort=updated&direction=desc          pull requests stream
    GET    /repos/{o}/{r}/deployments, /deployments/{id}/statuses             deployments stream
    GET    /repos/{o}/{r}/compare/{base}...{head}?per_page=&page=              commits a deployment shipped
    GET    /repos/{o}/{r}/releases                                             releases stream
    GET    /repos/{o}/{r}/actions/workflows/{file}/runs?created=              deploy workflow runs
    GET    /repos/{o}/{r}/issues/{n}, PATCH (body), POST /labels, DELETE /labels/{name}   write-back
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest
from github import Auth, Github, GithubException, RateLimitExceededException
from github.GithubObject import GithubObject
from github.Requester import Requester

from okrsync.connectors.github.client import PER_PAGE
from okrsync.sandbox import Sandbox
from okrsync.sandbox.world import DEPLOY_WORKFLOW, REPOS

from .conftest import TOKENS, logged, whole_seconds

pytestmark = pytest.mark.e2e
CODE_REPOS = ("acme/web", "acme/api")  # the repositories with commits, deployments and runs
TARGET = ("acme/okrs", 1)  # where the workspace examples write back


@pytest.fixture(scope="module")
def gh(sandbox: Sandbox) -> Iterator[Github]:
    # retries and write throttling off: a drift fails at once; per_page as okrsync asks
    g = Github(base_url=sandbox.urls["github"], auth=Auth.Token(TOKENS["github"]), retry=None,
               seconds_between_requests=None, seconds_between_writes=None, per_page=PER_PAGE)
    yield g
    g.close()


def utc(value: datetime) -> datetime:
    assert value.tzinfo is not None, value  # PyGithub parses the trailing Z into an aware datetime
    return value


def parse_all(obj: Any) -> Any:
    """Read every attribute the payload carries, nested objects too: PyGithub parses lazily and raises
    BadAttributeException when a value has the wrong type (a date it cannot read, a string for an int)."""
    for key in obj._rawData:  # _rawData, not raw_data: that one would fetch the object's url
        if isinstance(getattr(type(obj), key, None), property):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # e.g. `assignee`: "Use assignees instead"
                value = getattr(obj, key)
            for v in value if isinstance(value, list) else [value]:
                if isinstance(v, GithubObject):
                    parse_all(v)
    return obj


def world_items(sandbox: Sandbox, repo: str, kind: str | None = None) -> dict[int, dict[str, Any]]:
    return {v["number"]: v for v in sandbox.world.github_items(repo, kind)}


def test_rate_limit(gh: Github) -> None:
    core = parse_all(gh.get_rate_limit().resources.core)
    assert core.limit == 5000 and 0 <= core.remaining <= core.limit
    assert utc(core.reset) > datetime.now(UTC)
    remaining, limit = gh.rate_limiting  # from the X-RateLimit-* headers of the last answer
    assert limit == 5000 and remaining == core.remaining


@pytest.mark.parametrize("name", sorted(REPOS))
def test_repository(gh: Github, sandbox: Sandbox, name: str) -> None:
    repo = parse_all(gh.get_repo(name))
    world = sandbox.world.repos[name]
    assert (repo.full_name, repo.id, repo.name, repo.owner.login) == (name, REPOS[name], name.split("/")[1], "acme")
    assert repo.default_branch == "main" and repo.private is True
    assert repo.open_issues_count == sum(1 for it in world.items if it.state == "open")
    assert utc(repo.created_at) < utc(repo.updated_at)
    if world.commits:
        assert repo.pushed_at == whole_seconds(sandbox.world.github_commits(name)[-1]["time"])


def check_item(item: Any, view: dict[str, Any]) -> None:
    """An item of GET /issues (an issue or a pull request) against the world."""
    parse_all(item)
    assert (item.number, item.id, item.title, item.state) == (view["number"], view["id"], view["title"], view["state"])
    assert utc(item.created_at) == whole_seconds(view["created"])
    assert item.updated_at == whole_seconds(view["updated"])
    assert item.closed_at == whole_seconds(view["closed"])
    assert [lb.name for lb in item.labels] == view["labels"]
    assert item.user.login and isinstance(item.user.id, int)
    # a plain issue has no pull_request key (reading item.pull_request would make PyGithub fetch the issue)
    assert ("pull_request" in item._rawData) == view["is_pull_request"]
    if view["is_pull_request"]:
        assert item.pull_request.html_url.endswith(f"/pull/{view['number']}")
    assert item.body == view["body"]


@pytest.mark.parametrize("name", sorted(REPOS))
def test_issues_list_every_item(gh: Github, sandbox: Sandbox, name: str) -> None:
    world = world_items(sandbox, name)
    items = list(gh.get_repo(name).get_issues(state="all", sort="updated", direction="asc"))
    assert len(items) == len(world) and {i.number for i in items} == set(world)
    assert [i.updated_at for i in items] == sorted(i.updated_at for i in items)
    for item in items:
        check_item(item, world[item.number])


def test_issues_since(gh: Github, sandbox: Sandbox) -> None:
    since = sandbox.world.period_bounds()["current_start"]
    world = {n: v for n, v in world_items(sandbox, "acme/web").items() if whole_seconds(v["updated"]) >= since}
    assert 0 < len(world) < len(world_items(sandbox, "acme/web"))
    sandbox.reset_log()
    items = list(gh.get_repo("acme/web").get_issues(state="all", sort="updated", direction="asc", since=since))
    assert sorted(i.number for i in items) == sorted(world)
    sent = logged(sandbox, "github", lambda e: e["path"] == "/repos/acme/web/issues")
    assert sent and sent[0]["args"].get("since") in (since.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                                     [since.strftime("%Y-%m-%dT%H:%M:%SZ")])


@pytest.mark.parametrize("name", CODE_REPOS)
def test_pulls(gh: Github, sandbox: Sandbox, name: str) -> None:
    world = world_items(sandbox, name, "pull_request")
    pulls = list(gh.get_repo(name).get_pulls(state="all", sort="updated", direction="desc"))
    assert len(pulls) == len(world) > 0
    assert [p.updated_at for p in pulls] == sorted((p.updated_at for p in pulls), reverse=True)
    merged = 0
    for pull in pulls:
        view = world[pull.number]
        parse_all(pull)
        assert (pull.id, pull.title, pull.state, pull.draft) == (view["id"], view["title"], view["state"],
                                                                 view["draft"])
        assert pull.merged_at == whole_seconds(view["merged_at"])
        assert utc(pull.created_at) == whole_seconds(view["created"])
        if view["merged_at"]:
            merged += 1
            assert pull.merge_commit_sha == view["merge_commit_sha"]
        assert len(pull.head.sha) == 40 and pull.base.ref == "main" and pull.base.repo.full_name == name
    assert merged > 0
    # one pull request (PyGithub's `merged`, which the list leaves out, comes from GET /pulls/{n})
    for view in (next(v for v in world.values() if v["merged_at"]),
                 next(v for v in world.values() if not v["merged_at"])):
        one = parse_all(gh.get_repo(name).get_pull(view["number"]))
        assert one.merged is (view["merged_at"] is not None) and one.merged_at == whole_seconds(view["merged_at"])


@pytest.mark.parametrize("name", CODE_REPOS)
def test_deployments_and_statuses(gh: Github, sandbox: Sandbox, name: str) -> None:
    world = sandbox.world.github_deployments(name)
    deployments = list(gh.get_repo(name).get_deployments())
    assert len(deployments) == len(world) > 0
    newest_first = sorted(world, key=lambda d: (d["created"], d["id"]), reverse=True)
    assert [d.id for d in deployments] == [d["id"] for d in newest_first]
    for dep, view in zip(deployments, newest_first):
        parse_all(dep)
        assert (dep.sha, dep.ref, dep.environment, dep.task) == (view["sha"], view["ref"], view["environment"],
                                                                 "deploy")
        assert utc(dep.created_at) == whole_seconds(view["created"])
        assert dep.creator.login
        statuses = [parse_all(s) for s in dep.get_statuses()]
        expected = list(reversed(view["statuses"]))  # newest first
        assert [(s.id, s.state) for s in statuses] == [(s["id"], s["state"]) for s in expected]
        assert [s.created_at for s in statuses] == [whole_seconds(s["created"]) for s in expected]
        assert all(s.environment == view["environment"] for s in statuses)


@pytest.mark.parametrize("per_page", [30, PER_PAGE])
def test_compare_pages_from_the_earliest_commit(gh: Github, sandbox: Sandbox, per_page: int) -> None:
    commits = sandbox.world.github_commits("acme/web")
    base, head = commits[0]["sha"], commits[-1]["sha"]
    sandbox.reset_log()
    comparison = gh.get_repo("acme/web").compare(base, head, comparison_commits_per_page=per_page)
    assert comparison.status == "ahead" and comparison.total_commits == comparison.ahead_by == len(commits) - 1
    listed = [parse_all(c) for c in comparison.commits]
    assert [c.sha for c in listed] == [c["sha"] for c in commits[1:]]  # oldest first, none lost, none twice
    assert [c.commit.author.date for c in listed] == [whole_seconds(c["time"]) for c in commits[1:]]
    assert comparison.base_commit.sha == base and comparison.merge_base_commit.sha == base
    expected = -(-(len(commits) - 1) // per_page)
    pages = logged(sandbox, "github", lambda e: "/compare/" in e["path"], expected)
    assert len(pages) == expected  # Link rel="next" followed to the end
    assert [e["args"].get("page") for e in pages] == [str(n) for n in range(1, expected + 1)]
    assert all(e["args"].get("per_page") == str(per_page) for e in pages)


def test_compare_between_deployments(gh: Github, sandbox: Sandbox) -> None:
    """What a production deployment shipped: the commits between it and the previous one."""
    shas = [c["sha"] for c in sandbox.world.github_commits("acme/web")]
    prod = sorted((d for d in sandbox.world.github_deployments("acme/web", "production")
                   if d["final_state"] == "success"), key=lambda d: d["created"])
    pairs = [(a["sha"], b["sha"]) for a, b in pairwise(prod) if shas.index(b["sha"]) > shas.index(a["sha"])]
    assert pairs
    base, head = pairs[-1]
    comparison = gh.get_repo("acme/web").compare(base, head)
    assert [c.sha for c in comparison.commits] == shas[shas.index(base) + 1: shas.index(head) + 1]
    with pytest.raises(GithubException) as err:  # okrsync counts an unknown SHA (404/422) as shipping just itself
        gh.get_repo("acme/web").compare(base, "f" * 40).total_commits  # noqa: B018
    assert err.value.status in (404, 422)


@pytest.mark.parametrize("name", CODE_REPOS)
def test_releases(gh: Github, sandbox: Sandbox, name: str) -> None:
    world = {r["id"]: r for r in sandbox.world.github_releases(name)}
    commit_time = {c["sha"]: c["time"] for c in sandbox.world.github_commits(name)}
    releases = list(gh.get_repo(name).get_releases())
    assert {r.id for r in releases} == set(world)
    for rel in releases:
        view = world[rel.id]
        parse_all(rel)
        assert rel.tag_name == view["tag"] and not rel.draft
        assert utc(rel.published_at) == whole_seconds(view["published"])
        # created_at is the release commit's date, not the publication's: okrsync reads published_at
        assert rel.created_at == whole_seconds(min(commit_time.get(view["sha"], view["created"]), view["published"]))
        assert rel.created_at <= rel.published_at
    assert sum(1 for r in releases if r.created_at < r.published_at) > 0 or not releases


@pytest.mark.parametrize("name", CODE_REPOS)
def test_workflow_runs(gh: Github, sandbox: Sandbox, name: str) -> None:
    file, wid, title = DEPLOY_WORKFLOW
    world = {r["id"]: r for r in sandbox.world.github_workflow_runs(name)}
    workflow = parse_all(gh.get_repo(name).get_workflow(file))
    assert (workflow.id, workflow.name, workflow.path) == (wid, title, f".github/workflows/{file}")
    runs = workflow.get_runs()
    assert runs.totalCount == len(world) > 0
    listed = list(runs)
    assert {r.id for r in listed} == set(world)
    for run in listed:
        view = world[run.id]
        parse_all(run)
        assert (run.head_sha, run.status, run.conclusion) == (view["head_sha"], view["status"], view["conclusion"])
        assert utc(run.created_at) == whole_seconds(view["created"]) and run.workflow_id == wid
        assert run.head_commit.sha == view["head_sha"]
    # okrsync's filters: created=>=DAY, and created=A..B when a query reaches the 1,000-run cap
    day = sandbox.world.period_bounds()["current_start"].date()
    expected = {i for i, r in world.items() if r["created"].date() >= day}
    since = workflow.get_runs(created=f">={day.isoformat()}")
    assert since.totalCount == len(expected) and {r.id for r in since} == expected
    end = day + timedelta(days=30)
    window = {i for i, r in world.items() if day <= r["created"].date() <= end}
    assert {r.id for r in workflow.get_runs(created=f"{day.isoformat()}..{end.isoformat()}")} == window


def test_issue_write_back(gh: Github, sandbox: Sandbox) -> None:
    name, number = TARGET
    issue = gh.get_repo(name).get_issue(number)
    check_item(issue, sandbox.world.github_issue(name, number))
    assert issue.update() is False  # the ETag okrsync also sends: unchanged, 304
    new_body = f"{issue.body}\n\n<!-- okrsync:KR1 -->\n### KR1: contract\n<!-- /okrsync:KR1 -->\n"
    issue.edit(body=new_body)  # PATCH
    assert issue.body == new_body and sandbox.world.github_issue(name, number)["body"] == new_body
    issue.add_to_labels("okr: on track")  # POST /labels
    assert "okr: on track" in [lb.name for lb in issue.get_labels()]
    assert "okr: on track" in sandbox.world.github_issue(name, number)["labels"]
    issue.remove_from_labels("okr: on track")  # DELETE /labels/okr%3A%20on%20track
    assert "okr: on track" not in sandbox.world.github_issue(name, number)["labels"]
    with pytest.raises(GithubException) as err:  # already gone: a 404 okrsync ignores
        issue.remove_from_labels("okr: on track")
    assert err.value.status == 404
    assert issue.update() is True  # changed since: a fresh 200
    actions = [w["action"] for w in sandbox.world.writes("github") if w["target"] == f"{name}#{number}"]
    assert actions[-3:] == ["edit", "labels_add", "labels_remove"]


def test_rate_limit_answers_are_recognised(gh: Github, sandbox: Sandbox) -> None:
    """The primary limit (403, x-ratelimit-remaining: 0, wait for x-ratelimit-reset) and a secondary limit
    (retry-after) in the shapes PyGithub recognises by status, message and headers, as okrsync's retry layer must
    (https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api)."""
    sandbox.github_budget(5, used=5)
    try:
        with pytest.raises(RateLimitExceededException) as err:
            gh.get_repo("acme/web")
        headers = {k.lower(): v for k, v in (err.value.headers or {}).items()}
        assert err.value.status == 403 and headers["x-ratelimit-remaining"] == "0"
        assert int(headers["x-ratelimit-reset"]) > datetime.now(UTC).timestamp()
    finally:
        sandbox.github_budget(5000)
    # "you will receive a 403 or 429 response": PyGithub types only the 403 form, but knows the message
    sandbox.faults.rate_limit(1.0, retry_after=7, system="github")
    try:
        with pytest.raises(GithubException) as secondary:
            gh.get_repo("acme/web")
        headers = {k.lower(): v for k, v in (secondary.value.headers or {}).items()}
        assert secondary.value.status == 429 and headers["retry-after"] == "7"
        assert Requester.isSecondaryRateLimitError(secondary.value.message or "")
    finally:
        sandbox.faults.clear("github")
    assert gh.get_repo("acme/web").full_name == "acme/web"
