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
    AFTER,
    BASE_FIELDS,
    FROM,
    SAME,
    build,
    check_user_query,
    fields_param,
    page_query,
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
LOWER = "2026-07-01 00:00:00"
AT = ("2026-07-03 10:00:00", "abc")
ORDER = "^ORDERBYsys_updated_on^ORDERBYsys_id"


@pytest.mark.parametrize("mode,lower,pos,user,expected", [
    (FROM, LOWER, None, None, f"sys_updated_on>=2026-07-01 00:00:00{ORDER}"),
    (FROM, LOWER, None, "active=true^priorityIN1,2",
     f"sys_updated_on>=2026-07-01 00:00:00^active=true^priorityIN1,2{ORDER}"),
    (FROM, None, None, None, ORDER[1:]),
    (FROM, None, None, "active=true", f"active=true{ORDER}"),
    (FROM, LOWER, AT, None, f"sys_updated_on>=2026-07-03 10:00:00{ORDER}"),
    (SAME, LOWER, AT, None, "sys_updated_on=2026-07-03 10:00:00^sys_id>abc^ORDERBYsys_id"),
    (SAME, LOWER, AT, "priority=1^ORpriority=2",
     "sys_updated_on=2026-07-03 10:00:00^sys_id>abc^priority=1^ORpriority=2^ORDERBYsys_id"),
    (AFTER, LOWER, AT, None, f"sys_updated_on>2026-07-03 10:00:00{ORDER}"),
    (AFTER, LOWER, AT, "active=true", f"sys_updated_on>2026-07-03 10:00:00^active=true{ORDER}"),
])
def test_page_query(mode, lower, pos, user, expected):
    q = page_query(mode, lower, pos, user)
    assert q == expected and "^NQ" not in q


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
def test_pages_with_exact_queries_and_checkpoints():
    # page size 2; rows 2 and 3 share an updated second (1-second resolution), so do 4 and a hidden one, and 5-7
    pages = [
        ([sn_row(1, "2026-07-01 00:00:00"), sn_row(2, "2026-07-03 10:00:00")], 8),
        ([sn_row(2, "2026-07-03 10:00:00"), sn_row(3, "2026-07-03 10:00:00")], 7),  # boundary row again
        ([], 0),  # the rest of 10:00:00: nothing
        ([sn_row(4, "2026-07-03 10:00:05")], 5),  # short: an ACL hid the other row of the page
        ([], 1),  # the rest of 10:00:05: only the hidden row
        ([sn_row(5, "2026-07-04 00:00:00"), sn_row(6, "2026-07-04 00:00:00")], 3),
        ([sn_row(7, "2026-07-04 00:00:00")], 1),  # the rest of that second: its whole result
        ([], 0),  # nothing after it
    ]
    for rows, total in pages:
        responses.get(TABLE, json={"result": rows}, headers={"X-Total-Count": str(total)})
    out = read(connector(config(page_size=2, query="active=true")))
    queries = [query_of(c)["sysparm_query"][0] for c in responses.calls]
    assert queries == [
        f"sys_updated_on>=2026-07-01 00:00:00^active=true{ORDER}",
        f"sys_updated_on>=2026-07-03 10:00:00^active=true{ORDER}",
        f"sys_updated_on=2026-07-03 10:00:00^sys_id>{3:032x}^active=true^ORDERBYsys_id",
        f"sys_updated_on>2026-07-03 10:00:00^active=true{ORDER}",
        f"sys_updated_on=2026-07-03 10:00:05^sys_id>{4:032x}^active=true^ORDERBYsys_id",
        f"sys_updated_on>2026-07-03 10:00:05^active=true{ORDER}",
        f"sys_updated_on=2026-07-04 00:00:00^sys_id>{6:032x}^active=true^ORDERBYsys_id",
        f"sys_updated_on>2026-07-04 00:00:00^active=true{ORDER}",
    ]
    q = query_of(responses.calls[0])
    assert q["sysparm_fields"] == [",".join(BASE_FIELDS)]
    assert q["sysparm_display_value"] == ["false"]
    assert q["sysparm_exclude_reference_link"] == ["true"]
    assert q["sysparm_limit"] == ["2"]
    assert "sysparm_no_count" not in q  # X-Total-Count can end the read without an empty page
    assert "sysparm_offset" not in q
    assert [[r.number for r in p.records] for p in out] == [
        ["INC0000001", "INC0000002"], ["INC0000003"], [], ["INC0000004"], [], ["INC0000005", "INC0000006"],
        ["INC0000007"], []]
    at = [("2026-07-03 10:00:00", 2), ("2026-07-03 10:00:00", 3), ("2026-07-03 10:00:00", 3),
          ("2026-07-03 10:00:05", 4), ("2026-07-03 10:00:05", 4), ("2026-07-04 00:00:00", 6),
          ("2026-07-04 00:00:00", 7), ("2026-07-04 00:00:00", 7)]
    assert [p.checkpoint for p in out] == [{"updated": t, "sys_id": f"{n:032x}"} for t, n in at]
    rec = out[0].records[0]
    assert (rec.id, rec.number, rec.service, rec.assignment_group) == (f"{1:032x}", "INC0000001", "Email", "Desk")


