"""Operator checks in the CLI: output paths before anything is read, credentials up front, validate --online."""

import os
from pathlib import Path

import pytest
import responses
from click.testing import CliRunner

from okrsync.cli import cli
from okrsync.config.settings import Settings
from okrsync.config.workspace import load_workspace_text
from okrsync.engine.pipeline import OutputError, check_output, credential_problem, output_paths

WS = """\
period: 2026-Q4
sources:
  jira: {type: jira, url: https://jira.acme.example, deployment: server, projects: [APP]}
  github: {type: github, repos: [acme/web]}
  servicenow: {type: servicenow, url: https://acme.service-now.com, user: okrsync}
  pagerduty: {type: pagerduty}
objectives:
  - id: O1
    title: t
    key_results:
      - {id: KR1, title: epic, metric: done_ratio, select: {source: jira, parent: APP-100}, target: 1}
"""
TOKENS = {"OKRSYNC_SOURCES__JIRA__TOKEN": "jira-pat-1234", "OKRSYNC_SOURCES__GITHUB__TOKEN": "ghp-token-5678",
          "OKRSYNC_SOURCES__SERVICENOW__PASSWORD": "sn-pass-9012", "OKRSYNC_SOURCES__PAGERDUTY__TOKEN": "pd-token-3456"}


def invoke(args, env=None):
    return CliRunner().invoke(cli, args, env={"OKRSYNC_SECRETS_DIR": "/nonexistent", **(env or {})},
                              catch_exceptions=False)


@pytest.fixture
def ws(tmp_path, monkeypatch):
    for key in list(os.environ):
        if key.startswith("OKRSYNC_"):
            monkeypatch.delenv(key)
    p = tmp_path / "okrsync.yaml"
    p.write_text(WS)
    return p


# -- output paths -----------------------------------------------------------------------------------------------

