"""Raw-path indexes (issue 15): a where: path compared as text walks an expression index the sync builds,
with the same values as the per-row comparison it replaces."""

from datetime import datetime, timezone

import pytest

from okrsync.config.keyresults import Selector
from okrsync.config.settings import Settings
from okrsync.config.workspace import load_workspace_text
from okrsync.connectors.base import Page
from okrsync.connectors.rawjson import RawItem
from okrsync.engine.pipeline import run_sync
from okrsync.engine.sync import raw_indexes_wanted
from okrsync.mappings.selectors import RawIndex, compile_selector, raw_text_where
from tests.builders import incident, issue, load
from tests.unit.test_metrics import SOURCES, run
from tests.unit.test_sync_engine import FakeConnector, FakeStream

TEAM = "fields.customfield_10010.value"
INDEX = RawIndex("issues", TEAM)


# -- which where: entries an index serves (pure) -------------------------------------------------------
@pytest.mark.parametrize("table,name,value,expected", [
    ("issues", TEAM, "Team A", INDEX),
    ("issues", "raw." + TEAM, ["Team A", "Team B"], INDEX),      # raw. is the same path
    ("issues", TEAM, ["Team A", 1], INDEX),                      # text and numbers: compared as text
    ("issues", TEAM, 3, None),                                   # numbers also match 3.0: per row
    ("issues", TEAM, [True], None),                              # booleans: per row
    ("issues", TEAM, None, None),                                # IS NULL: per row
    ("issues", TEAM, [], None),
    ("issues", "project", "APP", None),                          # a column
    ("issues", "labels", "x", None),                             # a side table
    ("incidents", "u_category", "network", RawIndex("incidents", "u_category")),
])
def test_raw_text_where(table, name, value, expected):
    assert raw_text_where(table, name, value) == expected


def test_an_index_names_what_it_indexes():
    assert INDEX.name == "rawpath:issues:fields.customfield_10010.value"
    assert RawIndex.from_name(INDEX.name) == INDEX
    assert RawIndex.from_name("rawpath:issues:a:b") == RawIndex("issues", "a:b")
    assert [RawIndex.from_name(n) for n in ("idx_issues_parent", "rawpath:nope:x", "rawpath:issues:")] == [None] * 3
    assert INDEX.expr("r.raw") == ("CASE WHEN json_valid(r.raw) THEN CAST(json_extract(r.raw, "
                                   "'$.\"fields\".\"customfield_10010\".\"value\"') AS TEXT) END")
    assert RawIndex("issues", "it's").expr() == ("CASE WHEN json_valid(raw) THEN CAST(json_extract(raw, "
                                                 "'$.\"it''s\"') AS TEXT) END")


def test_a_selector_walks_the_index_only_when_the_store_has_it():
    sel = Selector(source="jira", where={TEAM: "Team A"})
    per_row = compile_selector(sel, "issue")
    indexed = compile_selector(sel, "issue", raw_indexes=frozenset({INDEX}))
    on_pg = compile_selector(sel, "issue", raw_indexes=frozenset({INDEX}), dialect="postgresql")
    assert per_row.clause().endswith("CAST(json_extract((SELECT r.raw FROM issues_raw r WHERE r.id = t.rowid), "
                                     "'$.\"fields\".\"customfield_10010\".\"value\"') AS TEXT) IN (?)")
    assert indexed.clause().endswith(f"t.rowid IN (SELECT r.id FROM issues_raw r WHERE {INDEX.expr('r.raw')} IN (?))")
    assert indexed.params == per_row.params == ["jira", 0, "Team A"]
    assert "json_extract((SELECT" in on_pg.clause()


@pytest.mark.parametrize("narrowing,prefix", [
    ({"project": "APP"}, "+t.rowid"), ({"repo": "acme/web"}, "+t.rowid"),
    ({"type": "Bug"}, "t.rowid"), ({"parent": "APP-1"}, "t.rowid"), ({}, "t.rowid")])
def test_with_projects_named_the_project_index_leads_and_the_index_gives_the_set(narrowing, prefix):
    sel = Selector(source="jira", where={TEAM: "Team A"}, **narrowing)
    clause = compile_selector(sel, "issue", raw_indexes=frozenset({INDEX})).clause()
    assert clause.endswith(f" AND {prefix} IN (SELECT r.id FROM issues_raw r WHERE {INDEX.expr('r.raw')} IN (?))")


