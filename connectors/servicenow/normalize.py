"""ServiceNow Table API row -> Incident: pure functions over the all-strings payload."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from okrsync.domain.records import Incident, RecordError

SN_TIME = "%Y-%m-%d %H:%M:%S"

# state codes (KB0564465); 4/5 are the legacy "awaiting ..." states, still open
STATES = {
    "1": "open", "2": "open", "3": "open", "4": "open", "5": "open",
    "6": "resolved", "7": "closed", "8": "cancelled",
}


def value(v: Any) -> str:
    """A field's raw value as text: '' for empty, the sys_id of a {link, value} reference."""
    if v is None:
        return ""
    if isinstance(v, dict):  # reference without sysparm_exclude_reference_link, or display_value=all
        v = v.get("value", "")
        return "" if v is None else str(v)
    return str(v)


def dotted(row: dict[str, Any], path: str) -> Any:
    """A dot-walked field: the flat key the API returns ('assignment_group.name') or a nested one."""
    if path in row:
        return row[path]
    cur: Any = row
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def parse_time(text: Any, field: str = "time") -> datetime | None:
    """'YYYY-MM-DD HH:MM:SS' (UTC, no zone marker) -> aware UTC; '' -> None; anything else is an error."""
    s = value(text).strip()
    if not s:
        return None
    try:
        return datetime.strptime(s, SN_TIME).replace(tzinfo=timezone.utc)
    except ValueError:
        raise RecordError(f"bad {field} {s!r} (expected UTC YYYY-MM-DD HH:MM:SS)") from None


def format_time(when: datetime) -> str:
    """An aware datetime -> the plain UTC literal the Table API reads as UTC in sysparm_query."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).strftime(SN_TIME)


def parse_int(text: Any, field: str = "number") -> int | None:
    s = value(text).strip()
    if not s:
        return None
    try:
        return int(s)
    except ValueError:
        try:
            f = float(s)
        except ValueError:
            raise RecordError(f"bad {field} {s!r} (expected an integer)") from None
        if not f.is_integer():
            raise RecordError(f"bad {field} {s!r} (expected an integer)")
        return int(f)


def parse_bool(text: Any) -> bool | None:
    s = value(text).strip().lower()
    if s in ("true", "1"):
        return True
    if s in ("false", "0"):
        return False
    return None


def text_or_none(v: Any) -> str | None:
    s = value(v).strip()
    return s or None


def state_status(state: Any) -> str:
    s = value(state).strip()
    if s not in STATES:
        raise RecordError(f"unknown state {s!r}")
    return STATES[s]


def raw_payload(row: dict[str, Any]) -> dict[str, Any]:
    """The row as kept in the store: dot-walked keys nested so where: paths such as
    'caller_id.department.name' resolve; a key stays flat when its root is also a plain value."""
    out: dict[str, Any] = {k: v for k, v in row.items() if "." not in k}
    for key in sorted(k for k in row if "." in k):
        parts = key.split(".")
        cur = out
        ok = True
        for part in parts[:-1]:
            if part not in cur:
                cur[part] = {}
            nxt = cur[part]
            if not isinstance(nxt, dict):
                ok = False
                break
            cur = nxt
        if ok:
            cur[parts[-1]] = row[key]
        else:
            out[key] = row[key]
    return out


def incident_url(base_url: str, table: str, sys_id: str) -> str:
    return f"{base_url.rstrip('/')}/nav_to.do?uri={table}.do?sys_id={sys_id}"


def normalize_incident(row: dict[str, Any], *, source: str, base_url: str, table: str = "incident") -> Incident:
    """One Table API row (display_value=false; references as sys_id strings or {link, value}) -> Incident."""
    sys_id = value(row.get("sys_id")).strip()
    if not sys_id:
        raise RecordError("missing sys_id")
    status = state_status(row.get("state"))
    opened = parse_time(row.get("opened_at"), "opened_at") or parse_time(row.get("sys_created_on"), "sys_created_on")
    if opened is None:
        raise RecordError("missing opened_at and sys_created_on")
    resolved_at = parse_time(row.get("resolved_at"), "resolved_at")
    closed_at = parse_time(row.get("closed_at"), "closed_at")
    # An open (or reopened) incident is not resolved even if a stale resolved_at/closed_at is left on it;
    # a cancelled one was never resolved.
    resolved = (resolved_at or closed_at) if status in ("resolved", "closed") else None
    closed = closed_at if status in ("closed", "cancelled") else None
    made_sla = parse_bool(row.get("made_sla"))
    service = text_or_none(dotted(row, "business_service.name")) or text_or_none(dotted(row, "cmdb_ci.name"))
    return Incident(
        source=source,
        id=sys_id,
        number=value(row.get("number")).strip() or sys_id,
        title=value(row.get("short_description")),
        status=status,
        opened=opened,
        service=service,
        priority=text_or_none(row.get("priority")),
        severity=text_or_none(row.get("severity")),
        urgency=text_or_none(row.get("urgency")),
        resolved=resolved,
        closed=closed,
        updated=parse_time(row.get("sys_updated_on"), "sys_updated_on"),
        reassignment_count=parse_int(row.get("reassignment_count"), "reassignment_count"),
        sla_breached=None if made_sla is None else not made_sla,
        assignment_group=text_or_none(dotted(row, "assignment_group.name")),
        url=incident_url(base_url, table, sys_id),
        raw=raw_payload(row),
    )
