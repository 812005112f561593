"""ServiceNow row -> Incident: string parsing, UTC times, state mapping, and exact values from a real instance."""

import json
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from okrsync.connectors.servicenow.normalize import (
    format_time,
    normalize_incident,
    parse_bool,
    parse_int,
    parse_time,
    raw_payload,
    state_status,
    value,
)
from okrsync.domain.records import RecordError

FIXTURES = Path(__file__).parents[3] / "fixtures" / "servicenow"
BASE = "https://dev197215.service-now.com"
UTC = timezone.utc


def real_rows() -> list[dict]:
    return json.loads((FIXTURES / "incident_table_response.2024-04-16.json").read_text())["result"]


def by_number(number: str) -> dict:
    return next(r for r in real_rows() if r["number"] == number)


def norm(row: dict, **kw):
    return normalize_incident(row, source="sn", base_url=BASE, **kw)


# -- string parsing -------------------------------------------------------------------------------
@pytest.mark.parametrize("text,expected", [
    ("2016-12-14 02:46:44", datetime(2016, 12, 14, 2, 46, 44, tzinfo=UTC)),
    ("2024-03-08 19:56:12", datetime(2024, 3, 8, 19, 56, 12, tzinfo=UTC)),
    ("  2024-01-01 00:00:00 ", datetime(2024, 1, 1, tzinfo=UTC)),
    ("", None),
    (None, None),
])
def test_parse_time_reads_plain_literals_as_utc(text, expected):
    got = parse_time(text)
    assert got == expected
    if got is not None:
        assert got.utcoffset() == timedelta(0)


@pytest.mark.parametrize("text", [
    "12/14/2016 02:46:44",  # a display value (user format): never parsed
    "2016-12-14T02:46:44Z",
    "2016-12-14",
    "2016-13-01 00:00:00",
    "yesterday",
])
def test_parse_time_refuses_anything_but_the_raw_format(text):
    with pytest.raises(RecordError, match="expected UTC YYYY-MM-DD HH:MM:SS"):
        parse_time(text, "opened_at")


@pytest.mark.parametrize("when,literal", [
    (datetime(2026, 10, 1, tzinfo=UTC), "2026-10-01 00:00:00"),
    (datetime(2026, 10, 1, 2, 0, tzinfo=timezone(timedelta(hours=2))), "2026-10-01 00:00:00"),
    (datetime(2026, 9, 30, 22, 0, tzinfo=timezone(timedelta(hours=-3))), "2026-10-01 01:00:00"),
    (datetime(2026, 10, 1, 12, 30, 15, 999999, tzinfo=UTC), "2026-10-01 12:30:15"),
    (datetime(2026, 10, 1, 12, 30), "2026-10-01 12:30:00"),  # naive = UTC
])
def test_format_time_gives_the_utc_literal(when, literal):
    assert format_time(when) == literal


@pytest.mark.parametrize("text,expected", [("0", 0), ("2", 2), ("17", 17), ("2.0", 2), ("", None), (None, None)])
def test_parse_int(text, expected):
    assert parse_int(text) == expected


@pytest.mark.parametrize("text", ["two", "1.5"])
def test_parse_int_refuses(text):
    with pytest.raises(RecordError, match="reassignment_count"):
        parse_int(text, "reassignment_count")


@pytest.mark.parametrize("text,expected", [("true", True), ("false", False), ("", None), (None, None), ("TRUE", True)])
def test_parse_bool(text, expected):
    assert parse_bool(text) is expected


@pytest.mark.parametrize("raw,expected", [
    ({"link": "https://x/api/now/table/sys_user_group/287e", "value": "287e"}, "287e"),  # reference with link
    ("287e", "287e"),  # sysparm_exclude_reference_link=true
    ("", ""),
    (None, ""),
    ({"value": None}, ""),
])
def test_value_handles_both_reference_shapes(raw, expected):
    assert value(raw) == expected


@pytest.mark.parametrize("state,status", [
    ("1", "open"), ("2", "open"), ("3", "open"), ("4", "open"), ("5", "open"),
    ("6", "resolved"), ("7", "closed"), ("8", "cancelled"),
])
def test_state_mapping(state, status):
    assert state_status(state) == status


@pytest.mark.parametrize("state", ["", "9", "New"])
def test_unknown_state_is_a_record_error(state):
    with pytest.raises(RecordError, match="unknown state"):
        state_status(state)


