"""ServiceNow first reads as disjoint sys_updated_on ranges in parallel against the sandbox, then a catch-up."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from okrsync.config.settings import SourceCredentials
from okrsync.config.sources import ServiceNowSource
from okrsync.connectors.base import ConnectorOptions, ReadContext
from okrsync.connectors.servicenow.connector import build
from okrsync.sandbox import Sandbox

from ..sandbox_reads import read_stream
from ..sandbox_reads import record_ids as ids

NOW = datetime(2026, 11, 15, 12, 0, tzinfo=timezone.utc)
SINCE = NOW - timedelta(days=200)


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(seed=4, scale=900, now=NOW, latency_ms=2) as sb:
        yield sb


def read(sb: Sandbox, concurrency: int, checkpoint: dict | None = None, stop_after: int | None = None):
    cfg = ServiceNowSource(type="servicenow", url=sb.urls["servicenow"], concurrency=concurrency, page_size=40)
    conn = build("servicenow", cfg, SourceCredentials(user="okrsync", password="pw"), ConnectorOptions())
    ctx = ReadContext(since=SINCE, run_started=NOW, first_run=True, checkpoint=checkpoint)
    return read_stream(sb, conn, ctx, "servicenow", stop_after)


def test_ranges_in_parallel_give_the_serial_read_in_order(sandbox):
    serial, serial_log = read(sandbox, 1)
    parallel, log = read(sandbox, 4)
    assert len(set(ids(parallel))) > 80 and set(ids(parallel)) == set(ids(serial))
    assert ids(parallel)[:len(ids(serial))] == ids(serial)  # the ranges in order, then the catch-up's rows
    assert 1 <= sandbox.peak_in_flight()["servicenow"] <= 4
    queries = [e["args"]["sysparm_query"] for e in log]
    assert sum("sys_updated_on<" in q for q in queries) >= 7  # bounded ranges, the last one open
    first = next(n for n, p in enumerate(parallel) if p.checkpoint)
    assert all(p.checkpoint for p in parallel[first:])  # a range without rows keeps the position before it
    ranged = [(p.checkpoint["updated"], p.checkpoint["sys_id"]) for p in parallel
              if p.checkpoint and p.checkpoint.get("parallel")]
    assert ranged == sorted(ranged)  # a checkpoint never passes a row not yet written
    assert len(log) <= len(serial_log) * 1.05 + 2 * 8 + 1  # the ranges' last short pages, one catch-up


def test_a_read_stopped_mid_way_resumes_from_its_position(sandbox):
    everything, _ = read(sandbox, 4)
    head, _ = read(sandbox, 4, stop_after=3)
    tail, _ = read(sandbox, 4, checkpoint=head[-1].checkpoint)
    assert set(ids(head)) | set(ids(tail)) == set(ids(everything))
