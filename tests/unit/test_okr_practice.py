"""OKR practice (issue 17): teams, check-ins and staleness, objective history, case-insensitive ids."""

import json
from datetime import datetime, timedelta, timezone

import pytest

from okrsync.config.workspace import load_workspace_text
from okrsync.config.yamlfile import ConfigError
from okrsync.engine.checkins import add_checkin, checkins, is_stale, objective_history, record_objective_scores
from okrsync.engine.compute import compute
from okrsync.engine.document import status_document
from okrsync.engine.store import Store
from tests.builders import deployment, incident, issue, load, mark_synced, pr
from tests.unit.test_cli import NOW, invoke
from tests.unit.test_metrics import SOURCES

UTC = timezone.utc
TEAMS = """\
teams:
  web: {repos: [acme/web], projects: [APP], components: [checkout]}
  ops: {services: [core-network], groups: [Network Ops]}
"""


def _ws(krs: str, extra: str = TEAMS):
    text = SOURCES + extra + "objectives:\n  - id: O1\n    title: t\n    team: web\n    key_results:\n" + krs
    return load_workspace_text(text).workspace


@pytest.fixture
def world(store):
    load(store, [
        issue(project="APP", created="2026-10-02"), issue(project="OPS", created="2026-10-03"),
        issue(project="OPS", created="2026-10-04", components=["checkout"]),
        pr(1, repo="acme/web", created="2026-10-05"), pr(2, repo="acme/api", created="2026-10-05"),
        deployment(repo="acme/web", finished="2026-10-06"), deployment(repo="acme/api", finished="2026-10-06"),
        incident(service="core-network", opened="2026-10-07"), incident(service="email", opened="2026-10-07"),
        incident(service="email", assignment_group="Network Ops", opened="2026-10-08"),
    ])
    for s in ("jira", "github", "servicenow", "pagerduty"):
        mark_synced(store, s)
    return store


@pytest.mark.parametrize("select,team,count", [
    ("{source: jira}", "web", 2),                      # project APP, or component checkout
    ("{source: github, kind: pull_request}", "web", 1),
    ("{source: github, environment: production}", "web", 1),
    ("{source: servicenow}", "ops", 2),                # service core-network, or group Network Ops
    ("{source: servicenow}", "web", 0),                # a team with no incident lists matches no incident
])
def test_team_selector(world, select, team, count):
    sel = select[:-1] + f", team: {team}}}"
    ws = _ws(f"      - {{id: KR1, title: t, metric: count, select: {sel}, target: 10}}\n")
    assert compute(ws, world, NOW_DT).kr("KR1").value == count


NOW_DT = datetime(2026, 11, 15, tzinfo=UTC)


def test_a_krs_team_is_its_own_else_its_objectives(world):
    ws = _ws("      - {id: KR1, title: t, metric: count, select: {source: jira}, target: 1}\n"
             "      - {id: KR2, title: t, metric: count, select: {source: jira}, target: 1, team: ops, owner: ana}\n")
    doc = status_document(compute(ws, world, NOW_DT))
    o = doc["objectives"][0]
    assert o["team"] == "web"
    assert [(k["id"], k["team"], k.get("owner")) for k in o["key_results"]] == [("KR1", "web", None),
                                                                                ("KR2", "ops", "ana")]


@pytest.mark.parametrize("krs,message", [
    ("      - {id: KR1, title: t, metric: count, select: {source: jira, team: nope}, target: 1}\n", "unknown team 'nope'"),
    ("      - {id: KR1, title: t, metric: count, select: {source: jira}, target: 1, team: nope}\n", "unknown team 'nope'"),
])
def test_unknown_teams_are_errors(krs, message):
    with pytest.raises(ConfigError) as err:
        _ws(krs)
    assert message in str(err.value)


def test_checkins_are_shown_and_never_change_the_value(world):
    ws = _ws("      - {id: KR1, title: t, metric: count, select: {source: jira}, target: 10}\n")
    before = compute(ws, world, NOW_DT).kr("KR1")
    add_checkin(world, "KR1", NOW_DT - timedelta(days=2), by="ana", confidence=0.4, note="first")
    add_checkin(world, "KR1", NOW_DT - timedelta(days=1), by="bo", confidence=0.6, note="vendor fix slips")
    k = compute(ws, world, NOW_DT).kr("KR1")
    assert (k.value, k.progress, k.status) == (before.value, before.progress, before.status)
    assert k.checkin is not None and (k.checkin.by, k.checkin.confidence, k.checkin.note) == (
        "bo", 0.6, "vendor fix slips")
    doc = status_document(compute(ws, world, NOW_DT))
    assert doc["objectives"][0]["key_results"][0]["checkin"] == {
        "at": "2026-11-14T00:00:00.000Z", "by": "bo", "confidence": 0.6, "note": "vendor fix slips"}
    assert [c.note for c in checkins(world, "KR1")] == ["vendor fix slips", "first"]
    with pytest.raises(ValueError):
        add_checkin(world, "KR1", NOW_DT, by=None, confidence=60, note=None)


