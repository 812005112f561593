"""Parallel reads within each API's manners: a whole sync never has more requests in flight than a source allows."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e


def test_a_sync_keeps_every_source_within_its_concurrency(env):
    env.sandbox.set_latency(5)
    env.write_workspace(concurrency="2")
    r = env.run("sync")
    assert r.returncode == 0, r.stderr
    peaks = env.sandbox.peak_in_flight()
    assert set(peaks) >= {"jira", "github", "servicenow", "pagerduty"}
    assert all(1 <= p <= 2 for p in peaks.values()), peaks
