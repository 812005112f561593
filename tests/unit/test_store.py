"""The store: exact rows, upsert by (source, id), WAL, migrations, newer-version refusal."""

import json
import sqlite3

import pytest

from okrsync.domain.records import Sprint
from okrsync.engine.store import Store, StoreError
from tests.builders import deployment, incident, issue, t


@pytest.mark.sqlite_only  # SQLite's raw text, sqlite_stat1, EXPLAIN QUERY PLAN
def test_issue_row_exact(store):
    rec = issue("APP-7", id="10007", created="2026-10-02T09:00:00+09:00", resolved="2026-10-03 00:00",
                status_category="done", labels=["a", "kr:KR1"], story_points=3.5, parent="APP-100",
                sprints=[Sprint("42", "Sprint 42", "active", t("2026-10-01"), t("2026-10-15"))],
                title="Checkout", project="APP", raw={"key": "APP-7"})
    counts = store.write_page("jira", "issues", [rec], run_id=5, state={"cursor": "2026-10-05T00:00:00.000Z"})
    assert (counts.new, counts.changed, counts.unchanged) == (1, 0, 0)
    row = next(store.db.query("SELECT * FROM issues"))
    assert {k: row[k] for k in ("source", "id", "key", "title", "status_category", "created", "resolved", "labels",
                                "story_points", "parent", "project", "is_pull_request", "deleted", "first_run",
                                "last_run", "stream")} == {
        "source": "jira", "id": "10007", "key": "APP-7", "title": "Checkout", "status_category": "done",
        "created": "2026-10-02T00:00:00.000Z", "resolved": "2026-10-03T00:00:00.000Z", "labels": '["a","kr:KR1"]',
        "story_points": 3.5, "parent": "APP-100", "project": "APP", "is_pull_request": 0, "deleted": 0,
        "first_run": 5, "last_run": 5, "stream": "issues"}
    # the raw payload lives beside the row, under its rowid
    assert store.db.execute("SELECT r.raw FROM issues t JOIN issues_raw r ON r.id = t.rowid").fetchone() == (
        '{"key":"APP-7"}',)
    assert store.raw("issues", "jira", "10007") == {"key": "APP-7"}
    assert json.loads(row["sprints"])[0]["name"] == "Sprint 42"
    assert list(store.db.query("SELECT id, name, state FROM sprints")) == [{"id": "42", "name": "Sprint 42", "state": "active"}]
    assert store.get_state("jira", "issues")["cursor"] == "2026-10-05T00:00:00.000Z"


def test_upsert_by_immutable_id_a_moved_issue_stays_one(store):
    store.write_page("jira", "issues", [issue("APP-7", id="10007", title="x")], run_id=1)
    counts = store.write_page("jira", "issues", [issue("OPS-1", id="10007", title="x", project="OPS")], run_id=2)
    assert (counts.new, counts.changed) == (0, 1)
    rows = list(store.db.query("SELECT key, first_run, last_run FROM issues"))
    assert rows == [{"key": "OPS-1", "first_run": 1, "last_run": 2}]


def test_unchanged_records_are_counted_as_such(store):
    rec = issue("APP-1", id="1", title="same")
    store.write_page("jira", "issues", [rec], run_id=1)
    counts = store.write_page("jira", "issues", [rec], run_id=2)
    assert (counts.new, counts.changed, counts.unchanged) == (0, 0, 1)


def test_deployment_commits_and_incidents(store):
    store.write_page("github", "deployments", [deployment(id="d1", commits=["a", "b", "a"])], run_id=1)
    assert [r["sha"] for r in store.db.query("SELECT sha FROM deployment_commits ORDER BY sha")] == ["a", "b"]
    store.write_page("github", "deployments", [deployment(id="d1", commits=["c"])], run_id=2)
    assert [r["sha"] for r in store.db.query("SELECT sha FROM deployment_commits")] == ["c"]
    store.write_page("snow", "incidents", [incident(id="i1", opened="2026-10-01 10:00", sla_breached=True,
                                                     reassignment_count=2, source="snow")], run_id=1)
    row = next(store.db.query("SELECT opened, sla_breached, reassignment_count FROM incidents"))
    assert row == {"opened": "2026-10-01T10:00:00.000Z", "sla_breached": 1, "reassignment_count": 2}


def test_page_and_state_are_one_transaction(store, monkeypatch):
    original = store._save_state

    def boom(*a, **kw):
        raise RuntimeError("crash between records and cursor")

    monkeypatch.setattr(store, "_save_state", boom)
    with pytest.raises(RuntimeError):
        store.write_page("jira", "issues", [issue(id="1")], run_id=1, state={"cursor": "x"})
    monkeypatch.setattr(store, "_save_state", original)
    assert store.db.execute("SELECT count(*) FROM issues").fetchone()[0] == 0


def test_mark_deleted_only_unseen_items_of_the_stream(store):
    store.write_page("jira", "issues", [issue(id="1"), issue(id="2")], run_id=1)
    store.write_page("jira", "issues", [issue(id="1")], run_id=2)
    assert store.mark_deleted("jira", "issues", 2) == 1
    assert [r["id"] for r in store.db.query("SELECT id FROM issues WHERE deleted = 1")] == ["2"]
    store.write_page("jira", "issues", [issue(id="2")], run_id=3)  # it came back
    assert store.db.execute("SELECT deleted FROM issues WHERE id = '2'").fetchone()[0] == 0


def test_jql_members_replace_and_delta(store):
    store.write_page("jira", "jql", [], run_id=1, memberships=[("k1", None, {"1", "2"}, "project = APP")])
    assert store.jql_evaluated("k1")
    store.write_page("jira", "jql", [], run_id=2, memberships=[("k1", {"2", "3"}, {"3"}, "project = APP")])
    ids = sorted(r["item_id"] for r in store.db.query("SELECT item_id FROM jql_members"))
    assert ids == ["1", "3"]


def test_wal_mode_and_migrations_recorded(tmp_path):
    s = Store(tmp_path / "a.db")
    assert s.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    names = [r["name"] for r in s.db.query("SELECT name FROM _sqlite_migrations")]
    assert names == ["m001_initial", "m002_deployment_twins", "m003_checkins_and_objective_values"]
    s.close()
    Store(tmp_path / "a.db").close()  # reopening applies nothing twice


def test_store_from_a_newer_version_is_refused(tmp_path):
    s = Store(tmp_path / "a.db")
    s.db["_sqlite_migrations"].insert({"migration_set": "okrsync", "name": "m999_future", "applied_at": "x"})
    s.db.conn.commit()
    s.close()
    with pytest.raises(StoreError, match="written by a newer okrsync"):
        Store(tmp_path / "a.db")


def test_not_a_store(tmp_path):
    p = tmp_path / "junk.db"
    p.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not an okrsync store"):
        Store(p)


def test_connections_per_thread(store):
    import threading

    errors = []

    def write(n):
        try:
            store.write_page(f"s{n}", "issues", [issue(id=str(i), source=f"s{n}") for i in range(50)], run_id=1)
        except sqlite3.Error as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert store.db.execute("SELECT count(*) FROM issues").fetchone()[0] == 200


def test_mark_deleted_limited_to_the_re_read_range(store):
    store.write_page("gh", "deployments", [deployment(id="old", created="2026-01-01", source="gh"),
                                           deployment(id="new", created="2026-10-01", source="gh")], run_id=1)
    assert store.mark_deleted("gh", "deployments", 2, since=t("2026-07-01")) == 1
    rows = {r["id"]: r["deleted"] for r in store.db.query("SELECT id, deleted FROM deployments")}
    assert rows == {"old": 0, "new": 1}