@responses.activate
def test_an_empty_page_that_is_not_the_end_pages_on_by_offset():
    # X-Total-Count 5 but an ACL hid both rows of the first results: the same query's next results follow
    responses.get(TABLE, json={"result": []}, headers={"X-Total-Count": "5"})
    responses.get(TABLE, json={"result": [sn_row(3, "2026-07-02 00:00:00")]}, headers={"X-Total-Count": "5"})
    responses.get(TABLE, json={"result": []}, headers={"X-Total-Count": "0"})
    responses.get(TABLE, json={"result": [sn_row(4, "2026-07-03 00:00:00")]}, headers={"X-Total-Count": "1"})
    out = read(connector(config(page_size=2)))
    assert [(query_of(c)["sysparm_query"][0], query_of(c).get("sysparm_offset")) for c in responses.calls] == [
        (f"sys_updated_on>=2026-07-01 00:00:00{ORDER}", None),
        (f"sys_updated_on>=2026-07-01 00:00:00{ORDER}", ["2"]),
        (f"sys_updated_on=2026-07-02 00:00:00^sys_id>{3:032x}^ORDERBYsys_id", None),
        (f"sys_updated_on>2026-07-02 00:00:00{ORDER}", None),
    ]
    assert [[r.number for r in p.records] for p in out] == [["INC0000003"], [], ["INC0000004"]]


@responses.activate
def test_without_a_count_only_an_empty_page_ends_the_read():
    responses.get(TABLE, json={"result": [sn_row(1, "2026-07-01 00:00:00")]})  # short: an ACL may hide rows
    responses.get(TABLE, json={"result": []})
    responses.get(TABLE, json={"result": [sn_row(2, "2026-07-01 00:00:05"), sn_row(3, "2026-07-01 00:00:09")]})
    responses.get(TABLE, json={"result": [sn_row(3, "2026-07-01 00:00:09")]})
    responses.get(TABLE, json={"result": []})
    responses.get(TABLE, json={"result": []})
    out = read(connector(config(page_size=2)))
    assert [query_of(c)["sysparm_query"][0] for c in responses.calls] == [
        f"sys_updated_on>=2026-07-01 00:00:00{ORDER}",
        f"sys_updated_on=2026-07-01 00:00:00^sys_id>{1:032x}^ORDERBYsys_id",
        f"sys_updated_on>2026-07-01 00:00:00{ORDER}",
        f"sys_updated_on>=2026-07-01 00:00:09{ORDER}",
        f"sys_updated_on=2026-07-01 00:00:09^sys_id>{3:032x}^ORDERBYsys_id",
        f"sys_updated_on>2026-07-01 00:00:09{ORDER}",
    ]
    assert [[r.number for r in p.records] for p in out] == [["INC0000001"], [], ["INC0000002", "INC0000003"], [],
                                                            [], []]


@responses.activate
def test_default_page_size_is_1000():
    responses.get(TABLE, json={"result": [sn_row(i, f"2026-07-01 00:{i // 60:02d}:{i % 60:02d}") for i in range(1000)]},
                  headers={"X-Total-Count": "1000"})
    out = read(connector())
    assert query_of(responses.calls[0])["sysparm_limit"] == ["1000"]
    assert len(responses.calls) == 1
    assert [len(p.records) for p in out] == [1000]


@responses.activate
def test_an_interrupted_read_resumes_from_the_checkpoint():
    responses.get(TABLE, json={"result": [sn_row(8, "2026-07-20 12:00:00"), sn_row(9, "2026-08-01 00:00:00")]})
    responses.get(TABLE, json={"result": []})
    (page, _) = read(connector(), checkpoint={"updated": "2026-07-20 12:00:00", "sys_id": f"{8:032x}"})
    assert query_of(responses.calls[0])["sysparm_query"] == [f"sys_updated_on>=2026-07-20 12:00:00{ORDER}"]
    assert [r.number for r in page.records] == ["INC0000009"]  # the row at the resume point was read already


@pytest.mark.parametrize("second", [
    # the instance ignores the conditions: the rest of a second answers the same rows again
    [sn_row(1, "2026-07-01 00:00:00"), sn_row(2, "2026-07-01 00:00:00")],
    # or ignores the ORDERBY
    [sn_row(2, "2026-07-01 00:00:09"), sn_row(1, "2026-07-01 00:00:01")],
])
@responses.activate
def test_an_instance_that_ignores_the_keyset_query_fails_instead_of_looping(second):
    responses.get(TABLE, json={"result": [sn_row(1, "2026-07-01 00:00:00"), sn_row(2, "2026-07-01 00:00:00")]})
    responses.get(TABLE, json={"result": second})
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
    ]}, headers={"X-Total-Count": "4"})
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
                                                 **{"caller_id.department.name": "IT"})]},
                  headers={"X-Total-Count": "1"})
    (page,) = read(connector(config(fields=["u_category", "caller_id.department.name"])))
    fields = query_of(responses.calls[0])["sysparm_fields"][0].split(",")
    assert fields[-2:] == ["u_category", "caller_id.department.name"]
    raw = page.records[0].raw
    assert raw["u_category"] == "network"
    assert raw["caller_id"] == {"department": {"name": "IT"}}


@responses.activate
def test_a_custom_table_is_read_and_linked():
    responses.get(f"{URL}/api/now/table/u_major_incident", json={"result": [sn_row(1, "2026-07-01 00:00:00")]},
                  headers={"X-Total-Count": "1"})
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
    assert len(responses.calls) == 1  # X-Total-Count 67: the whole result (its order does not matter then)
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
    responses.get(TABLE, json={"result": [sn_row(1, "2026-07-01 00:00:00")]}, headers={"X-Total-Count": "1"})
    sleeps: list[float] = []
    conn = connector(sleeps=sleeps)
    (page,) = read(conn)
    assert len(page.records) == 1
    assert len(sleeps) == 1 and 7 <= sleeps[0] <= 7.25
    assert conn.requests_made == 2
