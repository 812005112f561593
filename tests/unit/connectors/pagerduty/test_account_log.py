"""PagerDuty first acknowledgements from the account-wide log: one read for many incidents, the cap, fallbacks."""

from datetime import datetime, timedelta, timezone

import pytest
import responses

from okrsync.config.settings import SourceCredentials
from okrsync.config.sources import PagerDutySource
from okrsync.connectors.base import ConnectorOptions, ReadContext
from okrsync.connectors.pagerduty.connector import build

from .fake import FakePagerDuty, entry, pd

UTC = timezone.utc
SINCE = datetime(2026, 7, 1, tzinfo=UTC)
RUN = datetime(2026, 7, 31, tzinfo=UTC)


@pytest.fixture
def api():
    fake = FakePagerDuty()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake.register(rsps)
        yield fake


def read(**kw):
    conn = build("pd", PagerDutySource(type="pagerduty"), SourceCredentials(token="tok-12345"),
                 ConnectorOptions(sleep=lambda s: None))
    pages = list(conn.streams()[0].read(ReadContext(since=SINCE, run_started=RUN, **kw)))
    return conn, {r.id: r for p in pages for r in p.records}


def test_many_incidents_cost_one_log_read(api):
    for n in range(1, 41):
        opened = SINCE + timedelta(hours=n)
        api.put(pd(n, opened.strftime("%Y-%m-%dT%H:%M:%SZ"), status="resolved"))
        api.logs[f"P{n:06d}"] = [entry("resolve_log_entry", (opened + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")),
                                 entry("acknowledge_log_entry", (opened + timedelta(minutes=n)).strftime("%Y-%m-%dT%H:%M:%SZ")),
                                 entry("trigger_log_entry", opened.strftime("%Y-%m-%dT%H:%M:%SZ"))]
    conn, recs = read()
    assert conn.requests_made == 1 + 2  # the incident window + two pages of 100 of the 120 log entries
    assert [p for p, _ in api.calls] == ["/incidents", "/log_entries", "/log_entries"]
    assert all(recs[f"P{n:06d}"].acknowledged == SINCE + timedelta(hours=n, minutes=n) for n in range(1, 41))


def test_no_acknowledged_incident_means_no_log_read(api):
    api.put(pd(1, "2026-07-02T10:00:00Z", status="triggered"))
    conn, recs = read()
    assert [p for p, _ in api.calls] == ["/incidents"]
    assert recs["P000001"].acknowledged is None


def test_an_ack_missing_from_the_account_log_is_asked_of_the_incident(api):
    api.put(pd(1, "2026-07-02T10:00:00Z", status="acknowledged"))
    api.put(pd(2, "2026-07-02T11:00:00Z", status="resolved"))
    api.logs = {"P000001": [entry("acknowledge_log_entry", "2026-06-20T00:00:00Z")]}  # outside the range
    conn, recs = read()
    assert [p for p, _ in api.calls] == ["/incidents", "/log_entries", "/incidents/P000001/log_entries"]
    assert recs["P000001"].acknowledged == datetime(2026, 6, 20, tzinfo=UTC)
    assert recs["P000002"].acknowledged is None  # resolved without an acknowledgement


def test_a_range_over_the_offset_cap_is_halved_before_paging(api, monkeypatch):
    from okrsync.connectors.pagerduty import connector as mod

    monkeypatch.setattr(mod, "MAX_OFFSET", 300)
    api.put(pd(1, "2026-07-02T10:00:00Z", status="acknowledged"))
    api.logs = {"P000001": [entry("notify_log_entry", (SINCE + timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%SZ"))
                            for h in range(1, 500)]
                + [entry("acknowledge_log_entry", "2026-07-02T10:05:00Z")]}
    conn, recs = read()
    logs = [q for p, q in api.calls if p == "/log_entries"]
    assert all(int(q["offset"][0]) + 100 <= 300 for q in logs)
    assert logs[0]["total"] == ["true"] and logs[0]["until"] == ["2026-08-01T00:00:00Z"]
    assert len({(q["since"][0], q["until"][0]) for q in logs}) > 2  # split, then each half read
    assert recs["P000001"].acknowledged == datetime(2026, 7, 2, 10, 5, tzinfo=UTC)
