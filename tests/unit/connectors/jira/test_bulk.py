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
