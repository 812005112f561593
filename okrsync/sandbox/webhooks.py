"""Signed webhooks from the simulators (Jira, GitHub, PagerDuty v3, ServiceNow) when their world changes."""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from okrsync.connectors.base import SourceError
from okrsync.connectors.http import HttpClient, HttpOptions
from okrsync.serve.signatures import digest, sign

from .model import DONE, ISSUE_TYPES, STATUSES, from_ms
from .world import World, new_jira_issue

log = logging.getLogger("okrsync.sandbox.webhooks")

SYSTEMS = ("jira", "github", "servicenow", "pagerduty")
DEMO_SECRET = "sandbox-webhook-secret"  # what `okrsync sandbox --webhooks` signs with unless the env names one
QUEUE_LIMIT = 10_000


def secrets_from_env(sources: dict[str, str]) -> dict[str, str]:
    """Per system: OKRSYNC_SOURCES__<SOURCE>__WEBHOOK_SECRET (the variable `okrsync serve` reads), else the demo's."""
    return {system: os.environ.get(f"OKRSYNC_SOURCES__{source.upper()}__WEBHOOK_SECRET", DEMO_SECRET)
            for system, source in sources.items()}


@dataclass
class Delivery:
    system: str
    event: str  # jira:issue_updated, issues.closed, incident.resolved, incident.update
    body: bytes
    headers: dict[str, str]


@dataclass
class Sent:
    system: str
    event: str
    status: int | None  # None: not delivered (connection failed)
    at: float = field(default_factory=time.time)


