"""Store schema as sqlite-utils migrations (each runs in a transaction)."""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

MIGRATIONS = Migrations("okrsync")

_ITEM_COMMON = {
    "source": str,
    "id": str,
    "stream": str,
    "raw": str,
    "hash": str,
    "deleted": int,
    "first_run": int,
    "last_run": int,
}


@MIGRATIONS()
def m001_initial(db: Database) -> None:
    db["issues"].create(
        {
            **_ITEM_COMMON,
            "key": str,
            "title": str,
            "type": str,
            "status": str,
            "status_category": str,
            "created": str,
            "updated": str,
            "resolved": str,
            "project": str,
            "labels": str,
            "components": str,
            "parent": str,
            "sprints": str,
            "story_points": float,
            "assignee": str,
            "url": str,
            "is_pull_request": int,
            "merged_at": str,
            "merge_sha": str,
        },
        pk=("source", "id"),
        defaults={"deleted": 0, "is_pull_request": 0},
        not_null={"source", "id", "created"},
    )
    db["deployments"].create(
        {
            **_ITEM_COMMON,
            "environment": str,
            "status": str,
            "created": str,
            "finished": str,
            "sha": str,
            "ref": str,
            "url": str,
            "repo": str,
            "origin": str,
            "updated": str,
        },
        pk=("source", "id"),
        defaults={"deleted": 0},
        not_null={"source", "id", "created"},
    )
    db["incidents"].create(
        {
            **_ITEM_COMMON,
            "number": str,
            "title": str,
            "status": str,
            "opened": str,
            "service": str,
            "priority": str,
            "severity": str,
            "urgency": str,
            "acknowledged": str,
            "resolved": str,
            "closed": str,
            "updated": str,
            "reassignment_count": int,
            "sla_breached": int,
            "assignment_group": str,
            "url": str,
        },
        pk=("source", "id"),
        defaults={"deleted": 0},
        not_null={"source", "id", "opened"},
    )
    db["deployment_commits"].create(
        {"source": str, "deployment_id": str, "sha": str}, pk=("source", "deployment_id", "sha")
    )
    db["sprints"].create(
        {"source": str, "id": str, "name": str, "state": str, "start": str, "end": str, "completed": str},
        pk=("source", "id"),
    )
    db["jql_members"].create({"jql_key": str, "source": str, "item_id": str}, pk=("jql_key", "source", "item_id"))
    db["jql_queries"].create({"jql_key": str, "source": str, "jql": str, "evaluated_at": str, "run_id": int},
                             pk="jql_key")
    db["sync_state"].create(
        {
            "source": str,
            "stream": str,
            "cursor": str,  # run start time of the last complete read (UTC ISO)
            "pending": str,  # JSON: an interrupted read {since, run_started, checkpoint}
            "state": str,  # JSON: connector-private state
            "updated_at": str,
        },
        pk=("source", "stream"),
    )
    db["runs"].create(
        {
            "id": int,
            "command": str,
            "started": str,
            "finished": str,
            "status": str,  # running | ok | partial | failed
            "pid": int,
            "requests": int,
            "sources": str,  # JSON per source: counts, requests, error
            "errors": str,  # JSON list of one-line messages
            "skipped": str,  # JSON list of {source, key, reason}
        },
        pk="id",
    )
    db["kr_values"].create(
        {
            "id": int,
            "run_id": int,
            "kr_id": str,
            "objective_id": str,
            "computed_at": str,
            "value": float,
            "computed_value": float,
            "baseline": float,
            "target": float,
            "progress": float,
            "score": float,
            "expected": float,
            "status": str,
            "items": int,
            "item_set": str,  # hash into kr_item_sets
            "added": str,  # JSON list of item ids added since the previous value (capped)
            "removed": str,
            "added_count": int,
            "removed_count": int,
            "window_start": str,
            "window_end": str,
            "detail": str,  # JSON
        },
        pk="id",
    )
    db["kr_item_sets"].create({"hash": str, "count": int, "ids": bytes}, pk="hash")
    db["writeback_state"].create(
        {"kr_id": str, "target": str, "rendered_hash": str, "remote_ref": str, "updated_at": str},
        pk=("kr_id", "target"),
    )
    db["writeback_log"].create(
        {
            "id": int,
            "run_id": int,
            "kr_id": str,
            "target": str,
            "action": str,
            "status": str,  # ok | failed | dry_run | unchanged
            "detail": str,
            "at": str,
        },
        pk="id",
    )
    db["meta"].create({"key": str, "value": str}, pk="key")

    db["issues"].create_index(["source", "is_pull_request", "deleted", "created"])
    db["issues"].create_index(["source", "is_pull_request", "deleted", "resolved"])
    db["issues"].create_index(["source", "parent"])
    db["issues"].create_index(["source", "merge_sha"])
    db["issues"].create_index(["source", "stream", "last_run"])
    db["deployments"].create_index(["source", "deleted", "finished"])
    db["deployments"].create_index(["source", "deleted", "created"])
    db["deployments"].create_index(["source", "stream", "last_run"])
    db["incidents"].create_index(["source", "deleted", "opened"])
    db["incidents"].create_index(["source", "deleted", "resolved"])
    db["incidents"].create_index(["source", "stream", "last_run"])
    db["deployment_commits"].create_index(["source", "sha"])
    db["jql_members"].create_index(["source", "item_id"])
    db["kr_values"].create_index(["kr_id", "id"])
    db["kr_values"].create_index(["run_id"])
    db["writeback_log"].create_index(["kr_id", "target", "id"])
