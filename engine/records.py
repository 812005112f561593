"""Domain records every connector normalizes into; imports nothing of ours."""

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


PERCENT_UNITS = ("%", "percent")


def _decimals(x: float, limit: int) -> int | None:
    """The fewest decimals that show x exactly, or None when `limit` decimals are not enough."""
    for d in range(limit + 1):
        if abs(round(x, d) - x) <= 1e-9 * max(1.0, abs(x)):
            return d
    return None


def _fixed(x: float, d: int) -> str:
    return f"{x:.{d}f}".rstrip("0").rstrip(".") if d else f"{x:.0f}"


def fmt_number(value: float | None, unit: str | None = None, like: float | None = None) -> str:
    """The one number formatter: a KR number for people, — for no value.

    Fractions with unit '%' read as percentages. A number shows as many digits as it needs to be exact
    (up to 3 decimals), so a target never rounds to another number (99.99%,
    0.999); `like` (the KR's target) lends its digits, and a value that differs from it never looks equal."""
    if value is None:
        return "—"
    pct = unit in PERCENT_UNITS
    x = value * 100 if pct else value
    a = abs(x)
    if not pct and a != 0 and (a < 0.01 or a >= 1e6):
        text = f"{value:.4g}"
    else:
        default = 1 if pct else (0 if float(x).is_integer() else 4 if a < 1 else 2)
        own = _decimals(x, 3)
        d = max(default, own if own is not None else default)
        if like is not None:
            lx = like * 100 if pct else like
            d = max(d, _decimals(lx, 4) or 0)
            while d < 8 and x != lx and round(x, d) == round(lx, d):
                d += 1  # 99.987% next to a 99.99% target must not read 99.99%
        text = _fixed(x, d) if not pct else f"{x:.{d}f}"
        if pct and d > 1:
            text = text.rstrip("0").rstrip(".") if "." in text else text
            if "." not in text:
                text += ".0"
    if pct:
        return f"{text}%"
    return f"{text} {unit}" if unit else text


def plural(n: int, word: str, many: str | None = None) -> str:
    """A count people read: "1 request", "2 requests", "0 objectives" (`many` for an irregular plural)."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


def fmt_pct(value: float | None, decimals: int = 0, none: str = "—") -> str:
    """A fraction as a whole percentage (progress, score, expected pace): 0.625 -> 62%."""
    return none if value is None else f"{value * 100:.{decimals}f}%"


STATUS_LABELS = {
    "achieved": "achieved",
    "on_track": "on track",
    "at_risk": "at risk",
    "off_track": "off track",
    "no_data": "no data",
    "not_started": "not started",
}


def _significant(value: float | None, digits: int) -> float | None:
    if value is None or value == 0:
        return value
    return float(f"{value:.{digits}g}")


@dataclass(frozen=True)
class KRStatus:
    """What write-back targets receive for one key result."""

    kr_id: str
    title: str
    objective_id: str
    objective_title: str
    metric: str
    status: str
    value: float | None
    baseline: float | None
    target: float | None
    progress: float | None
    score: float | None
    expected: float
    items: int
    unit: str | None = None
    period: str | None = None
    window_start: str | None = None
    window_end: str | None = None
    overridden: bool = False
    computed_at: str | None = None  # not part of the fingerprint: it changes every run
    checkin: str | None = None  # the latest check-in as people read it ("2026-11-14 by ana: confidence 60% — …")

    def machine(self) -> dict[str, Any]:
        """The machine-readable status (issue property, webhook body)."""
        return {
            "kr": self.kr_id, "title": self.title, "objective": self.objective_id, "metric": self.metric,
            "status": self.status, "value": self.value, "baseline": self.baseline, "target": self.target,
            "progress": self.progress, "score": self.score, "expected": self.expected, "items": self.items,
            "unit": self.unit, "period": self.period, "overridden": self.overridden, "computed_at": self.computed_at,
            **({"checkin": self.checkin} if self.checkin else {}),
        }

    def fingerprint(self) -> str:
        """Stable hash of what a target shows; unchanged fingerprint = nothing to send."""
        import hashlib
        import json

        body = self.machine()
        body.pop("computed_at")
        # values over a growing window (per week, uptime) and the expected pace move a little every run:
        # compare at the precision people read, so a target is not rewritten for nothing
        for key in ("value", "baseline", "target"):
            body[key] = _significant(body[key], 4)
        for key in ("progress", "score"):
            body[key] = None if body[key] is None else round(body[key], 3)
        body["expected"] = round(self.expected, 2)
        return hashlib.sha1(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()

    @property
    def label(self) -> str:
        return STATUS_LABELS.get(self.status, self.status)
