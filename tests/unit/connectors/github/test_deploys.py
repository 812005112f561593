"""Deployments (+ statuses), deploy workflow runs and lead-time commits against a fake GitHub."""

from datetime import datetime, timedelta, timezone

import pytest
import responses

from okrsync.config.settings import Settings
from okrsync.config.workspace import load_workspace_text
from okrsync.engine.pipeline import run_sync
from okrsync.engine.store import Store

from .support import T0, TOKEN, FakeGitHub, MiniEngine, config, connector, deployment, pull, run, sha, status

NOW = datetime(2026, 11, 15, 12, 0, tzinfo=timezone.utc)
D = timedelta(days=1)
M = timedelta(minutes=1)


@pytest.fixture
def gh():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield FakeGitHub(rsps)


def deploys_only(**kw):
    return config(pull_requests=False, **kw)


def dep_paths(gh):
    return [p for p in gh.paths() if "/deployments" in p]


def run_queries(gh):
    return [q for p, q, _ in gh.calls if "/runs" in p]


def compare_calls(gh):
    return [p.rsplit("/", 1)[1] for p in gh.paths() if "/compare/" in p]


def test_deployment_commits_from_compare_between_successes(gh):
    repo = gh.repo()
    repo.commits = [sha(i) for i in range(1, 30)]
    repo.deployments = [
        deployment(1, T0 + D, sha=sha(3)),              # first success in production: ships (sha,)
        deployment(2, T0 + 2 * D, sha=sha(5)),          # failure: no commits
        deployment(3, T0 + 3 * D, sha=sha(8)),          # success: 4..8 since deployment 1
        deployment(4, T0 + 3 * D, sha=sha(8), env="staging"),  # other environment: its own chain
    ]
    repo.statuses = {1: [status(10, "in_progress", T0 + D), status(11, "success", T0 + D + 5 * M)],
                     2: [status(20, "failure", T0 + 2 * D + 5 * M)],
                     3: [status(30, "success", T0 + 3 * D + 5 * M), status(31, "inactive", T0 + 4 * D)],
                     4: [status(40, "success", T0 + 3 * D + 7 * M)]}
    eng = MiniEngine()
    assert eng.run(connector(deploys_only()), NOW) == []
    deps = eng.of("Deployment")
    assert {k: (d.status, d.finished) for k, d in deps.items()} == {
        "d1": ("success", T0 + D + 5 * M), "d2": ("failure", T0 + 2 * D + 5 * M),
        "d3": ("success", T0 + 3 * D + 5 * M), "d4": ("success", T0 + 3 * D + 7 * M)}
    assert deps["d1"].commits == (sha(3),)
    assert deps["d2"].commits == ()
    assert deps["d3"].commits == tuple(sha(i) for i in range(4, 9))
    assert deps["d4"].commits == (sha(8),)
    assert compare_calls(gh) == [f"{sha(3)}...{sha(8)}"]
    state = eng.streams["deployments"]["state"]["repos"]["acme/web"]
    assert state["last"]["production"]["sha"] == sha(8) and state["pending"] == {}


