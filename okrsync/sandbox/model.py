"""Compact in-memory records of the simulated organisation, its constants, and time formatting per API."""

from __future__ import annotations

import hashlib
import random
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

UTC = timezone.utc
DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MIN_MS = 60_000

TEAMS = ("platform", "payments", "mobile")
# (display name, login / DC username, team)
PEOPLE = (
    ("Ana Lima", "alima", "platform"), ("Ben Okafor", "bokafor", "platform"), ("Chen Wei", "cwei", "platform"),
    ("Dara Novak", "dnovak", "payments"), ("Eli Cohen", "ecohen", "payments"), ("Femi Adeyemi", "fadeyemi", "payments"),
    ("Gus Moreau", "gmoreau", "mobile"), ("Hana Sato", "hsato", "mobile"), ("Ivo Petrov", "ipetrov", "mobile"),
)
BOT = ("okrsync bot", "okrsync-bot", "platform")

# Jira catalogues: (id, name, category key); categories as Jira Cloud serves them.
STATUS_CATEGORIES = {
    "new": (2, "new", "blue-gray", "To Do"),
    "indeterminate": (4, "indeterminate", "yellow", "In Progress"),
    "done": (3, "done", "green", "Done"),
}
STATUSES = (("10000", "To Do", "new"), ("3", "In Progress", "indeterminate"), ("10001", "In Review", "indeterminate"),
            ("10002", "Done", "done"), ("10003", "Won't Do", "done"))
TODO, IN_PROGRESS, IN_REVIEW, DONE, WONT_DO = range(5)
# (id, name, subtask, hierarchyLevel, description)
ISSUE_TYPES = {
    "Epic": ("10000", "Epic", False, 1, "A big user story that needs to be broken down."),
    "Story": ("10001", "Story", False, 0, "Functionality or a feature expressed as a user goal."),
    "Task": ("10002", "Task", False, 0, "A small, distinct piece of work."),
    "Bug": ("10004", "Bug", False, 0, "A problem or error."),
}
PRIORITIES = (("1", "Highest"), ("2", "High"), ("3", "Medium"), ("4", "Low"), ("5", "Lowest"))
RESOLUTIONS = {DONE: ("10000", "Done", "Work has been completed on this issue."),
               WONT_DO: ("10001", "Won't Do", "This issue won't be actioned.")}
# key -> (id, name, team); OKR holds the write-back targets.
PROJECTS = {"APP": ("10001", "Acme App", "payments"), "OPS": ("10002", "Operations", "platform"),
            "OKR": ("10003", "OKRs", "platform")}
COMPONENT_IDS = {"platform": "10100", "payments": "10101", "mobile": "10102"}
# Cloud: APP (company-managed) keeps points in "Story point estimate", OPS in the legacy "Story Points" field.
POINTS_FIELD = {"APP": "customfield_10016", "OPS": "customfield_10024", "OKR": "customfield_10016"}


class User:
    __slots__ = ("name", "login", "team", "account_id", "email", "index")

    def __init__(self, index: int, name: str, login: str, team: str):
        self.index, self.name, self.login, self.team = index, name, login, team
        self.account_id = "5f" + hexid("user", login, n=22)
        self.email = f"{login}@acme.example"


class Sprint:
    __slots__ = ("id", "name", "board", "project", "start", "end", "complete", "state", "seq")

    def __init__(self, id: int, name: str, board: int, project: str, start: int, end: int, seq: int):
        self.id, self.name, self.board, self.project, self.start, self.end, self.seq = (
            id, name, board, project, start, end, seq)
        self.complete: int | None = None
        self.state = "future"


class JiraIssue:
    __slots__ = ("id", "key", "project", "num", "type", "summary", "status", "created", "updated", "started",
                 "resolved", "labels", "team", "parent", "sprints", "points", "assignee", "priority", "fields")

    def __init__(self, id: int, project: str, num: int, type: str, summary: str, created: int):
        self.id, self.project, self.num, self.type, self.summary = id, project, num, type, summary
        self.key = f"{project}-{num}"
        self.created = self.updated = created
        self.started: int | None = None
        self.resolved: int | None = None
        self.status = TODO
        self.labels: tuple[str, ...] = ()
        self.team = "platform"
        self.parent: str | None = None  # epic key
        self.sprints: tuple[int, ...] = ()
        self.points: float | None = None
        self.assignee: int | None = None  # index into World.users
        self.priority = 2  # index into PRIORITIES
        self.fields: dict | None = None  # values written by clients (custom fields, description, duedate)

    @property
    def category(self) -> str:
        return STATUSES[self.status][2]


