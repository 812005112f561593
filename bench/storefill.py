"""A large store built straight through Store.write_page: realistic records of four sources, same schema/indexes.

Shares of n items: Jira issues 45% (10 projects, epics, 2-week sprints, labels, components, points), GitHub
issues + pull requests 30% (10 repos, merged PRs with merge commits), deployments 5% (production/staging, the
PR merge commits they shipped), ServiceNow incidents 12%, PagerDuty incidents 8%. History spans a year before
`NOW`. Raw payloads have the shape and size of the APIs' (a Jira issue ~2 KB). JQL selector members are written
as the Jira connector would. The file is cached under bench/results/ by (n, seed, format version).
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

from okrsync.domain.records import Deployment, Incident, Issue, Record, Sprint
from okrsync.engine.store import Store
from okrsync.mappings.selectors import jql_key

FORMAT = 5
NOW = datetime(2026, 11, 15, 12, 0, tzinfo=timezone.utc)
START = NOW - timedelta(days=400)
PROJECTS = ("APP", "OPS", "WEB", "MOB", "DATA", "PAY", "SEC", "INFRA", "API", "UX")
REPOS = tuple(f"acme/{n}" for n in ("web", "api", "mobile", "infra", "data", "pay", "auth", "search", "docs", "ml"))
TEAMS = ("platform", "payments", "mobile", "data", "security")
LABELS = ("customer", "tech-debt", "security", "performance", "frontend", "backend", "ux", "okr")
TYPES = ("Story", "Story", "Story", "Task", "Task", "Bug", "Bug")
SN_SERVICES = ("Core Network", "Email", "Payments API", "VPN", "Identity", "Storage")
PD_SERVICES = ("Payments API", "Web Frontend", "Core Network", "Search", "Checkout")
SPRINT_DAYS = 14
# JQL selectors the workspace uses, with how the generator decides membership (what Jira would answer)
JQL = {
    "project = APP AND issuetype = Bug": lambda i: i.project == "APP" and i.type == "Bug",
    "project = PAY AND labels = customer": lambda i: i.project == "PAY" and "customer" in i.labels,
    "component = security": lambda i: "security" in i.components,
    "project in (WEB, MOB) AND priority = Highest": lambda i: i.project in ("WEB", "MOB") and
    i.raw["fields"]["priority"]["name"] == "Highest",
    "labels = okr AND statusCategory != Done": lambda i: "okr" in i.labels and i.status_category != "done",
}


def sprints_of(project: str) -> list[Sprint]:
    base = int(hash_of(project) % 7)
    out = []
    k = 0
    start = START - timedelta(days=base)
    while start < NOW + timedelta(days=SPRINT_DAYS):
        end = start + timedelta(days=SPRINT_DAYS)
        state = "closed" if end <= NOW else ("active" if start <= NOW else "future")
        out.append(Sprint(id=str(1000 * (PROJECTS.index(project) + 1) + k), name=f"{project} Sprint {k + 1}",
                          state=state, start=start, end=end, completed=end - timedelta(hours=3) if state == "closed"
                          else None))
        start, k = end, k + 1
    return out


def hash_of(text: str) -> int:
    return sum(ord(c) * 31 ** i for i, c in enumerate(text)) & 0xFFFFFFF


def _when(rng: random.Random) -> datetime:
    # denser recently (the current quarter works more)
    u = rng.random() ** 0.8
    return START + timedelta(seconds=u * (NOW - START).total_seconds())


def _user(rng: random.Random) -> dict[str, Any]:
    n = rng.randrange(40)
    return {"self": f"https://acme.atlassian.net/rest/api/2/user?accountId=5f{n:022d}", "accountId": f"5f{n:022d}",
            "avatarUrls": {s: f"https://avatars.example/u{n}?s={s}" for s in ("48x48", "24x24", "16x16", "32x32")},
            "displayName": f"Person {n}", "active": True, "timeZone": "Europe/Berlin", "accountType": "atlassian"}


def jira_issues(rng: random.Random, n: int) -> Iterator[Issue]:
    sprints = {p: sprints_of(p) for p in PROJECTS}
    epics: dict[str, list[str]] = {p: [] for p in PROJECTS}
    counters = {p: 0 for p in PROJECTS}
    for k in range(n):
        project = PROJECTS[min(int(rng.random() ** 1.6 * len(PROJECTS)), len(PROJECTS) - 1)]
        counters[project] += 1
        key = f"{project}-{counters[project]}"
        created = _when(rng)
        is_epic = rng.random() < 1 / 60
        typ = "Epic" if is_epic else rng.choice(TYPES)
        age = (NOW - created).days
        r = rng.random()
        done = r < min(0.9, age / 40)
        cat = "done" if done else ("in_progress" if r < min(0.95, age / 30) else "todo")
        resolved = min(NOW, created + timedelta(hours=rng.expovariate(1 / 200))) if done else None
        updated = resolved or min(NOW, created + timedelta(hours=rng.random() * 100))
        parent = rng.choice(epics[project]) if epics[project] and not is_epic and rng.random() < 0.7 else None
        if is_epic:
            epics[project].append(key)
        sps = sprints[project]
        i = min(len(sps) - 1, max(0, int((created - sps[0].start).days // SPRINT_DAYS)))
        chain = tuple(sps[i:i + rng.choice((1, 1, 1, 2, 3))]) if rng.random() < 0.7 else ()
        labels = tuple(sorted(set(rng.sample(LABELS, rng.choice((0, 0, 1, 1, 2)))))) + (
            ("kr:KR7",) if rng.random() < 0.01 else ())
        comps = (rng.choice(TEAMS),)
        points = rng.choice((1.0, 2.0, 3.0, 5.0, 8.0, None)) if typ != "Epic" else None
        status = {"done": "Done", "in_progress": "In Progress", "todo": "To Do"}[cat]
        prio = rng.choice(("Highest", "High", "Medium", "Medium", "Low"))
        assignee = _user(rng)
        iid = str(100000 + k)
        raw = {"expand": "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations",
               "id": iid, "self": f"https://acme.atlassian.net/rest/api/3/issue/{iid}", "key": key, "fields": {
                   "summary": f"{typ} {k}: improve the {rng.choice(TEAMS)} flow",
                   "status": {"self": "https://acme.atlassian.net/rest/api/2/status/3", "name": status, "id": "3",
                              "statusCategory": {"key": {"done": "done", "in_progress": "indeterminate",
                                                         "todo": "new"}[cat], "name": status, "colorName": "green"}},
                   "issuetype": {"self": "https://acme.atlassian.net/rest/api/2/issuetype/10001", "id": "10001",
                                 "name": typ, "subtask": False, "hierarchyLevel": 1 if is_epic else 0,
                                 "iconUrl": "https://acme.atlassian.net/images/icons/issuetypes/story.svg"},
                   "project": {"self": f"https://acme.atlassian.net/rest/api/2/project/{project}", "key": project,
                               "name": project.title(), "projectTypeKey": "software", "simplified": False},
                   "created": created.isoformat(), "updated": updated.isoformat(),
                   "resolutiondate": resolved.isoformat() if resolved else None,
                   "labels": list(labels), "components": [{"id": "10100", "name": c} for c in comps],
                   "parent": {"key": parent} if parent else None, "assignee": assignee,
                   "priority": {"name": prio, "id": "3"}, "customfield_10016": points,
                   "customfield_10020": [{"id": int(s.id), "name": s.name, "state": s.state} for s in chain],
                   "customfield_10010": {"value": rng.choice(("Team A", "Team B", "Team C"))}}}
        yield Issue(source="jira", id=iid, key=key, title=raw["fields"]["summary"], status_category=cat,
                    created=created, status=status, type=typ, updated=updated, resolved=resolved, project=project,
                    labels=labels, components=comps, parent=parent, sprints=chain, story_points=points,
                    assignee=assignee["displayName"], url=f"https://acme.atlassian.net/browse/{key}", raw=raw)


def github_items(rng: random.Random, n: int, merged: list) -> Iterator[Issue]:
    numbers = {r: 0 for r in REPOS}
    for k in range(n):
        repo = REPOS[min(int(rng.random() ** 1.4 * len(REPOS)), len(REPOS) - 1)]
        numbers[repo] += 1
        num = numbers[repo]
        created = _when(rng)
        is_pr = rng.random() < 0.5
        closed = created + timedelta(hours=rng.expovariate(1 / (48 if is_pr else 400)))
        closed = closed if closed < NOW else None
        merged_at = closed if is_pr and closed and rng.random() < 0.88 else None
        sha = f"{hash_of(repo + str(num)):08x}{k:032x}" if merged_at else None
        if merged_at:
            merged.append((repo, merged_at, sha))
        labels = (rng.choice(("bug", "enhancement", "documentation")), f"team:{rng.choice(TEAMS)}")
        cat = "done" if (merged_at or (closed and not is_pr)) else ("todo" if closed else "in_progress")
        raw = {"url": f"https://api.github.com/repos/{repo}/issues/{num}", "id": 2_000_000 + k, "number": num,
               "node_id": f"I_kwDO{k:012d}", "title": f"{'PR' if is_pr else 'Issue'} {num} in {repo}",
               "user": {"login": f"dev{k % 50}", "id": k % 50, "type": "User", "site_admin": False,
                        "avatar_url": f"https://avatars.githubusercontent.com/u/{k % 50}?v=4"},
               "labels": [{"id": 4000 + i, "name": name, "color": "ededed", "default": False}
                          for i, name in enumerate(labels)],
               "state": "closed" if closed else "open", "locked": False, "comments": rng.randrange(6),
               "created_at": created.isoformat(), "updated_at": (closed or created).isoformat(),
               "closed_at": closed.isoformat() if closed else None, "author_association": "MEMBER",
               "html_url": f"https://github.com/{repo}/{'pull' if is_pr else 'issues'}/{num}",
               "body": "Details of the change, with a checklist and a link to the design note. " * 3,
               "reactions": {"total_count": 0, "+1": 0, "-1": 0}, "merge_commit_sha": sha}
        yield Issue(source="github", id=str(2_000_000 + k), key=f"{repo}#{num}", title=raw["title"],
                    status_category=cat, created=created, status="closed" if closed else "open",
                    type="pull_request" if is_pr else "issue", updated=closed or created, resolved=closed,
                    project=repo, labels=labels, is_pull_request=is_pr, merged_at=merged_at, merge_sha=sha,
                    url=raw["html_url"], raw=raw)


def deployments(rng: random.Random, n: int, merged: list) -> Iterator[Deployment]:
    by_repo: dict[str, list] = {}
    for repo, at, sha in merged:
        by_repo.setdefault(repo, []).append((at, sha))
    for shas in by_repo.values():
        shas.sort()
    pos = {(r, e): 0 for r in REPOS for e in ("production", "staging")}
    times = sorted(_when(rng) for _ in range(n))
    for k, created in enumerate(times):
        repo = REPOS[min(int(rng.random() ** 1.4 * len(REPOS)), len(REPOS) - 1)]
        env = "production" if rng.random() < 0.55 else "staging"
        shipped = by_repo.get(repo, [])
        start = pos[(repo, env)]
        end = start
        while end < len(shipped) and shipped[end][0] <= created:
            end += 1
        pos[(repo, env)] = end
        commits = tuple(s for _, s in shipped[start:end]) or (f"{k:040x}",)
        finished = created + timedelta(minutes=rng.randint(3, 15))
        status = "success" if rng.random() < 0.86 else rng.choice(("failure", "error"))
        did = str(3_000_000 + k)
        raw = {"url": f"https://api.github.com/repos/{repo}/deployments/{did}", "id": int(did), "sha": commits[-1],
               "ref": "main", "task": "deploy", "environment": env, "created_at": created.isoformat(),
               "creator": {"login": "deploy-bot", "id": 9}, "statuses": [
                   {"state": "in_progress", "created_at": created.isoformat()},
                   {"state": status, "created_at": finished.isoformat()}]}
        yield Deployment(source="github", id=did, environment=env, status=status, created=created, finished=finished,
                         sha=commits[-1], ref="main", repo=repo, updated=finished, commits=commits, raw=raw,
                         url=raw["url"])


def incidents(rng: random.Random, n: int, source: str) -> Iterator[Incident]:
    sn = source == "servicenow"
    for k in range(n):
        opened = _when(rng)
        prio = str(rng.choice((1, 2, 2, 3, 3, 3, 4, 4))) if sn else rng.choice(("P1", "P2", "P3", None))
        hours = rng.expovariate(1 / ({"1": 4, "2": 12, "P1": 3, "P2": 10}.get(prio or "", 40)))
        resolved = opened + timedelta(hours=hours) if opened + timedelta(hours=hours) < NOW else None
        status = "resolved" if resolved else rng.choice(("open", "acknowledged"))
        if sn and resolved and rng.random() < 0.6:
            status = "closed"
        if rng.random() < 0.01:
            status, resolved = "cancelled", None
        acked = opened + timedelta(minutes=rng.expovariate(1 / 8)) if status != "open" else None
        service = rng.choice(SN_SERVICES if sn else PD_SERVICES)
        iid = f"{'sn' if sn else 'PD'}{k:010d}"
        if sn:
            raw = {"sys_id": f"{k:032x}", "number": f"INC{k:07d}", "short_description": f"{service} degraded",
                   "state": "6" if resolved else "2", "priority": prio, "urgency": "2", "impact": "2",
                   "opened_at": opened.strftime("%Y-%m-%d %H:%M:%S"), "reassignment_count": str(rng.choice((0, 0, 1, 2))),
                   "made_sla": "true" if rng.random() < 0.8 else "false", "business_service.name": service,
                   "assignment_group.name": rng.choice(("Network", "Service Desk", "Payments Ops"))}
        else:
            raw = {"id": iid, "incident_number": k, "title": f"{service} alert", "status": status,
                   "urgency": rng.choice(("high", "low")), "created_at": opened.isoformat(),
                   "service": {"id": f"PS{hash_of(service):06d}", "summary": service, "type": "service_reference"},
                   "priority": {"summary": prio} if prio else None, "html_url": f"https://acme.pagerduty.com/incidents/{iid}"}
        yield Incident(source=source, id=iid, number=raw.get("number") or str(k), title=str(raw.get("title") or
                       raw.get("short_description")), status=status, opened=opened, service=service, priority=prio,
                       urgency=raw.get("urgency"), acknowledged=acked, resolved=resolved,
                       closed=resolved if status == "closed" else None, updated=resolved or acked or opened,
                       reassignment_count=int(raw["reassignment_count"]) if sn else None,
                       sla_breached=(raw["made_sla"] == "false") if sn else None, raw=raw)


def build_store(path: Path, n: int, seed: int = 42, page: int = 2000) -> Path:
    """Write n items (cached: an existing file of the same n/seed/format is reused)."""
    if path.exists():
        return path
    tmp = path.with_suffix(".partial")
    for suffix in ("", "-wal", "-shm"):
        Path(str(tmp) + suffix).unlink(missing_ok=True)
    store = Store(tmp)
    rng = random.Random(seed)
    merged: list = []
    members: dict[str, set[str]] = {q: set() for q in JQL}
    shares = [("jira", int(n * 0.45)), ("github", int(n * 0.30)), ("deployments", int(n * 0.05)),
              ("servicenow", int(n * 0.12))]
    shares.append(("pagerduty", n - sum(s for _, s in shares)))
    gens = {"jira": lambda c: jira_issues(rng, c), "github": lambda c: github_items(rng, c, merged),
            "deployments": lambda c: deployments(rng, c, merged),
            "servicenow": lambda c: incidents(rng, c, "servicenow"), "pagerduty": lambda c: incidents(rng, c, "pagerduty")}
    run = store.start_run("bench fill", NOW)
    for name, count in shares:
        batch: list[Record] = []
        for rec in gens[name](count):
            batch.append(rec)
            if name == "jira":
                for q, test in JQL.items():
                    if test(rec):
                        members[q].add(rec.id)
            if len(batch) >= page:
                store.write_page(rec.source, name, batch, run_id=run)
                batch = []
        if batch:
            store.write_page(batch[0].source, name, batch, run_id=run)
    store.write_page("jira", "jql_members", [], run_id=run,
                     memberships=[(jql_key("jira", q), None, ids, q) for q, ids in members.items()])
    for source in ("jira", "github", "servicenow", "pagerduty"):
        store.save_state(source, "items", {"cursor": NOW.strftime("%Y-%m-%dT%H:%M:%S.000Z"), "pending": None})
    store.refresh_stats()  # what the sync engine does after a large read
    store.close()
    tmp.rename(path)
    return path
