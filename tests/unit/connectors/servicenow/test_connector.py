"""ServiceNow connector over `responses`: keyset paging, exact queries, auth variants, extra fields, errors."""

import base64
import json
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from okrsync.config.settings import SourceCredentials
from okrsync.config.sources import ServiceNowSource
from okrsync.connectors.base import AuthError, ConnectorOptions, QueryError, ReadContext, SourceError
from okrsync.connectors.servicenow.connector import (
    BASE_FIELDS, build, check_user_query, fields_param, keyset_query,
)

FIXTURES = Path(__file__).parents[3] / "fixtures" / "servicenow"
URL = "https://acme.service-now.com"
TABLE = f"{URL}/api/now/table/incident"
UTC = timezone.utc
SINCE = datetime(2026, 7, 1, tzinfo=UTC)
NOW = datetime(2026, 11, 15, tzinfo=UTC)


def config(**kw):
    return ServiceNowSource(type="servicenow", url=URL, **kw)


def creds(**kw):
    kw.setdefault("user", "okr.bot")
    kw.setdefault("password", "s3cret-pw")
    return SourceCredentials(**kw)


def connector(cfg=None, credentials=None, sleeps=None):
    sleep = (lambda s: sleeps.append(s)) if sleeps is not None else (lambda s: None)
    return build("sn", cfg or config(), credentials or creds(), ConnectorOptions(sleep=sleep))


def read(conn, **kw):
    kw.setdefault("since", SINCE)
    kw.setdefault("run_started", NOW)
    return list(conn.streams()[0].read(ReadContext(**kw)))


def query_of(call) -> dict[str, list[str]]:
    return parse_qs(urlsplit(call.request.url).query, keep_blank_values=True)


def sn_row(n: int, updated: str, **kw) -> dict:
    r = {"sys_id": f"{n:032x}", "number": f"INC{n:07d}", "short_description": f"incident {n}", "state": "2",
         "priority": "2", "severity": "3", "urgency": "2", "impact": "2", "opened_at": "2026-07-02 10:00:00",
         "resolved_at": "", "closed_at": "", "sys_created_on": "2026-07-02 10:00:00", "sys_updated_on": updated,
         "reassignment_count": "0", "reopen_count": "0", "made_sla": "true", "assignment_group.name": "Desk",
         "business_service.name": "Email", "cmdb_ci.name": ""}
    r.update(kw)
    return r


# -- the encoded queries ----------------------------------------------------------------------------
@pytest.mark.parametrize("since,after,user,expected", [
    (SINCE, None, None, "sys_updated_on>=2026-07-01 00:00:00^ORDERBYsys_updated_on^ORDERBYsys_id"),
    (datetime(2026, 7, 1, 2, 0, 59, 900000, tzinfo=timezone.utc), None, None,
     "sys_updated_on>=2026-07-01 02:00:59^ORDERBYsys_updated_on^ORDERBYsys_id"),
    (SINCE, None, "active=true^priorityIN1,2",
     "sys_updated_on>=2026-07-01 00:00:00^active=true^priorityIN1,2^ORDERBYsys_updated_on^ORDERBYsys_id"),
    (None, None, None, "ORDERBYsys_updated_on^ORDERBYsys_id"),
    (None, None, "active=true", "active=true^ORDERBYsys_updated_on^ORDERBYsys_id"),
    (SINCE, ("2026-07-03 10:00:00", "abc"), None,
     "sys_updated_on>2026-07-03 10:00:00^NQsys_updated_on=2026-07-03 10:00:00^sys_id>abc"
     "^ORDERBYsys_updated_on^ORDERBYsys_id"),
    (SINCE, ("2026-07-03 10:00:00", "abc"), "priority=1^ORpriority=2",
     "sys_updated_on>2026-07-03 10:00:00^priority=1^ORpriority=2"
     "^NQsys_updated_on=2026-07-03 10:00:00^sys_id>abc^priority=1^ORpriority=2"
     "^ORDERBYsys_updated_on^ORDERBYsys_id"),
])
def test_keyset_query(since, after, user, expected):
    assert keyset_query(since, after, user) == expected


def test_fields_param_adds_extras_once():
    assert fields_param(["u_category", "number", "caller_id.department.name"]) == ",".join(
        [*BASE_FIELDS, "u_category", "caller_id.department.name"])
    assert "sys_created_on" in BASE_FIELDS  # the opened_at fallback


@pytest.mark.parametrize("query,kept", [
    ("active=true^priority<=2", "active=true^priority<=2"),
    ("active=true^priority<=2^EQ", "active=true^priority<=2"),  # as the list view copies it
    ("^active=true^", "active=true"),
    ("  ", None),
])
def test_the_source_query_is_normalized(query, kept):
    assert check_user_query(query) == kept


@pytest.mark.parametrize("query", ["active=true^NQactive=false", "active=true^ORDERBYnumber", "NQstate=1"])
def test_a_query_that_would_break_the_keyset_groups_is_refused(query):
    with pytest.raises(QueryError, match="sn: query: must be a plain encoded query"):
        connector(config(query=query))


