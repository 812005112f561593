"""ServiceNow simulator: offset and keyset paging, the encoded-query subset, fields, references, errors, auth."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest

from okrsync.config.settings import SourceCredentials
from okrsync.config.sources import ServiceNowSource
from okrsync.connectors.base import ConnectorOptions, ReadContext
from okrsync.connectors.servicenow.connector import build
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


def connector_read(sb: Sandbox, page_size: int, user: str = "okrsync") -> list[str]:
    """okrsync's ServiceNow stream against the sandbox: the sys_ids it reads, in order."""
    conn = build("sn", ServiceNowSource(type="servicenow", url=sb.urls["servicenow"], page_size=page_size),
                 SourceCredentials(user=user, password="pw"), ConnectorOptions(sleep=lambda s: None))
    try:
        pages = conn.streams()[0].read(ReadContext(since=datetime(2000, 1, 1, tzinfo=timezone.utc),
                                                   run_started=NOW))
        return [r.id for p in pages for r in p.records]
    finally:
        conn.close()


@pytest.mark.parametrize("page_size", [1, 9, 1000])
def test_keyset_paging_reads_every_row_once(sandbox, page_size):
    seen = connector_read(sandbox, page_size)
    assert len(seen) == len(set(seen)) == len(sandbox.world.sn)


def test_orderby_does_not_reach_across_nq_groups(sandbox, http):
    """Rows come group by group; an ORDERBY orders only the group it is written in (nothing is promised across
    ^NQ groups): the old keyset query `>L ^NQ =L^sys_id>ID ^ORDERBY...` does not return rows in key order."""
    inc = sorted(sandbox.world.servicenow_incidents(), key=lambda x: (x["updated"], x["sys_id"]))
    mid = inc[len(inc) // 3]
    t = mid["updated"].strftime("%Y-%m-%d %H:%M:%S")
    order = "^ORDERBYsys_updated_on^ORDERBYsys_id"
    rows = table(http, sandbox, sysparm_query=f"sys_updated_on>{t}^NQsys_updated_on={t}^sys_id>{mid['sys_id']}"
                 f"{order}", sysparm_fields="sys_id,sys_updated_on").json()["result"]
    keys = [(r["sys_updated_on"], r["sys_id"]) for r in rows]
    want = sorted((x["updated"].strftime("%Y-%m-%d %H:%M:%S"), x["sys_id"]) for x in inc
                  if x["updated"].strftime("%Y-%m-%d %H:%M:%S") > t
                  or (x["updated"].strftime("%Y-%m-%d %H:%M:%S") == t and x["sys_id"] > mid["sys_id"]))
    assert sorted(keys) == want  # the same rows...
    assert keys != want  # ...not in key order: the first group is unordered
    # one group with its ORDERBY is ordered
    one = table(http, sandbox, sysparm_query=f"sys_updated_on>{t}{order}",
                sysparm_fields="sys_id,sys_updated_on").json()["result"]
    assert [(r["sys_updated_on"], r["sys_id"]) for r in one] == [k for k in want if k[0] > t]
    # an ORDERBY in the first group orders that group only; the second group's rows follow it
    first = table(http, sandbox, sysparm_query="priority=1^ORDERBYnumber^NQpriority=2^ORDERBYDESCnumber",
                  sysparm_fields="number,priority").json()["result"]
    ones = [r["number"] for r in first if r["priority"] == "1"]
    twos = [r["number"] for r in first if r["priority"] == "2"]
    assert [r["number"] for r in first] == ones + twos
    assert ones == sorted(ones) and twos == sorted(twos, reverse=True)


def test_acls_filter_rows_after_the_query_so_pages_run_short(fresh, http):
    """KB3047115: a page holds the readable rows among `sysparm_limit` results; X-Total-Count counts them all."""
    app = fresh.apps["servicenow"]
    every = sorted(x.sys_id for x in fresh.world.sn)
    hidden = set(every[::3])
    app.restrict(hidden, users=["restricted.bot"])
    url = f"{fresh.urls['servicenow']}/api/now/table/incident"
    q = {"sysparm_query": "ORDERBYsys_id", "sysparm_fields": "sys_id", "sysparm_limit": 10}
    mine = http.get(url, params=q, auth=("restricted.bot", "pw"))
    admin = http.get(url, params=q, auth=SN_AUTH)
    assert [r["sys_id"] for r in admin.json()["result"]] == every[:10]
    assert [r["sys_id"] for r in mine.json()["result"]] == [x for x in every[:10] if x not in hidden]
    assert mine.headers["X-Total-Count"] == admin.headers["X-Total-Count"] == str(len(every))
    assert "next" in mine.headers["Link"]
    # okrsync reads every readable row once: a short page is not the end
    for page_size in (1, 2, 10):
        seen = connector_read(fresh, page_size, user="restricted.bot")
        assert len(seen) == len(set(seen)) and sorted(seen) == [x for x in every if x not in hidden]
    one = f"{url}/{every[0]}"
    assert http.get(one, auth=("restricted.bot", "pw")).status_code == 404
    assert http.get(one, auth=SN_AUTH).status_code == 200
    app.restrict(lambda row: row.priority == "1")  # every user, Bearer included
    bearer = http.get(url, params={"sysparm_fields": "priority"}, headers={"Authorization": "Bearer x"}).json()
    assert bearer["result"] and all(r["priority"] != "1" for r in bearer["result"])
    app.restrict(None)
    assert len(http.get(url, params={"sysparm_fields": "sys_id"}, auth=("restricted.bot", "pw")).json()["result"]) \
        == len(every)


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