def _record(store, kr_id, at, value):
    with store.write():
        store.db.execute("INSERT INTO kr_values (kr_id, computed_at, value) VALUES (?, ?, ?)",
                         [kr_id, at.strftime("%Y-%m-%dT%H:%M:%S.000Z"), value])


@pytest.mark.parametrize("history,checkin_days_ago,stale", [
    ([(20, 3.0), (10, 3.0), (1, 3.0)], None, True),      # unchanged for 20 days, nobody checked in
    ([(20, 3.0), (10, 3.0), (1, 3.0)], 5, False),        # a check-in 5 days ago
    ([(20, 2.0), (10, 3.0), (1, 3.0)], None, False),     # changed 10 days ago
    ([], None, False),                                   # never recorded
])
def test_staleness(store, history, checkin_days_ago, stale):
    for days, value in history:
        _record(store, "KR1", NOW_DT - timedelta(days=days), value)
    latest = None
    if checkin_days_ago is not None:
        latest = add_checkin(store, "KR1", NOW_DT - timedelta(days=checkin_days_ago), by=None, confidence=0.5,
                             note=None)
    assert is_stale(store, "KR1", 3.0, NOW_DT, timedelta(days=14), latest) is stale


def test_objective_scores_are_recorded_per_run(store):
    record_objective_scores(store, 1, NOW_DT, [("O1", 0.5, "on_track"), ("O2", None, "no_data")])
    record_objective_scores(store, 2, NOW_DT + timedelta(hours=1), [("O1", 0.6, "on_track")])
    assert objective_history(store, "O1") == [
        {"run_id": 1, "computed_at": "2026-11-15T00:00:00.000Z", "score": 0.5, "status": "on_track"},
        {"run_id": 2, "computed_at": "2026-11-15T01:00:00.000Z", "score": 0.6, "status": "on_track"}]


def test_checkin_command(tmp_path):
    ws = tmp_path / "okrsync.yaml"
    ws.write_text(SOURCES + "objectives:\n  - id: O1\n    title: t\n    key_results:\n"
                            "      - {id: KR5, title: t, metric: count, select: {source: jira}, target: 10}\n")
    r = invoke(["checkin", "kr5", "--confidence", "0.6", "--note", "vendor fix slips to January", "--by", "ana",
                "-w", str(ws)], env=NOW)
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == 'KR5: checked in 2026-11-15 by ana: confidence 60% — "vendor fix slips to January"'
    store = Store(tmp_path / "okrsync.db")
    assert [(c.kr_id, c.by, c.confidence) for c in checkins(store)] == [("KR5", "ana", 0.6)]
    for args, message in ((["KR9", "--note", "x"], "unknown key result 'KR9'"),
                          (["KR5"], "needs --confidence or --note"),
                          (["KR5", "--confidence", "60"], "expected a number between 0 and 1")):
        r = invoke(["checkin", *args, "-w", str(ws)], env=NOW)
        assert r.exit_code == 2 and message in r.stderr
    r = invoke(["status", "--json", "-w", str(ws)], env=NOW)
    assert json.loads(r.stdout)["objectives"][0]["key_results"][0]["checkin"]["note"] == "vendor fix slips to January"


TEAM_WS = """\
period: 2026-Q4
sources:
  jira: {type: jira, url: https://acme.atlassian.net, projects: [APP]}
teams:
  web: {projects: [APP]}
  ops: {projects: [OPS]}
objectives:
  - id: O1
    title: Ship checkout
    team: web
    owner: ana
    key_results:
      - {id: KR1, title: Checkout done, metric: done_ratio, select: {source: jira}, target: 1}
      - {id: KR2, title: Ops bugs, metric: count, select: {source: jira, type: Bug}, target: 5, team: ops, owner: bo}
  - id: O2
    title: Other
    key_results:
      - {id: KR3, title: Anything, metric: count, select: {source: jira}, target: 5}
"""


@pytest.fixture
def team_ws(tmp_path):
    p = tmp_path / "okrsync.yaml"
    p.write_text(TEAM_WS)
    store = Store(tmp_path / "okrsync.db")
    load(store, [issue(status_category="done"), issue(status_category="todo"), issue(type="Bug", created="2026-10-09")],
         synced_at="2026-11-14 23:00")
    store.close()
    return p


def test_status_team_filter(team_ws):
    r = invoke(["status", "--json", "--team", "ops", "-w", str(team_ws)], env=NOW)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert [(o["id"], [k["id"] for k in o["key_results"]]) for o in doc["objectives"]] == [("O1", ["KR2"])]
    r = invoke(["status", "--json", "--team", "web", "-w", str(team_ws)], env=NOW)
    assert [(o["id"], [k["id"] for k in o["key_results"]]) for o in json.loads(r.stdout)["objectives"]] == [
        ("O1", ["KR1"])]
    r = invoke(["status", "--team", "nope", "-w", str(team_ws)], env=NOW)
    assert r.exit_code == 2 and "--team nope: not in" in r.stderr and "(teams: web, ops)" in r.stderr
    r = invoke(["status", "--format", "csv", "-w", str(team_ws)], env=NOW)
    header, *rows = r.stdout.splitlines()
    assert header.endswith(",unit,team,owner")
    assert [row.rsplit(",", 2)[1:] for row in rows] == [["web", "ana"], ["ops", "bo"], ["", ""]]


