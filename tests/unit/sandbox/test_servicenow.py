"""ServiceNow simulator: offset and keyset paging, the encoded-query subset, fields, references, errors, auth."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest

from okrsync.sandbox import Sandbox

from .conftest import NOW, SN_AUTH

LINK = re.compile(r'<([^>]+)>;rel="(\w+)"')


def table(http, sb: Sandbox, **params):
    return http.get(f"{sb.urls['servicenow']}/api/now/table/incident", params=params, auth=SN_AUTH)


def numbers(http, sb: Sandbox, query: str) -> set[str]:
    r = table(http, sb, sysparm_query=query, sysparm_fields="number")
    assert r.status_code == 200, r.text
    return {x["number"] for x in r.json()["result"]}


def test_offset_paging_with_link_and_total(sandbox, http):
    total = len(sandbox.world.sn)
    seen, r = [], table(http, sandbox, sysparm_limit=7, sysparm_fields="number,sys_id")
    pages = 0
    while True:
        assert int(r.headers["X-Total-Count"]) == total
        seen += [x["number"] for x in r.json()["result"]]
        rels = dict((rel, url) for url, rel in LINK.findall(r.headers["Link"]))
        assert {"first", "last"} <= set(rels) and ("prev" in rels) == (pages > 0)
        pages += 1
        if "next" not in rels:
            break
        r = http.get(rels["next"], auth=SN_AUTH)
    assert len(seen) == len(set(seen)) == total
    one_page = table(http, sandbox, sysparm_limit=10000)
    assert "Link" not in one_page.headers and len(one_page.json()["result"]) == total  # default limit 10000


def test_keyset_paging_with_nq(sandbox, http):
    """sys_updated_on>T ^NQ sys_updated_on=T^sys_id>ID, ordered by (sys_updated_on, sys_id): every row once."""
    order = "^ORDERBYsys_updated_on^ORDERBYsys_id"
    seen: list[str] = []
    query = "sys_updated_on>=2000-01-01 00:00:00" + order
    while True:
        rows = table(http, sandbox, sysparm_query=query, sysparm_limit=9,
                     sysparm_fields="sys_id,sys_updated_on").json()["result"]
        seen += [x["sys_id"] for x in rows]
        if len(rows) < 9:
            break
        t, sid = rows[-1]["sys_updated_on"], rows[-1]["sys_id"]
        query = f"sys_updated_on>{t}^NQsys_updated_on={t}^sys_id>{sid}{order}"
    assert len(seen) == len(set(seen)) == len(sandbox.world.sn)


def test_encoded_query_operators(sandbox, http):
    inc = sandbox.world.servicenow_incidents()
    cut = datetime(2026, 10, 1, tzinfo=timezone.utc)
    cases = {
        "priority=1": lambda x: x["priority"] == 1,
        "priority!=4": lambda x: x["priority"] != 4,
        "priority<=2": lambda x: x["priority"] <= 2,
        "priority>2^reassignment_count<1": lambda x: x["priority"] > 2 and x["reassignment_count"] < 1,
        "priority=1^ORpriority=2": lambda x: x["priority"] in (1, 2),
        "priorityIN1,2^state=7": lambda x: x["priority"] in (1, 2) and x["state"] == "7",
        "opened_at>=2026-10-01 00:00:00": lambda x: x["opened"] >= cut,
        "opened_at<2026-10-01": lambda x: x["opened"] < cut,
        "resolved_atISEMPTY": lambda x: x["resolved"] is None,
        "resolved_atISNOTEMPTY^made_sla=false": lambda x: x["resolved"] is not None and not x["made_sla"],
        "business_service.name=Payments API": lambda x: x["business_service"] == "Payments API",
        "assignment_group.name=Network^NQpriority=1": lambda x: x["assignment_group"] == "Network"
        or x["priority"] == 1,
        "short_descriptionLIKEtimeout": lambda x: "timeout" in x["short_description"],
        "stateIN6,7^reassignment_count=0": lambda x: x["state"] in ("6", "7") and x["reassignment_count"] == 0,
    }
    for query, pred in cases.items():
        want = {x["number"] for x in inc if pred(x)}
        assert want, query
        assert numbers(http, sandbox, query) == want, query


def test_date_generate_uses_the_users_time_zone(sandbox, http):
    utc = numbers(http, sandbox, "opened_at>=2026-10-01 07:00:00")  # Los Angeles midnight, in UTC (PDT)
    local = numbers(http, sandbox, "opened_at>=javascript:gs.dateGenerate('2026-10-01','00:00:00')")
    assert utc == local and utc


def test_order_by_desc(sandbox, http):
    rows = table(http, sandbox, sysparm_query="ORDERBYDESCopened_at", sysparm_fields="opened_at").json()["result"]
    stamps = [x["opened_at"] for x in rows]
    assert stamps == sorted(stamps, reverse=True)


@pytest.mark.parametrize("query", ["priority==1", "nosuchfield=1", "opened_at>=yesterday", "ORpriority=1",
                                   "priority>high", "opened_at>=javascript:gs.daysAgo(3)", "ORDERBYbogus"])
def test_invalid_queries_are_400_with_servicenows_shape(sandbox, http, query):
    r = table(http, sandbox, sysparm_query=query)
    body = r.json()
    assert r.status_code == 400 and body["status"] == "failure"
    assert set(body["error"]) == {"message", "detail"} and body["error"]["message"]


def test_fields_dot_walk_and_reference_rendering(sandbox, http):
    fields = "number,business_service,business_service.name,assignment_group.name,cmdb_ci.name,priority,opened_at"
    row = table(http, sandbox, sysparm_fields=fields, sysparm_limit=1).json()["result"][0]
    assert list(row) == fields.split(",")
    assert set(row["business_service"]) == {"link", "value"} and row["business_service"]["link"].endswith(
        row["business_service"]["value"])
    assert row["business_service.name"] in ("Core Network", "Email", "Payments API")
    assert isinstance(row["priority"], str)
    flat = table(http, sandbox, sysparm_fields="business_service,assigned_to", sysparm_limit=1,
                 sysparm_exclude_reference_link="true", sysparm_display_value="false").json()["result"][0]
    assert isinstance(flat["business_service"], str) and len(flat["business_service"]) == 32
    shown = table(http, sandbox, sysparm_fields="state,priority,business_service,opened_at", sysparm_limit=1,
                  sysparm_query="state=7", sysparm_display_value="true").json()["result"][0]
    assert shown["state"] == "Closed" and shown["priority"][1:4] == " - "
    assert shown["business_service"] in ("Core Network", "Email", "Payments API")
    both = table(http, sandbox, sysparm_fields="state", sysparm_limit=1, sysparm_query="state=7",
                 sysparm_display_value="all").json()["result"][0]
    assert both["state"] == {"display_value": "Closed", "value": "7"}


def test_single_record_other_tables_and_errors(sandbox, http):
    base = f"{sandbox.urls['servicenow']}/api/now/table"
    x = sandbox.world.sn[0]
    one = http.get(f"{base}/incident/{x.sys_id}", auth=SN_AUTH).json()["result"]
    assert one["number"] == x.number
    missing = http.get(f"{base}/incident/{'0' * 32}", auth=SN_AUTH)
    assert missing.status_code == 404 and missing.json()["error"]["message"] == "No Record found"
    groups = http.get(f"{base}/sys_user_group", params={"sysparm_fields": "name"}, auth=SN_AUTH).json()["result"]
    assert {g["name"] for g in groups} == {"Network", "Messaging", "Payments SRE", "Service Desk"}
    bad = http.get(f"{base}/nope", auth=SN_AUTH)
    assert bad.status_code == 400 and bad.json()["error"]["message"] == "Invalid table nope"
    v2 = http.get(f"{sandbox.urls['servicenow']}/api/now/v2/table/incident", params={"sysparm_limit": 1},
                  auth=SN_AUTH)
    assert v2.status_code == 200


def test_auth_is_required(http):
    with Sandbox(seed=1, scale=50, now=NOW, require_token="pw") as sb:
        url = f"{sb.urls['servicenow']}/api/now/table/incident"
        anonymous = http.get(url)
        assert anonymous.status_code == 401
        assert anonymous.json() == {"error": {"message": "User Not Authenticated",
                                              "detail": "Required to provide Auth information"},
                                    "status": "failure"}
        assert http.get(url, auth=("okrsync", "wrong")).status_code == 401
        assert http.get(url, auth=("okrsync", "pw"), params={"sysparm_limit": 1}).status_code == 200
        assert http.get(url, headers={"Authorization": "Bearer pw"}, params={"sysparm_limit": 1}).status_code == 200
