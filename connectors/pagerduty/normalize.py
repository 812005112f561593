"""PagerDuty REST v2 incident -> Incident, first acknowledgement from log entries, time windows: pure."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

from okrsync.connectors.paging import halve
from okrsync.domain.records import Incident, RecordError, parse_time

STATUSES = {"triggered": "open", "acknowledged": "acknowledged", "resolved": "resolved"}


def _summary(ref: Any) -> str | None:
    if isinstance(ref, dict):
        s = ref.get("summary") or ref.get("name")
        return str(s) if s else None
    return None


def _time(payload: dict[str, Any], key: str) -> datetime | None:
    return parse_time(payload.get(key), key)


def normalize_incident(p: dict[str, Any], *, source: str, acknowledged: datetime | None = None) -> Incident:
    """One incident object (GET /incidents, /incidents/{id}); acknowledged comes from the log entries."""
    iid = str(p.get("id") or "").strip()
    if not iid:
        raise RecordError("missing id")
    raw_status = str(p.get("status") or "")
    if raw_status not in STATUSES:
        raise RecordError(f"unknown status {raw_status!r}")
    status = STATUSES[raw_status]
    opened = _time(p, "created_at")
    if opened is None:
        raise RecordError("missing created_at")
    changed = _time(p, "last_status_change_at")
    # 2022-era payloads have no resolved_at: the resolving status change is the resolution time
    resolved = (_time(p, "resolved_at") or changed) if status == "resolved" else None
    teams: list[Any] = p["teams"] if isinstance(p.get("teams"), list) else []
    number = p.get("incident_number")
    return Incident(
        source=source,
        id=iid,
        number=str(number) if number is not None else iid,
        title=str(p.get("title") or p.get("summary") or ""),
        status=status,
        opened=opened,
        service=_summary(p.get("service")),
        priority=_summary(p.get("priority")),
        urgency=str(p["urgency"]) if p.get("urgency") else None,
        acknowledged=acknowledged,
        resolved=resolved,
        updated=_time(p, "updated_at") or changed,
        reassignment_count=None,  # PagerDuty has no such counter
        assignment_group=next((s for s in map(_summary, teams) if s), None),
        url=str(p["html_url"]) if p.get("html_url") else None,
        raw=p,
    )


def first_acknowledgement(entries: Iterable[dict[str, Any]]) -> datetime | None:
    """Earliest acknowledge entry; the spec names both acknowledge_log_entry and acknowledgement_log_entry."""
    times = []
    for e in entries:
        if isinstance(e, dict) and str(e.get("type") or "").startswith("acknowledge"):
            t = _time(e, "created_at")
            if t is not None:
                times.append(t)
    return min(times) if times else None


def zulu(when: datetime) -> str:
    """since/until as UTC with a Z (they are otherwise read in the account's time zone)."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def floor_second(when: datetime) -> datetime:
    return when.astimezone(timezone.utc).replace(microsecond=0)


def ceil_second(when: datetime) -> datetime:
    f = floor_second(when)
    return f if f == when else f + timedelta(seconds=1)


def windows(since: datetime, until: datetime, days: int) -> list[tuple[datetime, datetime]]:
    """[since, until) cut into consecutive slices of at most `days` days, whole seconds."""
    lo, hi = floor_second(since), ceil_second(until)
    step = timedelta(days=days)
    out = []
    while lo < hi:
        out.append((lo, min(lo + step, hi)))
        lo = out[-1][1]
    return out


def halves(lo: datetime, hi: datetime) -> tuple[tuple[datetime, datetime], tuple[datetime, datetime]] | None:
    """Split a window in two at a whole second; None when it cannot be split further."""
    return halve(lo, hi)