# -- one row, every rule ----------------------------------------------------------------------------
def row(**kw) -> dict:
    """A row as the connector requests it (sysparm_fields, exclude_reference_link, dot-walked names)."""
    base = {
        "sys_id": "a1", "number": "INC0010001", "short_description": "Checkout down", "state": "2",
        "priority": "1", "severity": "1", "urgency": "1", "impact": "1",
        "opened_at": "2026-10-05 08:00:00", "resolved_at": "", "closed_at": "", "sys_created_on": "2026-10-05 07:59:58",
        "sys_updated_on": "2026-10-05 09:00:00", "reassignment_count": "0", "reopen_count": "0", "made_sla": "true",
        "assignment_group.name": "Service Desk", "business_service.name": "Checkout", "cmdb_ci.name": "web-01",
    }
    base.update(kw)
    return base


@pytest.mark.parametrize("changes,field,expected", [
    ({}, "status", "open"),
    ({}, "resolved", None),
    ({"state": "6", "resolved_at": "2026-10-05 10:30:00"}, "resolved", datetime(2026, 10, 5, 10, 30, tzinfo=UTC)),
    ({"state": "6", "resolved_at": "", "closed_at": "2026-10-06 00:00:00"}, "resolved",
     datetime(2026, 10, 6, tzinfo=UTC)),
    ({"state": "7", "resolved_at": "2026-10-05 10:30:00", "closed_at": "2026-10-08 00:00:00"}, "resolved",
     datetime(2026, 10, 5, 10, 30, tzinfo=UTC)),
    ({"state": "7", "resolved_at": "2026-10-05 10:30:00", "closed_at": "2026-10-08 00:00:00"}, "closed",
     datetime(2026, 10, 8, tzinfo=UTC)),
    ({"state": "8", "closed_at": "2026-10-06 00:00:00"}, "resolved", None),  # cancelled: never resolved
    ({"state": "8", "closed_at": "2026-10-06 00:00:00"}, "closed", datetime(2026, 10, 6, tzinfo=UTC)),
    ({"state": "8"}, "status", "cancelled"),
    ({"state": "2", "resolved_at": "", "closed_at": "2026-10-06 00:00:00"}, "resolved", None),  # reopened: stale close
    ({"state": "2", "closed_at": "2026-10-06 00:00:00"}, "closed", None),
    ({}, "opened", datetime(2026, 10, 5, 8, 0, tzinfo=UTC)),
    ({"opened_at": ""}, "opened", datetime(2026, 10, 5, 7, 59, 58, tzinfo=UTC)),  # falls back to sys_created_on
    ({}, "updated", datetime(2026, 10, 5, 9, 0, tzinfo=UTC)),
    ({}, "priority", "1"),
    ({"priority": "5"}, "priority", "5"),
    ({"priority": ""}, "priority", None),
    ({}, "severity", "1"),
    ({}, "urgency", "1"),
    ({"reassignment_count": "3"}, "reassignment_count", 3),
    ({"reassignment_count": ""}, "reassignment_count", None),
    ({"made_sla": "true"}, "sla_breached", False),
    ({"made_sla": "false"}, "sla_breached", True),
    ({"made_sla": ""}, "sla_breached", None),
    ({}, "service", "Checkout"),
    ({"business_service.name": ""}, "service", "web-01"),  # business service, else CI
    ({"business_service.name": "", "cmdb_ci.name": ""}, "service", None),
    ({}, "assignment_group", "Service Desk"),
    ({"assignment_group.name": ""}, "assignment_group", None),
    ({}, "title", "Checkout down"),
    ({}, "number", "INC0010001"),
    ({}, "id", "a1"),
    ({}, "url", f"{BASE}/nav_to.do?uri=incident.do?sys_id=a1"),
    ({}, "acknowledged", None),
])
def test_row_fields(changes, field, expected):
    assert getattr(norm(row(**changes)), field) == expected


def test_url_uses_the_table_name():
    assert norm(row(), table="u_major_incident").url == f"{BASE}/nav_to.do?uri=u_major_incident.do?sys_id=a1"


@pytest.mark.parametrize("changes,message", [
    ({"sys_id": ""}, "missing sys_id"),
    ({"opened_at": "", "sys_created_on": ""}, "missing opened_at"),
    ({"opened_at": "10/05/2026 08:00"}, "bad opened_at"),
    ({"resolved_at": "soon", "state": "6"}, "bad resolved_at"),
    ({"reassignment_count": "many"}, "bad reassignment_count"),
    ({"state": "42"}, "unknown state"),
])
def test_bad_rows_raise_record_errors(changes, message):
    with pytest.raises(RecordError, match=message):
        norm(row(**changes))


def test_raw_nests_dot_walked_fields_for_where_paths():
    r = row(**{"caller_id.department.name": "IT", "u_category": "network"})
    raw = raw_payload(r)
    assert raw["assignment_group"] == {"name": "Service Desk"}
    assert raw["caller_id"] == {"department": {"name": "IT"}}
    assert raw["u_category"] == "network"
    assert "assignment_group.name" not in raw
    # the normalizer reads the nested shape too, so the stored raw normalizes to the same record
    a, b = norm(r), norm(raw)
    assert (a.service, a.assignment_group, a.opened) == (b.service, b.assignment_group, b.opened)


