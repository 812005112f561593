"""Operator errors through the real CLI: unwritable outputs, errors printed once, credentials checked up front."""

from __future__ import annotations

from pathlib import Path

import pytest

from okrsync.sandbox import Sandbox

from .conftest import NOW, TOKENS, Env
from .test_faults_e2e import READ_ONLY

pytestmark = pytest.mark.e2e


def okrsync_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def writable(directory: Path) -> bool:
    probe = directory / ".okrsync-test-probe"
    try:
        probe.touch()
    except OSError:
        return False
    probe.unlink()
    return True


@pytest.fixture
def read_only_dir(tmp_path) -> Path:
    """A directory this process cannot write: mode 0555, or (as root, which ignores modes) /sys."""
    d = tmp_path / "config"
    d.mkdir()
    d.chmod(0o555)
    if not writable(d):
        yield d
        d.chmod(0o755)
        return
    d.chmod(0o755)
    if Path("/sys").is_dir() and not writable(Path("/sys")):
        yield Path("/sys")
        return
    pytest.skip("no read-only directory here (root, and /sys is writable)")


def run_rows(env: Env) -> list[tuple]:
    if not env.exists():
        return []
    conn = env.connect()
    try:
        return conn.execute("SELECT id, status FROM runs").fetchall()
    finally:
        conn.close()


# -- unwritable outputs ---------------------------------------------------------------------------------------

def test_report_into_a_missing_directory_exits_2_naming_the_path(env):
    r = env.run("report", "-o", "nodir/sub/r.html")
    assert r.returncode == 2
    assert r.stderr == ("okrsync: report -o: cannot write nodir/sub/r.html: directory nodir/sub does not exist "
                        "(okrsync creates no directories)\n")
    assert not (env.dir / "nodir").exists()
    assert r.stdout == ""


def test_report_into_a_read_only_directory_exits_2(env, read_only_dir):
    target = read_only_dir / "r.html"
    r = env.run("report", "-o", str(target))
    assert r.returncode == 2
    lines = okrsync_lines(r.stderr)
    assert len(lines) == 1 and lines[0].startswith(f"okrsync: report -o: cannot write {target}: "), r.stderr


@pytest.mark.parametrize("command", [("sync",), ("run", "--once"), ("validate",)])
def test_report_path_under_a_read_only_directory_fails_before_reading_anything(env, read_only_dir, command):
    target = read_only_dir / "report.html"
    env.write_workspace(READ_ONLY + f"report:\n  path: {target}\n  json: status.json\n")
    r = env.run(*command)
    assert r.returncode == 2, r.stderr
    lines = okrsync_lines(r.stderr)
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"okrsync: report.path: cannot write {target}: ")
    assert "relative report paths resolve against the workspace file's directory" in lines[0]
    assert env.sandbox.requests() == []  # nothing was read
    assert [s for _, s in run_rows(env)] == []  # and no run was started, so none is left running
    if command == ("sync",):
        assert not env.exists()  # not even the store was created
    assert not (env.dir / "status.json").exists()


def test_report_path_in_a_missing_directory_is_not_created(env):
    env.write_workspace(READ_ONLY + "report:\n  path: out/report.html\n")
    r = env.run("sync")
    assert r.returncode == 2
    assert okrsync_lines(r.stderr) == [
        f"okrsync: report.path: cannot write {env.dir / 'out' / 'report.html'}: directory {env.dir / 'out'} "
        "does not exist (okrsync creates no directories)"]
    assert not (env.dir / "out").exists() and env.sandbox.requests() == []
    (env.dir / "out").mkdir()
    r = env.run("sync")
    assert r.returncode == 0, r.stderr
    assert (env.dir / "out" / "report.html").stat().st_size > 1000
    assert f"wrote {env.dir / 'out' / 'report.html'}" in r.stdout
    assert [s for _, s in run_rows(env)] == ["ok"]


# -- errors once ----------------------------------------------------------------------------------------------

