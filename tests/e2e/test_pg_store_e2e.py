"""The store on PostgreSQL: a worker per source at once, the same source never twice, the same results as
SQLite, workspaces apart in one database, no secret in it, and a bad or unreachable URL in one line."""

from __future__ import annotations

import re
import signal
import time
import uuid
from urllib.parse import urlsplit

import pytest

from okrsync.engine.store import Store

from .conftest import NOW, PG, TOKENS, Env, snapshot, store_url
from .test_faults_e2e import READ_ONLY

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not PG, reason="OKRSYNC_TEST_PG not set")]
AS_OF = {"OKRSYNC_NOW": NOW.isoformat()}


@pytest.fixture
def pg(env) -> Env:
    if env.store != "postgresql":
        pytest.skip("PostgreSQL only")
    env.write_workspace(READ_ONLY)
    return env


def wait_for_requests(env: Env, system: str, proc, timeout: float = 30.0) -> None:
    """Until the sandbox has seen a request of `system` (the worker holds its source's lock by then)."""
    deadline = time.monotonic() + timeout
    while not env.sandbox.requests(system):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the worker never read its source"
        time.sleep(0.02)


def test_two_source_workers_at_once_while_a_third_process_reads_status(pg):
    pg.sandbox.faults.slow(0.05, system="jira")
    pg.sandbox.faults.slow(0.05, system="servicenow")
    jira = pg.run("sync", "--source", "jira", "--wait", "0", background=True)
    sn = pg.run("sync", "--source", "servicenow", "--wait", "0", background=True)
    wait_for_requests(pg, "jira", jira)
    wait_for_requests(pg, "servicenow", sn)
    both = jira.poll() is None and sn.poll() is None
    status = pg.run("status", "--json")  # a reader while both write
    assert status.returncode == 0, status.stderr
    for proc in (jira, sn):
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    assert both  # they really ran at once
    runs = pg.query("SELECT command, status FROM runs ORDER BY id")
    assert runs == [("sync", "ok"), ("sync", "ok")]
    assert pg.query("SELECT count(*) FROM issues WHERE source = 'jira'")[0][0] == len(pg.sandbox.world.jira_issues())
    assert pg.query("SELECT count(*) FROM incidents WHERE source = 'servicenow'")[0][0] > 0
    assert pg.query("SELECT count(*) FROM incidents WHERE source = 'pagerduty'")[0][0] == 0  # not synced


def test_the_same_source_never_twice_and_a_killed_worker_frees_its_lock(pg):
    pg.sandbox.faults.slow(2.0, system="jira")
    first = pg.run("sync", "--source", "jira", background=True)
    wait_for_requests(pg, "jira", first)
    r = pg.run("sync", "--source", "jira", "--wait", "0")
    assert r.returncode == 1
    assert re.search(rf"another sync of jira is running \(pid {first.pid}\)", r.stderr), r.stderr
    other = pg.run("sync", "--source", "pagerduty", "--wait", "0")  # another source: at once
    assert other.returncode == 0, other.stderr
    assert first.poll() is None, first.communicate()
    first.send_signal(signal.SIGKILL)
    first.communicate()
    pg.sandbox.faults.clear()
    r = pg.run("sync", "--source", "jira", "--wait", "0")
    assert r.returncode == 0, r.stderr
    assert [s for (s,) in pg.query("SELECT status FROM runs ORDER BY id")] == ["abandoned", "ok", "ok"]


def test_status_documents_of_the_two_stores_are_identical(pg, tmp_path):
    lite = Env(pg.sandbox, tmp_path / "lite", "sqlite")
    lite.dir.mkdir()
    lite.write_workspace()
    pg.write_workspace()
    for e in (lite, pg):  # a dry run writes nothing back: the second reads what the first read
        r = e.run("sync", "--dry-run", env=AS_OF)
        assert r.returncode == 0, r.stderr
    assert snapshot(pg.target) == snapshot(lite.target)
    docs = []
    for e in (lite, pg):
        doc = e.status(env=AS_OF)
        for o in doc["objectives"]:
            for k in o["key_results"]:
                k.pop("synced_at")  # each store's own sync time
        docs.append(doc)
    assert docs[0] == docs[1]
    assert any(k["value"] is not None for o in docs[1]["objectives"] for k in o["key_results"])
    for kr in ("KR2", "KR4", "KR8"):  # explain's items and history read the same on both
        a, b = lite.run("explain", kr, env=AS_OF), pg.run("explain", kr, env=AS_OF)
        assert a.returncode == b.returncode == 0, b.stderr
        assert a.stdout == b.stdout


