"""Deployments through GraphQL: the sandbox's documented-shape endpoint, the same records as REST, fewer requests."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

import pytest
import requests

from okrsync.config.settings import SourceCredentials
from okrsync.connectors.base import ConnectorOptions, SourceError
from okrsync.connectors.github.client import GitHubClient
from okrsync.connectors.github.connector import build
from okrsync.connectors.github.graphql import DEPLOYMENTS, deployment_nodes, graphql_url
from okrsync.sandbox import Sandbox

from .support import MiniEngine, config

NOW = datetime(2026, 11, 15, 12, 0, tzinfo=timezone.utc)
REPOS = ["acme/web", "acme/api"]


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(seed=7, scale=1200, now=NOW) as sb:
        yield sb


def run(sb: Sandbox, *, graphql: bool, engine: MiniEngine | None = None, now: datetime = NOW):
    cfg = config(url=sb.urls["github"], repos=REPOS, pull_requests=False, releases=False)
    conn = build("github", cfg, SourceCredentials(token="sandbox-token"), ConnectorOptions())
    if not graphql:
        conn.graphql = False
    engine = engine or MiniEngine(period_start=NOW - timedelta(days=120))
    sb.reset_log()
    errors = engine.run(conn, now)
    assert errors == []
    deps = {k: v for k, v in engine.records.items() if k[0] == "Deployment"}
    return engine, deps, sb.requests("github")


def test_graphql_url_for_github_and_enterprise_server():
    assert graphql_url("https://api.github.com") == "https://api.github.com/graphql"
    assert graphql_url("https://ghe.acme.io/api/v3/") == "https://ghe.acme.io/api/graphql"


def test_same_deployment_records_as_rest_with_one_query_per_100(sandbox):
    _, rest, rest_log = run(sandbox, graphql=False)
    _, gql, gql_log = run(sandbox, graphql=True)
    assert max(sum(1 for d in gql.values() if d.repo == r) for r in REPOS) > 100  # more than one query's worth
    strip = lambda r: dataclasses.replace(r, raw={})  # noqa: E731 - the raw payloads differ in shape, not records
    assert {k: strip(v) for k, v in gql.items()} == {k: strip(v) for k, v in rest.items()}
    assert not [e for e in gql_log if e["path"].endswith("/statuses")]
    statuses = [e for e in rest_log if e["path"].endswith("/statuses")]
    assert len(statuses) >= len(rest)  # REST: one statuses call per deployment
    queries = [e for e in gql_log if e["path"] == "/graphql"]
    per_repo = {r: sum(1 for d in gql.values() if d.repo == r) for r in REPOS}
    assert len(queries) <= sum(n // 100 + 1 for n in per_repo.values())


def test_an_incremental_read_rereads_pending_deployments_and_converges(sandbox):
    engine, _, _ = run(sandbox, graphql=True)
    again, deps, log = run(sandbox, graphql=True, engine=engine, now=NOW + timedelta(minutes=5))
    assert len([e for e in log if e["path"] == "/graphql"]) == len(REPOS)  # nothing new: one query per repo
    _, fresh, _ = run(sandbox, graphql=True)
    assert set(deps) == set(fresh)


def test_sandbox_graphql_follows_the_documented_rules(sandbox):
    url = sandbox.urls["github"] + "/graphql"
    variables = {"owner": "acme", "name": "web", "after": None}
    body = requests.post(url, json={"query": DEPLOYMENTS, "variables": variables}, timeout=10).json()
    nodes = body["data"]["repository"]["deployments"]["nodes"]
    assert len(nodes) == 100 and nodes[0]["createdAt"] >= nodes[-1]["createdAt"]  # DESC as asked
    assert {s["state"] for n in nodes for s in n["statuses"]["nodes"]} <= {
        "SUCCESS", "FAILURE", "ERROR", "INACTIVE", "IN_PROGRESS", "QUEUED", "PENDING", "WAITING"}
    asc = DEPLOYMENTS.replace(", orderBy: {field: CREATED_AT, direction: DESC}", "")
    nodes = requests.post(url, json={"query": asc, "variables": variables}, timeout=10).json()[
        "data"]["repository"]["deployments"]["nodes"]
    assert nodes[0]["createdAt"] <= nodes[-1]["createdAt"]  # the default order is CREATED_AT ASC
    too_many = requests.post(url, json={"query": DEPLOYMENTS.replace("first: 100, after", "first: 101, after"),
                                        "variables": variables}, timeout=10).json()
    assert too_many["data"] is None and "exceeds the `first` limit of 100" in too_many["errors"][0]["message"]
    missing = requests.post(url, json={"query": DEPLOYMENTS, "variables": {**variables, "name": "nope"}},
                            timeout=10).json()
    assert missing["data"] == {"repository": None} and missing["errors"][0]["type"] == "NOT_FOUND"
    assert "payload" not in str(requests.post(url, json={"query": DEPLOYMENTS.replace(" payload", ""),
                                                         "variables": variables}, timeout=10).json())


def test_the_graphql_primary_limit_answers_200_and_the_query_waits_for_the_reset():
    """GitHub: past the primary limit a GraphQL query answers 200 with a RATE_LIMITED error and
    x-ratelimit-remaining 0; the client waits until x-ratelimit-reset and asks again (not a failed repository)."""
    with Sandbox(seed=7, scale=200, now=NOW) as sb:
        client = GitHubClient("github", sb.urls["github"], "sandbox-token")
        expected = [n["databaseId"] for n in deployment_nodes(client, "acme/web", None)]
        app = sb.apps["github"]
        app.set_budget(limit=5, window=1.0, used=5)  # exhausted; the window resets within a second
        sb.reset_log()
        assert [n["databaseId"] for n in deployment_nodes(client, "acme/web", None)] == expected
        answers = [e["status"] for e in sb.requests("github") if e["path"] == "/graphql"]
        assert len(answers) >= 2 and set(answers) == {200}  # the refused query (200 + errors), then the answers
        assert client.http.retries >= 1


def test_a_graphql_error_that_is_not_a_rate_limit_still_fails_the_repository(monkeypatch):
    with Sandbox(seed=7, scale=200, now=NOW) as sb:
        client = GitHubClient("github", sb.urls["github"], "sandbox-token")
        monkeypatch.setattr("okrsync.sandbox.github.gql_deployments",
                            lambda app, query, variables: {"errors": [{"type": "INTERNAL", "message": "boom"}]})
        with pytest.raises(SourceError, match="GraphQL error reading the deployments of acme/web: boom"):
            list(deployment_nodes(client, "acme/web", None))

