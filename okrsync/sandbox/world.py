"""The seeded organisation in memory: containers, write-back bookkeeping, and plain-data views for tests."""

from __future__ import annotations

import bisect
import threading
import time
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from .model import (
    BOT,
    DAY_MS,
    ISSUE_TYPES,
    PEOPLE,
    POINTS_FIELD,
    PRIORITIES,
    STATUSES,
    UTC,
    Comment,
    Commit,
    Deployment,
    GhItem,
    JiraIssue,
    PdIncident,
    Release,
    SnIncident,
    Sprint,
    User,
    WorkflowRun,
    default_body,
    from_ms,
    previous_quarter_start,
    quarter_start,
    to_ms,
)

REPOS = {"acme/web": 700001, "acme/api": 700002, "acme/okrs": 700003}
DEPLOY_WORKFLOW = ("deploy.yml", 161335, "Deploy")


class Repo:
    __slots__ = ("name", "id", "items", "by_number", "commits", "commit_times", "commit_index", "deployments",
                 "releases", "runs", "labels", "prod_successes")

    def __init__(self, name: str, id: int):
        self.name, self.id = name, id
        self.items: list[GhItem] = []
        self.by_number: dict[int, GhItem] = {}
        self.commits: list[Commit] = []  # linear history of main, oldest first
        self.commit_times: list[int] = []
        self.commit_index: dict[str, int] = {}
        self.deployments: list[Deployment] = []  # oldest first
        self.releases: list[Release] = []
        self.runs: list[WorkflowRun] = []
        self.labels: dict[str, int] = {}  # name -> label id
        self.prod_successes = 0

    def add_commit(self, c: Commit) -> None:
        self.commit_index[c.sha] = len(self.commits)
        self.commits.append(c)
        self.commit_times.append(c.time)

    def head_at(self, t: int) -> Commit:
        i = bisect.bisect_right(self.commit_times, t) - 1
        return self.commits[max(i, 0)]

    def label_id(self, name: str) -> int:
        if name not in self.labels:
            self.labels[name] = 4_000_000_000 + self.id % 1000 * 100_000 + len(self.labels)
        return self.labels[name]


