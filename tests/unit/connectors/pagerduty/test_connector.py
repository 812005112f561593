"""PagerDuty connector against a fake API: windows, the 10000 offset cap, MTTA from log entries,
re-reading open incidents across runs, rate limits and auth."""

from datetime import datetime, timedelta, timezone

import pytest
import responses

from okrsync.config.settings import SourceCredentials
from okrsync.config.sources import PagerDutySource
from okrsync.connectors.base import AuthError, ConnectorOptions, QueryError, ReadContext
from okrsync.connectors.pagerduty.connector import PagerDutyConnector, build
from okrsync.connectors.registry import build_connector

from .fake import BASE, FakePagerDuty, entry, pd

UTC = timezone.utc
SINCE = datetime(2026, 7, 1, tzinfo=UTC)
NOW = datetime(2026, 9, 9, tzinfo=UTC)
TOKEN = "u+pd-s3cret-token"


def config(**kw):
    return PagerDutySource(type="pagerduty", **kw)


def connector(cfg=None, token=TOKEN, sleeps=None):
    sleep = (lambda s: sleeps.append(s)) if sleeps is not None else (lambda s: None)
    return build("pd", cfg or config(), SourceCredentials(token=token), ConnectorOptions(sleep=sleep))


def read(conn, **kw):
    kw.setdefault("since", SINCE)
    kw.setdefault("run_started", NOW)
    return list(conn.streams()[0].read(ReadContext(**kw)))


def records(pages):
    return {r.id: r for p in pages for r in p.records}


def last_state(pages, previous=None):
    """What the engine keeps: the last page.state that is not None (else the previous state)."""
    state = previous or {}
    for p in pages:
        if p.state is not None:
            state = p.state
    return state


@pytest.fixture
def api():
    fake = FakePagerDuty()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake.register(rsps)
        yield fake


# -- windows -------------------------------------------------------------------------------------------
def test_reads_in_windows_of_window_days_with_exact_params(api):
    api.put(pd(1, "2026-07-02T10:00:00Z"))
    api.put(pd(2, "2026-08-15T10:00:00Z"))
    api.put(pd(3, "2026-09-08T23:59:59Z"))
    api.put(pd(4, "2026-06-30T23:59:59Z"))  # before since: not read
    pages = read(connector())
    assert sorted(records(pages)) == ["P000001", "P000002", "P000003"]
    lists = api.requests("/incidents")
    # each slice after the first starts a second early (since/until may or may not be inclusive); the slices are
    # read concurrently (in any order), their pages written in order
    assert sorted((q["since"], q["until"]) for q in lists) == [
        (["2026-07-01T00:00:00Z"], ["2026-07-31T00:00:00Z"]),
        (["2026-07-30T23:59:59Z"], ["2026-08-30T00:00:00Z"]),
        (["2026-08-29T23:59:59Z"], ["2026-09-09T00:00:00Z"]),
    ]
    for q in lists:
        assert q["time_zone"] == ["UTC"] and q["limit"] == ["100"] and q["offset"] == ["0"]
        assert q["sort_by"] == ["created_at:asc"]
        assert "statuses[]" not in q and "date_range" not in q and "total" not in q
    assert [p.checkpoint for p in pages] == [
        {"from": "2026-07-01T00:00:00.000Z"}, {"from": "2026-07-31T00:00:00.000Z"},
        {"from": "2026-08-30T00:00:00.000Z"}]


def test_window_days_from_the_source(api):
    read(connector(config(window_days=7)), since=datetime(2026, 7, 1, tzinfo=UTC),
         run_started=datetime(2026, 7, 20, 12, 0, 0, 250000, tzinfo=UTC))
    assert sorted((q["since"][0], q["until"][0]) for q in api.requests("/incidents")) == [
        ("2026-07-01T00:00:00Z", "2026-07-08T00:00:00Z"),
        ("2026-07-07T23:59:59Z", "2026-07-15T00:00:00Z"),
        ("2026-07-14T23:59:59Z", "2026-07-20T12:00:01Z"),
    ]


@pytest.mark.parametrize("since_inclusive,until_inclusive", [(True, False), (True, True), (False, False),
                                                              (False, True)])
