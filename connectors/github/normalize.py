"""Pure GitHub payload -> Issue / Deployment normalizers (no I/O)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from okrsync.domain.records import Deployment, Issue, RecordError, parse_iso

FINAL_STATES = ("success", "failure", "error")  # deployment status states that are a result
RUN_FAILURE = ("failure", "timed_out", "startup_failure")
_SHA = re.compile(r"[0-9a-f]{40}")


def _req(payload: dict[str, Any], key: str) -> Any:
    value = payload.get(key)
    if value is None or value == "":
        raise RecordError(f"missing {key}")
    return value


def _time(payload: dict[str, Any], key: str) -> datetime | None:
    text = payload.get(key)
    return parse_iso(text) if text else None


def _time_of(payload: dict[str, Any], key: str) -> datetime:
    """A required time: a RecordError names the field when it is missing."""
    return parse_iso(str(_req(payload, key)))


def record_key(payload: Any, repo: str, kind: str = "") -> str:
    """How a record is named in the run summary when it cannot be parsed."""
    if isinstance(payload, dict):
        if payload.get("number") is not None:
            return f"{repo}#{payload['number']}"
        if payload.get("id") is not None:
            return f"{repo} {kind or 'item'} {payload['id']}".strip()
    return f"{repo} {kind or 'item'} (no id)"


def is_pull_request(payload: dict[str, Any]) -> bool:
    """An item of the issues list that is a PR. Old payloads carry `pull_request` with null URLs on plain issues."""
    pr = payload.get("pull_request")
    return isinstance(pr, dict) and bool(pr.get("url") or pr.get("html_url"))


def _labels(payload: dict[str, Any]) -> tuple[str, ...]:
    out = []
    for label in payload.get("labels") or []:
        name = label.get("name") if isinstance(label, dict) else label
        if name:
            out.append(str(name))
    return tuple(out)


def _assignee(payload: dict[str, Any]) -> str | None:
    one = payload.get("assignee")
    if isinstance(one, dict) and one.get("login"):
        login: str = one["login"]
        return login
    for user in payload.get("assignees") or []:
        if isinstance(user, dict) and user.get("login"):
            login = user["login"]
            return login
    return None


def _issue_type(payload: dict[str, Any]) -> str | None:
    t = payload.get("type")
    return t.get("name") if isinstance(t, dict) else None


def normalize_issue(payload: dict[str, Any], source: str, repo: str) -> Issue:
    """An item of GET /repos/{o}/{r}/issues that is not a pull request."""
    state = _req(payload, "state")
    closed = state == "closed"
    return Issue(
        source=source, id=str(_req(payload, "id")), key=f"{repo}#{_req(payload, 'number')}",
        title=str(payload.get("title") or ""), status=state, status_category="done" if closed else "todo",
        type=_issue_type(payload), created=_time_of(payload, "created_at"), updated=_time(payload, "updated_at"),
        resolved=_time(payload, "closed_at") if closed else None, project=repo, labels=_labels(payload),
        assignee=_assignee(payload), url=payload.get("html_url"), raw=payload,
    )


_REPO_KEPT = ("id", "name", "full_name", "html_url", "private", "default_branch")


def stable_pull(payload: dict[str, Any]) -> dict[str, Any]:
    """A PR payload as kept in the store: head.repo and base.repo cut to their identity. The whole repository
    object is embedded there, and its counters (stars, open issues, pushed_at, updated_at) move with every
    push to the repo, so keeping them would rewrite every PR on every sync."""
    out = None
    for side in ("head", "base"):
        ref = payload.get(side)
        if isinstance(ref, dict) and isinstance(ref.get("repo"), dict):
            out = out if out is not None else dict(payload)
            out[side] = {**ref, "repo": {k: ref["repo"][k] for k in _REPO_KEPT if k in ref["repo"]}}
    return payload if out is None else out


def normalize_pull(payload: dict[str, Any], source: str, repo: str) -> Issue:
    """An item of GET /repos/{o}/{r}/pulls. Done only when merged; closed unmerged is todo."""
    state = _req(payload, "state")
    merged_at = _time(payload, "merged_at")
    resolved: datetime | None
    if merged_at is not None:
        status, category, resolved = "merged", "done", merged_at
    elif state == "closed":
        status, category, resolved = state, "todo", _time(payload, "closed_at")
    else:
        status, category, resolved = state, "in_progress", None
    return Issue(
        source=source, id=str(_req(payload, "id")), key=f"{repo}#{_req(payload, 'number')}",
        title=str(payload.get("title") or ""), status=status, status_category=category, type=_issue_type(payload),
        created=_time_of(payload, "created_at"), updated=_time(payload, "updated_at"), resolved=resolved,
        project=repo, labels=_labels(payload), assignee=_assignee(payload), url=payload.get("html_url"),
        is_pull_request=True, merged_at=merged_at,
        # an unmerged PR's merge_commit_sha is GitHub's test merge: it never shipped
        merge_sha=payload.get("merge_commit_sha") if merged_at is not None else None,
        raw=stable_pull(payload),
    )


def deployment_result(statuses: list[dict[str, Any]]) -> tuple[str, datetime | None, bool]:
    """(status, finished, settled) from a deployment's statuses, in any order.

    The result is the latest success/failure/error status; `inactive` is not a result. Without one the
    deployment is in_progress; settled tells whether it can still change (an inactive-only deployment cannot).
    """
    ordered = sorted(statuses, key=lambda s: (_time_of(s, "created_at"), int(s.get("id") or 0)))
    finals = [s for s in ordered if s.get("state") in FINAL_STATES]
    if finals:
        last = finals[-1]
        return last["state"], _time_of(last, "created_at"), True
    return "in_progress", None, bool(ordered) and ordered[-1].get("state") == "inactive"


def normalize_deployment(payload: dict[str, Any], statuses: list[dict[str, Any]], source: str,
                         repo: str) -> Deployment:
    """GET .../deployments item + its GET .../deployments/{id}/statuses list."""
    status, finished, _ = deployment_result(statuses)
    latest = max(statuses, key=lambda s: (_time_of(s, "created_at"), int(s.get("id") or 0)), default=None)
    url = None
    if latest is not None:
        url = latest.get("log_url") or latest.get("target_url") or latest.get("environment_url")
    updated = max((t for t in (_time(payload, "updated_at"), _time(latest, "created_at") if latest else None) if t),
                  default=None)
    return Deployment(
        source=source, id=f"d{_req(payload, 'id')}", environment=str(_req(payload, "environment")), status=status,
        created=_time_of(payload, "created_at"), finished=finished, sha=payload.get("sha"),
        ref=payload.get("ref"), url=url or payload.get("url"), repo=repo, origin="deployment", updated=updated,
        raw={**payload, "statuses": statuses},
    )


def normalize_release(payload: dict[str, Any], source: str, repo: str, environment: str) -> Deployment | None:
    """A published release as a successful deployment; drafts are not releases yet (None).

    It happens when published: created and finished are `published_at`. The payload's `created_at` is the date
    of the release's commit, not of the release (GitHub's "Get the latest release" documentation); it stays in raw.
    """
    if payload.get("draft"):
        return None
    commitish = str(payload.get("target_commitish") or "")
    published = parse_iso(_req(payload, "published_at"))
    return Deployment(
        source=source, id=f"release:{_req(payload, 'id')}", environment=environment, status="success",
        created=published, finished=published,
        sha=commitish if _SHA.fullmatch(commitish) else None, ref=payload.get("tag_name"),
        url=payload.get("html_url"), repo=repo, origin="release",
        updated=_time(payload, "updated_at") or _time(payload, "published_at"), raw=payload,
    )


def normalize_run(payload: dict[str, Any], source: str, repo: str, environment: str) -> Deployment | None:
    """A deploy workflow run; cancelled/skipped/neutral/stale/action_required runs are no deployment (None)."""
    run_id = _req(payload, "id")
    if payload.get("status") == "completed":
        conclusion = payload.get("conclusion")
        if conclusion == "success":
            status = "success"
        elif conclusion in RUN_FAILURE:
            status = "failure"
        else:
            return None
        finished = _time_of(payload, "updated_at")
    else:
        status, finished = "in_progress", None
    return Deployment(
        source=source, id=f"run:{run_id}", environment=environment, status=status,
        created=_time(payload, "run_started_at") or _time_of(payload, "created_at"), finished=finished,
        sha=payload.get("head_sha"), ref=payload.get("head_branch"), url=payload.get("html_url"), repo=repo,
        origin="workflow_run", updated=_time(payload, "updated_at"), raw=payload,
    )