def test_two_workspaces_share_one_database_apart(pg, tmp_path):
    name = f"team {uuid.uuid4().hex[:8]}"  # its schema: the workspace's name (the URL names none)
    other = Env(pg.sandbox, tmp_path / "other", "postgresql", url=PG)
    other.dir.mkdir()
    other.write_workspace(READ_ONLY.replace("period:", f"name: {name}\nperiod:"))
    assert pg.run("sync", "--source", "jira").returncode == 0
    r = other.run("sync", "--source", "pagerduty")
    assert r.returncode == 0, r.stderr
    assert pg.query("SELECT DISTINCT source FROM issues UNION SELECT DISTINCT source FROM incidents") == [("jira",)]
    assert other.query("SELECT DISTINCT source FROM incidents") == [("pagerduty",)]
    assert other.query("SELECT count(*) FROM issues") == [(0,)]
    assert other.query("SELECT current_schema()") == [(name.replace(" ", "_"),)]


def test_recompute_writes_back_without_reading_the_sources(env):
    if env.store != "postgresql":
        pytest.skip("PostgreSQL only")
    assert env.run("sync").returncode == 0
    env.sandbox.reset_log()
    r = env.run("recompute")
    assert r.returncode == 0, r.stderr
    reads = [q for q in env.sandbox.requests() if "search" in q["path"] or "/incidents" in q["path"]
             or "/pulls" in q["path"] or "/deployments" in q["path"]]
    assert reads == []
    assert env.query("SELECT command, status FROM runs ORDER BY id DESC LIMIT 1") == [("recompute", "ok")]


def test_no_secret_reaches_the_database(env):
    if env.store != "postgresql":
        pytest.skip("PostgreSQL only")
    r = env.run("sync", debug=True)  # the URL in OKRSYNC_DB carries the password
    assert r.returncode == 0, r.stderr
    again = env.run("sync", debug=True)
    assert again.returncode == 0
    password = urlsplit(PG).password or ""
    secrets = [v for k, v in TOKENS.items() if not k.endswith("__USER")] + [password]
    logs = r.stdout + r.stderr + again.stdout + again.stderr
    assert [s for s in secrets if s in logs] == []
    store = Store(env.target, create=False)
    try:
        tables = [t for (t,) in store.db.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")]
        assert "issues" in tables and "runs" in tables
        dump = "\n".join(str(row) for t in tables for row in store.db.execute(f"SELECT * FROM {t}"))
    finally:
        store.close()
    assert len(dump) > 100_000
    assert [s for s in secrets if s and s in dump] == []


def test_a_bad_url_is_exit_2_and_an_unreachable_one_exit_1_without_the_password(pg):
    parts = urlsplit(PG)
    r = pg.run("status", "--db", "mysql://okr:pw-4411@db/okrs")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "pw-4411" not in r.stderr, r.stderr
    wrong = PG.replace(f":{parts.password}@", ":wrong-pw-9931@")
    r = pg.run("status", "--db", wrong)
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert "wrong-pw-9931" not in r.stderr and "cannot connect to the store postgresql://" in r.stderr
    closed = PG.replace(f":{parts.port}/", ":1/")
    r = pg.run("sync", "--db", closed)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and parts.password not in r.stderr, r.stderr


def test_serve_on_postgresql_polls_and_stops_cleanly(tmp_path):
    from .serve_harness import start_serve, stop_all, wait_for

    s = start_serve(tmp_path, every="4s", extra_env={"OKRSYNC_DB": store_url("postgresql", tmp_path)})
    try:
        before = s.value("KR3")
        s.edits.new_jira_issue(notify=False)  # no webhook: the next poll finds it
        wait_for(lambda: s.value("KR3") == before + 1, 30)
        assert s.get("/api/status").status_code == 200
    finally:
        assert stop_all(s) == 0, "".join(s.stderr)[-3000:]