# -- keyset paging ------------------------------------------------------------------------------------
@responses.activate
def test_three_pages_with_exact_queries_and_checkpoints():
    # page size 2; the second and third pages share an updated second (1-second resolution)
    pages = [
        [sn_row(1, "2026-07-01 00:00:00"), sn_row(2, "2026-07-03 10:00:00")],
        [sn_row(3, "2026-07-03 10:00:00"), sn_row(4, "2026-07-03 10:00:05")],
        [sn_row(5, "2026-07-04 00:00:00")],
    ]
    for p in pages:
        responses.get(TABLE, json={"result": p})
    out = read(connector(config(page_size=2, query="active=true")))
    assert [c.request.method for c in responses.calls] == ["GET"] * 3
    queries = [query_of(c)["sysparm_query"] for c in responses.calls]
    assert queries == [
        ["sys_updated_on>=2026-07-01 00:00:00^active=true^ORDERBYsys_updated_on^ORDERBYsys_id"],
        [f"sys_updated_on>2026-07-03 10:00:00^active=true^NQsys_updated_on=2026-07-03 10:00:00^sys_id>{2:032x}"
         "^active=true^ORDERBYsys_updated_on^ORDERBYsys_id"],
        [f"sys_updated_on>2026-07-03 10:00:05^active=true^NQsys_updated_on=2026-07-03 10:00:05^sys_id>{4:032x}"
         "^active=true^ORDERBYsys_updated_on^ORDERBYsys_id"],
    ]
    q = query_of(responses.calls[0])
    assert q["sysparm_fields"] == [",".join(BASE_FIELDS)]
    assert q["sysparm_display_value"] == ["false"]
    assert q["sysparm_exclude_reference_link"] == ["true"]
    assert q["sysparm_limit"] == ["2"]
    assert q["sysparm_no_count"] == ["true"]
    assert "sysparm_offset" not in q
    assert [len(p.records) for p in out] == [2, 2, 1]
    assert [p.checkpoint for p in out] == [
        {"updated": "2026-07-03 10:00:00", "sys_id": f"{2:032x}"},
        {"updated": "2026-07-03 10:00:05", "sys_id": f"{4:032x}"},
        {"updated": "2026-07-04 00:00:00", "sys_id": f"{5:032x}"},
    ]
    rec = out[0].records[0]
    assert (rec.id, rec.number, rec.service, rec.assignment_group) == (f"{1:032x}", "INC0000001", "Email", "Desk")


@responses.activate
def test_default_page_size_is_1000_and_a_full_page_asks_for_more():
    responses.get(TABLE, json={"result": [sn_row(i, f"2026-07-01 00:{i // 60:02d}:{i % 60:02d}") for i in range(1000)]})
    responses.get(TABLE, json={"result": []})
    out = read(connector())
    assert query_of(responses.calls[0])["sysparm_limit"] == ["1000"]
    assert len(responses.calls) == 2
    assert [len(p.records) for p in out] == [1000, 0]
    assert out[1].checkpoint == out[0].checkpoint  # an empty page keeps the resume point


@responses.activate
def test_an_interrupted_read_resumes_from_the_checkpoint():
    responses.get(TABLE, json={"result": [sn_row(9, "2026-08-01 00:00:00")]})
    read(connector(), checkpoint={"updated": "2026-07-20 12:00:00", "sys_id": "ff"})
    assert query_of(responses.calls[0])["sysparm_query"] == [
        "sys_updated_on>2026-07-20 12:00:00^NQsys_updated_on=2026-07-20 12:00:00^sys_id>ff"
        "^ORDERBYsys_updated_on^ORDERBYsys_id"]


@responses.activate
def test_an_instance_that_ignores_the_keyset_query_fails_instead_of_looping():
    same = {"result": [sn_row(1, "2026-07-01 00:00:00"), sn_row(2, "2026-07-01 00:00:00")]}
    responses.get(TABLE, json=same)
    responses.get(TABLE, json=same)
    with pytest.raises(SourceError, match="did not honour the keyset query"):
        read(connector(config(page_size=2)))
    assert len(responses.calls) == 2


@responses.activate
def test_a_bad_row_is_skipped_and_the_read_goes_on():
    responses.get(TABLE, json={"result": [
        sn_row(1, "2026-07-01 00:00:00"),
        sn_row(2, "2026-07-01 00:00:01", opened_at="07/01/2026 10:00", sys_created_on=""),
        sn_row(3, "2026-07-01 00:00:02", state="99"),
        sn_row(4, "2026-07-01 00:00:03"),
    ]})
    (page,) = read(connector())
    assert [r.number for r in page.records] == ["INC0000001", "INC0000004"]
    assert [(s.key, s.reason) for s in page.skipped] == [
        ("INC0000002", "bad opened_at '07/01/2026 10:00' (expected UTC YYYY-MM-DD HH:MM:SS)"),
        ("INC0000003", "unknown state '99'"),
    ]
    assert page.checkpoint == {"updated": "2026-07-01 00:00:03", "sys_id": f"{4:032x}"}


