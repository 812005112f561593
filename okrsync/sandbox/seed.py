"""Build the seeded organisation: Jira, GitHub, ServiceNow and PagerDuty data, deterministic from (seed, scale, now)."""

from __future__ import annotations

import gc
import random
from datetime import datetime

from .model import (
    DAY_MS,
    DONE,
    HOUR_MS,
    IN_PROGRESS,
    IN_REVIEW,
    MIN_MS,
    PEOPLE,
    TEAMS,
    WONT_DO,
    Commit,
    Deployment,
    Release,
    Sprint,
    WorkflowRun,
    pick,
    sha40,
    spread,
)
from .seed_itsm import build_pagerduty, build_servicenow
from .world import DEPLOY_WORKFLOW, Repo, World, new_gh_item, new_jira_issue

SPRINT_MS = 14 * DAY_MS
THINGS = {
    "payments": ("card tokenization", "refund flow", "checkout page", "payment webhook", "invoice export",
                 "3DS challenge", "currency rounding", "payout report"),
    "platform": ("deploy pipeline", "log shipping", "autoscaling", "service mesh", "alert routing",
                 "database backups", "secrets rotation", "build cache"),
    "mobile": ("push notifications", "offline mode", "login screen", "app startup", "deep links",
               "crash reporting", "dark mode", "image cache"),
}
VERBS = {"Story": ("Support", "Add", "Improve", "Redesign", "Enable"),
         "Task": ("Upgrade", "Migrate", "Document", "Clean up", "Configure"),
         "Bug": ("Fix crash in", "Fix timeout in", "Fix wrong totals in", "Fix flaky", "Fix broken")}
JIRA_LABELS = ("customer", "tech-debt", "security", "performance", "frontend", "backend", "ux")
GH_LABELS = ("bug", "enhancement", "documentation", "dependencies", "good first issue")
NAMED_EPICS = (("APP", "Checkout v2", "payments"), ("APP", "Mobile onboarding revamp", "mobile"),
               ("APP", "Observability platform", "platform"), ("OPS", "Runbook automation", "platform"))
NAMED_KEYS = ("APP-100", "APP-101", "APP-102", "OPS-1")  # the keys NAMED_EPICS get (APP starts at 100)
OKR_SUMMARIES = (
    "O1: Enhance software quality and agility", "KR1: Increase release frequency by 40%", "KR2: Ship checkout v2",
    "KR3: Reduce defect density by 25%", "KR4: Reduce average resolution time by 20%", "KR5: Cut MTTA to 10 minutes",
    "O2: Keep the lights on", "KR6: 99.9% availability of Payments API", "KR7: First contact resolution above 60%",
    "KR8: Lead time for changes under 24h", "KR9: Change failure rate below 10%", "KR10: SLA compliance above 95%")
OKR_REPO_ISSUES = ("O1: Enhance software quality and agility", "O2: Keep the lights on",
                   "KR1: Increase release frequency by 40%", "KR2: Ship checkout v2",
                   "KR3: Reduce average resolution time by 20%", "KR4: Lead time for changes under 24h")
def build_world(seed: int, scale: int, now: datetime) -> World:
    w = World(seed, scale, now)
    enabled = gc.isenabled()
    gc.disable()  # hundreds of thousands of small objects: the cyclic collector would rescan them all
    try:
        build_jira(w, random.Random(f"{seed}:jira"))
        build_github(w, random.Random(f"{seed}:github"))
        build_servicenow(w, random.Random(f"{seed}:servicenow"))
        build_pagerduty(w, random.Random(f"{seed}:pagerduty"))
    finally:
        if enabled:
            gc.enable()
    gc.freeze()  # keep the world out of later collections (serving stays fast)
    return w


