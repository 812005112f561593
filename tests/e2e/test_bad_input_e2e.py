"""Bad input: broken files and selectors exit 2 naming the line; bad records are skipped and counted; a JQL
that Jira rejects fails its source in one line; moved issues stay one item; --full marks vanished ones deleted."""

from __future__ import annotations

import json
import time

import pytest

from .test_faults_e2e import READ_ONLY

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("broken,message", [
    ("period: {period}\nsources: [\n", "invalid YAML"),
    ("metric: first_contact_resolution", "metric: expected 'count'"),
    ("select: {{source: github, environment: production}}", None),
])
def test_broken_workspace_files_exit_2_naming_the_line(env, broken, message):
    text = READ_ONLY
    if broken.startswith("period"):
        text = broken
    elif broken.startswith("metric"):
        text = READ_ONLY.replace(broken, "metric: first_contact")
    else:
        text = READ_ONLY.replace(broken, "select: {{source: github, environment: production, sprint: S1}}")
        message = "selector key 'sprint' does not fit deployment items"
    env.write_workspace(text)
    for command in (("validate",), ("sync",), ("status",)):
        r = env.run(*command)
        assert r.returncode == 2, (command, r.stderr)
        assert r.stderr.startswith(f"okrsync: {env.workspace}:"), r.stderr
        assert message in r.stderr
        assert "Traceback" not in r.stderr


def test_a_kr_whose_jql_jira_rejects_fails_in_one_line_and_the_rest_syncs(env):
    env.write_workspace(READ_ONLY.replace("jql: 'project = APP AND issuetype = Bug'", "jql: 'project = APP AND bogus = 1'"))
    r = env.run("sync")
    assert r.returncode == 1
    lines = [line for line in r.stderr.splitlines() if line.startswith("okrsync:")]
    assert len(lines) == 1 and lines[0].startswith("okrsync: jira: JQL of KR2 rejected by Jira: ")
    krs = env.krs()
    assert krs["KR2"]["status"] == "no_data"
    # the other sources synced (FCR may have nothing resolved yet minutes into a quarter: no_data, not an error)
    assert krs["KR1"]["value"] is not None and krs["KR1"]["synced_at"] is not None
    assert krs["KR3"]["synced_at"] is not None and (krs["KR3"]["value"] is not None or krs["KR3"]["status"] == "no_data")
    conn = env.connect()
    assert conn.execute("SELECT count(*) FROM issues WHERE source = 'jira'").fetchone()[0] == len(
        env.sandbox.world.jira_issues())


def test_unparseable_records_are_skipped_named_and_counted(env):
    env.write_workspace(READ_ONLY)
    renderer = env.sandbox.apps["jira"].r
    original = renderer.issue
    bad_key = env.sandbox.world.jira_issues("APP")[5]["key"]

    def broken(i, fields, *a, **kw):
        out = original(i, fields, *a, **kw)
        if i.key == bad_key and "created" in out["fields"]:
            out["fields"]["created"] = "31/02/2026 25:61"
        return out

    renderer.issue = broken
    r = env.run("sync")
    assert r.returncode == 0, r.stderr
    assert f"skipped jira {bad_key}: bad created time '31/02/2026 25:61'" in r.stdout
    conn = env.connect()
    run = conn.execute("SELECT skipped, sources FROM runs ORDER BY id DESC").fetchone()
    assert [s["key"] for s in json.loads(run[0])] == [bad_key]
    assert json.loads(run[1])["jira"]["skipped"] == 1
    assert conn.execute("SELECT count(*) FROM issues WHERE source = 'jira'").fetchone()[0] == len(
        env.sandbox.world.jira_issues()) - 1


def test_moved_issue_stays_one_item_and_full_sync_marks_vanished_ones_deleted(env):
    env.write_workspace(READ_ONLY)
    r = env.run("sync")
    assert r.returncode == 0, r.stderr
    w = env.sandbox.world
    with w.lock:
        moved = next(i for i in w.jira if i.project == "APP" and i.type == "Bug")
        old_key = moved.key
        del w.jira_by_key[moved.key]
        moved.project, moved.num = "OPS", 9999
        moved.key = "OPS-9999"
        w.jira_by_key[moved.key] = moved
        moved.updated = int(time.time() * 1000)  # after the last sync, whatever the world's clock says
        gone = next(i for i in w.jira if i.project == "APP" and i.type == "Bug" and i is not moved)
        w.jira.remove(gone)
        del w.jira_by_key[gone.key], w.jira_by_id[gone.id]
        w.touch()
    r = env.run("sync")
    assert r.returncode == 0, r.stderr
    conn = env.connect()
    rows = conn.execute("SELECT key, project, deleted FROM issues WHERE id = ?", [str(moved.id)]).fetchall()
    assert rows == [("OPS-9999", "OPS", 0)]
    assert conn.execute("SELECT count(*) FROM issues WHERE key = ?", [old_key]).fetchone()[0] == 0
    # an incremental read cannot see a deletion; a full one can
    assert conn.execute("SELECT deleted FROM issues WHERE id = ?", [str(gone.id)]).fetchone() == (0,)
    r = env.run("sync", "--full")
    assert r.returncode == 0, r.stderr
    assert "1 deleted" in r.stdout
    assert conn.execute("SELECT deleted FROM issues WHERE id = ?", [str(gone.id)]).fetchone() == (1,)
    bugs = [i for i in w.jira_issues("APP") if i["type"] == "Bug"]
    krs = env.krs()
    assert krs["KR2"]["items"] == len([b for b in bugs if b["created"] >= w.period_bounds()["current_start"]])
