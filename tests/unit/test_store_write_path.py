"""The fast write path: upsert by (source, id), unchanged rows only touched, side tables, raw text kept as sent,
and the sync engine's read-ahead (order, errors, early stop)."""

from __future__ import annotations

import threading

import pytest

from okrsync.connectors.base import Page
from okrsync.connectors.rawjson import parse_page
from okrsync.domain.records import Sprint
from okrsync.engine.store import record_row
from okrsync.engine.sync import prefetched
from tests.builders import deployment, issue, t


def row(store, id_, cols="*"):
    return store.db.execute(f"SELECT {cols} FROM issues WHERE source = 'jira' AND id = ?", [id_]).fetchone()


def test_unchanged_rows_move_only_their_run_bookkeeping(store):
    sp = Sprint("31", "APP Sprint 1", "active", t("2026-10-01 09:00"), t("2026-10-15 09:00"))
    rec = issue("APP-1", id="1", labels=["Okr", "kr:KR1"], components=["payments"], sprints=[sp])
    assert store.write_page("jira", "issues", [rec], run_id=1).new == 1
    before = row(store, "1", "rowid, hash, first_run, last_run")
    counts = store.write_page("jira", "issues", [rec], run_id=2)
    assert (counts.new, counts.changed, counts.unchanged) == (0, 0, 1)
    after = row(store, "1", "rowid, hash, first_run, last_run")
    assert after == (before[0], before[1], 1, 2)
    assert store.db.execute("SELECT label FROM item_labels ORDER BY label").fetchall() == [("kr:KR1",), ("Okr",)]
    assert store.db.execute("SELECT name, state FROM sprints").fetchall() == [("APP Sprint 1", "active")]


def test_changed_rows_are_rewritten_with_their_side_tables(store):
    store.write_page("jira", "issues", [issue("APP-1", id="1", labels=["a", "b"])], run_id=1)
    counts = store.write_page("jira", "issues", [issue("APP-1", id="1", labels=["c"], title="new")], run_id=2)
    assert (counts.new, counts.changed, counts.unchanged) == (0, 1, 0)
    assert row(store, "1", "title, first_run, last_run") == ("new", 1, 2)
    assert store.db.execute("SELECT label FROM item_labels WHERE item_id = '1'").fetchall() == [("c",)]


def test_a_deleted_item_that_comes_back_is_revived_even_when_unchanged(store):
    rec = issue("APP-1", id="1")
    store.write_page("jira", "issues", [rec], run_id=1)
    store.db.execute("UPDATE issues SET deleted = 1")
    counts = store.write_page("jira", "issues", [rec], run_id=2)
    assert counts.unchanged == 1
    assert row(store, "1", "deleted, last_run") == (0, 2)


def test_the_last_copy_of_an_id_in_a_page_wins(store):
    counts = store.write_page("jira", "issues", [issue("APP-1", id="1", title="a"), issue("APP-1", id="1", title="b")],
                              run_id=1)
    assert counts.new == 1 and row(store, "1", "title") == ("b",)


def test_deployment_commits_follow_the_hash(store):
    store.write_page("github", "deployments", [deployment(id="d1", commits=["a", "b"])], run_id=1)
    counts = store.write_page("github", "deployments", [deployment(id="d1", commits=["a", "b", "c"])], run_id=2)
    assert counts.changed == 1  # the commits are part of what decides "changed"
    assert [r[0] for r in store.db.execute("SELECT sha FROM deployment_commits ORDER BY sha")] == ["a", "b", "c"]


@pytest.mark.sqlite_only  # SQLite's raw text, sqlite_stat1, EXPLAIN QUERY PLAN
def test_raw_text_from_the_page_is_stored_compact(store):
    page = parse_page('{"issues": [ {"id": "1", "fields": {"x": "\\u00e9"} } ]}', "issues")
    raw = page["issues"][0]
    store.write_page("jira", "issues", [issue("APP-1", id="1", raw=raw)], run_id=1)
    assert store.db.execute("SELECT raw FROM issues_raw").fetchone() == ('{"id":"1","fields":{"x":"é"}}',)
    assert store.db.execute("SELECT json_extract(raw, '$.fields.x') FROM issues_raw").fetchone() == ("é",)
    assert record_row(issue("APP-1", id="1", raw=raw))["raw"] == raw.json_text
    plain = record_row(issue("APP-2", id="2", raw={"a": [1, "é"]}))
    assert plain["raw"] == '{"a":[1,"é"]}'


def test_state_keys_are_merged_not_replaced(store):
    store.save_state("jira", "issues", {"cursor": "c1", "state": {"k": 1}})
    store.save_state("jira", "issues", {"pending": {"p": 1}})
    assert store.get_state("jira", "issues") == {"cursor": "c1", "pending": {"p": 1}, "state": {"k": 1}}
    store.save_state("jira", "issues", {"pending": None})
    assert store.get_state("jira", "issues")["pending"] is None