def test_pending_deployment_is_reread_until_final_then_compared_to_the_last_success(gh):
    repo = gh.repo()
    repo.commits = [sha(i) for i in range(1, 30)]
    repo.deployments = [deployment(1, T0 + D, sha=sha(3)), deployment(2, NOW - 2 * M, sha=sha(6))]
    repo.statuses = {1: [status(11, "success", T0 + D + M)], 2: [status(21, "queued", NOW - 2 * M)]}
    eng = MiniEngine()
    eng.run(connector(deploys_only()), NOW)
    assert eng.of("Deployment")["d2"].status == "in_progress"
    assert set(eng.streams["deployments"]["state"]["repos"]["acme/web"]["pending"]) == {"2"}

    gh.reset()  # an hour later nothing changed: list 304, statuses 304 (both conditional)
    eng.run(connector(deploys_only()), NOW + timedelta(hours=1))
    assert dep_paths(gh) == ["/repos/acme/web/deployments", "/repos/acme/web/deployments/2/statuses"]
    assert all(h.get("If-None-Match") for p, _, h in gh.calls if "/deployments" in p)

    repo.statuses[2].append(status(22, "success", NOW + timedelta(hours=1, minutes=30)))
    gh.reset()
    eng.run(connector(deploys_only()), NOW + timedelta(hours=2))
    d2 = eng.of("Deployment")["d2"]
    assert (d2.status, d2.finished) == ("success", NOW + timedelta(hours=1, minutes=30))
    assert d2.commits == (sha(4), sha(5), sha(6))
    assert eng.streams["deployments"]["state"]["repos"]["acme/web"]["pending"] == {}
    gh.reset()
    eng.run(connector(deploys_only()), NOW + timedelta(hours=3))
    assert dep_paths(gh) == ["/repos/acme/web/deployments"]  # settled: no more statuses calls


def test_settled_deployments_in_the_lookback_window_are_not_reread(gh):
    repo = gh.repo()
    repo.commits = [sha(i) for i in range(1, 10)]
    repo.deployments = [deployment(1, NOW - 5 * M, sha=sha(2))]
    repo.statuses = {1: [status(11, "success", NOW - 4 * M)]}
    eng = MiniEngine()
    eng.run(connector(deploys_only()), NOW)
    repo.deployments.append(deployment(2, NOW + 5 * M, sha=sha(4)))  # the list changes: no 304
    repo.statuses[2] = [status(21, "success", NOW + 6 * M)]
    gh.reset()
    eng.run(connector(deploys_only()), NOW + 15 * M)  # since = NOW - 10 min still covers deployment 1
    assert [p for p in gh.paths() if "statuses" in p] == ["/repos/acme/web/deployments/2/statuses"]
    assert eng.of("Deployment")["d2"].commits == (sha(3), sha(4))


