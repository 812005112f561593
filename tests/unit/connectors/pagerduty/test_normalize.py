"""PagerDuty incident -> Incident, first acknowledgement, windows: exact values from real payloads."""

import csv
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from okrsync.connectors.pagerduty.normalize import (
    first_acknowledgement,
    halves,
    normalize_incident,
    windows,
    zulu,
)
from okrsync.domain.records import RecordError

FIXTURES = Path(__file__).parents[3] / "fixtures" / "pagerduty"
UTC = timezone.utc


def devlake() -> dict[int, dict]:
    """The 3 DevLake incidents (2022 shape) by incident_number, log entries embedded."""
    csv.field_size_limit(10**8)
    with open(FIXTURES / "_raw_pagerduty_incidents.csv", newline="") as f:
        rows = [json.loads(r["data"]) for r in csv.DictReader(f)]
    return {r["incident_number"]: r for r in rows}


def airbyte() -> dict:
    lines = (FIXTURES / "airbyte_expected_records.jsonl").read_text().splitlines()
    return next(json.loads(x)["data"] for x in lines if json.loads(x)["stream"] == "incidents")


def t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


DEVLAKE = {
    # triggered again after acknowledgements (ack timeout): open; no resolution
    4: dict(id="Q3YON8WNWTZMRQ", number="4", title="Crash reported", status="open", urgency="high",
            service="DevService", priority=None, opened=t("2022-11-03 06:23:06"), resolved=None,
            updated=t("2022-11-03 07:02:36"), assignment_group=None, reassignment_count=None, closed=None,
            url="https://keon-test.pagerduty.com/incidents/Q3YON8WNWTZMRQ"),
    5: dict(id="Q3CZAU7Q4008QD", number="5", title="Slow startup", status="acknowledged", urgency="high",
            opened=t("2022-11-03 06:44:28"), resolved=None, updated=t("2022-11-03 06:44:37")),
    # resolved, no resolved_at in 2022 payloads: the last status change is the resolution
    6: dict(id="Q1OHFWFP3GPXOG", number="6", title="Spamming logs", status="resolved", urgency="low",
            service="DevService", opened=t("2022-11-03 06:45:36"), resolved=t("2022-11-03 06:51:44"),
            updated=t("2022-11-03 06:51:44")),
}


@pytest.mark.parametrize("number", sorted(DEVLAKE))
def test_devlake_incidents_exact_values(number):
    rec = normalize_incident(devlake()[number], source="pd")
    for field, expected in DEVLAKE[number].items():
        assert getattr(rec, field) == expected, field
    assert rec.acknowledged is None  # comes from the log entries, passed in by the connector
    assert rec.raw["incident_number"] == number


@pytest.mark.parametrize("number,first_ack", [
    (4, t("2022-11-03 06:23:07")),  # three acks (06:34:53, 06:34:25, 06:23:07): the first one counts
    (5, t("2022-11-03 06:44:37")),
    (6, t("2022-11-03 06:45:46")),
])
def test_first_acknowledgement_from_real_log_entries(number, first_ack):
    assert first_acknowledgement(devlake()[number]["log_entries"]) == first_ack


def test_airbyte_incident_newer_shape():
    rec = normalize_incident(airbyte(), source="pd")
    assert (rec.id, rec.number, rec.title, rec.status) == ("Q2U8NVNBMCM7JW", "1", "admin", "open")
    assert rec.priority == "P1"
    assert rec.service == "asd"
    assert rec.urgency == "high"
    assert rec.opened == t("2023-10-07 07:25:26")
    assert rec.updated == t("2023-10-07 07:25:26")
    assert rec.resolved is None
    assert rec.url == "https://dev-pixil.pagerduty.com/incidents/Q2U8NVNBMCM7JW"


def test_resolved_at_wins_over_the_last_status_change():
    p = dict(airbyte(), status="resolved", resolved_at="2023-10-07T09:00:00Z",
             last_status_change_at="2023-10-07T09:30:00Z", updated_at="2023-10-07T09:30:00Z")
    rec = normalize_incident(p, source="pd")
    assert (rec.status, rec.resolved, rec.updated) == ("resolved", t("2023-10-07 09:00:00"), t("2023-10-07 09:30:00"))


@pytest.mark.parametrize("changes,field,expected", [
    ({"status": "triggered"}, "status", "open"),
    ({"status": "acknowledged"}, "status", "acknowledged"),
    ({"status": "resolved"}, "status", "resolved"),
    ({"status": "resolved", "resolved_at": None}, "resolved", t("2023-10-07 07:25:26")),
    ({"status": "acknowledged", "resolved_at": None}, "resolved", None),
    ({"priority": None}, "priority", None),
    ({"teams": [{"id": "T1", "summary": "Payments SRE"}, {"id": "T2", "summary": "Web"}]},
     "assignment_group", "Payments SRE"),
    ({"teams": []}, "assignment_group", None),
    ({"updated_at": None}, "updated", t("2023-10-07 07:25:26")),
    ({"created_at": "2023-10-07T09:25:26+02:00"}, "opened", t("2023-10-07 07:25:26")),
    ({"created_at": "2022-11-03T06:23:06.000000Z"}, "opened", t("2022-11-03 06:23:06")),
    ({"urgency": "low"}, "urgency", "low"),
    ({"html_url": None}, "url", None),
])
def test_field_rules(changes, field, expected):
    assert getattr(normalize_incident(dict(airbyte(), **changes), source="pd"), field) == expected


