"""GitHub first reads by numbered pages in parallel (sorted by creation), then a catch-up of what moved meanwhile."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import responses

from okrsync.config.settings import SourceCredentials
from okrsync.connectors.base import ConnectorOptions, ReadContext
from okrsync.connectors.github.connector import build
from okrsync.connectors.github.streams import IssuesStream, PullsStream
from okrsync.domain.records import iso
from okrsync.sandbox import Sandbox

from .support import T0, FakeGitHub, MiniEngine, config, connector, issue, pull, z

NOW = datetime(2026, 11, 15, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def gh():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield FakeGitHub(rsps)


def created(n: int) -> dict:
    return {"created_at": z(T0 + timedelta(minutes=n))}


def test_first_read_pages_by_number_then_catches_up_what_moved(gh):
    repo = gh.repo()
    repo.issues = [issue(n, T0 + timedelta(minutes=n), **created(n)) for n in range(1, 351)]
    stream = IssuesStream(connector(config(concurrency=3)))
    seen: set[str] = set()
    for i, page in enumerate(stream.read(ReadContext(since=None, run_started=NOW, first_run=True))):
        seen |= {r.key for r in page.records}
        if i == 0:  # meanwhile: issue 3 is edited, issue 351 is created (after the last page)
            repo.issues[2] = issue(3, NOW, **created(3), title="edited")
            repo.issues.append(issue(351, NOW, **created(351)))
    assert seen == {f"acme/web#{n}" for n in range(1, 352)}
    numbered = [q for p, q, _ in gh.calls if "page" in q and "since" not in q]
    assert sorted(int(q["page"]) for q in numbered) == [1, 2, 3, 4]
    assert all(q["sort"] == "created" and q["direction"] == "asc" for q in numbered)
    catch_up = [q for p, q, _ in gh.calls if "since" in q]
    assert catch_up and catch_up[0]["since"] == z(NOW - timedelta(minutes=10))  # read start less the look-back


def test_a_killed_parallel_read_resumes_at_the_next_page(gh):
    repo = gh.repo()
    repo.issues = [issue(n, T0 + timedelta(minutes=n), **created(n)) for n in range(1, 351)]
    eng = MiniEngine()
    assert eng.run(connector(config(concurrency=3)), NOW, stop_after_pages=2) == ["github: interrupted (test)"]
    cp = eng.streams["issues"]["pending"]["checkpoint"]
    assert cp == {"repo": "acme/web", "page": 2, "started": iso(NOW)}
    gh.reset()
    assert eng.run(connector(config(concurrency=3)), NOW + timedelta(hours=1)) == []
    pages = sorted(int(q["page"]) for p, q, _ in gh.calls if p.endswith("/issues") and "since" not in q)
    assert pages == [3, 4]  # not page 1 or 2 again
    since = [q["since"] for p, q, _ in gh.calls if p.endswith("/issues") and "since" in q]
    assert since[0] == z(NOW - timedelta(minutes=10))  # the interrupted read's start, not this run's
    assert len(eng.of("Issue")) == 350


def test_pull_requests_page_in_parallel_then_newest_first_down_to_the_read_start(gh):
    repo = gh.repo()
    repo.pulls = [pull(n, T0 + timedelta(minutes=n), **created(n)) for n in range(1, 251)]
    eng = MiniEngine()
    assert eng.run(connector(config(concurrency=3)), NOW) == []
    assert len(eng.of("PullRequest") or eng.of("Issue")) >= 250
    calls = [q for p, q, _ in gh.calls if p.endswith("/pulls")]
    assert sorted(int(q["page"]) for q in calls if q["sort"] == "created") == [1, 2, 3]
    newest_first = [q for q in calls if q["sort"] == "updated"]
    assert len(newest_first) == 1  # the first page already reaches back past the read start


def test_after_a_parallel_first_read_an_unchanged_repository_answers_304(gh):
    """The catch-up's first page is what the next incremental read asks for: its ETag is kept, so the next sync of
    an unchanged repository is one free 304 (the webhook-triggered sync right after onboarding included)."""
    repo = gh.repo()
    repo.issues = [issue(n, T0 + timedelta(minutes=n), **created(n)) for n in range(1, 351)]
    repo.pulls = [pull(n, T0 + timedelta(minutes=n), **created(n)) for n in range(351, 601)]
    eng = MiniEngine()
    assert eng.run(connector(config(concurrency=3)), NOW) == []
    assert any("since" in q for p, q, _ in gh.calls if p.endswith("/issues"))  # it caught up
    gh.reset()
    assert eng.run(connector(config(concurrency=3)), NOW + timedelta(minutes=5)) == []
    assert gh.not_modified == ["/repos/acme/web/issues", "/repos/acme/web/pulls", "/repos/acme/web/deployments"]
    repo.issues[5] = issue(6, NOW + timedelta(minutes=6), **created(6), title="edited")  # a change: read again
    gh.reset()
    assert eng.run(connector(config(concurrency=3)), NOW + timedelta(minutes=10)) == []
    assert gh.not_modified == ["/repos/acme/web/pulls", "/repos/acme/web/deployments"]  # issues: 200, the edit
    assert [r.title for r in eng.of("Issue").values() if r.key == "acme/web#6"] == ["edited"]


def test_one_request_at_a_time_keeps_the_keyset_read(gh):
    gh.repo().issues = [issue(n, T0 + timedelta(minutes=n), **created(n)) for n in range(1, 151)]
    list(IssuesStream(connector(config(concurrency=1))).read(ReadContext(since=None, run_started=NOW,
                                                                         first_run=True)))
    assert all("page" not in q for p, q, _ in gh.calls)
    list(PullsStream(connector(config(concurrency=1))).read(ReadContext(since=None, run_started=NOW,
                                                                        first_run=True)))


def test_a_first_read_of_one_page_is_one_request(gh):
    gh.repo().issues = [issue(n, T0 + timedelta(minutes=n), **created(n)) for n in range(1, 51)]
    gh.repo().pulls = [pull(n, T0 + timedelta(minutes=n), **created(n)) for n in range(51, 81)]
    conn = connector(config(concurrency=3))
    for stream in (IssuesStream(conn), PullsStream(conn)):
        pages = list(stream.read(ReadContext(since=None, run_started=NOW, first_run=True)))
        assert pages[-1].checkpoint == {"repo": "acme/web", "done": True}
    assert [p for p, _, _ in gh.calls] == ["/repos/acme/web/issues", "/repos/acme/web/pulls"]  # no catch-up


@pytest.mark.parametrize("concurrency", [1, 3])
def test_workflow_runs_are_read_by_numbered_pages_in_parallel(concurrency):
    """Past the first page, the pages named by rel="last" are read `concurrency` at a time: the same deployments as
    one page at a time by rel="next"."""
    with Sandbox(seed=7, scale=1200, now=NOW) as sandbox:
        serial, serial_pages, _ = _runs(sandbox, 1)
        runs, pages, peak = _runs(sandbox, concurrency)
    assert len(serial_pages) >= 2  # more than one page of runs: a numbered read has something to do
    assert runs == serial and len(pages) == len(serial_pages)
    if concurrency > 1:
        # by number (not by the rel="next" link, which carries a cursor)
        assert sorted(p for p in pages if p) == [str(n) for n in range(2, len(pages) + 1)]
        assert peak["github"] <= concurrency
    else:
        assert pages[1:] == ["next"] * (len(pages) - 1)


def _runs(sandbox: Sandbox, conc: int):
    cfg = config(url=sandbox.urls["github"], repos=["acme/web"], pull_requests=False, releases=False,
                 deployments=False, deploy_workflows=["deploy.yml"], concurrency=conc)
    conn = build("github", cfg, SourceCredentials(token="sandbox-token"), ConnectorOptions())
    engine = MiniEngine(period_start=NOW - timedelta(days=400))
    sandbox.reset_log()
    assert engine.run(conn, NOW) == []
    log = [e for e in sandbox.requests("github") if e["path"].endswith("/runs")]
    pages = [e["args"].get("page") if "after" not in e["args"] else "next" for e in log]
    return {k: v for k, v in engine.records.items() if k[0] == "Deployment"}, pages, sandbox.peak_in_flight()