class Comment:
    __slots__ = ("id", "issue", "body", "author", "created", "updated")

    def __init__(self, id: int, issue: str, body: str, author: int, created: int):
        self.id, self.issue, self.body, self.author = id, issue, body, author
        self.created = self.updated = created


class GhItem:
    """A GitHub issue or pull request (they share the number space of a repository)."""

    __slots__ = ("repo", "number", "id", "title", "body", "user", "labels", "state", "state_reason", "created",
                 "updated", "closed", "is_pr", "merged", "merge_sha", "draft", "head_ref", "head_sha", "comments",
                 "assignee")

    def __init__(self, repo: str, number: int, id: int, title: str, created: int, is_pr: bool):
        self.repo, self.number, self.id, self.title, self.created, self.is_pr = repo, number, id, title, created, is_pr
        self.updated = created
        self.body: str | None = None  # None: the seeded default, see default_body()
        self.user = 0
        self.labels: list[str] = []
        self.state = "open"
        self.state_reason: str | None = None
        self.closed: int | None = None
        self.merged: int | None = None
        self.merge_sha: str | None = None
        self.draft = False
        self.head_ref = ""
        self.head_sha = ""
        self.comments: list[tuple[int, int, str, int, int]] = []  # (id, user, body, created, updated)
        self.assignee: int | None = None


def default_body(it: GhItem) -> str:
    team = next((label[5:] for label in it.labels if label.startswith("team:")), "platform")
    return f"{it.title}.\n\nReported by the {team} team."


class Commit:
    __slots__ = ("sha", "time", "message", "author", "pr")

    def __init__(self, sha: str, time: int, message: str, author: int, pr: int | None):
        self.sha, self.time, self.message, self.author, self.pr = sha, time, message, author, pr


class Deployment:
    __slots__ = ("repo", "id", "sha", "ref", "environment", "created", "statuses", "creator")

    def __init__(self, repo: str, id: int, sha: str, environment: str, created: int, creator: int):
        self.repo, self.id, self.sha, self.environment, self.created, self.creator = (
            repo, id, sha, environment, created, creator)
        self.ref = "main"
        self.statuses: list[tuple[int, str, int]] = []  # (id, state, time), oldest first

    @property
    def final(self) -> tuple[str, int] | None:
        """(state, time) of the last success/failure/error status, or None while in progress."""
        for _id, state, t in reversed(self.statuses):
            if state in ("success", "failure", "error"):
                return state, t
        return None

    @property
    def updated(self) -> int:
        return self.statuses[-1][2] if self.statuses else self.created


class Release:
    __slots__ = ("repo", "id", "tag", "sha", "created", "published", "author")

    def __init__(self, repo: str, id: int, tag: str, sha: str, created: int, published: int, author: int):
        self.repo, self.id, self.tag, self.sha, self.created, self.published, self.author = (
            repo, id, tag, sha, created, published, author)


class WorkflowRun:
    __slots__ = ("repo", "id", "number", "workflow", "sha", "created", "started", "updated", "status", "conclusion",
                 "event", "actor")

    def __init__(self, repo: str, id: int, number: int, workflow: str, sha: str, created: int, actor: int):
        self.repo, self.id, self.number, self.workflow, self.sha, self.created, self.actor = (
            repo, id, number, workflow, sha, created, actor)
        self.started = created + 4_000
        self.updated = created
        self.status = "in_progress"
        self.conclusion: str | None = None
        self.event = "push"


class SnIncident:
    __slots__ = ("sys_id", "number", "short_description", "state", "priority", "impact", "urgency", "severity",
                 "opened", "resolved", "closed", "updated", "service", "ci", "group", "assigned_to", "caller",
                 "reassign", "reopen", "made_sla", "mod_count", "category", "close_code")

    def __init__(self, sys_id: str, number: str, short_description: str, opened: int):
        self.sys_id, self.number, self.short_description, self.opened = sys_id, number, short_description, opened
        self.state = "1"
        self.priority = self.impact = self.urgency = self.severity = "3"
        self.resolved: int | None = None
        self.closed: int | None = None
        self.updated = opened
        self.service = self.ci = self.group = self.assigned_to = self.caller = ""
        self.reassign = self.reopen = 0
        self.made_sla = True
        self.mod_count = 1
        self.category = "inquiry"
        self.close_code = ""


