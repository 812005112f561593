"""Periods (2026-Q4, 2026-H2, 2026, 2026-11, start/end) and windows: pure functions."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Period:
    """Inclusive calendar dates; times are resolved in a time zone."""

    start: date
    end: date  # inclusive through 23:59:59
    label: str
    kind: str = "range"  # month | quarter | half | year | range ({start, end})

    def bounds(self, tz: str = "UTC") -> tuple[datetime, datetime]:
        """[start, end + 1 day) as aware UTC datetimes."""
        zone = ZoneInfo(tz)
        lo = datetime(self.start.year, self.start.month, self.start.day, tzinfo=zone)
        end_next = self.end + timedelta(days=1)
        hi = datetime(end_next.year, end_next.month, end_next.day, tzinfo=zone)
        return lo.astimezone(timezone.utc), hi.astimezone(timezone.utc)

    def previous(self) -> Period | None:
        """The previous calendar period of the same kind (Q3 for Q4, with its own length); None for ranges."""
        months = _KIND_MONTHS.get(self.kind)
        if months is None:
            return None
        first = self.start.year * 12 + self.start.month - 1 - months
        y, m = divmod(first, 12)
        last_y, last_m = divmod(first + months - 1, 12)
        return Period(date(y, m + 1, 1), _month_end(last_y, last_m + 1), _label(self.kind, y, m + 1), self.kind)

    def previous_bounds(self, tz: str = "UTC") -> tuple[datetime, datetime]:
        """The window of `baseline: auto` (DESIGN §5): the previous calendar period when the period is
        calendar-named, else [start - L, start) with L the full period length."""
        prev = self.previous()
        if prev is not None:
            return prev.bounds(tz)
        lo, hi = self.bounds(tz)
        return lo - (hi - lo), lo


_KIND_MONTHS = {"month": 1, "quarter": 3, "half": 6, "year": 12}


def _label(kind: str, year: int, month: int) -> str:
    if kind == "month":
        return f"{year}-{month:02d}"
    if kind == "quarter":
        return f"{year}-Q{(month - 1) // 3 + 1}"
    if kind == "half":
        return f"{year}-H{(month - 1) // 6 + 1}"
    return str(year)


_QUARTER = re.compile(r"(\d{4})-Q([1-4])")
_HALF = re.compile(r"(\d{4})-H([12])")
_YEAR = re.compile(r"(\d{4})")
_MONTH = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")


def _month_end(year: int, month: int) -> date:
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    return nxt - timedelta(days=1)


def parse_period(value: str | dict[str, object]) -> Period:
    """Parse a period; raise ValueError with what was expected."""
    if isinstance(value, dict):
        unknown = set(value) - {"start", "end"}
        if unknown or "start" not in value or "end" not in value:
            raise ValueError("expected {start: YYYY-MM-DD, end: YYYY-MM-DD}")
        start, end = _as_date(value["start"]), _as_date(value["end"])
        if end < start:
            raise ValueError(f"period end {end} is before its start {start}")
        return Period(start, end, f"{start.isoformat()}..{end.isoformat()}")
    text = str(value).strip()
    if m := _QUARTER.fullmatch(text):
        y, q = int(m[1]), int(m[2])
        return Period(date(y, 3 * q - 2, 1), _month_end(y, 3 * q), text, "quarter")
    if m := _HALF.fullmatch(text):
        y, h = int(m[1]), int(m[2])
        return Period(date(y, 6 * h - 5, 1), _month_end(y, 6 * h), text, "half")
    if _YEAR.fullmatch(text):
        y = int(text)
        return Period(date(y, 1, 1), date(y, 12, 31), text, "year")
    if m := _MONTH.fullmatch(text):
        y, mo = int(m[1]), int(m[2])
        return Period(date(y, mo, 1), _month_end(y, mo), text, "month")
    raise ValueError("expected a period such as 2026-Q4, 2026-H2, 2026, 2026-11 or {start, end}")


def _as_date(value: object) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise ValueError(f"expected a date YYYY-MM-DD, got {value!r}") from exc


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """'15m', '1h30m', '30d', '2w' -> timedelta."""
    s = str(text).strip().lower().replace(" ", "")
    pos, total = 0, 0.0
    for m in _DURATION.finditer(s):
        if m.start() != pos:
            break
        total += float(m[1]) * _UNIT_SECONDS[m[2]]
        pos = m.end()
    if pos != len(s) or pos == 0:
        raise ValueError(f"expected a duration such as 15m, 2h, 30d or 2w, got {text!r}")
    return timedelta(seconds=total)


def expected_fraction(start: datetime, end_exclusive: datetime, now: datetime) -> float:
    """Fraction of the period elapsed, clamped to [0, 1]."""
    length = (end_exclusive - start).total_seconds()
    if length <= 0:
        return 1.0
    return min(1.0, max(0.0, (now - start).total_seconds() / length))


def planned_fraction(start: datetime, milestones: list[tuple[datetime, float]], now: datetime) -> float:
    """Expected progress under a plan: linear between milestones (each reached at its instant), from 0 at
    the period start; the last milestone's value holds after it."""
    points = [(start, 0.0), *sorted(milestones)]
    if now <= start:
        return 0.0
    for (t0, v0), (t1, v1) in zip(points, points[1:]):
        if now <= t1:
            span = (t1 - t0).total_seconds()
            return v1 if span <= 0 else v0 + (v1 - v0) * (now - t0).total_seconds() / span
    return points[-1][1]