def test_the_workspace_wants_an_index_per_text_path_it_compares():
    ws = load_workspace_text(SOURCES + """objectives:
  - id: O1
    title: t
    key_results:
      - {id: KR1, title: a, metric: count, select: {source: jira, where: {fields.customfield_10010.value: A}}, target: 1}
      - {id: KR2, title: b, metric: ratio, target: 0.5, baseline: 1,
         numerator: {metric: count, select: {source: jira, where: {raw.fields.customfield_10010.value: [A, B]}}},
         denominator: {metric: count, select: {source: servicenow, where: {u_category: network}}}}
      - {id: KR3, title: c, metric: count, select: {source: jira, where: {fields.priority.id: 3}}, target: 1}
      - {id: KR4, title: d, metric: change_failure_rate, target: 10%, failures: incidents,
         select: {source: github}, incidents: {source: pagerduty, where: {body.details.cause: deploy}}}
""").workspace
    assert raw_indexes_wanted(ws) == {INDEX, RawIndex("incidents", "u_category"),
                                      RawIndex("incidents", "body.details.cause")}


# -- the store -------------------------------------------------------------------------------------------
@pytest.mark.sqlite_only
def test_the_store_builds_the_indexes_wanted_and_drops_those_no_longer_named(store):
    load(store, [issue(raw={"fields": {"customfield_10010": {"value": "A"}}})])
    other = RawIndex("incidents", "u_category")
    assert store.prepare_raw_indexes({INDEX, other}) == ([other.name, INDEX.name], [])  # by name
    assert store.raw_indexes() == {INDEX, other}
    assert store.prepare_raw_indexes({INDEX, other}) == ([], [])
    assert store.prepare_raw_indexes({INDEX}) == ([], [other.name])
    assert store.raw_indexes() == {INDEX}


def test_a_postgresql_store_has_none(store):
    if store.dialect != "postgresql":
        pytest.skip("PostgreSQL: no raw-path indexes")
    assert store.prepare_raw_indexes({INDEX}) == ([], [])
    assert store.raw_indexes() == frozenset()


@pytest.mark.sqlite_only
def test_a_payload_sqlite_cannot_read_still_writes_and_matches_nothing(store):
    store.prepare_raw_indexes({INDEX})
    raw = RawItem({"fields": {"customfield_10010": {"value": "A"}}})
    raw.json_text = '{"fields": {"customfield_10010": {"value": "A"}, "n": NaN}}'  # Python's json reads NaN
    odd = issue("APP-2", raw=raw)
    load(store, [issue("APP-1", raw={"fields": {"customfield_10010": {"value": "A"}}}), odd])
    k = run(store, "{id: KR1, title: t, metric: count, select: {source: jira, where: {%s: A}}, target: 5}" % TEAM)
    assert (k.value, k.items) == (1.0, 1)


# -- metric truth: the same values through the index -----------------------------------------------------
PAYLOADS = [
    {"fields": {"customfield_10010": {"value": "Team A"}, "priority": {"id": "1"}}},
    {"fields": {"customfield_10010": {"value": "team a"}}},            # case counts, as per row
    {"fields": {"customfield_10010": {"value": "Team B"}}},
    {"fields": {"customfield_10010": None}},
    {"fields": {}},
    {"fields": {"customfield_10010": {"value": 1}}},                  # a number matches its text
    {"fields": {"customfield_10010": {"value": ["Team A"]}}},         # an array is its JSON text
]
KRS = [
    "{id: KR1, title: t, metric: count, select: {source: jira, where: {%s: Team A}}, target: 5}" % TEAM,
    "{id: KR1, title: t, metric: count, select: {source: jira, where: {%s: [Team B, '1']}}, target: 5}" % TEAM,
    "{id: KR1, title: t, metric: count, select: {source: jira, where: {%s: ['[\"Team A\"]']}}, target: 5}" % TEAM,
    "{id: KR1, title: t, metric: mean, field: story_points, select: {source: jira, project: APP, "
    "where: {%s: [Team A, Team B]}}, target: 5}" % TEAM,
]


