"""GitHub deployments through GraphQL: 100 deployments with their statuses per query, as REST-shaped payloads."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Callable, Iterator

import requests

from okrsync.connectors.base import SourceError
from okrsync.connectors.http import SECONDARY_WAIT, HttpClient, RetryableHTTP, rate_limit_decision
from okrsync.connectors.paging import CursorPaginator, Fetched, Request, paginate
from okrsync.domain.records import parse_iso

from .client import GitHubClient, RepoNotFound

# repository.deployments, newest first (the connection's default order is CREATED_AT ASC), each with its latest
# status and up to 100 statuses: one query instead of one REST statuses call per deployment (DevLake collects
# deployments this way). GitHub GraphQL reference: objects#repository, #deployment, #deploymentstatus.
STATUSES_PER_DEPLOYMENT = 100
DEPLOYMENTS = """query($owner: String!, $name: String!, $after: String) {
  repository(owner: $owner, name: $name) {
    deployments(first: 100, after: $after, orderBy: {field: CREATED_AT, direction: DESC}) {
      pageInfo { hasNextPage endCursor }
      nodes {
        id databaseId environment originalEnvironment task description commitOid ref { name }
        createdAt updatedAt payload creator { login }
        latestStatus { state createdAt }
        statuses(first: %d) {
          pageInfo { hasNextPage }
          nodes { id state description environment environmentUrl logUrl createdAt updatedAt creator { login } }
        }
      }
    }
  }
}""" % STATUSES_PER_DEPLOYMENT


class GraphQLUnavailable(SourceError):
    """The GraphQL endpoint answered 404 (a proxy or an old server without it): read deployments through REST."""


def graphql_url(base_url: str) -> str:
    """POST /graphql on api.github.com; GitHub Enterprise Server serves REST at /api/v3 and GraphQL at /api/graphql."""
    base = base_url.rstrip("/")
    if base.endswith("/api/v3"):
        return base[: -len("v3")] + "graphql"
    return base + "/graphql"


def _dig(body: Any, *path: str) -> Any:
    for key in path:
        body = body.get(key) if isinstance(body, dict) else None
    return body


def _rate_limited(http: HttpClient) -> Callable[[Any, requests.Response], None]:
    """A query refused for a rate limit answers 200 with an error (GitHub docs, "Rate limits and query limits for
    the GraphQL API", Exceeding the rate limit: primary, RATE_LIMITED with x-ratelimit-remaining 0, wait until
    x-ratelimit-reset; secondary, 200 or 403 with a message saying so, retry-after or at least a minute). Raised
    inside the attempt, so the one retry layer waits as for a 403/429 and asks again."""

    def check(body: Any, resp: requests.Response) -> None:
        errors = body.get("errors") if isinstance(body, dict) else None
        if not errors or not isinstance(errors, list):
            return
        limited = any(isinstance(e, dict) and (e.get("type") == "RATE_LIMITED"
                                               or "rate limit" in str(e.get("message") or "").lower())
                      for e in errors)
        if limited:
            wait = rate_limit_decision(resp, http.clock())
            raise RetryableHTTP("rate limited (GraphQL)", wait.seconds if wait else SECONDARY_WAIT, resp)

    return check


def _check(body: Any, repo: str) -> None:
    """GraphQL answers errors with HTTP 200: a missing repository is NOT_FOUND, anything else fails the repo."""
    errors = body.get("errors") if isinstance(body, dict) else None
    if not errors:
        return
    if any(isinstance(e, dict) and e.get("type") == "NOT_FOUND" for e in errors):
        raise RepoNotFound(f"repository {repo} not found (or the token cannot see it)")
    messages = "; ".join(str(e.get("message") if isinstance(e, dict) else e) for e in errors)[:300]
    raise SourceError(f"GraphQL error reading the deployments of {repo}: {messages}")


def deployment_nodes(client: GitHubClient, repo: str, stop_before: datetime | None) -> Iterator[dict[str, Any]]:
    """The repository's deployments, newest first, down to the first page that reaches back past stop_before."""
    owner, name = repo.split("/", 1)
    url = graphql_url(client.base_url)
    first = Request(url, None, {"query": DEPLOYMENTS, "variables": {"owner": owner, "name": name, "after": None}},
                    "POST")

    def fetcher(request: Request) -> Fetched:
        try:
            body, resp = client.call("POST", request.path, what=f"deployments of {repo}", json=request.json,
                                     retry_unsafe=True,  # a query changes nothing: safe to send again
                                     check_body=_rate_limited(client.http))
        except RepoNotFound:  # the endpoint itself is missing (a repository that is not found answers 200)
            raise GraphQLUnavailable(f"{client.source}: no GraphQL endpoint at {url}") from None
        body = body if isinstance(body, dict) else {}
        _check(body, repo)
        if _dig(body, "data", "repository") is None:
            raise RepoNotFound(f"{client.source}: repository {repo} not found (or the token cannot see it)")
        return Fetched(request, body, resp, _dig(body, "data", "repository", "deployments", "nodes") or [])

    pager = CursorPaginator(first, lambda page: _dig(page.body, "data", "repository", "deployments", "pageInfo"))
    for page in paginate(client.http, pager, fetcher=fetcher, source=client.source):
        oldest = None
        for node in page.items:
            yield node
            created = parse_iso(node["createdAt"])
            oldest = created if oldest is None else min(oldest, created)
        if stop_before is not None and oldest is not None and oldest < stop_before:
            return


def _payload(value: Any) -> Any:
    """Deployment.payload is a JSON string in GraphQL, an object in REST."""
    if isinstance(value, str):
        try:
            return json.loads(value) if value else {}
        except ValueError:
            return value
    return value if value is not None else {}


def rest_deployment(node: dict[str, Any], api: str, repo: str) -> dict[str, Any]:
    """A GraphQL Deployment in the shape of a REST deployments list item (what normalize_deployment reads)."""
    url = f"{api.rstrip('/')}/repos/{repo}"
    dep_id = node["databaseId"]
    return {"url": f"{url}/deployments/{dep_id}", "id": dep_id, "node_id": node.get("id"),
            "sha": node.get("commitOid"), "ref": _dig(node, "ref", "name"), "task": node.get("task"),
            "payload": _payload(node.get("payload")), "original_environment": node.get("originalEnvironment"),
            "environment": node.get("environment"), "description": node.get("description"),
            "creator": node.get("creator"), "created_at": node.get("createdAt"), "updated_at": node.get("updatedAt"),
            "statuses_url": f"{url}/deployments/{dep_id}/statuses", "repository_url": url}


def rest_statuses(node: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The deployment's statuses in REST shape (states lower-case), oldest first; None when there are more than
    one query returns (the caller reads them through REST)."""
    conn = node.get("statuses") or {}
    if _dig(conn, "pageInfo", "hasNextPage"):
        return None
    out = [{"node_id": s.get("id"), "state": str(s.get("state") or "").lower(), "description": s.get("description"),
            "environment": s.get("environment"), "environment_url": s.get("environmentUrl"),
            "log_url": s.get("logUrl"), "target_url": s.get("logUrl"), "created_at": s.get("createdAt"),
            "updated_at": s.get("updatedAt"), "creator": s.get("creator")}
           for s in conn.get("nodes") or []]
    return sorted(out, key=lambda s: str(s["created_at"] or ""))
