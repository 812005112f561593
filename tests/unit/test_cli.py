"""The CLI: help on every command, init/validate, exact status --json, exit codes, no tracebacks."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from okrsync.cli import cli
from okrsync.engine.store import Store
from tests.builders import deployment, issue, load

WS = """\
period: 2026-Q4
sources:
  jira: {type: jira, url: https://acme.atlassian.net, projects: [APP]}
  github: {type: github, repos: [acme/web]}
objectives:
  - id: O1
    title: Ship checkout
    key_results:
      - {id: KR1, title: Checkout v2 done, metric: done_ratio, select: {source: jira, parent: APP-100}, target: 1}
      - {id: KR2, title: Deploys, metric: deployment_frequency, unit: deploys/week,
         select: {source: github, environment: production}, baseline: 1, target: 3}
  - id: O2
    title: Child
    parent: O1
    weight: 2
    key_results:
      - {id: KR3, title: Bugs, metric: count, select: {source: jira, type: Bug}, baseline: 10, target: 4}
"""


def invoke(args, env=None, cwd=None):
    runner = CliRunner()
    return runner.invoke(cli, args, env=env or {}, catch_exceptions=False)


def all_commands():
    return sorted(cli.commands)


@pytest.mark.parametrize("name", all_commands())
def test_every_command_has_help(name):
    r = invoke([name, "--help"])
    assert r.exit_code == 0
    assert f"Usage: cli {name}" in r.output or f"Usage: okrsync {name}" in r.output
    doc = cli.commands[name].help or ""
    assert doc.strip(), f"{name} has no help text"


def test_expected_commands_exist():
    assert {"init", "validate", "sync", "status", "explain", "history", "report", "run"} <= set(cli.commands)


@pytest.mark.parametrize("name", sorted(set(cli.commands) - {"sandbox", "demo"}))
def test_every_workspace_command_takes_workspace_and_db(name):
    opts = {o for p in cli.commands[name].params for o in p.opts}
    assert {"-w", "--workspace", "--db"} <= opts


def test_the_command_sets_its_collector_thresholds_and_a_library_caller_keeps_its_own(monkeypatch):
    import gc

    import okrsync.cli as entry
    from okrsync.app import GC_THRESHOLDS

    before = gc.get_threshold()
    monkeypatch.setattr(entry, "cli", lambda **kw: None)
    try:
        import okrsync.engine.pipeline  # noqa: F401  (importing the library changes nothing)
        assert gc.get_threshold() == before
        entry.main()
        assert gc.get_threshold() == GC_THRESHOLDS != before
    finally:
        gc.set_threshold(*before)


def test_init_then_validate(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = invoke(["init"])
    assert r.exit_code == 0
    assert Path("okrsync.yaml").exists()
    r = invoke(["validate"])  # credentials are checked up front: the template's sources have none yet
    assert r.exit_code == 2
    assert "okrsync: github: no token: set OKRSYNC_SOURCES__GITHUB__TOKEN" in r.stderr
    r = invoke(["validate"], env={"OKRSYNC_SOURCES__JIRA__TOKEN": "jira-token", "OKRSYNC_SOURCES__JIRA__EMAIL": "a@b.c",
                                  "OKRSYNC_SOURCES__GITHUB__TOKEN": "github-token"})
    assert r.exit_code == 0, r.output
    assert "ok — period 2026-Q4" in r.output
    r = invoke(["init"])
    assert r.exit_code == 2
    assert "exists (use --force" in r.stderr


@pytest.fixture
def ws(tmp_path):
    p = tmp_path / "okrsync.yaml"
    p.write_text(WS)
    store = Store(tmp_path / "okrsync.db")
    load(store, [
        issue("APP-1", parent="APP-100", status_category="done"), issue("APP-2", parent="APP-100", status_category="done"),
        issue("APP-3", parent="APP-100", status_category="todo"), issue("APP-4", parent="APP-100", status_category="in_progress"),
        issue("APP-9", type="Bug", created="2026-10-10"), issue("APP-10", type="Bug", created="2026-10-11"),
        issue("APP-11", type="Bug", created="2026-09-11"),
        deployment(id="d1", created="2026-10-05", status="success"), deployment(id="d2", created="2026-10-12"),
        deployment(id="d3", created="2026-10-19", status="failure"),
    ], synced_at="2026-11-14 23:00")
    store.close()
    return p


NOW = {"OKRSYNC_NOW": "2026-11-15T00:00:00Z"}


def test_status_json_exact(ws):
    r = invoke(["status", "--json", "-w", str(ws)], env=NOW)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["generated_at"] == "2026-11-15T00:00:00.000Z"
    assert doc["period"] == "2026-Q4"
    assert [o["id"] for o in doc["objectives"]] == ["O1", "O2"]
    o1, o2 = doc["objectives"]
    kr1, kr2 = o1["key_results"]
    expected = 45 / 92
    assert {k: kr1[k] for k in ("id", "metric", "value", "baseline", "target", "progress", "score", "status", "items",
                                "synced_at")} == {
        "id": "KR1", "metric": "done_ratio", "value": 0.5, "baseline": None, "target": 1.0, "progress": 0.5,
        "score": 0.5, "status": "on_track", "items": 4, "synced_at": "2026-11-14T23:00:00.000Z"}
    assert kr1["expected"] == pytest.approx(expected)
    weeks = 45 / 7
    assert kr2["value"] == pytest.approx(2 / weeks)
    assert kr2["progress"] == pytest.approx((2 / weeks - 1) / 2)
    assert kr2["status"] == "off_track"
    kr3 = o2["key_results"][0]
    assert (kr3["value"], kr3["baseline"], kr3["target"]) == (2.0, 10.0, 4.0)
    # a decreasing count is judged by its projection (2 bugs in 45 of 92 days -> 4.09), never achieved early
    projected = 2 * 92 / 45
    assert kr3["projected"] == pytest.approx(projected)
    assert kr3["progress"] == pytest.approx((projected - 10) / (4 - 10))
    assert (kr3["score"], kr3["status"]) == (pytest.approx((projected - 10) / (4 - 10)), "on_track")
    assert (o2["score"], o2["status"], o2["parent"]) == (pytest.approx(kr3["score"]), "on_track", "O1")
    # O1 rolls up its KRs (weight 1 each) and child O2 (weight 2)
    assert o1["score"] == pytest.approx((0.5 + 0.0 + 2 * kr3["score"]) / 4)
    assert o1["status"] == "off_track"
    assert set(kr1) >= {"id", "title", "metric", "value", "baseline", "target", "progress", "score", "expected",
                        "status", "items", "synced_at"}


def test_status_table_and_csv(ws):
    r = invoke(["status", "-w", str(ws)], env=NOW)
    assert r.exit_code == 0
    assert "KR1" in r.stdout and "on track" in r.stdout
    r = invoke(["status", "--format", "csv", "-w", str(ws)], env=NOW)
    lines = r.stdout.splitlines()
    assert lines[0].startswith("objective_id,objective_title,objective_score")
    assert lines[1].startswith("O1,Ship checkout,")
    assert ",KR1,Checkout v2 done,done_ratio,0.5,,1.0,0.5,0.5," in lines[1]


def test_explain_and_history(ws):
    r = invoke(["explain", "KR1", "-w", str(ws)], env=NOW)
    assert r.exit_code == 0, r.output
    assert "done items / all selected items" in r.stdout
    assert "items counted: 4" in r.stdout
    assert "APP-1" in r.stdout
    r = invoke(["history", "KR1", "-w", str(ws)], env=NOW)
    assert r.exit_code == 0
    assert "no history yet" in r.stdout
    r = invoke(["history", "KR1", "--json", "-w", str(ws)], env=NOW)
    assert json.loads(r.stdout) == []


def test_unknown_kr_is_a_usage_error(ws):
    r = invoke(["explain", "KR9", "-w", str(ws)])
    assert r.exit_code == 2
    assert r.stderr.strip() == f"okrsync: unknown key result 'KR9' in {ws} (known: KR1, KR2, KR3)"


def test_validate_error_exit_2_one_line_no_traceback(tmp_path):
    p = tmp_path / "okrsync.yaml"
    p.write_text(WS.replace("metric: count", "metrik: count"))
    r = invoke(["validate", "-w", str(p)])
    assert r.exit_code == 2
    assert r.stderr.startswith(f"okrsync: {p}:17: objectives[1].key_results[0]")
    assert "Traceback" not in r.output + r.stderr


def test_missing_workspace(tmp_path):
    r = invoke(["status", "-w", str(tmp_path / "none.yaml")])
    assert r.exit_code == 2
    assert "workspace file not found" in r.stderr


def test_sync_without_tokens_exits_2_naming_the_variables(ws):
    r = invoke(["sync", "-w", str(ws)])
    assert r.exit_code == 2
    assert "okrsync: jira: no token: set OKRSYNC_SOURCES__JIRA__TOKEN" in r.stderr
    assert "okrsync: github: no token: set OKRSYNC_SOURCES__GITHUB__TOKEN" in r.stderr


def test_sync_unknown_source_option(ws):
    r = invoke(["sync", "--source", "gitlab", "-w", str(ws)])
    assert r.exit_code == 2
    assert "--source gitlab: not in" in r.stderr


def test_newer_store_is_refused_with_one_line(ws):
    store = Store(ws.parent / "okrsync.db")
    store.db["_sqlite_migrations"].insert({"migration_set": "okrsync", "name": "m999", "applied_at": "x"})
    store.db.conn.commit()
    store.close()
    r = invoke(["status", "-w", str(ws)])
    assert r.exit_code == 2
    assert "written by a newer okrsync" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_db_option_and_env(ws, tmp_path):
    other = tmp_path / "other.db"
    r = invoke(["status", "--json", "-w", str(ws), "--db", str(other)], env=NOW)
    doc = json.loads(r.stdout)
    assert doc["objectives"][0]["key_results"][0]["status"] == "no_data"
    assert other.exists()
