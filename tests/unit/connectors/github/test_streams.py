"""Issues, pull requests and releases streams against a fake GitHub: paging, cursors, ETags, failures."""

from datetime import datetime, timedelta, timezone

import pytest
import responses

from okrsync.connectors.base import ReadContext
from okrsync.connectors.github.streams import IssuesStream, PullsStream

from .support import T0, FakeGitHub, MiniEngine, config, connector, deployment, issue, pull, replay, run, sha, status, z

NOW = datetime(2026, 11, 15, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def gh():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield FakeGitHub(rsps)


def read_all(stream, ctx):
    return list(stream.read(ctx))


def test_issues_since_param_is_exact_utc_z():
    conn = connector()
    ctx = ReadContext(since=datetime(2026, 11, 15, 10, 30, 12, 345000, tzinfo=timezone(timedelta(hours=2))),
                      run_started=NOW, state={"repos": {"acme/web": {}}})
    with responses.RequestsMock() as rsps:
        rsps.get("https://api.github.com/repos/acme/web/issues", json=[], match=[responses.matchers.query_param_matcher(
            {"state": "all", "sort": "updated", "direction": "asc", "per_page": "100",
             "since": "2026-11-15T08:30:12Z"})])
        read_all(IssuesStream(conn), ctx)


def test_issues_skip_prs_and_page_by_since_keyset(gh):
    repo = gh.repo()
    repo.issues = [issue(n, T0 + timedelta(minutes=n)) for n in range(1, 251)]
    repo.issues[4] = issue(5, T0 + timedelta(minutes=5), pr=True)  # a PR in the issues list: not ours
    conn = connector(config(concurrency=1))  # one request at a time: the keyset read (first runs too)
    pages = read_all(IssuesStream(conn), ReadContext(since=None, run_started=NOW, first_run=True))
    keys = [r.key for p in pages for r in p.records]
    assert len(set(keys)) == 249 and "acme/web#5" not in keys
    calls = [q for p, q, _ in gh.calls]
    assert len(calls) == 3
    assert "since" not in calls[0] and "page" not in calls[0]
    # the next pages start at the last item's updated_at minus one second, never page=N
    assert calls[1]["since"] == z(T0 + timedelta(minutes=100) - timedelta(seconds=1)) and "page" not in calls[1]
    # the one-second overlap re-reads the boundary item: page 2 is minutes 100..199
    assert calls[2]["since"] == z(T0 + timedelta(minutes=199) - timedelta(seconds=1))
    assert pages[0].checkpoint == {"repo": "acme/web", "since": z(T0 + timedelta(minutes=100))}
    assert pages[-1].checkpoint == {"repo": "acme/web", "done": True}
    assert pages[-1].state["repos"]["acme/web"] == {"etag": None}  # three pages: no ETag kept


def test_issues_follow_link_when_a_page_shares_one_second(gh):
    repo = gh.repo()
    repo.issues = [issue(n, T0) for n in range(1, 151)]
    conn = connector()
    ctx = ReadContext(since=T0, run_started=NOW, state={"repos": {"acme/web": {}}})
    pages = read_all(IssuesStream(conn), ctx)
    assert len({r.id for p in pages for r in p.records}) == 150
    second = gh.calls[1][1]
    assert second["page"] == "2" and second["since"] == z(T0)


def test_issue_updated_during_the_read_is_not_lost(gh):
    """With page=N an issue moving to the end shifts an unread one onto page 1; the keyset does not."""
    repo = gh.repo()
    repo.issues = [issue(n, T0 + timedelta(minutes=n)) for n in range(1, 201)]
    conn = connector(config(concurrency=1))  # one request at a time: the keyset read (first runs too)
    stream = IssuesStream(conn)
    seen = set()
    for i, page in enumerate(stream.read(ReadContext(since=None, run_started=NOW, first_run=True))):
        seen |= {r.key for r in page.records}
        if i == 0:  # someone edits issue 3 while we read
            repo.issues[2] = issue(3, NOW)
    assert len(seen) == 200


def test_issues_resume_from_checkpoint(gh):
    repo = gh.repo()
    repo.issues = [issue(n, T0 + timedelta(minutes=n)) for n in range(1, 251)]
    eng = MiniEngine()
    conn = connector(config(concurrency=1))
    assert eng.run(conn, NOW, stop_after_pages=1) == ["github: interrupted (test)"]
    assert eng.streams["issues"]["pending"]["checkpoint"] == {"repo": "acme/web", "since": z(T0 + timedelta(minutes=100))}
    gh.reset()
    assert eng.run(connector(config(concurrency=1)), NOW + timedelta(hours=1)) == []
    first = gh.calls[0][1]
    assert first["since"] == z(T0 + timedelta(minutes=100) - timedelta(seconds=1))
    assert len(eng.of("Issue")) == 250


def test_pulls_stop_after_the_page_that_crosses_the_cursor(gh):
    repo = gh.repo()
    # 300 PRs updated one minute apart: newest first, page 2 holds minutes 200..101
    repo.pulls = [pull(n, T0 + timedelta(minutes=n)) for n in range(1, 301)]
    conn = connector()
    since = T0 + timedelta(minutes=150)
    ctx = ReadContext(since=since, run_started=NOW, state={"repos": {"acme/web": {}}})
    pages = read_all(PullsStream(conn), ctx)
    assert [q.get("page") for _, q, _ in gh.calls] == [None, "2"]
    assert gh.calls[0][1] == {"state": "all", "sort": "updated", "direction": "desc", "per_page": "100"}
    assert len([r for p in pages for r in p.records]) == 200  # the whole crossing page is upserted
    # the same read again (records now stored) pages the same: the cursor decides, not the store
    gh.reset()
    read_all(PullsStream(connector()), ctx)
    assert len(gh.calls) == 2


def test_pr_comes_from_pulls_not_issues(gh):
    repo = gh.repo()
    repo.issues = [issue(1, T0), issue(2, T0, pr=True)]
    repo.pulls = [pull(2, T0, state="closed", merged=T0)]
    eng = MiniEngine()
    assert eng.run(connector(config(deployments=False)), NOW) == []
    issues = eng.of("Issue")
    assert sorted((r.key, r.is_pull_request, r.id) for r in issues.values()) == [
        ("acme/web#1", False, "1001"), ("acme/web#2", True, "5002")]
    assert issues["5002"].status == "merged" and issues["5002"].merge_sha == sha(2)


def test_pull_requests_false_means_no_pulls_stream(gh):
    gh.repo().issues = [issue(2, T0, pr=True)]
    eng = MiniEngine()
    eng.run(connector(config(deployments=False, pull_requests=False)), NOW)
    assert eng.of("Issue") == {}
    assert not any("/pulls" in p for p in gh.paths())


def seed_everything(gh):
    repo = gh.repo()
    repo.issues = [issue(n, T0 + timedelta(days=n)) for n in range(1, 6)]
    repo.pulls = [pull(n, T0 + timedelta(days=n)) for n in range(10, 13)]
    repo.commits = [sha(i) for i in range(1, 20)]
    repo.deployments = [deployment(1, T0 + timedelta(days=1), sha=sha(3)), deployment(2, T0 + timedelta(days=2), sha=sha(7))]
    repo.statuses = {1: [status(11, "success", T0 + timedelta(days=1, minutes=3))],
                     2: [status(21, "success", T0 + timedelta(days=2, minutes=3))]}
    repo.releases = [{"id": 9, "tag_name": "v1", "draft": False, "created_at": z(T0 + timedelta(days=3)),
                      "published_at": z(T0 + timedelta(days=3)), "target_commitish": "main", "html_url": "x"}]
    repo.runs = {"deploy.yml": [run(31, T0 + timedelta(days=4), sha=sha(9))]}


def test_no_change_incremental_sync_costs_one_request_per_stream_per_repo(gh):
    seed_everything(gh)
    cfg = config(releases=True, deploy_workflows=["deploy.yml"])
    eng = MiniEngine()
    assert eng.run(connector(cfg), NOW) == []
    assert len(eng.of("Deployment")) == 4 and len(eng.of("Issue")) == 8
    streams = ["issues", "pulls", "deployments", "releases", "actions/workflows/deploy.yml/runs"]
    for hours in (1, 2):  # the first incremental run reads the (empty) recent window; the next gets 304s
        gh.reset()
        conn = connector(cfg)
        assert eng.run(conn, NOW + timedelta(hours=hours)) == []
        assert sorted(p.split("/", 4)[4] for p in gh.paths()) == sorted(streams)
        assert conn.requests_made == 5
    assert all(h.get("If-None-Match") for _, _, h in gh.calls)


def test_a_304_run_really_answers_304(gh):
    seed_everything(gh)
    cfg = config(releases=True, deploy_workflows=["deploy.yml"])
    eng = MiniEngine()
    statuses = []
    orig = gh._page

    def spy(*a):
        out = orig(*a)
        statuses.append(out[0])
        return out

    gh._page = spy
    for hours in (0, 1, 2):
        statuses.clear()
        eng.run(connector(cfg), NOW + timedelta(hours=hours))
    assert statuses == [304] * 5


def test_a_change_after_304_is_read(gh):
    seed_everything(gh)
    eng = MiniEngine()
    for hours in (0, 1, 2):
        eng.run(connector(config()), NOW + timedelta(hours=hours))
    gh.repo().pulls.append(pull(13, NOW + timedelta(hours=2, minutes=30), state="closed", merged=NOW))
    gh.reset()
    eng.run(connector(config()), NOW + timedelta(hours=3))
    assert eng.of("Issue")["5013"].status == "merged"


def test_full_sync_sends_no_conditional_requests(gh):
    seed_everything(gh)
    eng = MiniEngine()
    eng.run(connector(config()), NOW)
    gh.reset()
    eng.run(connector(config()), NOW + timedelta(hours=1), full=True)
    assert gh.calls and not any(h.get("If-None-Match") for _, _, h in gh.calls)


def test_missing_repo_others_still_sync_then_one_line_failure(gh):
    seed_everything(gh)
    cfg = config(repos=["acme/nope", "acme/web"])
    eng = MiniEngine()
    errors = eng.run(connector(cfg), NOW)
    assert errors == ["github: repository acme/nope not found (or the token cannot see it)"]
    assert len(eng.of("Issue")) == 8 and len(eng.of("Deployment")) == 2
    assert sum("acme/nope" in p for p in gh.paths()) == 1  # later streams skip it
    # the real streams completed: their cursors moved; only the final check failed
    assert all(eng.streams[s]["cursor"] for s in ("issues", "pull_requests", "deployments"))


def test_repo_added_later_is_read_from_the_start(gh):
    seed_everything(gh)
    other = gh.repo("acme/api")
    other.issues = [issue(1, T0, repo="acme/api")]
    eng = MiniEngine()
    eng.run(connector(config(repos=["acme/web"], deployments=False)), NOW)
    gh.reset()
    eng.run(connector(config(repos=["acme/web", "acme/api"], deployments=False)), NOW + timedelta(hours=1))
    q = {p: q for p, q, _ in reversed(gh.calls)}  # the first call to each path
    assert "since" in q["/repos/acme/web/issues"] and "since" not in q["/repos/acme/api/issues"]
    assert "acme/api#1" in {r.key for r in eng.of("Issue").values()}


def test_unparseable_issue_is_skipped_by_key_and_the_run_goes_on(gh):
    repo = gh.repo()
    repo.issues = [issue(1, T0), issue(2, T0, created_at="not a date"), issue(3, T0)]
    eng = MiniEngine()
    assert eng.run(connector(config(deployments=False, pull_requests=False)), NOW) == []
    assert sorted(r.key for r in eng.of("Issue").values()) == ["acme/web#1", "acme/web#3"]
    assert [(s.key, s.reason) for s in eng.skipped] == [("acme/web#2", "bad time 'not a date'")]


def test_releases_are_cut_off_by_published_at_and_drafts_skipped(gh):
    repo = gh.repo()
    rel = replay("GitRelease.testGetReleaseByTag.txt")[1]["body"]
    repo.releases = [{**rel, "id": i, "tag_name": f"v{i}", "created_at": z(T0 + timedelta(days=i)),
                      "published_at": z(T0 + timedelta(days=i, hours=1)), "draft": i == 4} for i in range(1, 6)]
    eng = MiniEngine(period_start=T0 + timedelta(days=2, hours=12))
    eng.run(connector(config(releases=True, deployments=False, pull_requests=False)), NOW)
    deps = eng.of("Deployment")
    assert sorted(deps) == ["release:3", "release:5"]
    assert deps["release:5"].environment == "release" and deps["release:5"].ref == "v5"
    assert deps["release:5"].created == deps["release:5"].finished == T0 + timedelta(days=5, hours=1)


@pytest.mark.parametrize("old_commit_release_page", [1, 2, 3])
def test_a_release_of_an_old_commit_published_after_the_cursor_is_read_on_any_page(gh, old_commit_release_page):
    """created_at is the commit's date; the list follows it, so a release published today can be on any page."""
    repo = gh.repo()
    since = T0 + timedelta(days=10)
    # 300 releases newest first by created_at: one per hour back from since + 50 h, all published 1 min after
    repo.releases = [{"id": i, "tag_name": f"v{i}", "draft": False, "target_commitish": "main", "html_url": "x",
                      "created_at": z(since + timedelta(hours=50 - i)),
                      "published_at": z(since + timedelta(hours=50 - i, minutes=1))} for i in range(300)]
    # a hotfix cut from an old commit: created_at sorts it onto page `old_commit_release_page`
    position = (old_commit_release_page - 1) * 100 + 60
    repo.releases[position] = {**repo.releases[position], "id": 999, "tag_name": "v-hotfix",
                               "published_at": z(NOW - timedelta(hours=1))}
    eng = MiniEngine(period_start=since)
    eng.run(connector(config(releases=True, deployments=False, pull_requests=False)), NOW)
    got = eng.of("Deployment")
    want = {f"release:{i}" for i in range(51)} | {"release:999"}
    want.discard(f"release:{position}")
    assert set(got) == want
    assert got["release:999"].finished == NOW - timedelta(hours=1)
    assert [q.get("page", "1") for p, q, _ in gh.calls if p.endswith("/releases")] == ["1", "2", "3"]