class WebhookSender:
    """Posts signed webhooks to `<base_url>/webhooks/<source>` from a background thread (okrsync's HTTP client).

    secrets: system -> secret, or a list of secrets (PagerDuty signs with each, as during a rotation)."""

    def __init__(self, world: World, base_url: str, secrets: dict[str, str | list[str]] | None = None,
                 sources: dict[str, str] | None = None, system_urls: dict[str, str] | None = None,
                 options: HttpOptions | None = None):
        self.world = world
        self.sources = sources or {s: s for s in SYSTEMS}
        self.secrets = secrets if secrets is not None else dict(secrets_from_env(self.sources))
        self.urls = system_urls or {}
        self.client = HttpClient("sandbox webhooks", base_url, secrets=[v for v in self._all_secrets()],
                                 options=options or HttpOptions(connect_timeout=2.0, read_timeout=10.0,
                                                                max_attempts=3, backoff_base=0.2))
        self.sent: list[Sent] = []
        self._queue: queue.Queue[Delivery | None] = queue.Queue(QUEUE_LIMIT)
        self._idle = threading.Event()
        self._idle.set()
        self._thread = threading.Thread(target=self._send_loop, name="sandbox-webhooks", daemon=True)
        self._thread.start()

    def _all_secrets(self) -> list[str]:
        out: list[str] = []
        for v in self.secrets.values():
            out.extend([v] if isinstance(v, str) else v)
        return out

    # -- what changed -> events ------------------------------------------------------------------------
    def advanced(self, summary: dict[str, Any]) -> int:
        """One webhook per change of a Sandbox.advance() round; returns how many were queued."""
        n = 0
        jira = summary.get("jira") or {}
        for action, event in (("created", "jira:issue_created"), ("started", "jira:issue_updated"),
                              ("resolved", "jira:issue_updated")):
            for key in jira.get(action, []):
                n += self.jira(key, event)
        gh = summary.get("github") or {}
        for ref in gh.get("created", []):
            n += self.github_issue(ref, "opened")
        for ref in gh.get("closed", []):
            n += self.github_issue(ref, "closed")
        for ref in gh.get("merged", []):
            n += self.github_issue(ref, "closed", kind="pull_request")
        for dep in gh.get("deployments", []):
            n += self.github_deployment(dep)
        sn = summary.get("servicenow") or {}
        for action in ("opened", "resolved", "closed"):
            for number in sn.get(action, []):
                n += self.servicenow(number, "insert" if action == "opened" else "update")
        pd = summary.get("pagerduty") or {}
        for action in ("triggered", "acknowledged", "resolved"):
            for iid in pd.get(action, []):
                n += self.pagerduty(iid, f"incident.{action}")
        return n

    def jira(self, key: str, event: str = "jira:issue_updated", *, deleted: dict[str, Any] | None = None) -> int:
        with self.world.lock:
            issue = self.world.jira_issue(key)
            if issue is None and deleted is None:
                return 0
            doc = deleted or {
                "id": str(issue.id), "key": issue.key,
                "self": f"{self.urls.get('jira', '')}/rest/api/2/issue/{issue.id}",
                "fields": {"summary": issue.summary, "status": {"name": STATUSES[issue.status][1]},
                           "issuetype": {"name": ISSUE_TYPES[issue.type][1]}, "project": {"key": issue.project},
                           "updated": from_ms(issue.updated).isoformat()}}
        body = {"timestamp": int(time.time() * 1000), "webhookEvent": event, "issue_event_type_name": "issue_generic",
                "user": {"accountId": "sandbox", "displayName": "Sandbox"}, "issue": doc}
        return self._queue_delivery("jira", event, body, {"X-Atlassian-Webhook-Identifier": str(uuid.uuid4())})

    def github_issue(self, ref: str, action: str, kind: str = "issues") -> int:
        repo_name, _, number = ref.partition("#")
        with self.world.lock:
            repo = self.world.repos.get(repo_name)
            it = repo.by_number.get(int(number)) if repo else None
            if it is None:
                return 0
            item = {"id": it.id, "number": it.number, "title": it.title, "state": it.state,
                    "html_url": f"https://github.com/{it.repo}/{'pull' if it.is_pr else 'issues'}/{it.number}",
                    "updated_at": from_ms(it.updated).isoformat()}
        body = {"action": action, ("pull_request" if kind == "pull_request" else "issue"): item,
                "repository": {"full_name": repo_name, "id": repo.id}, "sender": {"login": "sandbox"}}
        return self._github(kind, action, body)

    def github_deployment(self, deployment_id: int, repo_name: str = "acme/web") -> int:
        with self.world.lock:
            repo = self.world.repos.get(repo_name)
            dep = next((d for d in (repo.deployments if repo else []) if d.id == deployment_id), None)
            if dep is None:
                return 0
            state = dep.final[0] if dep.final else "in_progress"
            body = {"action": "created", "deployment_status": {"state": state},
                    "deployment": {"id": dep.id, "sha": dep.sha, "ref": dep.ref, "environment": dep.environment},
                    "repository": {"full_name": repo_name, "id": repo.id}, "sender": {"login": "sandbox"}}
        return self._github("deployment_status", "created", body)

    def _github(self, kind: str, action: str, body: dict[str, Any]) -> int:
        return self._queue_delivery("github", f"{kind}.{action}", body,
                                    {"X-GitHub-Event": kind, "X-GitHub-Delivery": str(uuid.uuid4()),
                                     "User-Agent": "GitHub-Hookshot/sandbox"})

    def servicenow(self, number: str, operation: str = "update") -> int:
        with self.world.lock:
            x = next((i for i in self.world.sn if i.number == number or i.sys_id == number), None)
            if x is None:
                return 0
            body = {"table": "incident", "operation": operation, "sys_id": x.sys_id, "number": x.number,
                    "state": x.state, "sys_updated_on": from_ms(x.updated).strftime("%Y-%m-%d %H:%M:%S")}
        return self._queue_delivery("servicenow", f"incident.{operation}", body,
                                    {"X-Okrsync-Delivery": str(uuid.uuid4())})

    def pagerduty(self, incident_id: str, event_type: str) -> int:
        with self.world.lock:
            x = self.world.pd_by_id.get(incident_id)
            if x is None:
                return 0
            data = {"id": x.id, "type": "incident", "number": x.number, "status": x.status, "title": x.title,
                    "self": f"{self.urls.get('pagerduty', '')}/incidents/{x.id}", "service": {"id": x.service}}
        event_id = str(uuid.uuid4())
        body = {"event": {"id": event_id, "event_type": event_type, "resource_type": "incident",
                          "occurred_at": from_ms(self.world.clock()).isoformat(), "data": data}}
        return self._queue_delivery("pagerduty", event_type, body, {"X-Webhook-Id": event_id})

    # -- sending ---------------------------------------------------------------------------------------
    def _queue_delivery(self, system: str, event: str, doc: dict[str, Any], headers: dict[str, str]) -> int:
        body = json.dumps(doc, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", **headers, **self._signature(system, body)}
        try:
            self._idle.clear()
            self._queue.put_nowait(Delivery(system, event, body, headers))
        except queue.Full:
            log.warning("webhook queue full: %s %s dropped", system, event)
            return 0
        return 1

    def _signature(self, system: str, body: bytes) -> dict[str, str]:
        secret = self.secrets.get(system)
        if not secret:
            return {}
        if isinstance(secret, str):
            return sign(system, secret, body)
        return {"X-PagerDuty-Signature": ",".join(f"v1={digest(s, body)}" for s in secret)}

    def _send_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            status: int | None = None
            try:
                resp = self.client.request("POST", f"webhooks/{self.sources.get(item.system, item.system)}",
                                           data=item.body, headers=item.headers)
                status = resp.status_code
            except SourceError as exc:
                log.warning("%s", exc)
            self.sent.append(Sent(item.system, item.event, status))
            if self._queue.empty():
                self._idle.set()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued webhook was sent (True) or `timeout` s passed."""
        return self._idle.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        self.flush(timeout)
        self._queue.put(None)
        self._thread.join(timeout)
        self.client.close()


class Edits:
    """Single changes to the world, stamped with the wall clock, announced by `sender` when there is one
    (tests and the freshness benchmark; a lost webhook is an edit with `notify=False`)."""

    def __init__(self, world: World, sender: WebhookSender | None = None):
        self.world, self.sender = world, sender

    def _now(self) -> int:
        return max(self.world.clock(), int(time.time() * 1000))

    def new_jira_issue(self, project: str = "APP", type: str = "Bug", summary: str = "Fix a sandbox bug",
                       notify: bool = True) -> str:
        with self.world.lock:
            issue = new_jira_issue(self.world, project, type, summary, self._now())
            self.world.touch()
        if notify and self.sender is not None:
            self.sender.jira(issue.key, "jira:issue_created")
        return issue.key

    def resolve_jira_issue(self, key: str, notify: bool = True) -> None:
        with self.world.lock:
            issue = self.world.jira_issue(key)
            if issue is None:
                raise KeyError(key)
            issue.status, issue.resolved = DONE, self._now()
            issue.updated = issue.resolved
            self.world.touch()
        if notify and self.sender is not None:
            self.sender.jira(key, "jira:issue_updated")

    def delete_jira_issue(self, key: str, notify: bool = True) -> None:
        with self.world.lock:
            issue = self.world.jira_issue(key)
            if issue is None:
                raise KeyError(key)
            self.world.jira.remove(issue)
            self.world.jira_by_key.pop(issue.key, None)
            self.world.jira_by_id.pop(issue.id, None)
            self.world.touch()
        if notify and self.sender is not None:
            self.sender.jira(key, "jira:issue_deleted", deleted={"id": str(issue.id), "key": issue.key,
                                                                 "fields": {"summary": issue.summary}})

    def close_github_issue(self, ref: str, notify: bool = True) -> None:
        """Close acme/web#12 (an issue, not a pull request) now."""
        repo_name, _, number = ref.partition("#")
        with self.world.lock:
            it = self.world.repos[repo_name].by_number[int(number)]
            it.state, it.state_reason = "closed", "completed"
            it.closed = it.updated = self._now()
            self.world.touch()
        if notify and self.sender is not None:
            self.sender.github_issue(ref, "closed")
