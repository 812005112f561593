"""GitHub simulator: Link paging, filters and orders, ETag/304, the rate budget, compare, write-back, auth."""

from __future__ import annotations

import re

from okrsync.connectors.base import ConnectorOptions
from okrsync.connectors.github.client import GitHubClient
from okrsync.sandbox import Sandbox
from okrsync.sandbox.model import Commit, sha40

from .conftest import NOW

LINK = re.compile(r'<([^>]+)>; rel="(\w+)"')


def links(resp) -> dict[str, str]:
    return {rel: url for url, rel in LINK.findall(resp.headers.get("Link", ""))}


def walk(http, url: str, **params) -> tuple[list, int]:
    out, pages = [], 0
    r = http.get(url, params=params)
    while True:
        assert r.status_code == 200, r.text
        out += r.json()
        pages += 1
        nxt = links(r).get("next")
        if not nxt:
            return out, pages
        r = http.get(nxt)


def test_link_paging_reaches_every_item(sandbox, http):
    url = f"{sandbox.urls['github']}/repos/acme/web/issues"
    items, pages = walk(http, url, state="all", per_page=25)
    want = sandbox.world.github_items("acme/web")
    assert len(items) == len(want) == len({i["number"] for i in items}) and pages == -(-len(want) // 25)
    numbers = [i["number"] for i in items]
    assert numbers == sorted(numbers, reverse=True)  # sort=created, direction=desc by default
    middle = http.get(url, params={"state": "all", "per_page": 25, "page": 2})
    assert list(links(middle)) == ["prev", "next", "last", "first"]
    assert links(middle)["last"].endswith(f"page={pages}") and "per_page=25" in links(middle)["last"]
    assert "Link" not in http.get(url, params={"state": "all", "per_page": 100, "labels": "kr:KR5"}).headers


def test_issue_filters_since_and_order(sandbox, http):
    url = f"{sandbox.urls['github']}/repos/acme/api/issues"
    world = sandbox.world.github_items("acme/api")
    opened, _ = walk(http, url, per_page=100)  # state defaults to open
    assert {i["number"] for i in opened} == {i["number"] for i in world if i["state"] == "open"}
    since = "2026-11-01T00:00:00Z"
    inc, _ = walk(http, url, state="all", since=since, sort="updated", direction="asc", per_page=100)
    assert {i["number"] for i in inc} == {i["number"] for i in world if i["updated"].isoformat() >= "2026-11-01"}
    updated = [i["updated_at"] for i in inc]
    assert updated == sorted(updated)
    bugs, _ = walk(http, url, state="all", labels="bug,team:payments", per_page=100)
    assert bugs and all({"bug", "team:payments"} <= {x["name"] for x in i["labels"]} for i in bugs)
    assert http.get(url, params={"state": "weird"}).status_code == 422


def test_pulls_merged_closed_open(sandbox, http):
    url = f"{sandbox.urls['github']}/repos/acme/web/pulls"
    pulls, _ = walk(http, url, state="all", per_page=100)
    merged = [p for p in pulls if p["merged_at"]]
    unmerged = [p for p in pulls if p["state"] == "closed" and not p["merged_at"]]
    opened = [p for p in pulls if p["state"] == "open"]
    assert merged and unmerged and opened and any(p["draft"] for p in opened)
    shas = {c["sha"] for c in sandbox.world.github_commits("acme/web")}
    assert all(p["merge_commit_sha"] in shas for p in merged)
    assert all(p["merge_commit_sha"] and p["merge_commit_sha"] not in shas for p in unmerged)  # test merges
    by_updated = http.get(url, params={"state": "all", "sort": "updated", "per_page": 100}).json()
    stamps = [p["updated_at"] for p in by_updated]
    assert stamps == sorted(stamps)  # direction defaults to asc unless sorting by created


def test_deployments_and_statuses_newest_first(sandbox, http):
    base = f"{sandbox.urls['github']}/repos/acme/api"
    deps, _ = walk(http, f"{base}/deployments", environment="production", per_page=100)
    assert [d["created_at"] for d in deps] == sorted((d["created_at"] for d in deps), reverse=True)
    assert {d["environment"] for d in deps} == {"production"}
    finals = {}
    for d in deps:
        states = [s["state"] for s in http.get(f"{base}/deployments/{d['id']}/statuses").json()]
        assert states[-1] == "queued"  # newest first: the first status comes last
        finals[d["id"]] = states
    ends = {next((s for s in st if s in ("success", "failure", "error")), "in_progress") for st in finals.values()}
    assert ends >= {"success", "failure", "in_progress"}
    assert any(st[0] == "inactive" and "success" in st for st in finals.values())
    assert http.get(f"{base}/deployments/1/statuses").status_code == 404


def test_releases_and_workflow_runs(sandbox, http):
    base = f"{sandbox.urls['github']}/repos/acme/web"
    rels = http.get(f"{base}/releases").json()
    assert rels and [r["created_at"] for r in rels] == sorted((r["created_at"] for r in rels), reverse=True)
    runs = http.get(f"{base}/actions/workflows/deploy.yml/runs", params={"created": ">=2026-10-01",
                                                                        "per_page": 100}).json()
    want = [r for r in sandbox.world.github_workflow_runs("acme/web") if r["created"].isoformat() >= "2026-10-01"]
    assert runs["total_count"] == len(want) == len(runs["workflow_runs"])
    assert all(r["created_at"] >= "2026-10-01" for r in runs["workflow_runs"])
    by_id = http.get(f"{base}/actions/workflows/161335/runs", params={"per_page": 1}).json()
    assert by_id["total_count"] == len(sandbox.world.github_workflow_runs("acme/web"))
    assert http.get(f"{base}/actions/workflows/nope.yml/runs").status_code == 404
    assert http.get(f"{base}/actions/workflows").json()["workflows"][0]["path"] == ".github/workflows/deploy.yml"


def test_compare_linear_history(sandbox, http):
    base = f"{sandbox.urls['github']}/repos/acme/web/compare"
    commits = sandbox.world.github_commits("acme/web")
    a, b = commits[-12]["sha"], commits[-2]["sha"]
    out = http.get(f"{base}/{a}...{b}").json()
    assert (out["status"], out["ahead_by"], out["behind_by"], out["total_commits"]) == ("ahead", 10, 0, 10)
    assert [c["sha"] for c in out["commits"]] == [c["sha"] for c in commits[-11:-1]]
    paged = http.get(f"{base}/{a}...{b}", params={"per_page": 4, "page": 3})
    assert [c["sha"] for c in paged.json()["commits"]] == [c["sha"] for c in commits[-3:-1]]
    assert "prev" in links(paged)
    assert http.get(f"{base}/{b}...{a}").json()["status"] == "behind"
    assert http.get(f"{base}/{a[:10]}...main").json()["ahead_by"] == 11
    assert http.get(f"{base}/{'0' * 40}...{b}").status_code == 404


def test_compare_unpaged_lists_the_last_250_and_pages_run_from_the_earliest(fresh, http):
    """GitHub's compare documentation: without per_page/page at most 250 commits, the LAST ones (the last in
    the list is the most recent of the comparison); with paging, pages of at most 100 from the earliest."""
    repo = fresh.world.repos["acme/web"]
    t = repo.commits[-1].time
    for i in range(400):
        repo.add_commit(Commit(sha40("acme/web", "long", i), t + (i + 1) * 1000, f"commit {i}", 0, None))
    shas = [c["sha"] for c in fresh.world.github_commits("acme/web")]
    base, head = shas[-401], shas[-1]
    url = f"{fresh.urls['github']}/repos/acme/web/compare/{base}...{head}"
    unpaged = http.get(url)
    assert unpaged.json()["total_commits"] == 400 and "Link" not in unpaged.headers
    assert [c["sha"] for c in unpaged.json()["commits"]] == shas[-250:]
    assert unpaged.json()["commits"][0]["parents"][0]["sha"] == shas[-251]
    for params, want in [({"page": 1}, shas[-400:-370]), ({"per_page": 100}, shas[-400:-300]),
                         ({"per_page": 100, "page": 4}, shas[-100:]), ({"per_page": 500, "page": 2}, shas[-300:-200]),
                         ({"per_page": 100, "page": 5}, [])]:
        got = http.get(url, params=params).json()
        assert [c["sha"] for c in got["commits"]] == want, params
        assert got["total_commits"] == 400
    assert links(http.get(url, params={"per_page": 100}))["last"].endswith("page=4")


def test_the_connector_reads_every_commit_of_a_long_comparison(fresh):
    """The GitHub client against the sandbox: a deployment that shipped 400 commits ships all 400."""
    repo = fresh.world.repos["acme/api"]
    t = repo.commits[-1].time
    for i in range(400):
        repo.add_commit(Commit(sha40("acme/api", "long", i), t + (i + 1) * 1000, f"commit {i}", 0, None))
    shas = [c["sha"] for c in fresh.world.github_commits("acme/api")]
    client = GitHubClient("github", fresh.urls["github"], None, options=ConnectorOptions(sleep=lambda s: None))
    try:
        assert client.compare("acme/api", shas[-401], shas[-1]) == shas[-400:]
        assert client.compare("acme/api", shas[-3], shas[-1]) == shas[-2:]
        assert client.compare("acme/api", shas[-1], shas[-1]) == []
    finally:
        client.close()


def test_release_created_at_is_the_commit_date_before_publication(sandbox, http):
    """created_at is the date of the release's commit, not of its publication (GitHub's releases docs)."""
    for name in ("acme/web", "acme/api"):
        rels = http.get(f"{sandbox.urls['github']}/repos/{name}/releases", params={"per_page": 100}).json()
        assert rels and all(r["created_at"] < r["published_at"] for r in rels)
        commits = {c["sha"]: c["time"] for c in sandbox.world.github_commits(name)}
        world = {r["id"]: r for r in sandbox.world.github_releases(name)}
        for r in rels:
            assert r["published_at"] == world[r["id"]]["published"].strftime("%Y-%m-%dT%H:%M:%SZ")
            assert r["created_at"] == commits[world[r["id"]]["sha"]].strftime("%Y-%m-%dT%H:%M:%SZ")


def test_etag_304_does_not_cost_budget(sandbox, http):
    url = f"{sandbox.urls['github']}/repos/acme/web/issues"
    first = http.get(url)
    etag, left = first.headers["ETag"], int(first.headers["X-RateLimit-Remaining"])
    again = http.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert int(again.headers["X-RateLimit-Remaining"]) == left and again.headers["ETag"] == etag
    changed = http.get(url, headers={"If-None-Match": 'W/"stale"'})
    assert changed.status_code == 200 and int(changed.headers["X-RateLimit-Remaining"]) == left - 1


def test_rate_budget_runs_out_with_403(fresh, http):
    fresh.github_budget(3, window=3600)
    url = f"{fresh.urls['github']}/repos/acme/web"
    remaining = [http.get(url).headers["X-RateLimit-Remaining"] for _ in range(3)]
    assert remaining == ["2", "1", "0"]
    r = http.get(url)
    assert r.status_code == 403 and "API rate limit exceeded" in r.json()["message"]
    assert r.headers["X-RateLimit-Remaining"] == "0" and int(r.headers["X-RateLimit-Reset"]) > 0
    assert http.get(f"{fresh.urls['github']}/rate_limit").json()["resources"]["core"]["remaining"] == 0
    fresh.github_budget(5000)  # the window resets
    assert http.get(url).status_code == 200


def test_write_back_body_and_labels(fresh, http):
    url = f"{fresh.urls['github']}/repos/acme/okrs/issues/3"
    body = "Tracking.\n<!-- okrsync:KR1 -->\nKR1: on track (62%)\n<!-- /okrsync:KR1 -->"
    r = http.patch(url, json={"body": body, "labels": ["okr", "okr:on-track"]})
    assert r.status_code == 200 and r.json()["body"] == body
    added = http.post(f"{url}/labels", json={"labels": ["okr:at-risk"]}).json()
    assert [x["name"] for x in added] == ["okr", "okr:on-track", "okr:at-risk"]
    left = http.delete(f"{url}/labels/okr:on-track").json()
    assert [x["name"] for x in left] == ["okr", "okr:at-risk"]
    assert http.delete(f"{url}/labels/okr:on-track").status_code == 404
    view = fresh.world.github_issue("acme/okrs", 3)
    assert view["body"] == body and view["labels"] == ["okr", "okr:at-risk"]
    posted = http.post(f"{url}/comments", json={"body": "hello"})
    assert posted.status_code == 201
    assert [w["action"] for w in fresh.world.writes("github")] == ["edit", "labels_add", "labels_remove", "comment"]
    assert http.patch(f"{fresh.urls['github']}/repos/acme/okrs/issues/999", json={}).status_code == 404


def test_unknown_repo_and_required_token(http):
    with Sandbox(seed=1, scale=50, now=NOW, require_token="ghp_x") as sb:
        base = sb.urls["github"]
        bad = http.get(f"{base}/repos/acme/web", headers={"Authorization": "token nope"})
        assert bad.status_code == 401 and bad.json()["message"] == "Bad credentials"
        ok = http.get(f"{base}/repos/acme/web", headers={"Authorization": "Bearer ghp_x"})
        assert ok.status_code == 200 and ok.json()["full_name"] == "acme/web"
        missing = http.get(f"{base}/repos/acme/nope", headers={"Authorization": "token ghp_x"})
        assert missing.status_code == 404 and missing.json()["message"] == "Not Found"
        assert missing.json()["documentation_url"].startswith("https://docs.github.com/rest")
