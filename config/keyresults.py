"""Models for objectives, key results, selectors, metrics and write-back targets."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, Literal, Self, get_args

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from .periods import parse_duration


class Thresholds(BaseModel):
    """How far behind the expected progress a KR may be: on_track within `on_track`, at_risk within `at_risk`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    on_track: float = 0.10  # on_track when progress >= expected - this
    at_risk: float = 0.25

MetricName = Literal[
    "count",
    "done_ratio",
    "points_done_ratio",
    "points_done",
    "sum",
    "mean",
    "throughput",
    "resolution_time",
    "deployment_frequency",
    "lead_time_for_changes",
    "change_failure_rate",
    "time_to_restore",
    "mtta",
    "first_contact_resolution",
    "sla_compliance",
    "availability",
    "failed_deployment_recovery_time",
    "deployment_rework_rate",
    "ratio",
]
METRICS: tuple[str, ...] = get_args(MetricName)


_ITEMS = ("issue", "pull_request")
_ALL = ("issue", "pull_request", "deployment", "incident")


@dataclass(frozen=True)
class MetricTraits:
    """How a metric is judged (DESIGN §5): its family, which way is better, whether it is a fraction, and the
    record kinds it reads (the first one the source has and the selector fits is the default)."""

    family: Literal["scope", "cumulative", "level", "ratio"]
    better: Literal["higher", "lower"] | None = None
    fraction: bool = False  # a share in [0, 1]: shown as a percentage
    kinds: tuple[str, ...] = ()


# The one table of how each metric behaves. Scope metrics read the whole selection; cumulative ones only grow
# while a period runs (judged by their projection); level metrics are rates, shares and durations (without a
# baseline their target is a line to hold).
TRAITS: dict[str, MetricTraits] = {
    "count": MetricTraits("cumulative", kinds=_ALL),
    "points_done": MetricTraits("cumulative", kinds=_ITEMS),
    "sum": MetricTraits("cumulative", kinds=_ALL),
    "done_ratio": MetricTraits("scope", "higher", fraction=True, kinds=_ITEMS),
    "points_done_ratio": MetricTraits("scope", "higher", fraction=True, kinds=_ITEMS),
    "mean": MetricTraits("level", "higher", kinds=_ALL),
    "throughput": MetricTraits("level", "higher", kinds=("issue", "pull_request", "incident")),
    "deployment_frequency": MetricTraits("level", "higher", kinds=("deployment",)),
    "first_contact_resolution": MetricTraits("level", "higher", fraction=True, kinds=("incident",)),
    "sla_compliance": MetricTraits("level", "higher", fraction=True, kinds=("incident",)),
    "availability": MetricTraits("level", "higher", fraction=True, kinds=("incident", "issue")),
    "change_failure_rate": MetricTraits("level", "lower", fraction=True, kinds=("deployment",)),
    "deployment_rework_rate": MetricTraits("level", "lower", fraction=True, kinds=("deployment",)),
    "resolution_time": MetricTraits("level", "lower", kinds=("issue", "pull_request", "incident")),
    "time_to_restore": MetricTraits("level", "lower", kinds=("incident", "issue")),
    "failed_deployment_recovery_time": MetricTraits("level", "lower", kinds=("deployment",)),
    "mtta": MetricTraits("level", "lower", kinds=("incident",)),
    "lead_time_for_changes": MetricTraits("level", "lower", kinds=("deployment",)),
    "ratio": MetricTraits("ratio"),
}
assert set(TRAITS) == set(METRICS), "every metric has its traits"

_AGGREGATE = re.compile(r"mean|median|median_low|min|max|sum|p([1-9]\d?|100)")
_WINDOW = re.compile(r"period|sprint|rolling\s+\d+(\.\d+)?\s*[dhw]")
_PERCENT = re.compile(r"([+-]?)\s*(\d+(?:\.\d+)?)\s*%")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


Scalar = str | int | float | bool


class Selector(Strict):
    """Every key narrows the set (AND); list values mean "any of" (labels: all of)."""

    source: str
    kind: Literal["issue", "pull_request", "deployment", "incident"] | None = None
    jql: str | None = None
    key: str | list[str] | None = None
    project: str | list[str] | None = None
    repo: str | list[str] | None = None
    type: str | list[str] | None = None
    labels: str | list[str] | None = None
    components: str | list[str] | None = None
    parent: str | list[str] | None = None
    sprint: str | list[str] | None = None
    environment: str | list[str] | None = None
    origin: Literal["deployment", "workflow_run", "release"] | list[str] | None = None
    service: str | list[str] | None = None
    priority: Scalar | list[Scalar] | None = None
    severity: Scalar | list[Scalar] | None = None
    urgency: str | list[str] | None = None
    status: str | list[str] | None = None
    status_category: Literal["todo", "in_progress", "done"] | list[Literal["todo", "in_progress", "done"]] | None = None
    assignee: str | list[str] | None = None
    linked: bool | None = None
    team: str | None = None  # a team of the workspace's `teams:`
    where: dict[str, Any] | None = None