def test_an_incident_on_a_slice_boundary_is_read_once_whichever_way_since_and_until_go(
        since_inclusive, until_inclusive):
    fake = FakePagerDuty(since_inclusive=since_inclusive, until_inclusive=until_inclusive)
    created = ["2026-07-01T00:00:01Z", "2026-07-30T23:59:58Z", "2026-07-30T23:59:59Z", "2026-07-31T00:00:00Z",
               "2026-07-31T00:00:01Z", "2026-08-30T00:00:00Z", "2026-09-08T23:59:59Z"]
    for n, at in enumerate(created, 1):
        fake.put(pd(n, at))
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake.register(rsps)
        pages = read(connector())
    ids = [r.id for p in pages for r in p.records]
    assert sorted(ids) == [f"P{n:06d}" for n in range(1, 8)]  # each one exactly once
    state = last_state(pages)
    assert state["open"] == [f"P{n:06d}" for n in range(1, 8)]


def test_source_filters_are_sent_as_repeated_keys(api):
    read(connector(config(service_ids=["PSVC1", "PSVC2"], team_ids=["T1"], urgencies=["high", "low"])),
         since=NOW - timedelta(days=1))
    (q,) = api.requests("/incidents")
    assert q["service_ids[]"] == ["PSVC1", "PSVC2"]
    assert q["team_ids[]"] == ["T1"]
    assert q["urgencies[]"] == ["high", "low"]


def test_pages_within_a_window_by_offset(api):
    for n in range(1, 251):
        api.put(pd(n, f"2026-07-02T{n // 60:02d}:{n % 60:02d}:00Z"))
    pages = read(connector(), since=SINCE, run_started=datetime(2026, 7, 10, tzinfo=UTC))
    assert [q["offset"] for q in api.requests("/incidents")] == [["0"], ["100"], ["200"]]
    assert len(records(pages)) == 250


def test_a_window_over_the_offset_cap_is_split_and_nothing_is_lost(api):
    start = datetime(2026, 7, 1, tzinfo=UTC)
    n = 10150
    for i in range(n):  # one incident every 4 minutes from Jul 1
        api.put(pd(i + 1, (start + timedelta(minutes=4 * i)).strftime("%Y-%m-%dT%H:%M:%SZ")))
    pages = read(connector(), since=start, run_started=datetime(2026, 7, 31, tzinfo=UTC))
    lists = api.requests("/incidents")
    assert all(int(q["offset"][0]) + int(q["limit"][0]) <= 10000 for q in lists)
    assert len(records(pages)) == n
    windows = list(dict.fromkeys((q["since"][0], q["until"][0]) for q in lists))
    assert windows == [
        ("2026-07-01T00:00:00Z", "2026-07-31T00:00:00Z"),
        ("2026-07-01T00:00:00Z", "2026-07-16T00:00:00Z"),  # the halves, in time order
        ("2026-07-15T23:59:59Z", "2026-07-31T00:00:00Z"),
    ]
    assert max(int(q["offset"][0]) for q in lists) == 9900
    # checkpoints move forward only
    froms = [p.checkpoint["from"] for p in pages]
    assert froms == sorted(froms)


def test_resume_from_a_checkpoint_skips_finished_windows(api):
    read(connector(), checkpoint={"from": "2026-08-30T00:00:00.000Z"})
    assert [(q["since"][0], q["until"][0]) for q in api.requests("/incidents")] == [
        ("2026-08-30T00:00:00Z", "2026-09-09T00:00:00Z")]


# -- MTTA from log entries -----------------------------------------------------------------------------
def test_first_ack_comes_from_log_entries_fetched_only_when_needed(api):
    api.put(pd(1, "2026-07-02T10:00:00Z", status="acknowledged"))
    api.put(pd(2, "2026-07-02T11:00:00Z", status="resolved", resolved_at="2026-07-02T12:00:00Z"))
    api.put(pd(3, "2026-07-02T12:00:00Z", status="resolved", resolved_at="2026-07-02T12:30:00Z"))
    api.put(pd(4, "2026-07-02T13:00:00Z", status="triggered"))
    api.logs = {
        "P000001": [entry("acknowledge_log_entry", "2026-07-02T10:07:00Z"),
                    entry("acknowledge_log_entry", "2026-07-02T10:03:00Z"),
                    entry("trigger_log_entry", "2026-07-02T10:00:00Z")],
        "P000002": [entry("resolve_log_entry", "2026-07-02T12:00:00Z"),
                    entry("acknowledgement_log_entry", "2026-07-02T11:02:30Z"),
                    entry("trigger_log_entry", "2026-07-02T11:00:00Z")],
        "P000003": [entry("resolve_log_entry", "2026-07-02T12:30:00Z"),
                    entry("trigger_log_entry", "2026-07-02T12:00:00Z")],
    }
    pages = read(connector(), since=SINCE, run_started=datetime(2026, 7, 3, tzinfo=UTC))
    recs = records(pages)
    assert recs["P000001"].acknowledged == datetime(2026, 7, 2, 10, 3, tzinfo=UTC)
    assert recs["P000002"].acknowledged == datetime(2026, 7, 2, 11, 2, 30, tzinfo=UTC)
    assert recs["P000003"].acknowledged is None  # resolved without an ack
    assert recs["P000004"].acknowledged is None
    # one account-wide read of the log over the read's range (not one per incident)
    log_calls = [(p, q) for p, q in api.calls if p.endswith("/log_entries")]
    assert log_calls == [("/log_entries", {
        "since": ["2026-07-01T00:00:00Z"], "until": ["2026-07-04T00:00:00Z"], "is_overview": ["true"],
        "time_zone": ["UTC"], "limit": ["100"], "offset": ["0"], "total": ["true"]})]
    state = last_state(pages)
    assert state["open"] == ["P000001", "P000004"]
    assert state["acks"] == {
        "P000001": ["2026-07-02T10:00:00.000Z", "2026-07-02T10:03:00.000Z"],
        "P000002": ["2026-07-02T11:00:00.000Z", "2026-07-02T11:02:30.000Z"],
        "P000003": ["2026-07-02T12:00:00.000Z", None],
    }