@pytest.mark.parametrize("shipped", [1, 99, 100, 101, 250, 251, 400])
def test_a_deployment_ships_every_commit_of_a_long_comparison(gh, shipped):
    """Unpaged, compare lists only the LAST 250 commits; paged it runs from the earliest: all are read."""
    repo = gh.repo()
    repo.commits = [sha(i) for i in range(1, shipped + 3)]
    repo.deployments = [deployment(1, T0 + D, sha=sha(1)), deployment(2, T0 + 2 * D, sha=sha(shipped + 1))]
    repo.statuses = {1: [status(11, "success", T0 + D + M)], 2: [status(21, "success", T0 + 2 * D + M)]}
    eng = MiniEngine()
    assert eng.run(connector(deploys_only()), NOW) == []
    assert eng.of("Deployment")["d2"].commits == tuple(sha(i) for i in range(2, shipped + 2))
    pages = [q for p, q, _ in gh.calls if "/compare/" in p]
    assert pages == [{"per_page": "100", "page": str(n)} for n in range(1, (shipped - 1) // 100 + 2)]


def test_compare_is_cached_and_unknown_sha_ships_itself(gh):
    repo = gh.repo()
    repo.commits = [sha(i) for i in range(1, 10)]
    repo.deployments = [deployment(1, T0 + D, sha=sha(2)), deployment(2, T0 + 2 * D, sha=sha(5)),
                        deployment(3, T0 + 3 * D, sha=sha(5)), deployment(4, T0 + 4 * D, sha="f" * 40)]
    repo.statuses = {i: [status(i * 10, "success", T0 + i * D + M)] for i in (1, 2, 3, 4)}
    repo.runs = {"deploy.yml": [run(7, T0 + 2 * D, sha=sha(2)), run(8, T0 + 2 * D + M, sha=sha(5))]}
    eng = MiniEngine()
    conn = connector(deploys_only(deploy_workflows=["deploy.yml"]))
    assert eng.run(conn, NOW) == []
    deps = eng.of("Deployment")
    assert deps["d2"].commits == deps["run:8"].commits == (sha(3), sha(4), sha(5))
    assert deps["d3"].commits == ()  # a redeploy of the same sha ships nothing new
    assert deps["d4"].commits == ("f" * 40,)  # compare 404 (unknown commit): the deployment ships its own sha
    # one compare per new successful deployment, the identical (base, head) pair answered from the cache
    # (comparisons are fetched concurrently: their order is not fixed)
    assert sorted(compare_calls(gh)) == sorted([f"{sha(2)}...{sha(5)}", f"{sha(5)}...{'f' * 40}"])


def test_workflow_runs_map_and_reread_in_progress_runs(gh):
    repo = gh.repo()
    repo.commits = [sha(i) for i in range(1, 20)]
    repo.runs = {"deploy.yml": [
        run(1, T0 + D, sha=sha(2)),
        run(2, T0 + 2 * D, sha=sha(4), conclusion="failure"),
        run(3, T0 + 3 * D, sha=sha(5), conclusion="cancelled"),
        run(4, NOW - D, sha=sha(7), status="in_progress"),
    ]}
    cfg = config(pull_requests=False, deployments=False, deploy_workflows=["deploy.yml"], deploy_environment="prod")
    eng = MiniEngine()
    assert eng.run(connector(cfg), NOW) == []
    deps = eng.of("Deployment")
    assert sorted(deps) == ["run:1", "run:2", "run:4"]  # cancelled: no record
    assert (deps["run:1"].status, deps["run:1"].environment, deps["run:1"].commits) == ("success", "prod", (sha(2),))
    assert deps["run:2"].status == "failure" and deps["run:4"].status == "in_progress"
    assert run_queries(gh) == [{"per_page": "100", "created": ">=2026-07-01"}]
    # next run: since is today, but the list starts at the day of the run still in progress
    repo.runs["deploy.yml"][3] = run(4, NOW - D, sha=sha(7), updated=NOW + 5 * M)
    gh.reset()
    eng.run(connector(cfg), NOW + timedelta(hours=1))
    assert run_queries(gh)[0]["created"] == ">=2026-11-14"
    r4 = eng.of("Deployment")["run:4"]
    assert (r4.status, r4.finished, r4.commits) == ("success", NOW + 5 * M, (sha(3), sha(4), sha(5), sha(6), sha(7)))
    assert eng.streams["workflow_runs"]["state"]["repos"]["acme/web:deploy.yml"]["pending"] == {}


def test_workflow_runs_over_the_1000_cap_are_sliced_by_date(gh):
    repo = gh.repo()
    start = datetime(2026, 7, 1, tzinfo=timezone.utc)
    repo.runs = {"deploy.yml": [run(i, start + timedelta(hours=i // 10), sha=sha(1), conclusion="failure")
                                for i in range(1, 1201)]}  # 1,200 runs over 6 days
    cfg = config(pull_requests=False, deployments=False, deploy_workflows=["deploy.yml"])
    eng = MiniEngine()
    eng.run(connector(cfg), datetime(2026, 7, 6, 12, tzinfo=timezone.utc))
    assert len(eng.of("Deployment")) == 1200
    created = [q.get("created") for q in run_queries(gh) if "page" not in q]
    assert created == [">=2026-07-01", "2026-07-01..2026-07-03", "2026-07-04..2026-07-06"]


def test_workflow_run_slices_still_over_the_cap_are_halved_again_in_order(gh):
    repo = gh.repo()
    start = datetime(2026, 7, 1, tzinfo=timezone.utc)
    repo.runs = {"deploy.yml": [run(i, start + timedelta(hours=i // 10), sha=sha(1), conclusion="failure")
                                for i in range(1, 2501)]}  # 2,500 runs over 11 days
    cfg = config(pull_requests=False, deployments=False, deploy_workflows=["deploy.yml"])
    eng = MiniEngine()
    eng.run(connector(cfg), datetime(2026, 7, 11, 12, tzinfo=timezone.utc))
    assert len(eng.of("Deployment")) == 2500
    created = [q.get("created") for q in run_queries(gh) if "page" not in q]
    assert created == [">=2026-07-01", "2026-07-01..2026-07-06", "2026-07-01..2026-07-03", "2026-07-04..2026-07-06",
                       "2026-07-07..2026-07-11", "2026-07-07..2026-07-09", "2026-07-10..2026-07-11"]


def test_workflow_missing_everywhere_fails_the_source_but_not_the_repo(gh):
    gh.repo().runs = {}
    cfg = config(pull_requests=False, deployments=False, deploy_workflows=["deploy.yml"])
    errors = MiniEngine().run(connector(cfg), NOW)
    assert errors == ["github: workflow deploy.yml not found in any repository (acme/web)"]


def test_a_repository_without_the_workflow_is_normal(gh):
    gh.repo("acme/web").runs = {}  # acme/api deploys with deploy.yml, acme/web does not
    gh.repo("acme/api").runs = {"deploy.yml": []}
    cfg = config(repos=["acme/web", "acme/api"], pull_requests=False, deployments=False,
                 deploy_workflows=["deploy.yml"])
    assert MiniEngine().run(connector(cfg), NOW) == []


WS = """\
period: 2026-Q4
sources:
  gh: {type: github, repos: [acme/web], releases: false}
objectives:
  - id: O1
    title: Delivery
    key_results:
      - {id: KR1, title: lead time, metric: lead_time_for_changes, select: {source: gh}, target: 24}
      - {id: KR2, title: deploys, metric: deployment_frequency, select: {source: gh, environment: production}, target: 3}
"""


def test_real_engine_stores_records_commits_and_lead_time(gh, tmp_path, monkeypatch):
    monkeypatch.setenv("OKRSYNC_SOURCES__GH__TOKEN", TOKEN)
    repo = gh.repo()
    repo.commits = [sha(i) for i in range(1, 10)]
    base = datetime(2026, 11, 1, tzinfo=timezone.utc)
    repo.pulls = [pull(1, base, state="closed", merged=base, sha=sha(2)),
                  pull(2, base + D, state="closed", merged=base + D, sha=sha(4))]
    repo.deployments = [deployment(1, base + timedelta(hours=2), sha=sha(2)),
                        deployment(2, base + D + timedelta(hours=10), sha=sha(5))]
    repo.statuses = {1: [status(11, "success", base + timedelta(hours=2))],
                     2: [status(21, "success", base + D + timedelta(hours=10))]}
    from okrsync.connectors.github.connector import build

    loaded = load_workspace_text(WS, str(tmp_path / "okrsync.yaml"))
    store = Store(tmp_path / "okrsync.db")
    factory = lambda name, cfg, creds, opts: build(name, cfg, creds, opts)  # noqa: E731
    s = run_sync(loaded, Settings(), store, connector_factory=factory, now=lambda: NOW)
    assert s.exit_code == 0, s.errors
    rows = store.db.execute("SELECT deployment_id, sha FROM deployment_commits ORDER BY sha").fetchall()
    assert rows == [("d1", sha(2)), ("d2", sha(3)), ("d2", sha(4)), ("d2", sha(5))]
    assert s.computation.kr("KR1").value == pytest.approx(6.0)  # median of 2 h and 10 h
    assert s.computation.kr("KR1").items == 2
    gh.reset()
    s2 = run_sync(loaded, Settings(), store, connector_factory=factory, now=lambda: NOW + timedelta(hours=1))
    assert s2.exit_code == 0 and s2.sources["gh"].requests == 3  # issues, pulls, deployments
    assert TOKEN not in "\n".join(store.db.conn.iterdump())
