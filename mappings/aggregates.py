"""Pure numeric helpers: aggregates (interpolated median, DevLake's lower median, pNN) and interval unions."""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Iterable, Sequence


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default, Excel PERCENTILE.INC)."""
    if not values:
        return None
    xs = sorted(values)
    if len(xs) == 1:
        return float(xs[0])
    pos = (len(xs) - 1) * q
    lo = math.floor(pos)
    hi = math.ceil(pos)
    if lo == hi:
        return float(xs[lo])
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def median_low(values: Sequence[float]) -> float | None:
    """DevLake's DORA median: the largest value whose percent_rank() <= 0.5."""
    if not values:
        return None
    xs = sorted(values)
    return float(xs[(len(xs) - 1) // 2])


_PNN = re.compile(r"p(\d{1,3})")


def aggregate(values: Sequence[float], how: str) -> float | None:
    """Aggregate values; None for an empty list (never 0, never an error)."""
    if not values:
        return None
    if how == "mean":
        return math.fsum(values) / len(values)
    if how == "median":
        return percentile(values, 0.5)
    if how == "median_low":
        return median_low(values)
    if how == "min":
        return float(min(values))
    if how == "max":
        return float(max(values))
    if how == "sum":
        return math.fsum(values)
    m = _PNN.fullmatch(how)
    if m and 0 < int(m[1]) <= 100:
        return percentile(values, int(m[1]) / 100.0)
    raise ValueError(f"unknown aggregate {how!r}")


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """Division where zero or missing gives no value."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def union_seconds(intervals: Iterable[tuple[datetime, datetime]], lo: datetime, hi: datetime) -> float:
    """Length of the union of [start, end) intervals clipped to [lo, hi), in seconds."""
    clipped = sorted(
        (max(s, lo), min(e, hi)) for s, e in intervals if e > lo and s < hi and min(e, hi) > max(s, lo)
    )
    total = 0.0
    cur_s: datetime | None = None
    cur_e: datetime | None = None
    for s, e in clipped:
        if cur_s is None or cur_e is None or s > cur_e:
            if cur_s is not None and cur_e is not None:
                total += (cur_e - cur_s).total_seconds()
            cur_s, cur_e = s, e
        elif e > cur_e:
            cur_e = e
    if cur_s is not None and cur_e is not None:
        total += (cur_e - cur_s).total_seconds()
    return total
