"""Pure Jira payload -> Issue record: status category, times, sprints (objects and legacy strings), points."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from okrsync.domain.records import Issue, RecordError, Sprint, parse_time

# statusCategory.key -> our category; never derived from status names (they are localized and renamed).
STATUS_CATEGORIES = {"new": "todo", "indeterminate": "in_progress", "done": "done"}

# Keys Jira writes into the legacy sprint string. Splitting only before these keeps commas inside names.
_SPRINT_KEYS = ("id", "rapidViewId", "state", "name", "goal", "startDate", "endDate", "completeDate",
                "activatedDate", "sequence", "autoStartStop", "synced", "incompleteIssuesDestinationId")
_SPRINT_SPLIT = re.compile(r",(?=(?:%s)=)" % "|".join(_SPRINT_KEYS))
_SPRINT_BODY = re.compile(r"^[^\[]*\[(.*)\]\s*$", re.DOTALL)


@dataclass(frozen=True)
class FieldMap:
    """Custom field ids per role; several candidates are read in order, the first non-null wins."""

    story_points: tuple[str, ...] = ()
    sprint: tuple[str, ...] = ()
    epic_link: tuple[str, ...] = ()

    def ids(self) -> list[str]:
        return list(dict.fromkeys([*self.story_points, *self.sprint, *self.epic_link]))


def status_category(status: Any) -> str:
    cat = status.get("statusCategory") if isinstance(status, dict) else None
    key = cat.get("key") if isinstance(cat, dict) else None
    if key not in STATUS_CATEGORIES:
        raise RecordError(f"no usable status category (statusCategory.key = {key!r})")
    return STATUS_CATEGORIES[key]


def story_points(value: Any) -> float | None:
    """Numbers or numeric strings; anything else (empty, text, NaN) is no estimate."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _null(value: Any) -> Any:
    return None if value in (None, "", "<null>") else value


def parse_legacy_sprint(text: str) -> Sprint:
    """'com.atlassian.greenhopper.service.sprint.Sprint@1a2b[id=42,state=CLOSED,name=S 1,...]' -> Sprint."""
    m = _SPRINT_BODY.match(text.strip())
    if not m:
        raise RecordError(f"unreadable sprint value {text[:80]!r}")
    values: dict[str, str] = {}
    for part in _SPRINT_SPLIT.split(m.group(1)):
        key, sep, val = part.partition("=")
        if sep:
            values[key.strip()] = val
    return _sprint(values)


def _sprint(values: dict[str, Any]) -> Sprint:
    sid = _null(values.get("id"))
    if sid is None:
        raise RecordError("sprint without an id")
    state = _null(values.get("state"))
    return Sprint(
        id=str(sid),
        name=str(_null(values.get("name")) or ""),
        state=str(state).lower() if state is not None else None,
        start=parse_time(_null(values.get("startDate")), "sprint start"),
        end=parse_time(_null(values.get("endDate")), "sprint end"),
        completed=parse_time(_null(values.get("completeDate")), "sprint complete"),
    )


_SPRINT_FIELDS = ("id", "name", "state", "startDate", "endDate", "completeDate")
_SPRINTS: dict[tuple[Any, ...], Sprint] = {}  # the same sprint objects come with every issue of the sprint


def _sprint_object(value: dict[str, Any]) -> Sprint:
    key = tuple(value.get(k) for k in _SPRINT_FIELDS)
    try:
        hit = _SPRINTS.get(key)
    except TypeError:  # an unhashable value: parse it the long way (and fail there if it is bad)
        return _sprint(value)
    if hit is None:
        hit = _sprint(value)
        if len(_SPRINTS) >= 4096:
            _SPRINTS.clear()
        _SPRINTS[key] = hit
    return hit


def parse_sprint(value: Any) -> Sprint | None:
    """One sprint value: an object (Cloud, newer DC) or a legacy string (older Server/DC)."""
    if value is None:
        return None
    if isinstance(value, dict):
        return _sprint_object(value)
    if isinstance(value, str):
        return parse_legacy_sprint(value) if value.strip() else None
    raise RecordError(f"unreadable sprint value {value!r}")


def parse_sprints(value: Any) -> tuple[Sprint, ...]:
    """The sprint field: a list of sprint values (or one value); duplicates by id are dropped."""
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    out: dict[str, Sprint] = {}
    for item in items:
        sprint = parse_sprint(item)
        if sprint is not None and sprint.id not in out:
            out[sprint.id] = sprint
    return tuple(out.values())


def first_value(fields: dict[str, Any], ids: tuple[str, ...]) -> Any:
    """The first non-null value among candidate fields."""
    for fid in ids:
        value = fields.get(fid)
        if value not in (None, "", []):
            return value
    return None


def _name(value: Any, key: str = "name") -> str | None:
    return value.get(key) if isinstance(value, dict) else None


def _key_of(value: Any) -> str | None:
    """The epic link is a key string; be lenient with an object carrying one."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, dict):
        return value.get("key")
    return None


def issue_key(payload: Any) -> str:
    """How a payload is named in a skipped-record line."""
    if isinstance(payload, dict):
        return str(payload.get("key") or payload.get("id") or "?")
    return "?"


def normalize_issue(payload: Any, *, source: str, site: str, fields: FieldMap) -> Issue:
    """A search result issue -> Issue. Raises RecordError when it cannot be read."""
    if not isinstance(payload, dict):
        raise RecordError("issue is not an object")
    key, iid = payload.get("key"), payload.get("id")
    if not key:
        raise RecordError("issue without a key")
    if not iid:
        raise RecordError("issue without an id")
    f = payload.get("fields")
    if not isinstance(f, dict):
        raise RecordError("issue without fields")
    created = parse_time(f.get("created"), "created")
    if created is None:
        raise RecordError("issue without a created time")
    status = f.get("status")
    parent = _name(f.get("parent"), "key") or _key_of(first_value(f, fields.epic_link))
    return Issue(
        source=source,
        id=str(iid),
        key=str(key),
        title=str(f.get("summary") or ""),
        status_category=status_category(status),
        created=created,
        status=_name(status),
        type=_name(f.get("issuetype")),
        updated=parse_time(f.get("updated"), "updated"),
        resolved=parse_time(f.get("resolutiondate"), "resolutiondate"),
        project=_name(f.get("project"), "key"),
        labels=tuple(str(x) for x in (f.get("labels") or [])),
        components=tuple(n for n in (_name(c) for c in (f.get("components") or [])) if n),
        parent=parent,
        sprints=parse_sprints(first_value(f, fields.sprint)),
        story_points=story_points(first_value(f, fields.story_points)),
        assignee=_name(f.get("assignee"), "displayName"),
        url=f"{site.rstrip('/')}/browse/{key}",
        raw=payload,
    )