class PdIncident:
    __slots__ = ("id", "number", "title", "status", "urgency", "priority", "service", "created", "acked", "resolved",
                 "updated", "assignee", "key", "log")

    def __init__(self, id: str, number: int, title: str, service: str, created: int):
        self.id, self.number, self.title, self.service, self.created = id, number, title, service, created
        self.status = "triggered"
        self.urgency = "high"
        self.priority: str | None = None  # "P1".."P3"
        self.acked: int | None = None
        self.resolved: int | None = None
        self.updated = created
        self.assignee = 0
        self.key = hexid("pd-key", id)
        self.log: list[tuple[str, int, int | None]] = []  # (type, time, agent user index or None), oldest first

    @property
    def last_change(self) -> int:
        return max((t for typ, t, _a in self.log if typ in _STATUS_CHANGES), default=self.created)

    def log_id(self, typ: str, t: int) -> str:
        return pd_id("R", self.id, typ, t, n=25)


_STATUS_CHANGES = ("trigger_log_entry", "acknowledge_log_entry", "resolve_log_entry")


# -- ids and hashing ----------------------------------------------------------------------------------------
def hexid(*parts: object, n: int = 32) -> str:
    return hashlib.sha1(":".join(map(str, parts)).encode()).hexdigest()[:n]


def sha40(*parts: object) -> str:
    return hashlib.sha1(":".join(map(str, parts)).encode()).hexdigest()


_B36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def pd_id(prefix: str, *parts: object, n: int = 13) -> str:
    """PagerDuty-style ids: an upper-case letter then base-36 characters (e.g. Q2U8NVNBMCM7JW)."""
    v = int(hashlib.sha1(":".join(map(str, parts)).encode()).hexdigest(), 16)
    out = []
    for _ in range(n):
        v, r = divmod(v, 36)
        out.append(_B36[r])
    return prefix + "".join(out)


# -- time ---------------------------------------------------------------------------------------------------
def to_ms(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(round(value.timestamp() * 1000))


def from_ms(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)


def jira_time(ms: int | None, tz: ZoneInfo) -> str | None:
    """Jira's 2026-10-05T09:00:00.000+0200 (the offset of the API user's profile time zone, DST included)."""
    if ms is None:
        return None
    d = datetime.fromtimestamp(ms // 1000, tz)
    off = int(d.utcoffset().total_seconds()) // 60  # type: ignore[union-attr]
    sign = "-" if off < 0 else "+"
    off = abs(off)
    return (f"{d.year:04d}-{d.month:02d}-{d.day:02d}T{d.hour:02d}:{d.minute:02d}:{d.second:02d}.{ms % 1000:03d}"
            f"{sign}{off // 60:02d}{off % 60:02d}")


def gh_time(ms: int | None) -> str | None:
    return None if ms is None else f"{datetime.fromtimestamp(ms // 1000, UTC):%Y-%m-%dT%H:%M:%SZ}"


def sn_time(ms: int | None) -> str:
    """ServiceNow raw values: UTC, no zone marker, '' when empty."""
    return "" if ms is None else f"{datetime.fromtimestamp(ms // 1000, UTC):%Y-%m-%d %H:%M:%S}"


def pd_time(ms: int | None, tz: ZoneInfo | None = None) -> str | None:
    if ms is None:
        return None
    if tz is None:
        return gh_time(ms)
    d = datetime.fromtimestamp(ms // 1000, tz)
    return gh_time(ms) if not d.utcoffset() else d.isoformat()  # UTC renders with Z, others with +hh:mm


def quarter_start(d: datetime) -> datetime:
    return datetime(d.year, 3 * ((d.month - 1) // 3) + 1, 1, tzinfo=UTC)


def previous_quarter_start(d: datetime) -> datetime:
    q = quarter_start(d)
    return quarter_start(q - timedelta(days=1))


# -- generation helpers ----------------------------------------------------------------------------------
def spread(rng: random.Random, n: int, lo: int, hi: int, boost_from: int, boost: float = 1.25) -> list[int]:
    """n sorted times in [lo, hi], `boost` times denser from boost_from on (things speed up this quarter)."""
    a, b = max(0, boost_from - lo), max(0, hi - boost_from) * boost
    p_a = a / (a + b) if a + b else 1.0
    out = []
    for _ in range(n):
        u = rng.random()
        if u < p_a:
            out.append(lo + int(u / p_a * (boost_from - lo)))
        else:
            out.append(boost_from + int((u - p_a) / (1 - p_a) * (hi - boost_from)))
    out.sort()
    return out


def pick(rng: random.Random, seq):
    return seq[int(rng.random() * len(seq))]