def test_status_table_shows_owner_and_trend(team_ws):
    # a first sync-like recompute records values; the next status shows the change since then
    store = Store(team_ws.parent / "okrsync.db")
    ws = load_workspace_text(TEAM_WS).workspace
    from okrsync.engine.history import history_rows

    comp = compute(ws, store, datetime(2026, 11, 1, tzinfo=UTC))
    rows, sets = history_rows(comp, store, None)
    store.record_values(rows, sets)
    load(store, [issue(status_category="done")], synced_at="2026-11-14 23:00")
    store.close()
    r = invoke(["status", "-w", str(team_ws)], env={**NOW, "COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    kr1 = next(line for line in r.stdout.splitlines() if "KR1" in line)
    # done 1 of 3 when recorded on Nov 1, 2 of 4 now: +16.7 points since the last run and over 7 days
    assert "+16.7% / +16.7% 7d" in kr1 and "ana" not in kr1  # the objective row carries the owner
    assert "ana · web" in next(line for line in r.stdout.splitlines() if "O1" in line)
    assert "bo · ops" in next(line for line in r.stdout.splitlines() if "KR2" in line)


def test_history_of_an_objective_and_the_checkins_of_a_kr(team_ws):
    store = Store(team_ws.parent / "okrsync.db")
    record_objective_scores(store, 1, NOW_DT, [("O1", 0.5, "on_track")])
    add_checkin(store, "KR1", NOW_DT, by="ana", confidence=0.6, note="on it")
    store.close()
    r = invoke(["history", "o1", "-w", str(team_ws)], env={**NOW, "COLUMNS": "100"})
    assert r.exit_code == 0, r.output
    assert "2026-11-15 00:00:00" in r.stdout and "50%" in r.stdout and "on track" in r.stdout
    r = invoke(["history", "o1", "--json", "-w", str(team_ws)], env=NOW)
    assert json.loads(r.stdout) == [{"run_id": 1, "computed_at": "2026-11-15T00:00:00.000Z", "score": 0.5,
                                     "status": "on_track"}]
    r = invoke(["history", "kr1", "-w", str(team_ws)], env=NOW)
    assert r.exit_code == 0, r.output
    assert 'check-in 2026-11-15 by ana: confidence 60% — "on it"' in r.stdout
    r = invoke(["explain", "kr1", "-w", str(team_ws)], env={**NOW, "COLUMNS": "120"})
    assert r.exit_code == 0 and "KR1 — Checkout done" in r.stdout and "check-in    2026-11-15 by ana" in r.stdout


def test_report_groups_by_team_and_shows_checkins(team_ws, tmp_path):
    store = Store(team_ws.parent / "okrsync.db")
    add_checkin(store, "KR2", NOW_DT, by="bo", confidence=0.3, note="vendor late")
    store.close()
    out = tmp_path / "r.html"
    r = invoke(["report", "-o", str(out), "-w", str(team_ws)], env=NOW)
    assert r.exit_code == 0, r.output
    html = out.read_text()
    assert html.index("<b>team web</b>") < html.index('href="#obj-O1"') < html.index('href="#obj-O2"')
    assert "<b>Check-in:</b> 2026-11-15 by bo: confidence 30% — &#34;vendor late&#34;" in html
    assert "bo · team ops" in html


def test_validate_warns_for_selector_values_its_sources_do_not_read(tmp_path):
    ws = tmp_path / "okrsync.yaml"
    ws.write_text("""\
period: 2026-Q4
sources:
  jira: {type: jira, url: https://acme.atlassian.net, projects: [APP, OPS]}
  github: {type: github, repos: [acme/web]}
objectives:
  - id: O1
    title: t
    key_results:
      - {id: KR1, title: t, metric: count, select: {source: jira, project: APPP}, target: 1}
      - {id: KR2, title: t, metric: count, select: {source: github, repo: acme/web}, target: 1}
      - {id: KR3, title: t, metric: count, select: {source: github, repo: acme/api}, target: 1}
""")
    env = {"OKRSYNC_SOURCES__JIRA__TOKEN": "t", "OKRSYNC_SOURCES__JIRA__EMAIL": "a@b.c",
           "OKRSYNC_SOURCES__GITHUB__TOKEN": "t", "OKRSYNC_SECRETS_DIR": str(tmp_path / "none")}
    r = invoke(["validate", "-w", str(ws)], env=env)
    assert r.exit_code == 0, r.output
    assert r.stderr.splitlines() == [
        "warning: KR1: select.project 'APPP' is not among the jira source's projects (APP, OPS): it will match nothing",
        "warning: KR3: select.repo 'acme/api' is not among the github source's repos (acme/web): it will match nothing"]