@responses.activate
def test_extra_fields_are_requested_and_kept_in_raw():
    responses.get(TABLE, json={"result": [sn_row(1, "2026-07-01 00:00:00", u_category="network",
                                                 **{"caller_id.department.name": "IT"})]})
    (page,) = read(connector(config(fields=["u_category", "caller_id.department.name"])))
    fields = query_of(responses.calls[0])["sysparm_fields"][0].split(",")
    assert fields[-2:] == ["u_category", "caller_id.department.name"]
    raw = page.records[0].raw
    assert raw["u_category"] == "network"
    assert raw["caller_id"] == {"department": {"name": "IT"}}


@responses.activate
def test_a_custom_table_is_read_and_linked():
    responses.get(f"{URL}/api/now/table/u_major_incident", json={"result": [sn_row(1, "2026-07-01 00:00:00")]})
    (page,) = read(connector(config(table="u_major_incident")))
    assert page.records[0].url == f"{URL}/nav_to.do?uri=u_major_incident.do?sys_id={1:032x}"


@responses.activate
def test_the_real_recorded_response_reads_in_one_request():
    har = json.loads((FIXTURES / "step-incidents.incident-entry.har").read_text())
    entry = har["log"]["entries"][0]
    body = (FIXTURES / "incident_table_response.2024-04-16.json").read_bytes()
    assert entry["response"]["content"]["size"] == len(body)
    headers = {h["name"]: h["value"] for h in entry["response"]["headers"]
               if h["name"].lower() in ("x-total-count", "content-type", "server")}
    responses.get(TABLE, body=body, status=entry["response"]["status"], headers=headers)
    (page,) = read(connector(), since=datetime(2015, 1, 1, tzinfo=UTC))
    assert len(responses.calls) == 1
    assert len(page.records) == 67 and page.skipped == []
    # recorded without ORDERBY: the resume point is simply the last row's (sys_updated_on, sys_id)
    assert page.checkpoint == {"updated": "2018-12-13 07:28:49", "sys_id": "ff4c21c4735123002728660c4cf6a758"}


# -- auth ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cfg_user,cred,expected", [
    (None, dict(user="okr.bot", password="pw1"), "Basic " + base64.b64encode(b"okr.bot:pw1").decode()),
    ("cfg.user", dict(user=None, password="pw2"), "Basic " + base64.b64encode(b"cfg.user:pw2").decode()),
    ("cfg.user", dict(user="env.user", password="pw3"), "Basic " + base64.b64encode(b"env.user:pw3").decode()),
    (None, dict(token="tok-123", user=None, password=None), "Bearer tok-123"),
    (None, dict(token="tok-456", user="okr.bot", password="pw"), "Bearer tok-456"),  # a token wins
])
@responses.activate
def test_auth_header_variants(cfg_user, cred, expected):
    responses.get(TABLE, json={"result": []})
    read(connector(config(user=cfg_user), SourceCredentials(**cred)))
    assert responses.calls[0].request.headers["Authorization"] == expected
    assert responses.calls[0].request.headers["Accept"] == "application/json"


def test_missing_credentials_name_the_variables():
    with pytest.raises(AuthError) as err:
        connector(credentials=SourceCredentials(user="okr.bot"))
    assert str(err.value) == ("sn: no credentials: set OKRSYNC_SOURCES__SN__TOKEN, or OKRSYNC_SOURCES__SN__USER "
                              "and OKRSYNC_SOURCES__SN__PASSWORD")


@pytest.mark.parametrize("cred,hint", [
    (dict(user="okr.bot", password="s3cret-pw"), "OKRSYNC_SOURCES__SN__USER and OKRSYNC_SOURCES__SN__PASSWORD"),
    (dict(token="s3cret-tok"), "OKRSYNC_SOURCES__SN__TOKEN"),
])
@responses.activate
def test_401_is_an_auth_error_naming_the_variables_in_use(cred, hint):
    responses.get(TABLE, status=401, json={"error": {"message": "User Not Authenticated", "detail": "Required"}})
    with pytest.raises(AuthError) as err:
        read(connector(credentials=SourceCredentials(**cred)))
    msg = str(err.value)
    assert msg == f"sn: authentication failed for {URL} (check {hint})"
    assert "s3cret" not in msg and "\n" not in msg


@responses.activate
def test_400_is_a_query_error_naming_the_query():
    responses.get(TABLE, status=400, json={"error": {"message": "Invalid query", "detail": ""}})
    with pytest.raises(QueryError, match=r"sn: HTTP 400 .*Invalid query .*sysparm_query 'sys_updated_on>="):
        read(connector())


@responses.activate
def test_429_waits_for_retry_after_then_succeeds():
    responses.get(TABLE, status=429, headers={"Retry-After": "7"}, json={"error": {"message": "rate limited"}})
    responses.get(TABLE, json={"result": [sn_row(1, "2026-07-01 00:00:00")]})
    sleeps: list[float] = []
    conn = connector(sleeps=sleeps)
    (page,) = read(conn)
    assert len(page.records) == 1
    assert len(sleeps) == 1 and 7 <= sleeps[0] <= 7.25
    assert conn.requests_made == 2