def parse_amount(value: Any, *, relative_ok: bool) -> tuple[str, float]:
    """A target/baseline: number, '90%' (absolute 0.9), '-20%' / '+40%' (relative)."""
    if isinstance(value, bool):
        raise ValueError("expected a number or a percentage")
    if isinstance(value, (int, float)):
        return ("absolute", float(value))
    m = _PERCENT.fullmatch(str(value).strip())
    if m:
        sign, number = m[1], float(m[2]) / 100.0
        if sign:
            if not relative_ok:
                raise ValueError(f"a relative amount ({value}) is only allowed for target")
            return ("relative", number if sign == "+" else -number)
        return ("absolute", number)
    try:
        return ("absolute", float(str(value).strip()))
    except ValueError:
        raise ValueError(
            f"expected a number, a percentage such as 90%, or a relative change such as -20% / +40%, got {value!r}"
        ) from None


class Team(Strict):
    """What belongs to a team: a record matches when it matches any of the lists."""

    repos: list[str] = Field(default_factory=list)        # GitHub owner/name (issues, PRs, deployments)
    projects: list[str] = Field(default_factory=list)     # Jira project keys
    components: list[str] = Field(default_factory=list)   # Jira components
    services: list[str] = Field(default_factory=list)     # ServiceNow business services, PagerDuty services
    groups: list[str] = Field(default_factory=list)       # ServiceNow assignment groups, PagerDuty teams


class Rework(Strict):
    """What marks a deployment as unplanned (deployment_rework_rate): a label on a PR it shipped, or its ref."""

    labels: list[str] = Field(default_factory=lambda: ["hotfix", "rollback", "revert"])
    refs: list[str] = Field(default_factory=lambda: ["hotfix/*", "hotfix-*", "rollback/*", "revert-*"])


def _part_tag(value: Any) -> str:
    return "number" if isinstance(value, (int, float)) and not isinstance(value, bool) else "spec"