# -- Jira ---------------------------------------------------------------------------------------------------
def build_jira(w: World, rng: random.Random) -> None:
    now, start = w.now_ms, w.start_ms
    anchor = start - (start // DAY_MS + 3) % 7 * DAY_MS  # the Monday on or before the history start
    anchor -= anchor % DAY_MS
    for board, project, first_id in ((1, "APP", 31), (2, "OPS", 61)):
        k = 0
        while anchor + k * SPRINT_MS <= now + SPRINT_MS:
            s = Sprint(first_id + k, f"{project} Sprint {k + 1}", board, project,
                       anchor + k * SPRINT_MS + 9 * HOUR_MS, anchor + (k + 1) * SPRINT_MS + 9 * HOUR_MS, k)
            if s.end <= now:
                s.state, s.complete = "closed", s.end - rng.randint(1, 20) * HOUR_MS
            elif s.start <= now:
                s.state = "active"
            w.sprints.append(s)
            w.sprint_by_id[s.id] = s
            k += 1
    boards = {p: [s for s in w.sprints if s.project == p] for p in ("APP", "OPS")}
    w.next_num.update({"APP": 100, "OPS": 1, "OKR": 1})
    epics: dict[str, list] = {"APP": [], "OPS": []}
    for project, title, team in NAMED_EPICS:
        e = new_jira_issue(w, project, "Epic", title, start + rng.randint(0, 5) * HOUR_MS)
        e.team, e.status, e.started, e.assignee = team, IN_PROGRESS, e.created + DAY_MS, _member(rng, team)
        e.updated = e.started
        epics[project] += [e.key] * 4  # the named epics get most of the work
    for n, title in enumerate(OKR_SUMMARIES):
        o = new_jira_issue(w, "OKR", "Task", title, w.previous_quarter_ms + n * MIN_MS)
        o.status, o.started, o.updated, o.assignee, o.priority = IN_PROGRESS, o.created, o.created, w.bot, 2
    n_total = max(10, w.scale)
    n_epics = max(0, n_total // 60 - len(NAMED_EPICS))
    times = spread(rng, n_total - len(NAMED_EPICS), start, now, w.current_quarter_ms)
    epic_slots = set(rng.sample(range(len(times)), n_epics)) if n_epics else set()
    points = {"Story": (1.0, 2.0, 2.0, 3.0, 3.0, 3.0, 5.0, 5.0, 8.0, 13.0), "Task": (1.0, 1.0, 2.0, 3.0, 5.0),
              "Bug": (None, None, None, 1.0, 2.0, 3.0)}
    for idx, created in enumerate(times):
        project = "APP" if rng.random() < 0.6 else "OPS"
        if idx in epic_slots:
            team = pick(rng, TEAMS)
            e = new_jira_issue(w, project, "Epic", f"{pick(rng, THINGS[team]).capitalize()} improvements", created)
            e.team, e.assignee = team, _member(rng, team)
            _lifecycle(w, rng, e, 40 * DAY_MS)
            epics[project].append(e.key)
            continue
        r = rng.random()
        type = ("Story" if r < 0.55 else "Task" if r < 0.75 else "Bug") if project == "APP" else \
               ("Task" if r < 0.6 else "Bug" if r < 0.85 else "Story")
        parent = pick(rng, epics[project]) if epics[project] and type != "Bug" and rng.random() < 0.7 else None
        team = w.jira_by_key[parent].team if parent else pick(rng, TEAMS)
        issue = new_jira_issue(w, project, type, f"{pick(rng, VERBS[type])} {pick(rng, THINGS[team])}", created)
        issue.team, issue.parent, issue.points = team, parent, pick(rng, points[type])
        issue.assignee = _member(rng, team) if rng.random() < 0.9 else None
        issue.priority = pick(rng, (0, 1, 1, 2, 2, 2, 2, 2, 3, 4)) if type == "Bug" else pick(rng, (1, 2, 2, 2, 3))
        k = rng.random()
        issue.labels = () if k < 0.5 else (pick(rng, JIRA_LABELS),) if k < 0.85 else \
            tuple(sorted(set(rng.sample(JIRA_LABELS, 2))))
        if rng.random() < 0.02:
            issue.labels += ("kr:KR4",)
        mean = 12 if type == "Bug" else 120 if rng.random() < 0.25 else 30  # a quarter sits in the backlog
        _lifecycle(w, rng, issue, int(mean * (1.5 if parent in NAMED_KEYS else 1) * DAY_MS))
        if rng.random() < (0.8 if project == "APP" else 0.6):
            issue.sprints = _sprint_chain(rng, boards[project], anchor, issue)


_MEMBERS = {team: [i for i, p in enumerate(PEOPLE) if p[2] == team] for team in TEAMS}


def _member(rng: random.Random, team: str) -> int:
    return pick(rng, _MEMBERS[team])


def _lifecycle(w: World, rng: random.Random, issue, mean: int) -> None:
    now = w.now_ms
    d = int(rng.expovariate(1 / mean))
    s = issue.created + int(d * rng.uniform(0.1, 0.5))
    if issue.created + d <= now:
        issue.resolved = issue.created + d
        issue.started = s
        issue.status = DONE if rng.random() < 0.94 else WONT_DO
    elif s <= now:
        issue.started = s
        issue.status = IN_PROGRESS if rng.random() < 0.7 else IN_REVIEW
    last = issue.resolved or issue.started or issue.created
    issue.updated = last + int(rng.random() * min(DAY_MS, now - last))


def _sprint_chain(rng: random.Random, sprints: list[Sprint], anchor: int, issue) -> tuple[int, ...]:
    k = min((issue.created - anchor) // SPRINT_MS, len(sprints) - 1)
    if rng.random() < 0.6 and k + 1 < len(sprints) and not (issue.resolved and issue.resolved < sprints[k + 1].start):
        k += 1
    chain = []
    while k < len(sprints) and len(chain) < 4:
        s = sprints[k]
        chain.append(s.id)
        if s.state != "closed" or (issue.resolved is not None and issue.resolved <= s.complete):
            break
        k += 1
    return tuple(chain)


# -- GitHub -------------------------------------------------------------------------------------------------
def build_github(w: World, rng: random.Random) -> None:
    now, start = w.now_ms, w.start_ms
    n_total = max(10, w.scale)
    web, api, okrs = w.repos["acme/web"], w.repos["acme/api"], w.repos["acme/okrs"]
    for repo in (web, api):
        for name in GH_LABELS + tuple(f"team:{t}" for t in TEAMS) + ("kr:KR5",):
            repo.label_id(name)
        repo.add_commit(Commit(sha40(repo.name, "root"), start - 30 * DAY_MS, "Initial commit", 0, None))
    merges: dict[str, list[tuple[int, int, int]]] = {web.name: [], api.name: []}  # (time, pr number, author)
    for created in spread(rng, n_total, start, now, w.current_quarter_ms):
        repo = web if rng.random() < 0.55 else api
        is_pr = rng.random() < 0.5
        team = pick(rng, TEAMS)
        thing = pick(rng, THINGS[team])
        author = _member(rng, team)
        if is_pr:
            item = new_gh_item(w, repo, f"{pick(rng, ('Add', 'Fix', 'Refactor', 'Speed up'))} {thing}", created, True)
            item.user = author
            item.head_ref = f"{team}/{thing.replace(' ', '-')}-{item.number}"
            d = int(rng.expovariate(1 / ((40 if rng.random() < 0.12 else 2.5) * DAY_MS)))  # some go stale
            if created + d <= now:
                item.state, item.closed = "closed", created + d
                if rng.random() < 0.88:
                    item.merged = item.closed
                    merges[repo.name].append((item.merged, item.number, item.user))
            else:
                item.draft = rng.random() < 0.25
        else:
            kind = rng.random()
            what = pick(rng, ("fails", "is slow", "needs work", "request"))
            item = new_gh_item(w, repo, f"{'Bug: ' if kind < 0.4 else ''}{thing} {what}", created, False)
            item.labels = ["bug" if kind < 0.4 else pick(rng, GH_LABELS)]
            d = int(rng.expovariate(1 / (20 * DAY_MS)))
            if created + d <= now:
                item.state, item.closed = "closed", created + d
                item.state_reason = "completed" if rng.random() < 0.85 else "not_planned"
        item.user = author
        item.labels.append(f"team:{team}")
        if rng.random() < 0.03:
            item.labels.append("kr:KR5")
        item.updated = (item.closed or created) + int(rng.random() * min(DAY_MS, now - (item.closed or created)))
    for repo in (web, api):
        newest = next(it for it in reversed(repo.items) if it.is_pr)  # always one draft under review
        newest.state, newest.closed, newest.merged, newest.draft = "open", None, None, True
        newest.updated = max(newest.updated, newest.created)
        merges[repo.name] = [m for m in merges[repo.name] if m[1] != newest.number]
        events = [(t, "merge", n, a) for t, n, a in merges[repo.name]]
        events += [(t + int(rng.random() * 6 * HOUR_MS), "direct", 0, a) for t, n, a in merges[repo.name]
                   if rng.random() < 0.2]
        for t, kind, number, author in sorted(events):
            item = repo.by_number.get(number)
            if kind == "merge":
                c = Commit(sha40(repo.name, "merge", number), t, f"Merge pull request #{number} from acme/"
                           f"{item.head_ref}\n\n{item.title}", author, number)
                item.merge_sha = c.sha
            else:
                c = Commit(sha40(repo.name, "direct", t), t, "Bump dependencies", author, None)
            repo.add_commit(c)
    n_deploys = max(30, n_total // 4)
    for t in spread(rng, n_deploys, start, now, w.current_quarter_ms, boost=1.4):
        repo = web if rng.random() < 0.6 else api
        add_deployment(w, rng, repo, "production" if rng.random() < 0.55 else "staging", t)
    add_deployment(w, rng, api, "production", now - 2 * MIN_MS)  # still rolling out at `now`
    for n, title in enumerate(OKR_REPO_ISSUES):
        item = new_gh_item(w, okrs, title, w.previous_quarter_ms + n * MIN_MS, False)
        item.body, item.labels, item.user = f"Tracking issue for {title.split(':')[0]}.", ["okr"], w.bot
        okrs.label_id("okr")


def add_deployment(w: World, rng: random.Random, repo: Repo, env: str, t: int) -> Deployment:
    """A deployment of main's head at t: queued, in_progress, then success/failure/error (unless still running)."""
    d = Deployment(repo.name, w.next_id("deployment", 1_000_000_000), repo.head_at(t).sha, env, t, rng.randint(0, 8))
    last = next((p for p in reversed(repo.deployments) if p.environment == env and p.final), None)
    if last is not None and last.final is not None and last.final[0] != "success":
        d.ref = f"hotfix/{last.id}"  # the fix after a failed deploy ships from a hotfix branch (rework)
    sid = lambda: w.next_id("deployment_status", 2_000_000_000)  # noqa: E731
    d.statuses.append((sid(), "queued", t + 2_000))
    d.statuses.append((sid(), "in_progress", t + 20_000))
    end = t + rng.randint(3, 15) * MIN_MS
    r = rng.random()
    final = "success" if r < 0.86 else "failure" if r < 0.96 else "error"
    if end <= w.now_ms:
        d.statuses.append((sid(), final, end))
        if final == "success":
            for prev in reversed(repo.deployments):  # GitHub marks the previous success in the environment inactive
                if prev.environment == env and prev.final and prev.final[0] == "success":
                    if prev.statuses[-1][1] != "inactive":
                        prev.statuses.append((sid(), "inactive", end))
                    break
    repo.deployments.append(d)
    if env == "production":
        run = WorkflowRun(repo.name, w.next_id("run", 5_000_000_000), len(repo.runs) + 1, DEPLOY_WORKFLOW[0],
                          d.sha, t - MIN_MS, d.creator)
        if d.final:
            run.status, run.conclusion, run.updated = "completed", "failure" if final == "error" else final, end
        repo.runs.append(run)
        if d.final and final == "success":
            repo.prod_successes += 1
        if d.final and final == "success" and repo.prod_successes % 3 == 0:
            n = len(repo.releases)
            repo.releases.append(Release(repo.name, w.next_id("release", 90_000_000), f"v1.{n // 10}.{n % 10}",
                                         d.sha, end, end + MIN_MS, d.creator))
    return d