@pytest.mark.sqlite_only
@pytest.mark.parametrize("kr,value,items", [(KRS[0], 1.0, 1), (KRS[1], 2.0, 2), (KRS[2], 1.0, 1), (KRS[3], 4.0, 2)])
def test_a_kr_has_the_same_value_with_and_without_the_index(store, kr, value, items):
    load(store, [issue(f"{project}-{n}", project=project, raw=p, story_points=n + 3)
                 for n, p in enumerate(PAYLOADS) for project in ["APP" if n % 2 == 0 else "OPS"]])
    before = run(store, kr)
    store.prepare_raw_indexes({INDEX})
    seen: list[str] = []
    store.db.conn.set_trace_callback(seen.append)
    try:
        after = run(store, kr)
    finally:
        store.db.conn.set_trace_callback(None)
    assert (before.value, before.items) == (after.value, after.items) == (value, items)
    raw_queries = [q for q in seen if "issues_raw" in q]
    assert raw_queries and all("t.rowid IN (SELECT r.id FROM issues_raw r WHERE CASE WHEN json_valid" in q
                                 for q in raw_queries), raw_queries


@pytest.mark.sqlite_only
def test_the_planner_walks_the_index_once_the_table_is_large(store):
    load(store, [issue(raw={"fields": {"customfield_10010": {"value": f"Team {n % 50}"}}}) for n in range(500)])
    store.prepare_raw_indexes({INDEX})
    sel = compile_selector(Selector(source="jira", where={TEAM: "Team 7"}), "issue", raw_indexes=store.raw_indexes())
    sql = f"SELECT count(*) FROM issues t WHERE {sel.clause()}"
    plan = " / ".join(str(r[-1]) for r in store.db.execute("EXPLAIN QUERY PLAN " + sql, sel.params))
    assert f"USING INDEX {INDEX.name}" in plan, plan
    assert store.db.execute(sql, sel.params).fetchone()[0] == 10


@pytest.mark.sqlite_only
def test_with_a_project_named_the_planner_walks_the_project_index(store):
    load(store, [issue(f"{p}-{n}", project=p, raw={"fields": {"customfield_10010": {"value": f"Team {n % 3}"}}})
                 for n in range(300) for p in ["APP" if n % 10 == 0 else "OPS"]])
    store.prepare_raw_indexes({INDEX})
    store.refresh_stats()
    sel = compile_selector(Selector(source="jira", project="APP", where={TEAM: "Team 0"}), "issue",
                           raw_indexes=store.raw_indexes())
    sql = f"SELECT count(*) FROM issues t WHERE {sel.clause()}"
    plan = [str(r[-1]) for r in store.db.execute("EXPLAIN QUERY PLAN " + sql, sel.params)]
    assert "idx_issues_project" in plan[0] and f"USING INDEX {INDEX.name}" in plan[-1], plan
    assert store.db.execute(sql, sel.params).fetchone()[0] == 10


@pytest.mark.sqlite_only
def test_incident_selectors_walk_their_index_too(store):
    load(store, [incident(id=f"INC{n}", raw={"u_category": c}) for n, c in enumerate(["network", "db", "network"])])
    kr = "{id: KR1, title: t, metric: count, select: {source: servicenow, where: {u_category: network}}, target: 5}"
    before = run(store, kr).value
    store.prepare_raw_indexes({RawIndex("incidents", "u_category")})
    assert before == run(store, kr).value == 2.0


# -- the sync builds them ----------------------------------------------------------------------------
@pytest.mark.sqlite_only
def test_a_sync_builds_the_indexes_its_workspace_wants(tmp_path, monkeypatch, store):
    monkeypatch.setenv("OKRSYNC_SOURCES__JIRA__TOKEN", "tok-jira-123")
    ws = SOURCES + ("objectives:\n  - id: O1\n    title: t\n    key_results:\n      - {id: KR1, title: t, "
                    "metric: count, select: {source: jira, where: {%s: A}}, target: 1}\n" % TEAM)
    loaded = load_workspace_text(ws, str(tmp_path / "okrsync.yaml"))
    pages = {"jira": lambda: [FakeStream("issues", [Page(records=[issue(raw={"fields": {"customfield_10010": {
        "value": "A"}}})])])]}
    summary = run_sync(loaded, Settings(), store, sources=["jira"],
                       connector_factory=lambda name, cfg, creds, opts: FakeConnector(name, pages[name]()),
                       now=lambda: datetime(2026, 11, 15, tzinfo=timezone.utc))
    assert summary.exit_code == 0, summary.errors
    assert store.raw_indexes() == {INDEX}
    assert summary.computation.kr("KR1").value == 1.0
