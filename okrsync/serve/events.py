"""What a verified webhook asks for: which source and streams to sync, which items are gone, or nothing."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

JIRA_EVENTS = ("jira:issue_created", "jira:issue_updated", "jira:issue_deleted")
# GitHub event -> the connector stream that reads it ("repo_check", once a stream, names the per-repository check
# that GitHubConnector.finish() now runs after any stream set; kept in the set for the stores and tests naming it)
GITHUB_STREAMS = {"issues": "issues", "pull_request": "pull_requests", "deployment": "deployments",
                  "deployment_status": "deployments", "release": "releases", "workflow_run": "workflow_runs"}
SERVICENOW_OPERATIONS = ("insert", "update", "delete")


class BadPayload(ValueError):
    """The body is not the JSON object the source type sends (400)."""


@dataclass(frozen=True)
class Deletion:
    """An item to mark deleted at once: `item` is the store id or the key (APP-7, acme/web#12, INC0001)."""

    table: str  # issues | incidents
    item: str


@dataclass
class WebhookEvent:
    source: str  # the source's key in the workspace
    name: str  # jira:issue_updated, issues.closed, incident.resolved, incident.update ...
    relevant: bool  # False: acknowledged (202) and ignored
    delivery: str | None = None  # a sender's unique delivery id (replays are dropped)
    streams: frozenset[str] | None = None  # None: every stream of the source
    deletions: list[Deletion] = field(default_factory=list)


def parse_event(source: str, source_type: str, headers: Mapping[str, str], body: bytes) -> WebhookEvent:
    """Classify a verified webhook. Raises BadPayload when the body is no JSON object."""
    try:
        doc = json.loads(body.decode("utf-8")) if body else {}
    except (UnicodeDecodeError, ValueError):
        raise BadPayload("the body is not JSON") from None
    if not isinstance(doc, dict):
        raise BadPayload("the body is not a JSON object")
    parse = {"jira": _jira, "github": _github, "pagerduty": _pagerduty, "servicenow": _servicenow}[source_type]
    return parse(source, headers, doc)


def _jira(source: str, headers: Mapping[str, str], doc: dict[str, Any]) -> WebhookEvent:
    name = str(doc.get("webhookEvent") or "")
    issue = _object(doc, "issue")
    deletions = []
    if name == "jira:issue_deleted":
        deletions = [Deletion("issues", str(v)) for v in (issue.get("id"), issue.get("key")) if v]
    # Jira Cloud sends X-Atlassian-Webhook-Identifier, unique per delivery (retries reuse it)
    return WebhookEvent(source, name or "unknown", name in JIRA_EVENTS,
                        delivery=headers.get("X-Atlassian-Webhook-Identifier"), deletions=deletions)


def _github(source: str, headers: Mapping[str, str], doc: dict[str, Any]) -> WebhookEvent:
    kind = headers.get("X-GitHub-Event") or ""
    action = str(doc.get("action") or "")
    stream = GITHUB_STREAMS.get(kind)
    deletions = []
    issue = _object(doc, "issue")
    if kind == "issues" and action == "deleted" and issue.get("id"):
        deletions = [Deletion("issues", str(issue["id"]))]
    return WebhookEvent(source, f"{kind}.{action}" if action else (kind or "unknown"), stream is not None,
                        delivery=headers.get("X-GitHub-Delivery"),
                        streams=frozenset({stream, "repo_check"}) if stream else None, deletions=deletions)


def _pagerduty(source: str, headers: Mapping[str, str], doc: dict[str, Any]) -> WebhookEvent:
    event = _object(doc, "event")
    name = str(event.get("event_type") or "")
    return WebhookEvent(source, name or "unknown", name.startswith("incident."),
                        delivery=str(event["id"]) if event.get("id") else None)


def _servicenow(source: str, headers: Mapping[str, str], doc: dict[str, Any]) -> WebhookEvent:
    operation = str(doc.get("operation") or "").lower()
    table = str(doc.get("table") or "incident")
    deletions = []
    if operation == "delete":
        deletions = [Deletion("incidents", str(v)) for v in (doc.get("sys_id"), doc.get("number")) if v]
    return WebhookEvent(source, f"{table}.{operation or 'unknown'}",
                        operation in SERVICENOW_OPERATIONS and table == "incident",
                        delivery=headers.get("X-Okrsync-Delivery"), deletions=deletions)


def _object(doc: dict[str, Any], key: str) -> dict[str, Any]:
    value = doc.get(key)
    return value if isinstance(value, dict) else {}