class MetricSpec(Strict):
    """A metric over a selection: the KR itself, or a ratio's numerator/denominator."""

    metric: MetricName
    select: Selector | None = None
    window: str | None = None
    aggregate: str | None = None
    field: str | None = None
    weighting: Literal["count", "status"] = "count"
    count_by: Literal["created", "resolved", "updated"] | None = None
    sla_hours: dict[str, float] | None = None
    numerator: RatioPart | None = None
    denominator: RatioPart | None = None
    # DORA: incidents attributed to deployments (change_failure_rate, recovery time, rework)
    failures: Literal["deployments", "incidents", "both"] = "deployments"
    incidents: Selector | None = None
    attribution: str | None = None  # an incident field or raw path naming the deployment (id, sha or ref)
    rework: Rework | None = None

    def leaves(self, inherited: Selector | None = None) -> list[tuple[MetricSpec, Selector | None]]:
        """The metrics this spec reads (a ratio's parts, else itself), each with the selector it reads through."""
        sel = self.select or inherited
        if self.metric != "ratio":
            return [(self, sel)]
        return [leaf for part in (self.numerator, self.denominator) if isinstance(part, MetricSpec)
                for leaf in part.leaves(sel)]

    @field_validator("aggregate")
    @classmethod
    def _aggregate(cls, v: str | None) -> str | None:
        if v is not None and not _AGGREGATE.fullmatch(v):
            raise ValueError("expected one of mean, median, median_low, p90 (any pNN), min, max, sum")
        return v

    @field_validator("window")
    @classmethod
    def _window(cls, v: str | None) -> str | None:
        if v is not None and not _WINDOW.fullmatch(v.strip()):
            raise ValueError("expected period, sprint, or 'rolling 30d' (d, h or w)")
        return None if v is None else v.strip()

    @field_validator("sla_hours", mode="before")
    @classmethod
    def _sla_keys(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {str(k): val for k, val in v.items()}
        return v

    @model_validator(mode="after")
    def _shape(self) -> Self:
        if self.metric == "ratio":
            if self.numerator is None or self.denominator is None:
                raise ValueError("a ratio needs numerator and denominator")
        elif self.numerator is not None or self.denominator is not None:
            raise ValueError("numerator/denominator are for metric: ratio only")
        if self.failures != "deployments" and self.incidents is None:
            raise ValueError(f"failures: {self.failures} needs incidents: (a selector of the incidents to attribute)")
        if self.incidents is not None and self.metric not in (
                "change_failure_rate", "failed_deployment_recovery_time", "deployment_rework_rate"):
            raise ValueError("incidents: is for change_failure_rate, failed_deployment_recovery_time and "
                             "deployment_rework_rate")
        if self.metric in ("sum", "mean") and not self.field:
            raise ValueError(f"metric {self.metric} needs field: (a record field or a raw payload path)")
        return self


RatioPart = Annotated[
    Annotated["MetricSpec", Tag("spec")] | Annotated[float, Tag("number")], Discriminator(_part_tag)
]


class Override(Strict):
    value: float
    reason: str
    until: date | datetime | None = None


class JiraTarget(Strict):
    to: Literal["jira"]
    issue: str
    field: str | None = None  # a numeric field (id or name) set to progress %
    source: str | None = None


class GitHubTarget(Strict):
    to: Literal["github"]
    issue: str  # owner/repo#N
    source: str | None = None

    @field_validator("issue")
    @classmethod
    def _issue(cls, v: str) -> str:
        if not re.fullmatch(r"[^/\s#]+/[^/\s#]+#\d+", v):
            raise ValueError(f"expected owner/repo#N, got {v!r}")
        return v


class WebhookTarget(Strict):
    to: Literal["webhook"]
    url: str | None = None
    url_env: str | None = None  # env var holding the URL (a Slack URL is itself a secret)
    format: Literal["json", "slack"] = "json"
    secret_env: str | None = None  # env var holding the HMAC secret

    @model_validator(mode="after")
    def _one_url(self) -> Self:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("a webhook target needs url: or url_env: (the variable holding the URL), not both")
        return self


WritebackTarget = Annotated[JiraTarget | GitHubTarget | WebhookTarget, Field(discriminator="to")]


class KeyResult(MetricSpec):
    id: str
    title: str
    description: str | None = None
    owner: str | None = None
    unit: str | None = None
    baseline: float | str | None = None  # number, percentage, or 'auto'
    target: float | str
    direction: Literal["increase", "decrease", "maintain_above", "maintain_below"] | None = None
    team: str | None = None  # else the objective's
    weight: float = Field(default=1.0, ge=0)
    plan: dict[date, float | str] | None = None  # milestones {2026-10-31: 20%, ...}: expected follows them
    stale_after: str | None = None  # '14d': flag the KR when its value and check-ins are older than this
    override: Override | None = None
    writeback: list[WritebackTarget] = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", str(v)):
            raise ValueError("expected an id of letters, digits, '.', '_' or '-'")
        return str(v)

    @field_validator("baseline")
    @classmethod
    def _baseline(cls, v: Any) -> Any:
        if v is None or v == "auto":
            return v
        parse_amount(v, relative_ok=False)
        return v

    @field_validator("target")
    @classmethod
    def _target(cls, v: Any) -> Any:
        parse_amount(v, relative_ok=True)
        return v

    @field_validator("stale_after")
    @classmethod
    def _stale_after(cls, v: str | None) -> str | None:
        if v is not None:
            parse_duration(v)
        return v

    @field_validator("plan")
    @classmethod
    def _plan(cls, v: dict[date, float | str] | None) -> dict[date, float | str] | None:
        if v is None:
            return v
        out: dict[date, float | str] = {}
        for day, amount in sorted(v.items()):
            kind, number = parse_amount(amount, relative_ok=False)
            if not 0.0 <= number <= 1.0:
                raise ValueError(f"plan milestone {day}: expected a share of the target between 0% and 100%, "
                                 f"got {amount}")
            out[day] = number
        return out

    @model_validator(mode="after")
    def _relative_needs_baseline(self) -> Self:
        kind, _ = parse_amount(self.target, relative_ok=True)
        if kind == "relative" and self.baseline is None:
            raise ValueError(f"target {self.target} is relative: it needs a baseline (a number or auto)")
        if self.metric == "ratio" and self.baseline is None and self.direction is None:
            raise ValueError(f"key result {self.id}: a ratio without a baseline needs direction: "
                             "(increase, decrease, maintain_above or maintain_below)")
        if TRAITS[self.metric].fraction:
            for name, value in (("target", self.target), ("baseline", self.baseline)):
                if value is None or value == "auto" or isinstance(value, str) and "%" in value:
                    continue
                number = parse_amount(value, relative_ok=True)[1]
                if number > 1:
                    shown = f"{number:g}"
                    raise ValueError(f"{self.metric} is a fraction between 0 and 1: {name} {shown} is above 1 "
                                     f"(did you mean {shown}%?)")
        return self


class Objective(Strict):
    id: str
    title: str
    description: str | None = None
    owner: str | None = None
    parent: str | None = None
    team: str | None = None
    weight: float = Field(default=1.0, ge=0)
    key_results: list[KeyResult] = Field(default_factory=list)