def test_log_entries_are_paged(api):
    api.put(pd(1, "2026-07-02T10:00:00Z", status="resolved"))
    api.logs = {"P000001": [entry("notify_log_entry", f"2026-07-02T10:{m:02d}:00Z") for m in range(59, -1, -1)]
                + [entry("notify_log_entry", "2026-07-02T09:59:00Z")] * 60
                + [entry("acknowledge_log_entry", "2026-07-02T10:01:00Z")]}
    recs = records(read(connector(), since=SINCE, run_started=datetime(2026, 7, 3, tzinfo=UTC)))
    assert recs["P000001"].acknowledged == datetime(2026, 7, 2, 10, 1, tzinfo=UTC)
    assert [q["offset"] for p, q in api.calls if p.endswith("/log_entries")] == [["0"], ["100"]]


# -- open incidents across runs ------------------------------------------------------------------------
def test_unresolved_incidents_are_re_read_until_they_resolve(api):
    api.put(pd(1, "2026-07-02T10:00:00Z", status="triggered"))
    api.put(pd(2, "2026-07-02T11:00:00Z", status="acknowledged"))
    api.put(pd(3, "2026-07-02T12:00:00Z", status="resolved", resolved_at="2026-07-02T12:20:00Z"))
    api.logs = {"P000002": [entry("acknowledge_log_entry", "2026-07-02T11:04:00Z")],
                "P000003": [entry("acknowledge_log_entry", "2026-07-02T12:01:00Z")],
                "P000001": [entry("acknowledge_log_entry", "2026-07-05T08:00:00Z")]}
    conn = connector()
    run1 = datetime(2026, 7, 3, tzinfo=UTC)
    pages = read(conn, since=SINCE, run_started=run1, first_run=True)
    state1 = last_state(pages)
    assert state1["open"] == ["P000001", "P000002"]
    assert conn.requests_made == 1 + 1  # one window + one account-wide log read (for 2 and 3)

    # between the runs: #1 is acknowledged and resolved, #2 stays acknowledged
    api.put(pd(1, "2026-07-02T10:00:00Z", status="resolved", resolved_at="2026-07-05T09:00:00Z",
               updated_at="2026-07-05T09:00:00Z"))
    api.calls.clear()
    run2 = datetime(2026, 7, 6, tzinfo=UTC)
    conn = connector()
    pages = read(conn, since=run1 - timedelta(minutes=10), run_started=run2, state=state1)
    recs = records(pages)
    assert [p for p, _ in api.calls] == [
        "/incidents",  # the window [run1 - 10 min, run2): nothing new
        "/incidents",  # the still-open ones
        "/incidents/P000001",  # open last run, no longer in that list
        "/log_entries",  # resolved now, its ack never fetched: the account log since the last run
    ]
    assert api.calls[3][1]["since"] == ["2026-07-02T23:50:00Z"]
    open_list = api.calls[1][1]
    assert open_list == {"statuses[]": ["triggered", "acknowledged"], "date_range": ["all"], "time_zone": ["UTC"],
                         "limit": ["100"], "offset": ["0"]}
    assert recs["P000001"].status == "resolved"
    assert recs["P000001"].resolved == datetime(2026, 7, 5, 9, 0, tzinfo=UTC)
    assert recs["P000001"].acknowledged == datetime(2026, 7, 5, 8, 0, tzinfo=UTC)
    assert recs["P000002"].status == "acknowledged"
    assert recs["P000002"].acknowledged == datetime(2026, 7, 2, 11, 4, tzinfo=UTC)  # remembered, not re-fetched
    state2 = last_state(pages, state1)
    assert state2["open"] == ["P000002"]
    assert set(state2["acks"]) == {"P000001", "P000002", "P000003"}

    # a run where nothing changed costs two requests
    api.calls.clear()
    conn = connector()
    pages = read(conn, since=run2 - timedelta(minutes=10), run_started=run2 + timedelta(hours=1), state=state2)
    assert conn.requests_made == 2
    assert last_state(pages, state2)["open"] == ["P000002"]


