"""Jira connector: JQL building, checkpoints, skipped records, memberships, and runs driven by the sync engine."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import responses

from okrsync.config.settings import Settings
from okrsync.connectors.base import Membership, QueryError, ReadContext, Skipped, SourceError
from okrsync.connectors.jira.connector import build, build_jql, epoch_ms, volatile
from okrsync.engine.sync import SyncRunner
from okrsync.mappings.selectors import jql_key

from .helpers import (
    CLOUD,
    DC,
    TOKEN,
    Sleeps,
    body_matcher,
    cloud_config,
    creds,
    dc_config,
    har_body,
    issue,
    options,
    path,
    query,
    stub_cloud,
)

SEARCH = f"{CLOUD}/rest/api/3/search/jql"
T0 = datetime(2026, 11, 15, 12, 0, tzinfo=timezone.utc)


def ctx(**kw) -> ReadContext:
    kw.setdefault("since", None)
    return ReadContext(run_started=T0, **kw)


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as r:
        yield r


def searches(rsps, url: str = SEARCH) -> list:
    return [c for c in rsps.calls if c.request.url.split("?")[0] == url]


def page_token(token: str | None) -> list:
    return [body_matcher({"nextPageToken": token}, strict_match=False)] if token else []


# -- JQL -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("projects, jql, since, created, expected", [
    (["APP", "OPS"], None, None, None, "project in (APP, OPS) ORDER BY created ASC"),
    (["APP", "OPS"], "labels = okr", datetime(2026, 11, 15, 11, 50, tzinfo=timezone.utc), None,
     "project in (APP, OPS) AND (labels = okr) AND updated >= 1794743400000 ORDER BY created ASC"),
    (["APP"], None, datetime(2026, 11, 15, 20, 50, tzinfo=timezone(timedelta(hours=9))),
     1700000000123, "project in (APP) AND updated >= 1794743400000 AND created >= 1700000000123 ORDER BY created ASC"),
    ([], "filter = 10001 ORDER BY rank", None, None, "(filter = 10001) ORDER BY created ASC"),
    (["AND", "my-proj"], None, None, None, 'project in ("AND", "my-proj") ORDER BY created ASC'),
])
def test_build_jql(projects, jql, since, created, expected):
    assert build_jql(projects, jql, since, created) == expected


def test_epoch_ms_is_exact():
    assert epoch_ms(datetime(2026, 11, 15, 11, 50, 0, 999999, tzinfo=timezone.utc)) == 1794743400999


@pytest.mark.parametrize("jql, expected", [
    ("parent = APP-100", False),
    ("project in (APP, OPS) AND labels in (okr, q4) AND NOT status was in (Done)", False),
    ('summary ~ "now()" AND labels = x', False),
    ("sprint = 'Sprint 7' AND fixVersion = 1.2", False),
    ("updated >= -7d", True),
    ('created > "-2w"', True),
    ("resolved >= startOfWeek()", True),
    ("sprint in openSprints()", True),
    ("due <= now()", True),
    ("assignee = currentUser()", True),
    ("issue in linkedIssues(APP-1)", True),
])
def test_volatile_jql(jql, expected):
    assert volatile(jql) is expected


def test_a_source_needs_projects_or_jql():
    with pytest.raises(SourceError) as err:
        build("jira", cloud_config(projects=[]), creds(), options())
    assert str(err.value) == ("jira: set projects: (e.g. [APP, OPS]) or jql: for this Jira source; "
                              "Jira Cloud rejects a search without a restriction")
    assert build("jira", cloud_config(projects=[], jql="filter = 1"), creds(), options()).name == "jira"


# -- the issues stream -----------------------------------------------------------------------------
def test_issues_stream_pages_checkpoints_and_fields(rsps):
    stub_cloud(rsps)
    first = [issue(1, "2026-10-01T10:00:00.000+0200"), issue(2, "2026-10-02T10:00:00.000+0200")]
    rsps.post(SEARCH, json={"issues": first, "nextPageToken": "p2"})
    rsps.post(SEARCH, json={"issues": [issue(3, "2026-10-03T10:00:00.000+0900")], "isLast": True},
             match=page_token("p2"))
    # one request at a time: the search's own token pages (test_bulk.py: the parallel id listing + bulkfetch)
    conn = build("jira", cloud_config(concurrency=1), creds(), options())
    stream = conn.streams()[0]
    assert (stream.name, stream.default_from) == ("issues", "all")
    pages = list(stream.read(ctx(since=datetime(2026, 11, 15, 11, 50, tzinfo=timezone.utc))))
    assert [[r.key for r in p.records] for p in pages] == [["APP-1", "APP-2"], ["APP-3"]]
    assert [p.checkpoint for p in pages] == [{"created_ms": epoch_ms(datetime(2026, 10, 2, 8, tzinfo=timezone.utc))},
                                             {"created_ms": epoch_ms(datetime(2026, 10, 3, 1, tzinfo=timezone.utc))}]
    q = query(searches(rsps)[0])
    assert q["jql"] == "project in (APP, OPS) AND updated >= 1794743400000 ORDER BY created ASC"
    assert q["fields"] == ("summary,status,issuetype,project,created,updated,resolutiondate,labels,components,"
                           "parent,assignee,priority,customfield_10016,customfield_10020,customfield_10014")
    assert q["maxResults"] == "100"
    assert conn.issues_changed is True
    assert conn.requests_made == 4  # serverInfo, field, two search pages


def test_extra_fields_are_requested_and_kept_in_raw(rsps):
    stub_cloud(rsps)
    rsps.post(SEARCH, json={"issues": [issue(1, customfield_10050=42.0)]})
    conn = build("jira", cloud_config(fields=["Progress", "customfield_10099"]), creds(), options())
    [page] = list(conn.streams()[0].read(ctx()))
    assert query(searches(rsps)[0])["fields"].endswith(",customfield_10014,customfield_10050,customfield_10099")
    assert page.records[0].raw["fields"]["customfield_10050"] == 42.0
    conn = build("jira", cloud_config(fields=["Nope"]), creds(), options())
    with pytest.raises(SourceError, match=r"^jira: fields: no Jira field has the id or name 'Nope'$"):
        list(conn.streams()[0].read(ctx()))


def test_resume_from_a_checkpoint_adds_created_bound(rsps):
    stub_cloud(rsps)
    rsps.post(SEARCH, json={"issues": [], "isLast": True})
    conn = build("jira", cloud_config(), creds(), options())
    since = datetime(2026, 11, 15, 11, 50, tzinfo=timezone.utc)
    pages = list(conn.streams()[0].read(ctx(since=since, checkpoint={"created_ms": 1759305600000})))
    assert pages == []
    assert query(searches(rsps)[0])["jql"] == (
        "project in (APP, OPS) AND updated >= 1794743400000 AND created >= 1759305600000 ORDER BY created ASC")
    assert conn.issues_changed is True  # a resumed read may have changed things in the interrupted part


def test_unparseable_issues_are_skipped_and_the_page_goes_on(rsps):
    stub_cloud(rsps)
    rsps.post(SEARCH, json={"issues": [issue(1), issue(2, created="not a date"), {"id": "99", "fields": {}},
                                      issue(3, "2026-10-05T00:00:00.000Z")]})
    conn = build("jira", cloud_config(), creds(), options())
    [page] = list(conn.streams()[0].read(ctx()))
    assert [r.key for r in page.records] == ["APP-1", "APP-3"]
    assert page.skipped == [Skipped("APP-2", "bad created time 'not a date'"), Skipped("99", "issue without a key")]
    assert page.checkpoint == {"created_ms": epoch_ms(datetime(2026, 10, 5, tzinfo=timezone.utc))}


def test_a_missing_project_is_named_in_one_line(rsps):
    stub_cloud(rsps)
    rsps.post(SEARCH, status=400, json={"errorMessages": ["The value 'OPS' does not exist for the field 'project'."]})
    conn = build("jira", cloud_config(), creds(), options())
    with pytest.raises(SourceError) as err:
        list(conn.streams()[0].read(ctx()))
    assert str(err.value) == "jira: project OPS does not exist in Jira (or the token cannot see it)"


def test_a_rejected_source_jql_is_a_query_error(rsps):
    stub_cloud(rsps)
    rsps.post(SEARCH, status=400, json={"errorMessages": ["Error in the JQL Query: bad."]})
    conn = build("jira", cloud_config(jql="labels = = x"), creds(), options())
    with pytest.raises(QueryError) as err:
        list(conn.streams()[0].read(ctx()))
    assert str(err.value) == ("jira: the issue query was rejected by Jira: Error in the JQL Query: bad. "
                              "(JQL: project in (APP, OPS) AND (labels = = x) ORDER BY created ASC)")


def test_replay_of_the_real_server_recording(rsps):
    rsps.get(f"{DC}/rest/api/2/serverInfo", json=har_body("GET", "/rest/api/2/serverInfo"))
    rsps.get(f"{DC}/rest/api/2/field", json=har_body("GET", "/rest/api/2/field"))
    rsps.post(f"{DC}/rest/api/2/search", json=har_body("POST", "/rest/api/2/search", 0),
             match=[body_matcher({"startAt": "0"}, strict_match=False)])
    conn = build("dc", dc_config(projects=["SP"]), creds(), options())
    pages = list(conn.streams()[0].read(ctx()))
    recs = [r for p in pages for r in p.records]
    assert len(recs) == 25 and not pages[0].skipped
    # total 25 reached: no second request
    assert [path(c) for c in rsps.calls] == ["/rest/api/2/serverInfo", "/rest/api/2/field", "/rest/api/2/search"]
    q = query(rsps.calls[2])
    assert q["jql"] == "project in (SP) ORDER BY created ASC" and q["maxResults"] == "1000"
    assert "customfield_10105" in q["fields"] and "customfield_10107" in q["fields"]
    assert rsps.calls[2].request.headers["Authorization"] == f"Bearer {TOKEN}"
    sp16 = next(r for r in recs if r.key == "SP-16")
    assert [s.name for s in sp16.sprints] == ["Sample Sprint 2", "Sample Sprint 1"] and sp16.story_points == 2.0


# -- JQL selector memberships ------------------------------------------------------------------------
SELECTORS = {"k-parent": ("parent = APP-100", ["KR2"]), "k-bad": ("labels = = x", ["KR1", "KR4"])}


def selector_conn(rsps, selectors):
    stub_cloud(rsps)
    conn = build("jira", cloud_config(deployment="cloud"), creds(), options(jql_selectors=selectors))
    return conn, conn.streams()[1]


def id_search(rsps, jql: str, ids: list[str] | None = None, status: int = 200, body: dict | None = None) -> None:
    rsps.post(SEARCH, status=status, json=body if body is not None else {"issues": [{"id": i} for i in ids or []]},
             match=[body_matcher({"jql": jql, "fields": "id"}, strict_match=False)])


def test_first_evaluation_emits_the_complete_member_set(rsps):
    conn, stream = selector_conn(rsps, {"k-parent": SELECTORS["k-parent"]})
    id_search(rsps, "parent = APP-100", ["10001", "10002"])
    assert stream.name == "jql_members"
    [page] = list(stream.read(ctx()))
    assert page.memberships == [Membership("k-parent", "parent = APP-100", {"10001", "10002"}, None)]
    assert page.state == {"evaluated": {"k-parent": {"jql": "parent = APP-100"}}}
    assert query(searches(rsps)[0])["maxResults"] == "5000"


def test_quiet_run_skips_stable_jql_but_not_volatile_or_changed(rsps):
    sel = {"k-parent": ("parent = APP-100", ["KR2"]), "k-week": ("resolved >= startOfWeek()", ["KR5"])}
    conn, stream = selector_conn(rsps, sel)
    id_search(rsps, "parent = APP-100", ["1"])
    id_search(rsps, "resolved >= startOfWeek()", ["2"])
    state = {"evaluated": {"k-parent": {"jql": "parent = APP-100"}, "k-week": {"jql": "resolved >= startOfWeek()"}}}
    conn.issues_changed = False
    pages = list(stream.read(ctx(since=T0, state=state)))
    assert [m.jql_key for p in pages for m in p.memberships] == ["k-week"]
    assert len(searches(rsps)) == 1
    conn.issues_changed = True
    pages = list(stream.read(ctx(since=T0, state=state)))
    assert [m.jql_key for p in pages for m in p.memberships] == ["k-parent", "k-week"]
    assert pages[-1].state == state


def test_invalid_jql_raises_after_the_other_selectors_are_saved(rsps):
    conn, stream = selector_conn(rsps, SELECTORS)
    id_search(rsps, "labels = = x", status=400, body={
        "errorMessages": ["Error in the JQL Query: Expecting either a value, list or function but got '='."],
        "errors": {}})
    id_search(rsps, "parent = APP-100", ["10001"])
    got = []
    with pytest.raises(QueryError) as err:
        for page in stream.read(ctx()):
            got.append(page)
    assert str(err.value) == ("jira: JQL of KR1, KR4 rejected by Jira: Error in the JQL Query: Expecting either a "
                              "value, list or function but got '='.")
    assert [m.jql_key for p in got for m in p.memberships] == ["k-parent"]
    assert got[-1].state == {"evaluated": {"k-parent": {"jql": "parent = APP-100"}}}


# -- driven by the sync engine -----------------------------------------------------------------------
WORKSPACE = """
period: 2026-Q4
sources:
  jira: {type: jira, url: https://acme.atlassian.net, email: bot@acme.io, projects: [APP, OPS]}
objectives:
  - id: O1
    title: Ship
    key_results:
      - id: KR2
        title: Ship checkout v2
        metric: done_ratio
        select: {source: jira, jql: 'parent = APP-100'}
        target: 1.0
"""


@pytest.fixture
def engine(monkeypatch, store, workspace):
    monkeypatch.setenv("OKRSYNC_SOURCES__JIRA__TOKEN", TOKEN)
    ws = workspace(WORKSPACE)

    def run(started: datetime):
        run_id = store.start_run("sync", started)
        runner = SyncRunner(ws, store, Settings(), run_id=run_id, started=started, sleep=Sleeps())
        return runner.sync_source("jira")

    return run


def test_engine_cursor_minus_lookback_becomes_epoch_millis(rsps, engine, store):
    stub_cloud(rsps)
    store.save_state("jira", "issues", {"cursor": "2026-11-15T12:00:00.000Z", "pending": None, "state": {}})
    rsps.post(SEARCH, json={"issues": []})
    out = engine(datetime(2026, 11, 15, 12, 15, tzinfo=timezone.utc))
    assert out.error is None
    jqls = [query(c)["jql"] for c in searches(rsps)]
    # 12:00 - 10 min lookback = 11:50:00Z = 1794743400000
    assert jqls[0] == "project in (APP, OPS) AND updated >= 1794743400000 ORDER BY created ASC"


def test_engine_no_change_incremental_sync_is_one_search(rsps, engine, store):
    stub_cloud(rsps)
    key = jql_key("jira", "parent = APP-100")
    rsps.post(SEARCH, json={"issues": [issue(1), issue(2)]},
             match=[body_matcher({"jql": "project in (APP, OPS) ORDER BY created ASC"},
                                                           strict_match=False)])
    id_search(rsps, "parent = APP-100", ["10001"])
    first = engine(datetime(2026, 11, 15, 12, 0, tzinfo=timezone.utc))
    assert (first.error, first.new, first.streams) == (None, 2, {"issues": 2, "jql_members": 0})
    assert store.jql_evaluated(key)
    assert store.db.execute("SELECT item_id FROM jql_members WHERE jql_key = ?", [key]).fetchall() == [("10001",)]

    rsps.calls.reset()
    rsps.post(SEARCH, json={"issues": []}, match=[body_matcher(
        {"jql": "project in (APP, OPS) AND updated >= 1794743400000 ORDER BY created ASC"}, strict_match=False)])
    second = engine(datetime(2026, 11, 15, 12, 15, tzinfo=timezone.utc))
    assert second.error is None
    # the deployment type and the field map come from the stream state: one search, nothing else
    assert [path(c) for c in rsps.calls] == ["/rest/api/3/search/jql"]
    assert second.requests == 1
    assert store.db.execute("SELECT item_id FROM jql_members WHERE jql_key = ?", [key]).fetchall() == [("10001",)]


def test_engine_bad_selector_jql_keeps_the_issue_sync(rsps, engine, store):
    stub_cloud(rsps)
    rsps.post(SEARCH, json={"issues": [issue(1)]}, match=[body_matcher(
        {"jql": "project in (APP, OPS) ORDER BY created ASC"}, strict_match=False)])
    id_search(rsps, "parent = APP-100", status=400, body={"errorMessages": ["Field 'parent' is wrong."]})
    out = engine(datetime(2026, 11, 15, 12, 0, tzinfo=timezone.utc))
    assert out.error == "jira: JQL of KR2 rejected by Jira: Field 'parent' is wrong."
    assert out.new == 1
    # the issues stream finished: its cursor moved on, nothing is pending
    st = store.get_state("jira", "issues")
    assert st["cursor"] == "2026-11-15T12:00:00.000Z" and st["pending"] is None