def test_report_into_a_missing_directory_is_one_line_exit_2_and_creates_nothing(ws, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = invoke(["report", "-w", str(ws), "-o", "nodir/sub/r.html"])
    assert r.exit_code == 2
    assert r.stderr == ("okrsync: report -o: cannot write nodir/sub/r.html: directory nodir/sub does not exist "
                        "(okrsync creates no directories)\n")
    assert not (tmp_path / "nodir").exists()
    assert not (tmp_path / "okrsync.db").exists()  # checked before the store was opened


def test_report_onto_a_directory_names_it(ws, tmp_path):
    r = invoke(["report", "-w", str(ws), "-o", str(tmp_path)])
    assert r.exit_code == 2  # click's own usage error
    assert f"'{tmp_path}' is a directory" in r.stderr
    with pytest.raises(OutputError, match=" is a directory; give a file name"):
        check_output(tmp_path, "report.path")


def test_check_output_probes_without_leaving_files(tmp_path):
    check_output(tmp_path / "r.html")
    existing = tmp_path / "old.html"
    existing.write_text("kept")
    check_output(existing)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.html"] and existing.read_text() == "kept"
    with pytest.raises(OutputError, match=r"^report\.path: cannot write .*/missing/r\.html: directory .*/missing does "
                                          r"not exist \(okrsync creates no directories\)$"):
        check_output(tmp_path / "missing" / "r.html", "report.path")


def test_report_paths_resolve_against_the_workspace_files_directory(tmp_path):
    loaded = load_workspace_text(WS + "report: {path: out/r.html, json: /data/status.json}\n",
                                 str(tmp_path / "config" / "okrsync.yaml"))
    assert output_paths(loaded) == [("report.json", Path("/data/status.json")),
                                    ("report.path", tmp_path / "config" / "out" / "r.html")]


def test_validate_names_an_unwritable_report_path(ws, tmp_path):
    ws.write_text(WS + "report: {path: nodir/r.html}\n")
    r = invoke(["validate", "-w", str(ws)], env=TOKENS)
    assert r.exit_code == 2
    assert r.stderr == (f"okrsync: report.path: cannot write {tmp_path / 'nodir' / 'r.html'}: directory "
                        f"{tmp_path / 'nodir'} does not exist (okrsync creates no directories)\n")


# -- credentials up front ---------------------------------------------------------------------------------------

def test_validate_lists_every_missing_credential_with_its_variable(ws):
    r = invoke(["validate", "-w", str(ws)], env={"OKRSYNC_SOURCES__GITHUB__TOKEN": "ghp-token-5678"})
    assert r.exit_code == 2
    assert r.stderr.splitlines() == [
        "okrsync: jira: no token: set OKRSYNC_SOURCES__JIRA__TOKEN",
        "okrsync: servicenow: no credentials: set OKRSYNC_SOURCES__SERVICENOW__TOKEN, or "
        "OKRSYNC_SOURCES__SERVICENOW__USER and OKRSYNC_SOURCES__SERVICENOW__PASSWORD",
        "okrsync: pagerduty: no token: set OKRSYNC_SOURCES__PAGERDUTY__TOKEN",
    ]
    assert r.stdout == ""
    r = invoke(["validate", "-w", str(ws)], env=TOKENS)  # the servicenow user comes from the workspace file
    assert r.exit_code == 0, r.stderr
    assert "ok — period 2026-Q4, 4 sources" in r.stdout


def test_jira_cloud_needs_an_email_with_its_token(monkeypatch):
    for key in ("OKRSYNC_SOURCES__JIRA__TOKEN", "OKRSYNC_SOURCES__JIRA__EMAIL"):
        monkeypatch.delenv(key, raising=False)
    cloud = load_workspace_text(WS.replace("https://jira.acme.example, deployment: server",
                                           "https://acme.atlassian.net"), "okrsync.yaml").workspace.sources["jira"]
    assert credential_problem("jira", cloud, Settings()) == (
        "jira: no token: set OKRSYNC_SOURCES__JIRA__TOKEN, and email: in the source or OKRSYNC_SOURCES__JIRA__EMAIL "
        "(Jira Cloud signs in with an email and an API token)")
    monkeypatch.setenv("OKRSYNC_SOURCES__JIRA__TOKEN", "jira-api-token")
    assert credential_problem("jira", cloud, Settings()) == (
        "jira: Jira Cloud needs an email with the API token: set email: in the source or OKRSYNC_SOURCES__JIRA__EMAIL")
    monkeypatch.setenv("OKRSYNC_SOURCES__JIRA__EMAIL", "bot@acme.example")
    assert credential_problem("jira", cloud, Settings()) is None


# -- validate --online ------------------------------------------------------------------------------------------

def mock_sources(pd_status=200):
    responses.get("https://jira.acme.example/rest/api/2/myself", json={"displayName": "OKR Bot", "name": "okrbot"})
    responses.get("https://api.github.com/rate_limit",
                  json={"resources": {"core": {"limit": 5000, "remaining": 4990}}, "rate": {}})
    responses.get("https://acme.service-now.com/api/now/table/incident", json={"result": [{"sys_id": "a"}]})
    responses.get("https://api.pagerduty.com/abilities", status=pd_status,
                  json={"abilities": ["teams"]} if pd_status == 200 else {"error": {"message": "Unauthorized"}})


@responses.activate
def test_validate_online_one_call_and_one_line_per_source(ws):
    mock_sources()
    r = invoke(["validate", "--online", "-w", str(ws)], env=TOKENS)
    assert r.exit_code == 0, r.stderr
    assert r.stdout.splitlines()[1:] == [
        "jira: ok — authenticated as OKR Bot (Jira Data Center, GET /rest/api/2/myself)",
        "github: ok — token accepted, 4990 of 5000 requests left (GET /rate_limit)",
        "servicenow: ok — read 1 row of incident (GET /api/now/table/incident?sysparm_limit=1)",
        "pagerduty: ok — token accepted (GET /abilities)",
    ]
    assert len(responses.calls) == 4
    sent = {c.request.url.split("?")[0]: c.request.headers for c in responses.calls}
    assert sent["https://jira.acme.example/rest/api/2/myself"]["Authorization"] == "Bearer jira-pat-1234"
    assert sent["https://api.pagerduty.com/abilities"]["Authorization"] == "Token token=pd-token-3456"
    assert "limit=1" in next(c.request.url for c in responses.calls if "service-now" in c.request.url)


@responses.activate
def test_validate_online_a_rejected_token_is_exit_2_in_one_line(ws):
    mock_sources(pd_status=401)
    r = invoke(["validate", "--online", "-w", str(ws)], env=TOKENS)
    assert r.exit_code == 2
    assert r.stderr == ("okrsync: pagerduty: authentication failed for https://api.pagerduty.com "
                        "(check OKRSYNC_SOURCES__PAGERDUTY__TOKEN)\n")
    assert len(r.stdout.splitlines()) == 4
    assert "pd-token-3456" not in r.output


def test_validate_online_is_not_reached_without_credentials(ws):
    r = invoke(["validate", "--online", "-w", str(ws)])
    assert r.exit_code == 2 and "no token" in r.stderr
