"""One limiter per source: at most `concurrency` requests in flight, counted by the sandbox; the setting's defaults."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest
from pydantic import TypeAdapter, ValidationError

from okrsync.config.sources import MAX_CONCURRENCY, SourceConfig
from okrsync.connectors.http import HttpClient, HttpOptions, http_options
from okrsync.sandbox import Sandbox, latency_from_env
from okrsync.sandbox.server import Latency, RequestLog

NOW = datetime(2026, 11, 15, 12, 0, tzinfo=timezone.utc)
SOURCES = {
    "jira": {"type": "jira", "url": "https://acme.atlassian.net"},
    "github": {"type": "github", "repos": ["acme/web"]},
    "servicenow": {"type": "servicenow", "url": "https://acme.service-now.com"},
    "pagerduty": {"type": "pagerduty"},
}


def source(kind: str, **extra):
    return TypeAdapter(SourceConfig).validate_python({**SOURCES[kind], **extra})


@pytest.mark.parametrize("kind,default", [("jira", 8), ("github", 3), ("servicenow", 4), ("pagerduty", 3)])
def test_concurrency_defaults_per_source(kind, default):
    cfg = source(kind)
    assert cfg.concurrency == default
    assert http_options(cfg).concurrency == default
    assert http_options(source(kind, concurrency=2)).concurrency == 2


@pytest.mark.parametrize("bad", [0, -1, MAX_CONCURRENCY + 1, "many"])
def test_concurrency_is_validated(bad):
    with pytest.raises(ValidationError):
        source("github", concurrency=bad)


def test_peak_in_flight_is_counted_per_system():
    log = RequestLog()
    log.enter("jira")
    log.enter("jira")
    log.enter("github")
    log.leave("jira")
    log.enter("jira")
    assert log.peaks() == {"jira": 2, "github": 1}
    log.leave("jira")
    log.reset()  # the peak starts again from what is still in flight
    assert log.peaks() == {"jira": 1, "github": 1}


def test_latency_knob():
    assert Latency(150).seconds() == 0.15
    jittered = [Latency(100, 50, seed=3).seconds() for _ in range(20)]
    assert all(0.1 <= s <= 0.15 for s in jittered)
    with pytest.raises(ValueError):
        Latency(-1)
    assert latency_from_env({"OKRSYNC_SANDBOX_LATENCY_MS": "150", "OKRSYNC_SANDBOX_JITTER_MS": "20"}) == (150, 20)
    assert latency_from_env({}) == (0, 0)


def test_sandbox_answers_after_the_latency_and_it_can_be_changed():
    with Sandbox(seed=1, scale=20, now=NOW, latency_ms=40) as sb:
        client = HttpClient("github", sb.urls["github"])
        client.get("repos/acme/web/issues")
        assert sb.requests("github")[-1]["duration_ms"] >= 40
        assert client.get(f"{sb.urls['github']}/_sandbox/latency") == {"ms": 40, "jitter_ms": 0}
        client.json("POST", f"{sb.urls['github']}/_sandbox/latency", json={"ms": 0})
        assert sb.latency.as_dict() == {"ms": 0, "jitter_ms": 0}


def test_the_latency_is_what_a_request_costs_in_all(monkeypatch):
    """The sandbox's own time to build an answer is part of the latency (as a real API's is), not added to it."""
    with Sandbox(seed=1, scale=20, now=NOW, latency_ms=120) as sb:
        app = sb.apps["github"]
        slow = app.handle

        def handle(req):
            time.sleep(0.08)  # an answer that takes 80 ms to build
            return slow(req)

        monkeypatch.setattr(app, "handle", handle)
        client = HttpClient("github", sb.urls["github"])
        client.get("repos/acme/web/issues")
        assert 120 <= sb.requests("github")[-1]["duration_ms"] < 190  # not 120 + 80


@pytest.mark.parametrize("concurrency", [1, 2, 3])
def test_the_client_never_has_more_than_its_concurrency_in_flight(concurrency):
    with Sandbox(seed=1, scale=20, now=NOW, latency_ms=15) as sb:
        client = HttpClient("github", sb.urls["github"], options=HttpOptions(concurrency=concurrency))
        with ThreadPoolExecutor(8) as pool:
            pages = list(pool.map(lambda n: client.get("repos/acme/web/issues", params={"page": n % 3 + 1}),
                                  range(24)))
        assert len(pages) == 24 and sb.counts()["github"] == 24
        assert 1 <= sb.peak_in_flight()["github"] <= concurrency
        assert client.get(f"{sb.urls['github']}/_sandbox/in-flight")["peak"]["github"] <= concurrency


def test_a_rate_limit_pauses_every_request_of_the_source():
    """A 429 with Retry-After: the requests waiting for a slot wait for the window too, then all succeed."""
    with Sandbox(seed=1, scale=20, now=NOW) as sb:
        slept: list[float] = []
        client = HttpClient("github", sb.urls["github"], options=HttpOptions(concurrency=2, backoff_base=0.001),
                            sleep=slept.append)
        sb.faults.rate_limit(1.0, retry_after=30, count=1, system="github")
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda n: client.get("repos/acme/web/issues"), range(8)))
        assert sb.counts()["github"] == 9  # one refused, then eight answered: no request lost or doubled
        assert any(s >= 30 for s in slept)  # the request that was refused waited as asked
        assert sb.peak_in_flight()["github"] <= 2


def test_okrsync_sandbox_latency_flags_reach_the_simulators(monkeypatch):
    """`okrsync sandbox --latency MS --jitter MS` (or the environment) sets the delay every system answers after."""
    import threading

    from click.testing import CliRunner

    from okrsync.cli import cli
    from okrsync.sandbox import serve_forever as real

    seen: dict = {}

    def fake_serve_forever(**kwargs):
        seen.update(kwargs)

    monkeypatch.setattr("okrsync.sandbox.serve_forever", fake_serve_forever)
    result = CliRunner().invoke(cli, ["sandbox", "--port", "0", "--latency", "150", "--jitter", "20"])
    assert result.exit_code == 0, result.output
    assert (seen["latency_ms"], seen["jitter_ms"]) == (150, 20)

    monkeypatch.setenv("OKRSYNC_SANDBOX_LATENCY_MS", "25")
    lines: list[str] = []
    stop = threading.Event()
    t = threading.Thread(target=real, kwargs={"scale": 20, "seed": 3, "now": NOW, "out": lines.append, "stop": stop})
    t.start()
    try:
        for _ in range(500):
            if any("latency" in line and "ms per request" in line for line in lines):
                break
            threading.Event().wait(0.01)
        assert any(line.split() == ["latency", "25", "ms", "per", "request"] for line in lines), lines
    finally:
        stop.set()
        t.join(timeout=10)


def test_a_token_minted_inside_a_request_uses_its_slot_not_another():
    """OAuth and GitHub App tokens are minted through the same client from inside a request's auth: with every
    slot held (concurrency 1) that nested request must not wait for a slot of its own (it would wait forever)."""
    import requests as _requests

    with Sandbox(seed=1, scale=20, now=NOW) as sb:
        client = HttpClient("github", sb.urls["github"], options=HttpOptions(concurrency=1))

        class Minting(_requests.auth.AuthBase):
            def __call__(self, r):
                if "rate_limit" not in r.url:
                    client.request("GET", "rate_limit")  # the "mint", through the same client
                return r

        client.session.auth = Minting()
        with ThreadPoolExecutor(2) as pool:
            done = list(pool.map(lambda n: client.get("repos/acme/web/issues"), range(4)))
        assert len(done) == 4 and sb.peak_in_flight()["github"] <= 2
