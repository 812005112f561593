"""Operator fixes via the real CLI: sandbox exports, network messages, flags, words, churn, dry runs, a lost store."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime, timezone

import pytest

from .conftest import Env
from .test_operator_signals_e2e import slow_jira_sync

pytestmark = pytest.mark.e2e

ANY_NAMES = """\
period: {period}
sources:
  tracker: {{type: jira, url: "http://127.0.0.1:{p[0]}", projects: [APP, OPS, OKR], retry_backoff: 0.01}}
  code: {{type: github, url: "http://127.0.0.1:{p[1]}", repos: [acme/web], retry_backoff: 0.01}}
  itsm: {{type: servicenow, url: "http://127.0.0.1:{p[2]}", retry_backoff: 0.01}}
  oncall: {{type: pagerduty, url: "http://127.0.0.1:{p[3]}", retry_backoff: 0.01}}
objectives:
  - id: O1
    title: Delivery
    key_results:
      - {{id: KR3, title: Bugs this quarter, metric: count, select: {{source: tracker, type: Bug}}, baseline: 200,
          target: 100}}
"""
ONE_SOURCE = """\
period: {period}
sources:
  pagerduty: {{type: pagerduty, url: "{url}"{extra}}}
objectives:
  - id: O1
    title: Service
    key_results:
      - {{id: KR7, title: MTTA, metric: mtta, select: {{source: pagerduty}}, target: 5}}
