"""Jira Cloud in parallel: id-only listing + bulkfetch against the sandbox; same pages as the serial search."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import requests

from okrsync.config.settings import SourceCredentials
from okrsync.config.sources import JiraSource
from okrsync.connectors.base import ConnectorOptions, ReadContext
from okrsync.connectors.jira.connector import build
from okrsync.sandbox import Sandbox

from ..sandbox_reads import read_stream

NOW = datetime(2026, 11, 15, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(seed=5, scale=700, now=NOW, latency_ms=2) as sb:
        yield sb


def read(sb: Sandbox, concurrency: int, checkpoint: dict | None = None, stop_after: int | None = None):
    cfg = JiraSource(type="jira", url=sb.urls["jira"], email="bot@acme.example", projects=["APP", "OPS"],
                     concurrency=concurrency)
    conn = build("jira", cfg, SourceCredentials(token="sandbox-token"), ConnectorOptions())
    ctx = ReadContext(since=None, run_started=NOW, first_run=True, checkpoint=checkpoint)
    return read_stream(sb, conn, ctx, "jira", stop_after)


def test_parallel_bulkfetch_reads_the_same_issues_in_the_same_order(sandbox):
    serial, serial_log = read(sandbox, 1)
    parallel, log = read(sandbox, 4)
    keys = lambda pages: [r.key for p in pages for r in p.records]  # noqa: E731
    assert len(keys(parallel)) > 300 and keys(parallel) == keys(serial)
    assert [r.raw for p in parallel for r in p.records] == [r.raw for p in serial for r in p.records]
    bulk = [e for e in log if e["path"] == "/rest/api/3/issue/bulkfetch"]
    searches = [e for e in log if e["path"] == "/rest/api/3/search/jql"]
    n = len(keys(parallel))
    assert len(bulk) == -(-(n - 100) // 100) and len(searches) == 2  # the first page, then one id listing
    assert len(bulk) + len(searches) <= 1.05 * -(-n // 100) + 1  # requests / minimum
    assert sandbox.peak_in_flight()["jira"] <= 4
    created = [r.created for p in parallel for r in p.records]
    assert created == sorted(created)  # pages in order: each checkpoint passes only what came before
    assert [p.checkpoint["created_ms"] for p in parallel] == sorted(p.checkpoint["created_ms"] for p in parallel)


def test_a_read_stopped_mid_way_resumes_from_its_checkpoint(sandbox):
    everything, _ = read(sandbox, 4)
    head, _ = read(sandbox, 4, stop_after=2)
    tail, _ = read(sandbox, 4, checkpoint=head[-1].checkpoint)
    got = {r.key for p in head + tail for r in p.records}
    assert got == {r.key for p in everything for r in p.records}


def test_sandbox_bulkfetch_follows_the_documentation(sandbox):
    url = sandbox.urls["jira"] + "/rest/api/3/issue/bulkfetch"
    auth = ("bot@acme.example", "sandbox-token")
    ids = [str(i["id"]) for i in sandbox.world.jira_issues("APP")[:5]]
    body = requests.post(url, json={"issueIdsOrKeys": list(reversed(ids)) + ["999999999"], "fields": ["summary"]},
                         auth=auth, timeout=10).json()
    assert sorted(i["id"] for i in body["issues"]) == sorted(ids) and body["issueErrors"] == []  # unknown: left out
    assert set(body["issues"][0]["fields"]) == {"summary"}
    too_many = requests.post(url, json={"issueIdsOrKeys": [str(n) for n in range(101)]}, auth=auth, timeout=10)
    assert too_many.status_code == 400


@pytest.fixture(scope="module")
def dc():
    with Sandbox(seed=5, scale=2600, now=NOW, jira_mode="server", latency_ms=2) as sb:
        yield sb


def read_dc(sb: Sandbox, concurrency: int):
    cfg = JiraSource(type="jira", url=sb.urls["jira"], projects=["APP", "OPS"], concurrency=concurrency)
    conn = build("jira", cfg, SourceCredentials(token="sandbox-token"), ConnectorOptions(sleep=lambda s: None))
    return read_stream(sb, conn, ReadContext(since=None, run_started=NOW, first_run=True), "jira")


def test_data_center_reads_startat_pages_in_parallel_within_the_window(dc):
    serial, _ = read_dc(dc, 1)
    parallel, log = read_dc(dc, 4)
    keys = lambda pages: [r.key for p in pages for r in p.records]  # noqa: E731
    assert len(keys(parallel)) > 2000 and keys(parallel) == keys(serial)
    searches = [e for e in log if e["path"] == "/rest/api/2/search"]
    assert len(searches) == -(-len(keys(parallel)) // 1000)  # one request per page of 1000, none more
    assert dc.peak_in_flight()["jira"] <= 4


def test_data_center_parallel_pages_past_a_smaller_window_fall_back_to_the_restarting_read(dc):
    dc.apps["jira"].search_window = 1500  # an administrator's smaller jira.search.platform.max.result.window
    try:
        pages, _ = read_dc(dc, 4)
    finally:
        dc.apps["jira"].search_window = 10_000
    ids = [r.id for p in pages for r in p.records]
    expected = {str(i.id) for i in dc.world.jira if i.project in ("APP", "OPS")}
    assert len(ids) == len(set(ids)) and set(ids) == expected