# -- read-ahead ------------------------------------------------------------------------------------
def test_prefetched_keeps_order_and_raises_in_the_caller():
    def pages():
        yield Page(checkpoint={"n": 1})
        yield Page(checkpoint={"n": 2})
        raise ValueError("boom")

    seen = []
    with pytest.raises(ValueError, match="boom"):
        for batch in prefetched(pages(), "test"):
            seen += [p.checkpoint["n"] for p in batch]
    assert seen == [1, 2]


def test_prefetched_stops_the_reader_when_the_caller_stops():
    produced = []
    closed = threading.Event()

    def pages():
        try:
            for n in range(1000):
                produced.append(n)
                yield Page(checkpoint={"n": n})
        finally:
            closed.set()

    for batch in prefetched(pages(), "test", depth=2):
        if any(p.checkpoint["n"] >= 3 for p in batch):
            break
    assert closed.wait(5)
    assert len(produced) < 10  # it read at most a few pages ahead


def test_prefetched_batches_the_pages_already_read_and_fails_after_them():
    gate = threading.Event()

    def pages():
        for n in range(5):
            yield Page(checkpoint={"n": n}, records=[object()] * 3)
        gate.set()
        raise ValueError("boom")

    batches = []
    with pytest.raises(ValueError, match="boom"):
        for batch in prefetched(pages(), "test", depth=10, batch_records=7):
            assert gate.wait(5)  # from the second batch on, every page is already read when a batch is taken
            batches.append([p.checkpoint["n"] for p in batch])
    assert [n for b in batches for n in b] == [0, 1, 2, 3, 4]  # in order, all of them before the failure
    # a batch takes the pages read ahead until it holds batch_records (7) records: three pages of 3 at most
    assert all(1 <= len(b) <= 3 for b in batches)
    assert len(batches[1]) >= 2


# -- planner statistics and query shapes -------------------------------------------------------------
@pytest.mark.sqlite_only  # SQLite's raw text, sqlite_stat1, EXPLAIN QUERY PLAN
def test_statistics_are_refreshed_when_missing_or_after_growth(store):
    store.write_page("jira", "issues", [issue(f"APP-{n}", id=str(n)) for n in range(1, 41)], run_id=1)
    assert store.refresh_stats(minimum=1000) == []  # small stores are left alone
    assert store.refresh_stats(minimum=10) == ["issues"]
    assert store.db.execute("SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'issues'").fetchone()[0] > 0
    assert store.refresh_stats(minimum=10) == []  # fresh enough
    store.write_page("jira", "issues", [issue(f"APP-{n}", id=str(n)) for n in range(41, 101)], run_id=2)
    assert store.refresh_stats(minimum=10) == ["issues"]  # grew by more than half


def test_windowed_metrics_probe_members_scope_metrics_list_them():
    from datetime import timedelta

    from okrsync.config.keyresults import Selector
    from okrsync.mappings import metrics as M
    from okrsync.mappings.selectors import compile_selector

    sel = compile_selector(Selector(source="jira", labels=["bug"], sprint="S1"), "issue")
    window = M.Window(t("2026-10-01 00:00"), t("2026-10-01 00:00") + timedelta(days=30))
    windowed = M.plan("count", sel, window, now=window.end)
    scoped = M.plan("done_ratio", sel, window, now=window.end)
    assert "t.id IN (SELECT" not in windowed.sql and windowed.sql.count("EXISTS (SELECT 1 FROM") == 2
    assert "l.item_id = t.id" in windowed.sql and "s.item_id = t.id" in windowed.sql
    assert "EXISTS" not in scoped.sql and scoped.sql.count("t.id IN (SELECT") == 2
    assert windowed.params == [*sel.params, *windowed.params[len(sel.params):]]  # same parameters, same order


@pytest.mark.sqlite_only  # SQLite's raw text, sqlite_stat1, EXPLAIN QUERY PLAN
def test_lead_time_finds_prs_by_merge_commit(store):
    from okrsync.config.keyresults import Selector
    from okrsync.mappings import metrics as M
    from okrsync.mappings.selectors import compile_selector

    sel = compile_selector(Selector(source="github", environment="production"), "deployment")
    window = M.Window(t("2026-10-01 00:00"), t("2026-11-01 00:00"))
    p = M.plan("lead_time_for_changes", sel, window, now=window.end)
    plan = " ".join(r[3] for r in store.db.execute("EXPLAIN QUERY PLAN " + p.sql, p.params))
    assert "idx_issues_merge_sha" in plan