@pytest.mark.parametrize("changes,message", [
    ({"id": None}, "missing id"),
    ({"status": "closed"}, "unknown status 'closed'"),
    ({"created_at": None}, "missing created_at"),
    ({"created_at": "last tuesday"}, "bad created_at"),
    ({"updated_at": 12}, "bad updated_at"),
])
def test_bad_payloads_raise_record_errors(changes, message):
    with pytest.raises(RecordError, match=message):
        normalize_incident(dict(airbyte(), **changes), source="pd")


@pytest.mark.parametrize("entries,expected", [
    ([], None),
    ([{"type": "trigger_log_entry", "created_at": "2026-10-01T00:00:00Z"}], None),
    ([{"type": "acknowledge_log_entry", "created_at": "2026-10-01T00:05:00Z"}], t("2026-10-01 00:05:00")),
    ([{"type": "acknowledgement_log_entry", "created_at": "2026-10-01T00:06:00Z"}], t("2026-10-01 00:06:00")),
    ([{"type": "acknowledge_log_entry", "created_at": "2026-10-01T00:09:00Z"},  # newest first, as the API sends
      {"type": "acknowledgement_log_entry", "created_at": "2026-10-01T00:04:00Z"},
      {"type": "trigger_log_entry", "created_at": "2026-10-01T00:00:00Z"}], t("2026-10-01 00:04:00")),
    ([{"type": "unacknowledge_log_entry", "created_at": "2026-10-01T00:01:00Z"},
      {"type": "acknowledge_log_entry_reference", "created_at": "2026-10-01T00:02:00Z"}], t("2026-10-01 00:02:00")),
])
def test_first_acknowledgement_matches_both_spellings(entries, expected):
    assert first_acknowledgement(entries) == expected


# -- windows -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("since,until,days,expected", [
    ("2026-07-01 00:00:00", "2026-09-09 00:00:00", 30,
     [("2026-07-01 00:00:00", "2026-07-31 00:00:00"), ("2026-07-31 00:00:00", "2026-08-30 00:00:00"),
      ("2026-08-30 00:00:00", "2026-09-09 00:00:00")]),
    ("2026-07-01 00:00:00", "2026-07-31 00:00:00", 30, [("2026-07-01 00:00:00", "2026-07-31 00:00:00")]),
    ("2026-07-01 00:00:00", "2026-07-15 00:00:00", 7,
     [("2026-07-01 00:00:00", "2026-07-08 00:00:00"), ("2026-07-08 00:00:00", "2026-07-15 00:00:00")]),
    ("2026-01-01 00:00:00", "2026-12-01 00:00:00", 180,
     [("2026-01-01 00:00:00", "2026-06-30 00:00:00"), ("2026-06-30 00:00:00", "2026-12-01 00:00:00")]),
    ("2026-07-01 00:00:00.700000", "2026-07-01 00:00:05.200000", 30,  # whole seconds, nothing lost at the ends
     [("2026-07-01 00:00:00", "2026-07-01 00:00:06")]),
    ("2026-07-01 00:00:00", "2026-07-01 00:00:00", 30, []),
])
def test_windows(since, until, days, expected):
    got = windows(t(since), t(until), days)
    assert [(zulu(a), zulu(b)) for a, b in got] == [
        (t(a).strftime("%Y-%m-%dT%H:%M:%SZ"), t(b).strftime("%Y-%m-%dT%H:%M:%SZ")) for a, b in expected]
    assert all(b - a <= timedelta(days=days) for a, b in got)


def test_halves():
    assert halves(t("2026-07-01 00:00:00"), t("2026-07-31 00:00:00")) == (
        (t("2026-07-01 00:00:00"), t("2026-07-16 00:00:00")), (t("2026-07-16 00:00:00"), t("2026-07-31 00:00:00")))
    assert halves(t("2026-07-01 00:00:00"), t("2026-07-01 00:00:03")) == (
        (t("2026-07-01 00:00:00"), t("2026-07-01 00:00:01")), (t("2026-07-01 00:00:01"), t("2026-07-01 00:00:03")))
    assert halves(t("2026-07-01 00:00:00"), t("2026-07-01 00:00:01")) is None


def test_zulu_converts_to_utc():
    assert zulu(datetime(2026, 7, 1, 2, 0, tzinfo=timezone(timedelta(hours=2)))) == "2026-07-01T00:00:00Z"
