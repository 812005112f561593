"""Fault knobs (429, 5xx bursts, slow, dropped, malformed), their scoping and determinism, the log, control API."""

from __future__ import annotations

import json
import time

import pytest
import requests

from okrsync.sandbox import Sandbox

from .conftest import NOW, PD_HEADERS, SN_AUTH

PATHS = {"jira": "/rest/api/2/serverInfo", "github": "/repos/acme/web", "servicenow": "/api/now/table/incident",
         "pagerduty": "/incidents"}


def call(http, sb: Sandbox, system: str, **kw):
    return http.get(sb.urls[system] + PATHS[system], auth=SN_AUTH if system == "servicenow" else None,
                    headers=PD_HEADERS if system == "pagerduty" else None,
                    params={"sysparm_limit": 1} if system == "servicenow" else None, **kw)


@pytest.mark.parametrize("system, header, value", [
    ("jira", "Retry-After", "2"), ("github", "Retry-After", "2"), ("servicenow", "Retry-After", "2"),
    ("pagerduty", "ratelimit-reset", "2"),
])
def test_rate_limit_fault_answers_429_with_the_systems_wait_header(fresh, http, system, header, value):
    fresh.faults.rate_limit(fraction=1.0, retry_after=2, system=system, count=1)
    r = call(http, fresh, system)
    assert r.status_code == 429 and r.headers[header] == value
    assert r.json()  # each system's own error body
    assert call(http, fresh, system).status_code == 200  # count=1: only the next request
    assert fresh.requests(system)[0]["fault"] == "rate_limit"


def test_fraction_is_deterministic_for_a_seed(http):
    patterns = []
    for _ in range(2):
        with Sandbox(seed=3, scale=50, now=NOW, fault_seed=99) as sb:
            sb.faults.rate_limit(fraction=0.3, retry_after=0, system="jira")
            patterns.append([call(http, sb, "jira").status_code for _ in range(40)])
    assert patterns[0] == patterns[1]
    assert 4 <= patterns[0].count(429) <= 20


def test_server_error_burst(fresh, http):
    fresh.faults.server_errors(n=3, system="github")
    statuses = [call(http, fresh, "github") for _ in range(4)]
    assert [r.status_code for r in statuses] == [500, 502, 503, 200]
    assert statuses[0].json()["message"]  # 500: the API's JSON; 502/503: a gateway's HTML page
    assert statuses[1].headers["Content-Type"].startswith("text/html")


def test_slow_answers(fresh, http):
    fresh.faults.slow(delay=0.3, system="servicenow", count=2)
    started = time.perf_counter()
    assert call(http, fresh, "servicenow").status_code == 200
    assert time.perf_counter() - started >= 0.3
    with pytest.raises(requests.exceptions.ReadTimeout):
        call(http, fresh, "servicenow", timeout=0.1)
    assert call(http, fresh, "servicenow", timeout=5).status_code == 200