"""


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr and "internal error" not in stderr
    return lines[0]


def write(env: Env, template: str, **kw) -> None:
    from .conftest import NOW, quarter

    env.workspace.write_text(template.format(period=quarter(NOW), **kw))


# -- 5. a sandbox for any workspace ---------------------------------------------------------------------------

@pytest.fixture
def sandbox_process(env):
    """`okrsync sandbox -w okrsync.yaml --require-token` for a workspace whose sources have other names."""
    ports = free_ports(4)
    write(env, ANY_NAMES, p=ports)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OKRSYNC_")}
    proc = subprocess.Popen([sys.executable, "-m", "okrsync", "sandbox", "-w", str(env.workspace), "--scale", "50",
                             "--require-token"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean)
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if "Ctrl-C stops" in line:
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert ready.wait(60), (lines, proc.poll())
        yield ports, lines
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_sandbox_prints_exports_for_the_workspace_sources_and_checks_tokens(env, sandbox_process):
    ports, lines = sandbox_process
    exports = dict(re.findall(r"^\s+export (OKRSYNC_\w+)=(\S+)$", "\n".join(lines), re.M))
    assert set(exports) == {"OKRSYNC_SOURCES__TRACKER__EMAIL", "OKRSYNC_SOURCES__TRACKER__TOKEN",
                            "OKRSYNC_SOURCES__CODE__TOKEN", "OKRSYNC_SOURCES__ITSM__USER",
                            "OKRSYNC_SOURCES__ITSM__PASSWORD", "OKRSYNC_SOURCES__ONCALL__TOKEN"}
    assert "@" in exports["OKRSYNC_SOURCES__TRACKER__EMAIL"]
    assert any(f"http://127.0.0.1:{ports[0]}" in line for line in lines)  # served where the workspace points
    assert any("Only the required token is accepted" in line for line in lines)
    r = env.run("sync", env=exports)
    assert r.returncode == 0, r.stderr
    assert re.search(r"^code: \d+ fetched", r.stdout, re.M)
    wrong = {**exports, "OKRSYNC_SOURCES__CODE__TOKEN": "not-the-sandbox-token"}
    r = env.run("sync", "--full", env=wrong)
    assert r.returncode == 1, r.stdout + r.stderr
    assert one_line(r.stderr) == (f"okrsync: code: authentication failed for http://127.0.0.1:{ports[1]} "
                                  f"(check OKRSYNC_SOURCES__CODE__TOKEN)")
    with urllib.request.urlopen(f"http://127.0.0.1:{ports[1]}/_sandbox/log?system=github", timeout=10) as resp:
        statuses = [q["status"] for q in json.load(resp)["requests"]]
    assert 401 in statuses and 200 in statuses  # the sandbox refused the wrong token, took the right one
    assert "not-the-sandbox-token" not in r.stdout + r.stderr
    assert re.search(r"^tracker: \d+ fetched", r.stdout, re.M)  # the others still synced


# -- 6. network messages that name the fix --------------------------------------------------------------------

def test_a_host_that_does_not_resolve_fails_at_once_naming_it(env):
    write(env, ONE_SOURCE, url="https://acme.atlassian.invalid", extra="")  # default backoff: 6 tries take ~30 s
    started = time.monotonic()
    r = env.run("sync", timeout=60)
    elapsed = time.monotonic() - started
    assert r.returncode == 1
    assert one_line(r.stderr) == ("okrsync: pagerduty: cannot resolve host acme.atlassian.invalid "
                                  "(check the url: of the source)")
    assert elapsed < 15, elapsed


def test_https_to_a_plain_http_port_says_the_server_does_not_speak_tls(env):
    port = env.sandbox.urls["pagerduty"].rsplit(":", 1)[1]
    write(env, ONE_SOURCE, url=f"https://127.0.0.1:{port}", extra="")
    r = env.run("sync", timeout=60)
    assert r.returncode == 1
    line = one_line(r.stderr)
    assert f"pagerduty: the server at https://127.0.0.1:{port}/" in line and "does not speak TLS" in line
    assert "ca_bundle" not in line


# -- 7. flags and words ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("args,line", [
    (("run", "--every", "15m", "--once"), "okrsync: --once and --every cannot be used together"),
    (("run", "--cron", "*/15 * * * *", "--once"), "okrsync: --once and --cron cannot be used together"),
    (("status", "--json", "--format", "csv"), "okrsync: --json and --format csv cannot be used together"),
])
def test_conflicting_flags_are_refused_in_one_line_with_exit_2(env, args, line):
    r = env.run(*args, timeout=60)
    assert r.returncode == 2
    assert one_line(r.stderr).startswith(line)
    assert not env.db.exists()  # refused before anything was read


def test_counts_of_one_are_singular(env):
    write(env, ONE_SOURCE, url=env.sandbox.urls["pagerduty"], extra=", retry_backoff: 0.01")
    r = env.run("validate")
    assert r.returncode == 0, r.stderr
    assert "1 source, 1 objective, 1 key result" in r.stdout
    env.write_workspace()
    env.sandbox.faults.add("error", system="servicenow", statuses=(503,))
    r = env.run("sync")
    assert r.returncode == 1
    assert re.search(r"^run \d+: partial \(1 error\)$", r.stdout, re.M), r.stdout
    env.sandbox.faults.clear()
    r = env.run("sync")
    assert re.search(r"^servicenow: \d+ fetched .*, 1 request \[", r.stdout, re.M), r.stdout
    assert not re.search(r"\b1 (requests|errors|objectives|sources)\b", r.stdout + r.stderr)


def test_long_titles_are_ellipsized_in_the_table_and_whole_in_explain_and_report(env):
    words = " ".join(f"word{i}" for i in range(90))  # ~580 characters
    text = (env.workspace.read_text().replace("title: Release frequency", f"title: Release frequency {words}"))
    env.workspace.write_text(text)
    assert env.run("sync").returncode == 0
    narrow = {"COLUMNS": "100"}
    r = env.run("status", env=narrow)
    assert r.returncode == 0, r.stderr
    rows = [line for line in r.stdout.splitlines() if "KR1" in line]
    assert len(rows) == 1 and "…" in rows[0] and "word89" not in r.stdout
    assert len([line for line in r.stdout.splitlines() if "word" in line]) == 1  # one row, not 13
    r = env.run("explain", "KR1", env=narrow)
    assert f"Release frequency {words}" in " ".join(r.stdout.split())
    r = env.run("report", "-o", str(env.dir / "r.html"))
    assert r.returncode == 0, r.stderr
    assert f"Release frequency {words}" in (env.dir / "r.html").read_text()


def test_history_timestamps_are_whole_at_80_columns(env):
    assert env.run("sync").returncode == 0
    assert env.run("sync").returncode == 0
    r = env.run("history", "KR1", env={"COLUMNS": "80"})
    assert r.returncode == 0, r.stderr
    assert all(len(line) <= 80 for line in r.stdout.splitlines())
    stamps = re.findall(r"^│ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) +│", r.stdout, re.M)
    assert len(stamps) == 2, r.stdout


# -- 8. churn ---------------------------------------------------------------------------------------------------

def test_repository_stats_moving_does_not_make_pull_requests_changed(env):
    # --dry-run: no write-back edits an issue between the two reads (that would be a real change)
    assert env.run("sync", "--dry-run").returncode == 0
    env.sandbox.tick(60)  # the clock moves, no item does: every PR's embedded repository (updated_at) moves
    r = env.run("sync", "--dry-run")
    assert r.returncode == 0, r.stderr
    line = next(x for x in r.stdout.splitlines() if x.startswith("github:"))
    pulls = int(re.search(r"pull_requests (\d+)", line).group(1))
    assert pulls > 100, line  # the pull requests were read again (their ETags changed) ...
    assert "(0 new, 0 changed)" in line, line  # ... and none is "changed": no field we use moved
    changed = env.query("SELECT count(*) FROM issues WHERE source = 'github' AND first_run <> last_run "
                        "AND is_pull_request = 1")[0][0]
    raw = str(env.query("SELECT r.raw FROM issues t JOIN issues_raw r ON r.id = t.rowid "
                        "WHERE t.is_pull_request = 1 LIMIT 1")[0][0])
    assert changed > 100
    assert "updated_at" in raw and "pushed_at" not in raw  # the kept payload has no repository counters


# -- 9. dry run --------------------------------------------------------------------------------------------------

def test_dry_run_says_it_reads_and_records_and_lists_each_write(env):
    r = env.run("sync", "--help")
    assert "record the run" in " ".join(r.stdout.split())
    r = env.run("sync", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert re.search(r"^dry run: the sources were read into the store and run 1 recorded", r.stdout, re.M)
    planned = [line for line in r.stdout.splitlines() if line.startswith("  KR1 -> ")]
    assert any("jira:OKR-1" in line for line in planned) and any("github:acme/okrs#1" in line for line in planned)
    assert re.search(r"^dry run: 2 would be written, 0 unchanged$", r.stdout, re.M), r.stdout
    assert env.sandbox.world.writes(None) == []  # nothing was sent
    # both computed at one instant: hours into a quarter a rate moves between two runs, and a moved value is
    # rightly written again
    at = {"OKRSYNC_NOW": datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")}
    assert env.run("sync", env=at).returncode == 0
    r = env.run("sync", "--dry-run", env=at)
    assert re.search(r"^dry run: 0 would be written, 2 unchanged$", r.stdout, re.M), r.stdout
    assert [s for (s,) in env.query("SELECT status FROM runs ORDER BY id")] == ["ok", "ok", "ok"]


# -- 11. the store removed during a run ----------------------------------------------------------------------

@pytest.mark.sqlite_only
def test_deleting_the_store_during_a_sync_is_one_line_and_exit_1(env):
    proc = slow_jira_sync(env)
    for f in env.dir.glob("okrsync.db*"):
        f.unlink()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, (out, err)
    assert one_line(err) == f"okrsync: the store {env.db} was removed during the run"
