"""GitHub GraphQL simulator: `repository(owner:, name:) { deployments(...) { ... latestStatus statuses(...) } }`.

What it follows (GitHub GraphQL reference, https://docs.github.com/graphql/reference/objects#repository and
#deployment, #deploymentstatus, input-objects#deploymentorder, and "Using pagination in the GraphQL API"):
- one endpoint, POST /graphql (GitHub Enterprise Server: POST /api/graphql); errors come back with HTTP 200 in
  `errors`, a repository that does not exist is `null` with a NOT_FOUND error;
- every connection needs `first` or `last`, at most 100 ("Requesting 101 records on the `deployments` connection
  exceeds the `first` limit of 100 records.");
- `deployments(orderBy:)` defaults to {field: CREATED_AT, direction: ASC}: oldest first unless DESC is asked for;
- cursors are opaque; `pageInfo { hasNextPage endCursor }`; states are upper-case enums (SUCCESS, FAILURE, ...);
- only the fields the query names come back.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from .github_render import node_id
from .model import gh_time

_REPO = re.compile(r"repository\(([^)]*)\)")
_DEPLOYMENTS = re.compile(r"deployments\(((?:[^(){}]|\{[^{}]*\})*)\)")
_STATUSES = re.compile(r"statuses\(([^)]*)\)")
_ARG = re.compile(r"(\w+)\s*:\s*(\"[^\"]*\"|\$\w+|\[[^\]]*\]|\w+)")
_DIRECTION = re.compile(r"direction\s*:\s*(\$\w+|ASC|DESC)")
MAX_FIRST = 100


class GraphQLError(Exception):
    def __init__(self, message: str, **extra: Any):
        super().__init__(message)
        self.error = {"message": message, **extra}


def _args(text: str, variables: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, raw in _ARG.findall(text):
        if raw.startswith("$"):
            out[name] = variables.get(raw[1:])
        elif raw.startswith('"'):
            out[name] = raw[1:-1]
        elif raw.startswith("["):
            out[name] = re.findall(r'"([^"]*)"', raw)
        elif raw.isdigit():
            out[name] = int(raw)
        else:
            out[name] = None if raw == "null" else raw
    return out


def cursor(offset: int) -> str:
    return base64.b64encode(f"cursor:v2:{offset}".encode()).decode()


def _offset(value: Any) -> int:
    try:
        return int(base64.b64decode(str(value)).decode().rsplit(":", 1)[1]) + 1
    except (ValueError, IndexError):
        raise GraphQLError(f"`{value}` does not appear to be a valid cursor.") from None


def _first(args: dict[str, Any], connection: str) -> int:
    first = args.get("first")
    if first is None:
        raise GraphQLError(f"You must provide a `first` or `last` value to properly paginate the `{connection}` "
                           "connection.")
    if int(first) > MAX_FIRST:
        raise GraphQLError(f"Requesting {first} records on the `{connection}` connection exceeds the `first` limit "
                           f"of {MAX_FIRST} records.")
    return int(first)


def _pick(value: Any, query: str) -> Any:
    """Only the fields the query names (a field is kept when its name appears in the query)."""
    if isinstance(value, dict):
        return {k: _pick(v, query) for k, v in value.items() if re.search(rf"\b{k}\b", query)}
    if isinstance(value, list):
        return [_pick(v, query) for v in value]
    return value


def deployments(app: Any, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    """The answer document ({data} or {data, errors}) to a repository deployments query."""
    repo_args = _args((_REPO.search(query) or [None, ""])[1], variables)
    owner, name = repo_args.get("owner"), repo_args.get("name")
    found = _DEPLOYMENTS.search(query)
    try:
        dep_args = _args(found.group(1) if found else "", variables)
        first = _first(dep_args, "deployments")
        status_match = _STATUSES.search(query)
        status_first = _first(_args(status_match.group(1), variables), "statuses") if status_match else 0
        direction = _DIRECTION.search(found.group(1) if found else "")
        desc = direction is not None and (variables.get(direction.group(1)[1:]) if direction.group(1).startswith("$")
                                          else direction.group(1)) == "DESC"
        start = _offset(dep_args["after"]) if dep_args.get("after") else 0
    except GraphQLError as exc:
        return {"data": None, "errors": [exc.error]}
    r = app.w.repos.get(f"{owner}/{name}")
    if r is None:
        return {"data": {"repository": None}, "errors": [{
            "type": "NOT_FOUND", "path": ["repository"], "locations": [{"line": 1, "column": 1}],
            "message": f"Could not resolve to a Repository with the name '{owner}/{name}'."}]}
    envs = dep_args.get("environments")
    with app.w.lock:
        items = [d for d in r.deployments if not envs or d.environment in envs]
        items.sort(key=lambda d: (d.created, d.id), reverse=desc)
        page = items[start:start + first]
        nodes = [_node(app, r, d, status_first) for d in page]
    conn = {"totalCount": len(items), "nodes": nodes,
            "pageInfo": {"hasNextPage": start + first < len(items), "hasPreviousPage": start > 0,
                         "startCursor": cursor(start) if page else None,
                         "endCursor": cursor(start + len(page) - 1) if page else None}}
    data: dict[str, Any] = {"repository": {"deployments": conn}}
    if "rateLimit" in query:
        data["rateLimit"] = {"cost": 1, "limit": 5000, "remaining": 4999, "resetAt": gh_time(app.w.now_ms)}
    return {"data": _pick(data, query)}


def _status(app: Any, r: Any, d: Any, s: tuple[int, str, int]) -> dict[str, Any]:
    rest = app.r.deployment_status(r, d, s)
    return {"id": rest["node_id"], "state": rest["state"].upper(), "description": rest["description"],
            "environment": rest["environment"], "environmentUrl": rest["environment_url"], "logUrl": rest["log_url"],
            "createdAt": rest["created_at"], "updatedAt": rest["updated_at"],
            "creator": {"login": (rest["creator"] or {}).get("login")}}


def _node(app: Any, r: Any, d: Any, status_first: int) -> dict[str, Any]:
    rest = app.r.deployment(r, d)
    statuses = d.statuses  # oldest first, as they were created
    latest = statuses[-1] if statuses else None
    return {
        "id": node_id("Deployment", d.id), "databaseId": d.id, "environment": rest["environment"],
        "originalEnvironment": rest["original_environment"], "task": rest["task"],
        "description": rest["description"], "commitOid": d.sha, "ref": {"name": d.ref} if d.ref else None,
        "createdAt": rest["created_at"], "updatedAt": rest["updated_at"], "payload": "{}",
        "state": (latest[1] if latest else "pending").upper(),
        "creator": {"login": (rest["creator"] or {}).get("login")},
        "latestStatus": _status(app, r, d, latest) if latest else None,
        "statuses": {"totalCount": len(statuses), "nodes": [_status(app, r, d, s) for s in statuses[:status_first]],
                     "pageInfo": {"hasNextPage": len(statuses) > status_first,
                                  "endCursor": cursor(min(status_first, len(statuses)) - 1) if statuses else None}},
    }
