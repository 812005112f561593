"""PagerDuty since/until windows read `concurrency` at a time against the sandbox, written in order, resumable."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from okrsync.config.settings import SourceCredentials
from okrsync.config.sources import PagerDutySource
from okrsync.connectors.base import ConnectorOptions, ReadContext
from okrsync.connectors.pagerduty.connector import build
from okrsync.sandbox import Sandbox

from ..sandbox_reads import read_stream
from ..sandbox_reads import record_ids as ids

NOW = datetime(2026, 11, 15, 12, 0, tzinfo=timezone.utc)
SINCE = NOW - timedelta(days=200)


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(seed=3, scale=600, now=NOW, latency_ms=2) as sb:
        yield sb


def read(sb: Sandbox, concurrency: int, checkpoint: dict | None = None, stop_after: int | None = None):
    cfg = PagerDutySource(type="pagerduty", url=sb.urls["pagerduty"], concurrency=concurrency, window_days=20)
    conn = build("pagerduty", cfg, SourceCredentials(token="sandbox-token"), ConnectorOptions())
    ctx = ReadContext(since=SINCE, run_started=NOW, first_run=True, checkpoint=checkpoint)
    return read_stream(sb, conn, ctx, "pagerduty", stop_after)[0]


def test_windows_in_parallel_give_the_serial_read_in_order(sandbox):
    serial = read(sandbox, 1)
    parallel = read(sandbox, 3)
    assert len(ids(parallel)) > 50 and ids(parallel) == ids(serial)
    assert 1 <= sandbox.peak_in_flight()["pagerduty"] <= 3
    froms = [p.checkpoint["from"] for p in parallel]
    assert froms == sorted(froms)  # a checkpoint never passes a window not yet written


def test_a_read_stopped_mid_way_resumes_from_its_window(sandbox):
    everything = read(sandbox, 3)
    head = read(sandbox, 3, stop_after=3)
    tail = read(sandbox, 3, checkpoint=head[-1].checkpoint)
    assert set(ids(head)) | set(ids(tail)) == set(ids(everything))