def test_dropped_connection(fresh, http):
    fresh.faults.drop(system="pagerduty", count=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        call(http, fresh, "pagerduty")
    assert call(http, fresh, "pagerduty").status_code == 200
    assert [e["status"] for e in fresh.requests("pagerduty")] == [0, 200]


def test_malformed_page(fresh, http):
    fresh.faults.malformed(system="jira", count=1, path="/rest/api/3/search/jql")
    url = f"{fresh.urls['jira']}/rest/api/3/search/jql"
    r = http.get(url, params={"jql": "project = APP", "fields": "summary"})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    with pytest.raises(ValueError):
        r.json()
    assert http.get(url, params={"jql": "project = APP"}).json()["issues"]


def test_scoping_by_path_method_after_and_count(fresh, http):
    fresh.faults.add("error", system="github", path="/repos/acme/web/issues", method="GET", after=2, count=2,
                     statuses=[503])
    url = f"{fresh.urls['github']}/repos/acme/web"
    got = [http.get(f"{url}/issues").status_code for _ in range(5)]
    assert got == [200, 200, 503, 503, 200]
    assert http.get(url).status_code == 200 and call(http, fresh, "jira").status_code == 200
    assert fresh.faults.rules() == []  # spent rules go away
    fresh.faults.rate_limit(system=None, retry_after=0)  # every system
    assert {call(http, fresh, s).status_code for s in PATHS} == {429}
    fresh.faults.clear()
    assert {call(http, fresh, s).status_code for s in PATHS} == {200}
    with pytest.raises(ValueError):
        fresh.faults.add("explode")


def test_request_log_and_counts(fresh, http):
    call(http, fresh, "jira")
    call(http, fresh, "servicenow")
    http.get(f"{fresh.urls['github']}/repos/acme/web/issues", params={"state": "all", "per_page": 5})
    entry = fresh.requests("github")[-1]
    assert (entry["system"], entry["method"], entry["path"], entry["status"]) == (
        "github", "GET", "/repos/acme/web/issues", 200)
    assert entry["args"] == {"state": "all", "per_page": "5"} and entry["query"] == "state=all&per_page=5"
    assert entry["duration_ms"] >= 0 and entry["fault"] is None and entry["body"] is None
    http.post(f"{fresh.urls['jira']}/rest/api/3/search/jql", json={"jql": "project = APP", "fields": ["id"]},
              auth=("a@b.c", "t"))
    assert json.loads(fresh.requests("jira")[-1]["body"]) == {"jql": "project = APP", "fields": ["id"]}
    assert fresh.counts() == {"jira": 2, "servicenow": 1, "github": 1}
    fresh.reset_log()
    assert fresh.requests() == [] and fresh.counts() == {}


def test_control_endpoints(fresh, http):
    base = fresh.urls["jira"]
    rule = http.post(f"{base}/_sandbox/faults", json={"kind": "rate_limit", "retry_after": 0, "count": 1})
    assert rule.status_code == 201 and rule.json()["rule"]["system"] == "jira"
    assert len(http.get(f"{base}/_sandbox/faults").json()["rules"]) == 1
    assert call(http, fresh, "jira").status_code == 429
    log = http.get(f"{base}/_sandbox/log").json()
    assert log["counts"] == {"jira": 1} and log["requests"][0]["status"] == 429
    assert http.post(f"{base}/_sandbox/reset-log").status_code == 204 and fresh.counts() == {}
    changed = http.post(f"{fresh.urls['github']}/_sandbox/advance", json={"seconds": 600}).json()
    assert changed["jira"]["created"] and changed["github"]["deployments"]
    http.post(f"{base}/_sandbox/faults", json={"kind": "drop", "system": "*"})
    assert http.delete(f"{base}/_sandbox/faults", params={"system": "all"}).status_code == 204
    assert fresh.faults.rules() == []
    assert http.post(f"{base}/_sandbox/faults", json={"kind": "nope"}).status_code == 400
    info = http.get(f"{base}/_sandbox").json()
    assert info["urls"] == fresh.urls and info["advances"] == 1
    assert fresh.counts() == {}  # control calls are not logged


def test_the_projects_retry_layer_gets_through_every_fault(fresh):
    """The headers and failures are ones okrsync's HttpClient understands (no real sleeping)."""
    from okrsync.connectors.http import HttpClient

    waits: list[float] = []
    client = HttpClient("jira", fresh.urls["jira"], sleep=waits.append)
    path = "/rest/api/3/search/jql"
    fresh.faults.rate_limit(retry_after=3, system="jira", count=1)
    fresh.faults.server_errors(n=2, system="jira", path=path)
    fresh.faults.drop(system="jira", count=1, after=3)
    fresh.faults.malformed(system="jira", count=1, after=4)
    page = client.get(path, params={"jql": "project = APP", "maxResults": 10})
    assert len(page["issues"]) == 10
    assert [e["fault"] for e in fresh.requests("jira")] == ["rate_limit", "error", "error", "drop", "malformed",
                                                            None]
    assert waits[0] >= 3 and len(waits) >= 5  # Retry-After honoured; then backoff for the others
