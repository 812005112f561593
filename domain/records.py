"""The records every layer shares (issues, deployments, incidents) and the one parser of their times."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, overload

STATUS_CATEGORIES = ("todo", "in_progress", "done")
DEPLOYMENT_STATUSES = ("success", "failure", "error", "in_progress")
INCIDENT_STATUSES = ("open", "acknowledged", "resolved", "closed", "cancelled")
KINDS = ("issue", "pull_request", "deployment", "incident")


class RecordError(ValueError):
    """A payload could not be normalized (bad date, missing required field)."""


@dataclass(frozen=True, slots=True)
class Sprint:
    id: str
    name: str
    state: str | None = None  # active | closed | future
    start: datetime | None = None
    end: datetime | None = None
    completed: datetime | None = None


@dataclass(slots=True)
class Issue:
    """A Jira issue, a GitHub issue or a GitHub pull request."""

    source: str
    id: str  # immutable system id (Jira issue id, GitHub node/number id)
    key: str  # human key: APP-12, acme/web#12
    title: str
    status_category: str  # todo | in_progress | done
    created: datetime
    status: str | None = None
    type: str | None = None
    updated: datetime | None = None
    resolved: datetime | None = None
    project: str | None = None  # Jira project key, GitHub owner/name
    labels: tuple[str, ...] = ()
    components: tuple[str, ...] = ()
    parent: str | None = None  # parent / epic key
    sprints: tuple[Sprint, ...] = ()
    story_points: float | None = None
    assignee: str | None = None
    url: str | None = None
    is_pull_request: bool = False
    merged_at: datetime | None = None
    merge_sha: str | None = None  # merge commit of a merged PR (lead time)
    raw: dict[str, Any] = field(default_factory=dict)

    kind = "issue"

    @property
    def item_kind(self) -> str:
        return "pull_request" if self.is_pull_request else "issue"


@dataclass(slots=True)
class Deployment:
    """A deployment (GitHub Deployments API, a deploy workflow run, or a release)."""

    source: str
    id: str
    environment: str
    status: str  # success | failure | error | in_progress
    created: datetime
    finished: datetime | None = None  # time of the last success/failure/error status
    sha: str | None = None
    ref: str | None = None
    url: str | None = None
    repo: str | None = None
    origin: str = "deployment"  # deployment | workflow_run | release
    updated: datetime | None = None
    # commits this deployment shipped that the previous successful one did not
    commits: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict)

    kind = "deployment"

    @property
    def item_kind(self) -> str:
        return "deployment"


@dataclass(slots=True)
class Incident:
    """An incident from ServiceNow, PagerDuty (or any incident-like table)."""

    source: str
    id: str
    number: str
    title: str
    status: str  # open | acknowledged | resolved | closed | cancelled
    opened: datetime
    service: str | None = None
    priority: str | None = None
    severity: str | None = None
    urgency: str | None = None
    acknowledged: datetime | None = None
    resolved: datetime | None = None
    closed: datetime | None = None
    updated: datetime | None = None
    reassignment_count: int | None = None
    sla_breached: bool | None = None
    assignment_group: str | None = None
    url: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    kind = "incident"

    @property
    def item_kind(self) -> str:
        return "incident"

    @property
    def created(self) -> datetime:
        return self.opened


Record = Issue | Deployment | Incident


@overload
def utc(value: datetime) -> datetime: ...
@overload
def utc(value: None) -> None: ...
def utc(value: datetime | None) -> datetime | None:
    """Return an aware UTC datetime (naive values are taken as UTC)."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


@overload
def iso(value: datetime) -> str: ...
@overload
def iso(value: None) -> None: ...
def iso(value: datetime | None) -> str | None:
    """The store's time format: UTC ISO-8601 with milliseconds, sortable as text."""
    if value is None:
        return None
    if value.tzinfo is not timezone.utc:
        value = utc(value)
    return value.isoformat(timespec="milliseconds")[:-6] + "Z"  # drop "+00:00"


# 2026-10-05T09:00:00Z, ...T09:00:00.000+0200, ...T09:00:00.123456+02:00: what the APIs send, parsed by
# datetime.fromisoformat directly (fractions of up to 6 digits; anything else takes the general path).
_COMMON_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:?\d\d)")


@lru_cache(maxsize=8192)
def _common_time(text: str) -> datetime | None:
    if _COMMON_TIME.fullmatch(text) is None:
        return None
    try:
        return datetime.fromisoformat(text).astimezone(timezone.utc)
    except ValueError:  # month 13 and the like: the general path says what is wrong
        return None


@overload
def parse_iso(text: str) -> datetime: ...
@overload
def parse_iso(text: None) -> None: ...
def parse_iso(text: str | None) -> datetime | None:
    """Parse any ISO-8601 time (Z, +00:00, +0900, no zone = UTC) into aware UTC."""
    if text is None or text == "":
        return None
    if type(text) is str:
        fast = _common_time(text)
        if fast is not None:
            return fast
    return _parse_general(text)


def _parse_general(text: str) -> datetime:
    """Every shape parse_iso accepts, without the fast path."""
    s = text.strip()
    if s.endswith("Z") or s.endswith("z"):
        s = s[:-1] + "+00:00"
    # +0900 -> +09:00 (Jira's offsets have no colon)
    if len(s) >= 5 and s[-5] in "+-" and s[-4:].isdigit() and "T" in s:
        s = s[:-2] + ":" + s[-2:]
    # fromisoformat in 3.11 accepts 1..6 fraction digits only in some shapes: normalize
    if "." in s:
        head, _, rest = s.partition(".")
        digits = ""
        i = 0
        while i < len(rest) and rest[i].isdigit():
            digits += rest[i]
            i += 1
        tail = rest[i:]
        digits = (digits + "000000")[:6]
        s = f"{head}.{digits}{tail}"
    try:
        value = datetime.fromisoformat(s.replace(" ", "T", 1) if "T" not in s else s)
    except ValueError as exc:
        raise RecordError(f"bad time {text!r}") from exc
    return utc(value)


def parse_time(value: Any, what: str) -> datetime | None:
    """A payload's time string -> aware UTC; None/"" stay None; anything else is a RecordError naming it."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise RecordError(f"bad {what} time {value!r}")
    try:
        return parse_iso(value)
    except RecordError:
        raise RecordError(f"bad {what} time {value!r}") from None