def test_a_failing_source_is_reported_in_one_line_and_with_v_also_logged(env):
    env.write_workspace(READ_ONLY)
    env.sandbox.faults.server_errors(1000, system="servicenow")
    r = env.run("sync")
    assert r.returncode == 1
    about = [line for line in okrsync_lines(r.stderr) if "servicenow" in line]
    assert len(about) == 1 and about[0].startswith("okrsync: servicenow: HTTP 50"), r.stderr
    assert "ERROR" not in r.stderr and "Traceback" not in r.stderr
    r = env.run("-v", "sync")
    assert r.returncode == 1
    about = [line for line in okrsync_lines(r.stderr) if "servicenow: HTTP 50" in line and "gave up" in line]
    assert len(about) == 2 and about[-1].startswith("okrsync: servicenow: ")  # -v: the log line as well


# -- credentials up front -------------------------------------------------------------------------------------

def test_validate_names_the_variable_of_a_missing_token(env):
    env.write_workspace(READ_ONLY)
    r = env.run("validate", env={"OKRSYNC_SOURCES__PAGERDUTY__TOKEN": "", "OKRSYNC_SOURCES__SERVICENOW__PASSWORD": ""})
    assert r.returncode == 2
    assert okrsync_lines(r.stderr) == [
        "okrsync: servicenow: no credentials: set OKRSYNC_SOURCES__SERVICENOW__TOKEN, or "
        "OKRSYNC_SOURCES__SERVICENOW__USER and OKRSYNC_SOURCES__SERVICENOW__PASSWORD",
        "okrsync: pagerduty: no token: set OKRSYNC_SOURCES__PAGERDUTY__TOKEN",
    ]
    assert r.stdout == "" and env.sandbox.requests() == []


def test_validate_online_calls_each_source_once_and_reports_per_source(env):
    env.write_workspace(READ_ONLY)
    r = env.run("validate", "--online")
    assert r.returncode == 0, r.stderr
    lines = okrsync_lines(r.stdout)[1:]
    assert [line.split(":")[0] for line in lines] == ["jira", "github", "servicenow", "pagerduty"]
    assert all(": ok — " in line for line in lines), lines
    assert "authenticated as" in lines[0] and "GET /abilities" in lines[3]
    paths = sorted((q["system"], q["path"]) for q in env.sandbox.requests())
    assert paths == [("github", "/rate_limit"), ("jira", "/rest/api/2/myself"), ("jira", "/rest/api/2/serverInfo"),
                     ("pagerduty", "/abilities"), ("servicenow", "/api/now/table/incident")]


def test_validate_online_reports_a_wrong_token_in_one_line_and_exits_2(tmp_path):
    sb = Sandbox(seed=42, scale=50, now=NOW, require_token={
        "jira": TOKENS["OKRSYNC_SOURCES__JIRA__TOKEN"], "github": TOKENS["OKRSYNC_SOURCES__GITHUB__TOKEN"],
        "servicenow": TOKENS["OKRSYNC_SOURCES__SERVICENOW__PASSWORD"],
        "pagerduty": TOKENS["OKRSYNC_SOURCES__PAGERDUTY__TOKEN"]})
    sb.start()
    try:
        env = Env(sb, tmp_path)
        env.write_workspace(READ_ONLY)
        r = env.run("validate", "--online", env={"OKRSYNC_SOURCES__PAGERDUTY__TOKEN": "wrong-pd-token"})
        assert r.returncode == 2
        assert okrsync_lines(r.stderr) == [
            f"okrsync: pagerduty: authentication failed for {sb.urls['pagerduty']} "
            "(check OKRSYNC_SOURCES__PAGERDUTY__TOKEN)"]
        assert len([line for line in okrsync_lines(r.stdout)[1:] if ": ok — " in line]) == 3
        assert "wrong-pd-token" not in r.stdout + r.stderr
    finally:
        sb.stop()


def test_validate_online_names_an_unreachable_source(env):
    env.write_workspace(READ_ONLY.replace("{pagerduty}", "http://127.0.0.1:9"))  # discard port: refused
    r = env.run("validate", "--online")
    assert r.returncode == 1
    lines = okrsync_lines(r.stderr)
    assert len(lines) == 1 and lines[0].startswith("okrsync: pagerduty: connection failed"), r.stderr
