"""ServiceNow incident paging against a documentation-faithful fake Table API (`responses`).

The fake does what the documentation allows and no more:
- ACLs filter rows after the query ran (KB3047115): a page holds the readable rows among its `sysparm_limit`
  results, so it can be short (or hold no new row) before the end; X-Total-Count counts the hidden rows too.
- ^NQ groups are separate queries (KB0564887): an ORDERBY orders only the group it is written in, and the rows
  come group by group; a group without ORDERBY comes in the table's own order (here: by number, not by key).
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from okrsync.config.settings import SourceCredentials
from okrsync.config.sources import ServiceNowSource
from okrsync.connectors.base import ConnectorOptions, ReadContext
from okrsync.connectors.servicenow.connector import build

URL = "https://acme.service-now.com"
TABLE = f"{URL}/api/now/table/incident"
UTC = timezone.utc
SINCE = datetime(2026, 7, 1, tzinfo=UTC)
NOW = datetime(2026, 11, 15, tzinfo=UTC)
_COND = re.compile(r"^(sys_updated_on|sys_id|number)(>=|<=|>|<|=)(.*)$")


def row(n: int, updated: str) -> dict:
    # sys_ids do not follow numbers: the table's own order (by number) is not the key order
    return {"sys_id": f"{(n * 7919) % 10007:032x}", "number": f"INC{n:07d}", "short_description": f"incident {n}",
            "state": "2", "priority": "2", "severity": "3", "urgency": "2", "impact": "2",
            "opened_at": "2026-07-02 10:00:00", "resolved_at": "", "closed_at": "",
            "sys_created_on": "2026-07-02 10:00:00", "sys_updated_on": updated, "reassignment_count": "0",
            "reopen_count": "0", "made_sla": "true", "assignment_group.name": "Desk",
            "business_service.name": "Email", "cmdb_ci.name": ""}


class FakeTable:
    def __init__(self, rows: list[dict], hidden: set[int] = frozenset(), count: bool = True,
                 order_across_nq: bool = False):
        self.rows = sorted(rows, key=lambda r: r["number"])
        self.hidden = {row(n, "")["sys_id"] for n in hidden}
        self.count = count
        self.order_across_nq = order_across_nq  # what the docs do not promise (to test ACLs on their own)
        self.queries: list[str] = []

    def __call__(self, request):
        q = {k: v[-1] for k, v in parse_qs(urlsplit(request.url).query, keep_blank_values=True).items()}
        query = q.get("sysparm_query", "")
        self.queries.append(query)
        matches: list[dict] = []
        everywhere = [p[7:] for p in query.split("^") if p.startswith("ORDERBY")] if self.order_across_nq else []
        for group in query.split("^NQ") if query else [""]:
            conds, order = [], []
            for part in filter(None, group.split("^")):
                if part.startswith("ORDERBY"):
                    order.append(part[7:])
                    continue
                m = _COND.match(part)
                assert m, part
                conds.append(m.groups())
            got = [r for r in self.rows if r not in matches and all(_test(r[f], op, v) for f, op, v in conds)]
            for f in reversed(order):
                got.sort(key=lambda r: r[f])
            matches += got
        for f in reversed(everywhere):
            matches.sort(key=lambda r: r[f])
        offset, limit = int(q.get("sysparm_offset", 0)), int(q.get("sysparm_limit", 10000))
        page = [r for r in matches[offset:offset + limit] if r["sys_id"] not in self.hidden]  # ACLs after the query
        headers = {"X-Total-Count": str(len(matches))} if self.count and q.get("sysparm_no_count") != "true" else {}
        return 200, headers, json.dumps({"result": page})


def _test(value: str, op: str, want: str) -> bool:
    return {">": value > want, ">=": value >= want, "<": value < want, "<=": value <= want, "=": value == want}[op]


def read_all(table: FakeTable, page_size: int) -> tuple[list[str], int]:
    conn = build("sn", ServiceNowSource(type="servicenow", url=URL, page_size=page_size),
                 SourceCredentials(user="okr.bot", password="pw"), ConnectorOptions(sleep=lambda s: None))
    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.GET, TABLE, callback=table)
        pages = list(conn.streams()[0].read(ReadContext(since=SINCE, run_started=NOW)))
    return [r.id for p in pages for r in p.records], len(table.queries)


def stamp(second: int) -> str:
    return f"2026-07-03 10:{second // 60:02d}:{second % 60:02d}"


SPREAD = [row(n, stamp(n)) for n in range(1, 25)]  # one row a second
BULK = [row(n, stamp(0)) for n in range(1, 31)] + [row(n, stamp(n)) for n in range(31, 41)]  # 30 in one second
PAIRS = [row(n, stamp(n // 2)) for n in range(1, 41)]  # two rows a second: pages end inside seconds


def visible(table: FakeTable, rows: list[dict]) -> list[str]:
    return sorted(r["sys_id"] for r in rows if r["sys_id"] not in table.hidden)


@pytest.mark.parametrize("rows,hidden,page_size", [
    (SPREAD, {2}, 5),                   # the first page is short: 4 of 5
    (SPREAD, {2, 3, 11, 24}, 5),
    (SPREAD, {1, 2, 3, 4, 5, 6}, 5),    # the first page is empty: X-Total-Count says more rows follow
    (PAIRS, {4, 9, 13, 21, 22, 40}, 5),
])
def test_a_short_page_is_not_the_end(rows, hidden, page_size):
    """KB3047115: ACLs filter a page after the query, so it may be short before the end (here an instance that
    even orders across ^NQ groups, so that only the ACLs are tested)."""
    table = FakeTable(rows, hidden, order_across_nq=True)
    ids, _ = read_all(table, page_size)
    assert sorted(ids) == visible(table, rows) and len(ids) == len(set(ids))


@pytest.mark.parametrize("rows,page_size", [(SPREAD, 5), (BULK, 7), (PAIRS, 5), (PAIRS, 1), (BULK, 1)])
def test_keyset_paging_needs_no_order_across_nq_groups(rows, page_size):
    """KB0564887: nothing is documented across ^NQ groups; one group per query needs nothing undocumented."""
    table = FakeTable(rows)
    ids, _ = read_all(table, page_size)
    assert sorted(ids) == visible(table, rows) and len(ids) == len(set(ids))
    assert not any("^NQ" in q for q in table.queries)


@pytest.mark.parametrize("rows,hidden,page_size", [
    (SPREAD, set(), 5),
    (SPREAD, {2, 3, 11, 24}, 5),
    (BULK, set(), 7),                   # one second holds more rows than a page
    (BULK, {5, 6, 7, 8, 9, 10, 11}, 7),  # ... and a whole page of it is hidden
    (BULK, {1, 30, 31, 40}, 10),
    (PAIRS, set(), 5),                  # two rows a second: pages end inside seconds
    (PAIRS, {4, 9, 13, 21, 22, 40}, 5),
    (PAIRS, {2, 3, 7}, 3),
])
@pytest.mark.parametrize("count", [True, False])
def test_every_readable_row_is_read_once(rows, hidden, page_size, count):
    table = FakeTable(rows, hidden, count)
    ids, _ = read_all(table, page_size)
    assert sorted(ids) == visible(table, rows)
    assert len(ids) == len(set(ids))  # de-duplicated at the boundaries


@pytest.mark.parametrize("rows,page_size,requests", [
    (SPREAD[:3], 5, 1),    # the whole result on the first page (X-Total-Count 3)
    (SPREAD[:5], 5, 1),    # a full page that is the whole result
    (SPREAD, 5, 6),
])
def test_the_count_ends_the_read_without_an_extra_request(rows, page_size, requests):
    table = FakeTable(rows)
    ids, made = read_all(table, page_size)
    assert sorted(ids) == sorted(r["sys_id"] for r in rows) and made == requests