class World:
    """Everything the four simulators serve. Mutate only under `lock`, then call `touch()`."""

    def __init__(self, seed: int, scale: int, now: datetime):
        self.seed, self.scale = seed, scale
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        self.now_ms = to_ms(now)
        self.lock = threading.RLock()
        self.version = 0
        self.advances = 0
        self.live = False  # True: `now` follows the wall clock (Sandbox without an injected now)
        now_utc = now.astimezone(UTC)
        self.current_quarter_ms = to_ms(quarter_start(now_utc))
        self.previous_quarter_ms = to_ms(previous_quarter_start(now_utc))
        self.start_ms = self.previous_quarter_ms - 28 * DAY_MS  # history begins a sprint pair before
        self.jira_tz = ZoneInfo("Europe/Berlin")  # the Jira API user's profile time zone
        self.sn_tz = ZoneInfo("America/Los_Angeles")  # the ServiceNow API user's time zone
        self.pd_tz = ZoneInfo("America/New_York")  # the PagerDuty account time zone
        self.users = [User(i, *p) for i, p in enumerate(PEOPLE)] + [User(len(PEOPLE), *BOT)]
        self.bot = len(PEOPLE)
        self.sprints: list[Sprint] = []
        self.sprint_by_id: dict[int, Sprint] = {}
        self.jira: list[JiraIssue] = []
        self.jira_by_key: dict[str, JiraIssue] = {}
        self.jira_by_id: dict[int, JiraIssue] = {}
        self.next_num: dict[str, int] = {}
        self.comments: dict[str, list[Comment]] = {}
        self.comment_by_id: dict[int, Comment] = {}
        self.properties: dict[str, dict[str, Any]] = {}
        self.repos = {name: Repo(name, rid) for name, rid in REPOS.items()}
        self.sn: list[SnIncident] = []
        self.sn_by_id: dict[str, SnIncident] = {}
        self.sn_refs: dict[str, tuple[str, str]] = {}  # sys_id -> (table, display name)
        self.pd: list[PdIncident] = []
        self.pd_by_id: dict[str, PdIncident] = {}
        self.pd_services: dict[str, tuple[str, str, str]] = {}  # id -> (name, team id, escalation policy id)
        self.pd_teams: dict[str, str] = {}  # id -> name
        self.pd_policies: dict[str, str] = {}
        self.pd_priorities: dict[str, str] = {}  # "P1" -> priority id
        self.counters: dict[str, int] = {}
        self.write_log: list[dict[str, Any]] = []

    # -- bookkeeping ---------------------------------------------------------------------------------------
    @property
    def now(self) -> datetime:
        return from_ms(self.now_ms)

    def next_id(self, name: str, start: int) -> int:
        value = self.counters.get(name, start)
        self.counters[name] = value + 1
        return value

    def touch(self) -> None:
        """Something changed: invalidate every cached query result."""
        self.version += 1

    def record_write(self, system: str, action: str, target: str, **payload: Any) -> None:
        self.write_log.append({"system": system, "action": action, "target": target, "at": from_ms(self.clock()),
                               **payload})

    def clock(self) -> int:
        """Now for client writes and relative queries: the wall clock for a live world, else the injected now."""
        return max(self.now_ms, int(time.time() * 1000)) if self.live else self.now_ms

    def add_jira(self, issue: JiraIssue) -> None:
        self.jira.append(issue)
        self.jira_by_key[issue.key] = issue
        self.jira_by_id[issue.id] = issue

    def jira_issue(self, key_or_id: str) -> JiraIssue | None:
        issue = self.jira_by_key.get(key_or_id.upper())
        if issue is None and key_or_id.isdigit():
            issue = self.jira_by_id.get(int(key_or_id))
        return issue

    # -- plain views (aware UTC datetimes, lists and dicts) ------------------------------------------------
    def period_bounds(self) -> dict[str, datetime]:
        cq = from_ms(self.current_quarter_ms)
        nq = quarter_start(cq + timedelta(days=100))
        return {"previous_start": from_ms(self.previous_quarter_ms), "current_start": cq, "current_end": nq,
                "history_start": from_ms(self.start_ms), "now": self.now}

    def jira_issues(self, project: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [self._jira_view(i) for i in self.jira if project is None or i.project == project]

    def _jira_view(self, i: JiraIssue) -> dict[str, Any]:
        return {
            "id": str(i.id), "key": i.key, "project": i.project, "type": ISSUE_TYPES[i.type][1], "summary": i.summary,
            "status": STATUSES[i.status][1], "status_category": STATUSES[i.status][2],
            "created": from_ms(i.created), "updated": from_ms(i.updated), "resolved": from_ms(i.resolved),
            "labels": list(i.labels), "components": [i.team] if i.project != "OKR" else [], "parent": i.parent,
            "sprints": list(i.sprints),
            "sprint_names": [self.sprint_by_id[s].name for s in i.sprints], "story_points": i.points,
            "points_field": POINTS_FIELD[i.project] if i.points is not None else None,
            # Cloud serves these legacy "Story Points" values as numeric strings (as real sites sometimes do)
            "points_as_string_in_cloud": i.project == "OPS" and i.points is not None and i.id % 20 == 0,
            "assignee": None if i.assignee is None else self.users[i.assignee].name,
            "priority": PRIORITIES[i.priority][1], "fields": dict(i.fields or {}),
        }

    def jira_sprints(self) -> list[dict[str, Any]]:
        return [{"id": s.id, "name": s.name, "state": s.state, "board": s.board, "project": s.project,
                 "start": from_ms(s.start), "end": from_ms(s.end), "complete": from_ms(s.complete)}
                for s in self.sprints]

    def github_items(self, repo: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
        out = []
        with self.lock:
            for r in self.repos.values():
                if repo and r.name != repo:
                    continue
                for it in r.items:
                    if kind and (kind == "pull_request") != it.is_pr:
                        continue
                    out.append(self._gh_view(it))
        return out

    def _gh_view(self, it: GhItem) -> dict[str, Any]:
        return {"repo": it.repo, "number": it.number, "id": it.id, "key": f"{it.repo}#{it.number}",
                "title": it.title, "body": it.body if it.body is not None else default_body(it),
                "state": it.state, "state_reason": it.state_reason,
                "labels": list(it.labels), "created": from_ms(it.created), "updated": from_ms(it.updated),
                "closed": from_ms(it.closed), "is_pull_request": it.is_pr, "merged_at": from_ms(it.merged),
                "merge_commit_sha": it.merge_sha if it.merged else None, "draft": it.draft,
                "comments": [{"id": c[0], "body": c[2], "created": from_ms(c[3]), "updated": from_ms(c[4])}
                             for c in it.comments]}

    def github_issue(self, repo: str, number: int) -> dict[str, Any] | None:
        it = self.repos[repo].by_number.get(number) if repo in self.repos else None
        return None if it is None else self._gh_view(it)

    def github_commits(self, repo: str) -> list[dict[str, Any]]:
        return [{"sha": c.sha, "time": from_ms(c.time), "message": c.message, "pr": c.pr}
                for c in self.repos[repo].commits]

    def github_deployments(self, repo: str | None = None, environment: str | None = None) -> list[dict[str, Any]]:
        out = []
        with self.lock:
            for r in self.repos.values():
                for d in r.deployments:
                    if (repo and r.name != repo) or (environment and d.environment != environment):
                        continue
                    final = d.final
                    out.append({"repo": r.name, "id": d.id, "sha": d.sha, "ref": d.ref, "environment": d.environment,
                                "created": from_ms(d.created), "final_state": final[0] if final else "in_progress",
                                "finished": from_ms(final[1]) if final else None,
                                "statuses": [{"id": s[0], "state": s[1], "created": from_ms(s[2])}
                                             for s in d.statuses]})
        return out

    def github_releases(self, repo: str | None = None) -> list[dict[str, Any]]:
        return [{"repo": rel.repo, "id": rel.id, "tag": rel.tag, "sha": rel.sha, "created": from_ms(rel.created),
                 "published": from_ms(rel.published)}
                for r in self.repos.values() if not repo or r.name == repo for rel in r.releases]

    def github_workflow_runs(self, repo: str | None = None) -> list[dict[str, Any]]:
        return [{"repo": run.repo, "id": run.id, "workflow": run.workflow, "head_sha": run.sha,
                 "created": from_ms(run.created), "updated": from_ms(run.updated), "status": run.status,
                 "conclusion": run.conclusion}
                for r in self.repos.values() if not repo or r.name == repo for run in r.runs]

    def servicenow_incidents(self) -> list[dict[str, Any]]:
        name = lambda sys_id: self.sn_refs.get(sys_id, ("", ""))[1]  # noqa: E731
        with self.lock:
            return [{"sys_id": x.sys_id, "number": x.number, "short_description": x.short_description,
                     "state": x.state, "priority": int(x.priority), "impact": int(x.impact), "urgency": int(x.urgency),
                     "opened": from_ms(x.opened), "resolved": from_ms(x.resolved), "closed": from_ms(x.closed),
                     "updated": from_ms(x.updated), "business_service": name(x.service), "cmdb_ci": name(x.ci),
                     "assignment_group": name(x.group), "reassignment_count": x.reassign,
                     "reopen_count": x.reopen, "made_sla": x.made_sla} for x in self.sn]

    def pagerduty_incidents(self) -> list[dict[str, Any]]:
        with self.lock:
            return [{"id": x.id, "number": x.number, "title": x.title, "status": x.status, "urgency": x.urgency,
                     "priority": x.priority, "service": self.pd_services[x.service][0], "service_id": x.service,
                     "created": from_ms(x.created), "acknowledged": from_ms(x.acked), "resolved": from_ms(x.resolved),
                     "updated": from_ms(x.updated),
                     "log_entries": [{"id": x.log_id(e[0], e[1]), "type": e[0], "created": from_ms(e[1])}
                                     for e in x.log]}
                    for x in self.pd]

    # -- what write-back landed --------------------------------------------------------------------------
    def jira_comments(self, key: str) -> list[dict[str, Any]]:
        return [{"id": str(c.id), "body": c.body, "created": from_ms(c.created), "updated": from_ms(c.updated)}
                for c in self.comments.get(key.upper(), [])]

    def jira_property(self, key: str, name: str) -> Any:
        return self.properties.get(key.upper(), {}).get(name)

    def jira_fields(self, key: str) -> dict[str, Any]:
        issue = self.jira_issue(key)
        return dict(issue.fields or {}) if issue else {}

    def writes(self, system: str | None = None) -> list[dict[str, Any]]:
        """Every write a client made, in order (system, action, target, at, payload keys)."""
        with self.lock:
            return [dict(w) for w in self.write_log if system is None or w["system"] == system]


def new_jira_issue(w: World, project: str, type: str, summary: str, created: int) -> JiraIssue:
    num = w.next_num.get(project, 1)
    w.next_num[project] = num + 1
    issue = JiraIssue(w.next_id("jira_issue", 10000), project, num, type, summary, created)
    w.add_jira(issue)
    return issue


def new_gh_item(w: World, repo: Repo, title: str, created: int, is_pr: bool) -> GhItem:
    number = len(repo.items) + 1
    item = GhItem(repo.name, number, w.next_id("gh_item", 1_500_000_000), title, created, is_pr)
    repo.items.append(item)
    repo.by_number[number] = item
    return item