def test_raw_keeps_a_dot_walked_field_flat_when_its_root_is_a_plain_value():
    raw = raw_payload({"sys_id": "a1", "caller_id": "681c", "caller_id.name": "Fred"})
    assert raw == {"sys_id": "a1", "caller_id": "681c", "caller_id.name": "Fred"}


# -- the real instance ------------------------------------------------------------------------------
def test_every_real_incident_normalizes():
    records = [norm(r) for r in real_rows()]
    assert len(records) == 67
    assert Counter(r.status for r in records) == {"open": 40, "closed": 27}
    assert sum(r.resolved is not None for r in records) == 27
    assert all(r.opened.tzinfo is not None and r.opened.utcoffset() == timedelta(0) for r in records)
    assert Counter(r.priority for r in records) == {"1": 27, "5": 19, "3": 12, "4": 5, "2": 4}
    assert Counter(r.sla_breached for r in records) == {True: 43, False: 24}
    assert Counter(r.reassignment_count for r in records) == {1: 26, 0: 23, 2: 15, None: 3}


REAL = {
    # closed, resolved_at before closed_at, made_sla true, {link,value} references everywhere
    "INC0000060": dict(id="1c741bd70b2322007518478d83673af3", status="closed", priority="3", severity="3",
                       urgency="2", title="Unable to connect to email",
                       opened=datetime(2016, 12, 12, 15, 19, 57, tzinfo=UTC),
                       resolved=datetime(2016, 12, 13, 21, 43, 14, tzinfo=UTC),
                       closed=datetime(2016, 12, 14, 2, 46, 44, tzinfo=UTC),
                       updated=datetime(2016, 12, 14, 2, 46, 44, tzinfo=UTC),
                       reassignment_count=2, sla_breached=False, service=None, assignment_group=None),
    # demo data closed before it was resolved: resolved is still resolved_at (DESIGN §3)
    "INC0000009": dict(status="closed", priority="1", opened=datetime(2023, 12, 14, 22, 50, 23, tzinfo=UTC),
                       resolved=datetime(2024, 3, 8, 19, 56, 12, tzinfo=UTC),
                       closed=datetime(2023, 12, 15, 22, 55, 16, tzinfo=UTC), reassignment_count=1,
                       sla_breached=True),
    # In Progress with a stale closed_at: not resolved, not closed
    "INC0000015": dict(status="open", priority="1", resolved=None, closed=None, reassignment_count=2,
                       sla_breached=True, opened=datetime(2023, 11, 23, 23, 38, 46, tzinfo=UTC)),
    # On Hold, from 2015
    "INC0000017": dict(status="open", resolved=None, opened=datetime(2015, 8, 12, 23, 41, tzinfo=UTC),
                       updated=datetime(2015, 11, 24, 15, 47, 36, tzinfo=UTC)),
    # New, empty reassignment_count
    "INC0000039": dict(status="open", priority="5", reassignment_count=None, sla_breached=True),
    # closed with resolved_at, first contact (0 reassignments), SLA made
    "INC0000601": dict(status="closed", priority="5", opened=datetime(2024, 3, 4, 9, 42, 59, tzinfo=UTC),
                       resolved=datetime(2024, 3, 7, 11, 9, 56, tzinfo=UTC),
                       closed=datetime(2024, 4, 14, 19, 15, 29, tzinfo=UTC), reassignment_count=0,
                       sla_breached=False,
                       url=f"{BASE}/nav_to.do?uri=incident.do?sys_id=9e7f9864532023004247ddeeff7b121f"),
}


@pytest.mark.parametrize("number", sorted(REAL))
def test_real_incidents_exact_values(number):
    rec = norm(by_number(number))
    assert rec.number == number
    assert rec.source == "sn"
    for field, expected in REAL[number].items():
        assert getattr(rec, field) == expected, field
    assert rec.raw["number"] == number  # the payload is kept


def test_real_row_with_references_excluded_reads_the_same():
    """The same row as sysparm_exclude_reference_link=true returns it: references become sys_id strings."""
    r = by_number("INC0000060")
    flat = {k: (v["value"] if isinstance(v, dict) else v) for k, v in r.items()}
    a, b = norm(r), norm(flat)
    for field in ("id", "status", "opened", "resolved", "closed", "priority", "reassignment_count", "sla_breached"):
        assert getattr(a, field) == getattr(b, field)
    assert b.raw["assignment_group"] == "287ebd7da9fe198100f92cc8d1d2154e"