def test_an_open_incident_that_disappeared_is_dropped_from_the_state(api):
    conn = connector()
    pages = read(conn, since=NOW - timedelta(hours=1), state={"open": ["PGONE01"], "acks": {}})
    assert [p for p, _ in api.calls] == ["/incidents", "/incidents", "/incidents/PGONE01"]
    assert last_state(pages)["open"] == []


def test_the_open_list_stops_once_every_known_open_incident_is_found(api):
    api.put(pd(1, "2025-01-01T00:00:00Z", status="acknowledged"))  # known open, oldest
    for n in range(2, 252):  # open incidents from before the first sync: not ours, not paged through
        api.put(pd(n, f"2025-02-01T00:{n // 60:02d}:{n % 60:02d}Z"))
    conn = connector()
    acks = {"P000001": ["2025-01-01T00:00:00.000Z", "2025-01-01T00:01:00.000Z"]}
    pages = read(conn, since=NOW - timedelta(hours=1), state={"open": ["P000001"], "acks": acks})
    assert conn.requests_made == 2
    assert list(records(pages)) == ["P000001"]
    assert records(pages)["P000001"].acknowledged == datetime(2025, 1, 1, 0, 1, tzinfo=UTC)


def test_no_open_incidents_known_means_no_refresh_requests(api):
    conn = connector()
    read(conn, since=NOW - timedelta(hours=1), state={"open": [], "acks": {}})
    assert conn.requests_made == 1


def test_old_ack_memory_is_pruned(api):
    old = {"POLD001": ["2025-01-01T00:00:00.000Z", None], "PNEW001": ["2026-09-01T00:00:00.000Z", None]}
    api.put(pd(9, "2026-09-08T10:00:00Z"))
    pages = read(connector(), since=NOW - timedelta(days=1), state={"open": [], "acks": old})
    assert last_state(pages)["acks"] == {"PNEW001": ["2026-09-01T00:00:00.000Z", None]}


def test_a_bad_incident_is_skipped(api):
    api.put(pd(1, "2026-07-02T10:00:00Z"))
    api.put(pd(2, "2026-07-02T11:00:00Z", status="exploded"))
    pages = read(connector(), since=SINCE, run_started=datetime(2026, 7, 3, tzinfo=UTC))
    assert list(records(pages)) == ["P000001"]
    assert [(s.key, s.reason) for p in pages for s in p.skipped] == [("#2", "unknown status 'exploded'")]


# -- HTTP behaviour ------------------------------------------------------------------------------------
def test_429_waits_for_ratelimit_reset_then_succeeds(api):
    api.put(pd(1, "2026-09-08T10:00:00Z"))
    api.fail_next.append((429, {"ratelimit-reset": "3"}, {"error": {"message": "Rate Limit Exceeded", "code": 2020}}))
    sleeps: list[float] = []
    conn = connector(sleeps=sleeps)
    pages = read(conn, since=NOW - timedelta(days=1))
    assert list(records(pages)) == ["P000001"]
    assert len(sleeps) == 1 and 3 <= sleeps[0] <= 3.25
    assert conn.requests_made == 2


def test_headers_and_base_url(api):
    read(connector(), since=NOW - timedelta(hours=1))
    req = api.last_request
    assert req.headers["Authorization"] == f"Token token={TOKEN}"
    assert req.headers["Accept"] == "application/vnd.pagerduty+json;version=2"
    assert req.url.startswith(f"{BASE}/incidents?")


@pytest.mark.parametrize("url", ["https://api.eu.pagerduty.com", "http://127.0.0.1:8765"])
@responses.activate
def test_the_url_setting_overrides_the_base(url):
    responses.get(f"{url}/incidents", json={"incidents": [], "more": False})
    read(connector(config(url=url)), since=NOW - timedelta(hours=1))
    assert responses.calls[0].request.url.startswith(f"{url}/incidents?")


