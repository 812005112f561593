"""advance(): move the world forward deterministically — new and resolved issues, merges, a deploy, incidents."""

from __future__ import annotations

import random
from typing import Any

from .model import (
    DONE,
    IN_PROGRESS,
    PEOPLE,
    TEAMS,
    TODO,
    Commit,
    Deployment,
    Release,
    WorkflowRun,
    from_ms,
    pick,
    sha40,
)
from .seed import THINGS, VERBS, _member
from .seed_itsm import ack_incident, add_pd_incident, add_sn_incident, resolve_pd, resolve_sn
from .world import DEPLOY_WORKFLOW, World, new_gh_item, new_jira_issue

STAMP_WINDOW_MS = 60_000  # changes land in the last minute before the new now (well within a sync's lookback)


def advance(w: World, to_ms: int) -> dict[str, Any]:
    """Move the world's clock to `to_ms` and apply one round of changes; returns what changed."""
    with w.lock:
        new = max(to_ms, w.now_ms + 1)
        lo = max(w.now_ms, new - STAMP_WINDOW_MS)
        rng = random.Random(f"{w.seed}:advance:{w.advances}")
        k = max(2, w.scale // 200)
        times = sorted(lo + 1 + int(rng.random() * (new - lo - 1)) for _ in range(12 * k + 64))
        clock = iter(times)
        stamp = lambda: next(clock, new)  # noqa: E731 - increasing times inside the window
        w.now_ms = new
        summary = {"now": from_ms(new), "jira": _jira(w, rng, stamp, k), "github": _github(w, rng, stamp, k),
                   "servicenow": _servicenow(w, rng, stamp), "pagerduty": _pagerduty(w, rng, stamp)}
        _roll_sprints(w)
        w.advances += 1
        w.touch()
        return summary


def _jira(w: World, rng: random.Random, stamp: Any, k: int) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {"created": [], "started": [], "resolved": []}
    open_issues = [i for i in w.jira if i.resolved is None and i.type != "Epic" and i.project != "OKR"]
    todo = [i for i in open_issues if i.status == TODO]
    doing = [i for i in open_issues if i.status != TODO]
    for i in rng.sample(doing, min(len(doing), k)):
        i.resolved = i.updated = stamp()
        i.status = DONE
        out["resolved"].append(i.key)
    for i in rng.sample(todo, min(len(todo), max(1, k // 2))):
        i.started = i.updated = stamp()
        i.status = IN_PROGRESS
        out["started"].append(i.key)
    active = {s.project: s.id for s in w.sprints if s.state == "active"}
    for n in range(k):
        project = "APP" if n % 3 != 2 else "OPS"
        type = pick(rng, ("Story", "Task", "Bug"))
        parent = "APP-100" if project == "APP" and type != "Bug" and rng.random() < 0.5 else None
        team = "payments" if parent else pick(rng, TEAMS)
        i = new_jira_issue(w, project, type, f"{pick(rng, VERBS[type])} {pick(rng, THINGS[team])}", stamp())
        i.team, i.parent, i.assignee = team, parent, _member(rng, team)
        i.points = None if type == "Bug" else pick(rng, (1.0, 2.0, 3.0, 5.0))
        if project in active and rng.random() < 0.7:
            i.sprints = (active[project],)
        out["created"].append(i.key)
    return out


def _github(w: World, rng: random.Random, stamp: Any, k: int) -> dict[str, list]:
    out: dict[str, list] = {"created": [], "closed": [], "merged": [], "deployments": []}
    for repo in (w.repos["acme/web"], w.repos["acme/api"]):
        open_issues = [it for it in repo.items if it.state == "open" and not it.is_pr]
        for it in rng.sample(open_issues, min(len(open_issues), max(1, k // 2))):
            it.state, it.state_reason = "closed", "completed"
            it.closed = it.updated = stamp()
            out["closed"].append(f"{repo.name}#{it.number}")
        team = pick(rng, TEAMS)
        it = new_gh_item(w, repo, f"{pick(rng, THINGS[team])} needs work", stamp(), False)
        it.user, it.labels = _member(rng, team), ["enhancement", f"team:{team}"]
        out["created"].append(f"{repo.name}#{it.number}")
        for _ in range(max(1, k // 2)):
            team = pick(rng, TEAMS)
            pr = new_gh_item(w, repo, f"Improve {pick(rng, THINGS[team])}", stamp(), True)
            pr.user, pr.labels = _member(rng, team), [f"team:{team}"]
            pr.head_ref = f"{team}/change-{pr.number}"
            pr.state = "closed"
            pr.closed = pr.merged = pr.updated = stamp()
            c = Commit(sha40(repo.name, "merge", pr.number), pr.merged,
                       f"Merge pull request #{pr.number} from acme/{pr.head_ref}\n\n{pr.title}", pr.user, pr.number)
            pr.merge_sha = c.sha
            repo.add_commit(c)
            out["merged"].append(f"{repo.name}#{pr.number}")
    web = w.repos["acme/web"]
    out["deployments"].append(_deploy(w, rng, web, "production", stamp(), stamp()))
    return out


def _deploy(w: World, rng: random.Random, repo: Any, env: str, start: int, end: int) -> int:
    """A successful deployment of main's head (superseding the previous success in the environment)."""
    d = Deployment(repo.name, w.next_id("deployment", 1_000_000_000), repo.head_at(start).sha, env, start,
                   rng.randrange(len(PEOPLE)))
    sid = lambda: w.next_id("deployment_status", 2_000_000_000)  # noqa: E731
    d.statuses += [(sid(), "queued", start + 1), (sid(), "in_progress", start + 2)]
    for prev in reversed(repo.deployments):
        if prev.environment == env and prev.final and prev.final[0] == "success":
            if prev.statuses[-1][1] != "inactive":
                prev.statuses.append((sid(), "inactive", end))
            break
    d.statuses.append((sid(), "success", max(end, start + 3)))
    repo.deployments.append(d)
    run = WorkflowRun(repo.name, w.next_id("run", 5_000_000_000), len(repo.runs) + 1, DEPLOY_WORKFLOW[0], d.sha,
                      start - 1, d.creator)
    run.status, run.conclusion, run.updated = "completed", "success", d.statuses[-1][2]
    repo.runs.append(run)
    repo.prod_successes += 1
    if repo.prod_successes % 3 == 0:
        n = len(repo.releases)
        repo.releases.append(Release(repo.name, w.next_id("release", 90_000_000), f"v1.{n // 10}.{n % 10}", d.sha,
                                     d.statuses[-1][2], d.statuses[-1][2] + 1, d.creator))
    return d.id


def _servicenow(w: World, rng: random.Random, stamp: Any) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {"opened": [], "resolved": [], "closed": []}
    for x in w.sn:
        if x.state == "6" and x.resolved is not None and x.resolved + 5 * 86_400_000 <= w.now_ms:
            x.state, x.closed = "7", stamp()
            x.updated, x.mod_count = x.closed, x.mod_count + 1
            out["closed"].append(x.number)
    open_ones = [x for x in w.sn if x.state in ("1", "2", "3")]
    for x in rng.sample(open_ones, min(len(open_ones), max(1, w.scale // 500))):
        resolve_sn(w, x, stamp(), rng)
        out["resolved"].append(x.number)
    for _ in range(max(1, w.scale // 1000)):
        x = add_sn_incident(w, rng, stamp())
        out["opened"].append(x.number)
    return out


def _pagerduty(w: World, rng: random.Random, stamp: Any) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {"triggered": [], "acknowledged": [], "resolved": []}
    acked = [x for x in w.pd if x.status == "acknowledged"]
    for x in rng.sample(acked, min(len(acked), max(1, w.scale // 1000))):
        resolve_pd(x, stamp())
        out["resolved"].append(x.id)
    triggered = [x for x in w.pd if x.status == "triggered"]
    for x in rng.sample(triggered, min(len(triggered), max(1, w.scale // 1000))):
        ack_incident(x, stamp())
        out["acknowledged"].append(x.id)
    for _ in range(max(1, w.scale // 1000)):
        t = stamp()
        x = add_pd_incident(w, random.Random(f"{w.seed}:pd:{w.advances}:{t}"), t)
        if x.status != "triggered":  # a brand-new incident is still open whatever the seed's dice say
            x.status, x.acked, x.resolved, x.updated = "triggered", None, None, t
            x.log = [e for e in x.log if e[0] not in ("acknowledge_log_entry", "resolve_log_entry")]
        out["triggered"].append(x.id)
    return out


def _roll_sprints(w: World) -> None:
    for s in w.sprints:
        if s.state == "active" and s.end <= w.now_ms:
            s.state, s.complete = "closed", s.end
        elif s.state == "future" and s.start <= w.now_ms:
            s.state = "active"