def test_missing_token_names_the_variable():
    with pytest.raises(AuthError, match="^pd: no token: set OKRSYNC_SOURCES__PD__TOKEN$"):
        connector(token=None)


@responses.activate
def test_401_is_one_line_naming_the_variable_without_the_token():
    responses.get(f"{BASE}/incidents", status=401, json={"error": {"message": "Unauthorized", "code": 2006}})
    with pytest.raises(AuthError) as err:
        read(connector(), since=NOW - timedelta(hours=1))
    assert str(err.value) == ("pd: authentication failed for https://api.pagerduty.com "
                              "(check OKRSYNC_SOURCES__PD__TOKEN)")


@responses.activate
def test_400_is_a_query_error():
    responses.get(f"{BASE}/incidents", status=400,
                  json={"error": {"message": "Invalid Input Provided", "errors": ["Invalid service id"]}})
    with pytest.raises(QueryError, match="pd: HTTP 400 .*Invalid Input Provided; Invalid service id"):
        read(connector(config(service_ids=["NOPE"])), since=NOW - timedelta(hours=1))


def test_the_registry_builds_both_itsm_connectors():
    from okrsync.config.sources import ServiceNowSource
    from okrsync.connectors.servicenow.connector import ServiceNowConnector

    opts = ConnectorOptions(sleep=lambda s: None)
    pdc = build_connector("pd", config(), SourceCredentials(token=TOKEN), opts)
    snc = build_connector("sn", ServiceNowSource(type="servicenow", url="https://acme.service-now.com"),
                          SourceCredentials(user="u", password="p"), opts)
    assert isinstance(pdc, PagerDutyConnector) and isinstance(snc, ServiceNowConnector)
    for c in (pdc, snc):
        (stream,) = c.streams()
        assert (stream.name, stream.default_from) == ("incidents", "previous_period")
        c.close()


def test_the_engine_carries_the_open_set_between_two_syncs(api, tmp_path, monkeypatch):
    """Through engine.sync: Page.state is stored with each page and comes back as ctx.state next run."""
    from okrsync.config.settings import Settings
    from okrsync.config.workspace import load_workspace_text
    from okrsync.engine.store import Store
    from okrsync.engine.sync import SyncRunner

    monkeypatch.setenv("OKRSYNC_SOURCES__PAGERDUTY__TOKEN", TOKEN)
    ws = load_workspace_text("period: 2026-Q3\nsources:\n  pagerduty: {type: pagerduty}\nobjectives: []\n").workspace
    store = Store(tmp_path / "okrsync.db")
    api.put(pd(1, "2026-07-02T10:00:00Z", status="triggered"))
    api.put(pd(2, "2026-07-03T10:00:00Z", status="resolved", resolved_at="2026-07-03T11:00:00Z"))
    api.logs = {"P000002": [entry("acknowledge_log_entry", "2026-07-03T10:10:00Z")]}

    def sync(started):
        runner = SyncRunner(ws, store, Settings(), run_id=store.start_run("sync", started), started=started,
                            sleep=lambda s: None)
        out = runner.sync_source("pagerduty")
        assert out.error is None
        return out

    first = sync(datetime(2026, 7, 10, tzinfo=UTC))
    # the previous period: Q2, [Apr 1, Jul 1)
    # windows are requested concurrently: the earliest one starts at the previous period's start
    assert min(r["since"][0] for r in api.requests("/incidents")) == "2026-04-01T00:00:00Z"
    assert store.get_state("pagerduty", "incidents")["state"]["open"] == ["P000001"]
    assert first.requests == 5  # four 30-day windows up to Jul 10 + one log read

    api.put(pd(1, "2026-07-02T10:00:00Z", status="resolved", resolved_at="2026-07-12T00:00:00Z"))
    api.calls.clear()
    second = sync(datetime(2026, 7, 20, tzinfo=UTC))
    assert sorted(p for p, _ in api.calls) == ["/incidents", "/incidents", "/incidents/P000001", "/log_entries"]
    # cursor - 10 min lookback
    assert min(a["since"][0] for p, a in api.calls if p == "/incidents" and "since" in a) == "2026-07-09T23:50:00Z"
    assert second.requests == 4
    assert store.get_state("pagerduty", "incidents")["state"]["open"] == []
    rows = store.db.execute("SELECT id, status, resolved, acknowledged FROM incidents ORDER BY id").fetchall()
    assert rows == [("P000001", "resolved", "2026-07-12T00:00:00.000Z", None),
                    ("P000002", "resolved", "2026-07-03T11:00:00.000Z", "2026-07-03T10:10:00.000Z")]
    store.close()
