"""Geometry for the report's inline SVG: progress bars and the value-history chart (pure functions)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

from okrsync.config.periods import expected_fraction
from okrsync.domain.records import parse_iso
from okrsync.domain.text import fmt_number

# The chart's drawing box (viewBox units); the SVG scales to its container.
WIDTH, HEIGHT = 560.0, 190.0
MAX_POINTS = 400  # a KR synced every 15 minutes has ~8,800 values a quarter: keep the line light
MAX_MARKERS = 60  # above this, only the latest value gets a dot (with its tooltip)
LEFT, RIGHT, TOP, BOTTOM = 64.0, 16.0, 14.0, 30.0


@dataclass
class Bar:
    """A progress bar in percent of its track: fill = clamp(progress), pace = clamp(expected)."""

    fill: float
    pace: float | None
    empty: bool  # no progress value at all

    @classmethod
    def of(cls, progress: float | None, expected: float | None) -> Bar:
        pace = None if expected is None else round(_clamp(expected) * 100, 2)
        if progress is None:
            return cls(0.0, pace, True)
        return cls(round(_clamp(progress) * 100, 2), pace, False)


@dataclass
class Point:
    x: float
    y: float
    label: str  # tooltip: "2026-11-15 10:00 UTC: 6 deploys/week (on track)"
    status: str


@dataclass
class HLine:
    y: float
    label: str
    kind: str  # baseline | target


@dataclass
class Chart:
    points: list[Point] = field(default_factory=list)
    markers: list[Point] = field(default_factory=list)  # the dots with tooltips
    hlines: list[HLine] = field(default_factory=list)
    pace: tuple[float, float, float, float] | None = None  # x1, y1, x2, y2: where the value should be
    y_ticks: list[tuple[float, str]] = field(default_factory=list)
    x_ticks: list[tuple[float, str, str]] = field(default_factory=list)  # x, text, text-anchor
    count: int = 0  # history rows (points drawn = rows with a value)
    width: float = WIDTH
    height: float = HEIGHT
    left: float = LEFT
    right: float = WIDTH - RIGHT
    top: float = TOP
    bottom: float = HEIGHT - BOTTOM

    @property
    def polyline(self) -> str:
        return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in self.points)


def nice_range(lo: float, hi: float, ticks: int = 4) -> tuple[float, float, float]:
    """Widen [lo, hi] to round tick steps (1, 2, 2.5, 5 x 10^n); never below 0 for non-negative data."""
    if hi - lo < 1e-12:
        pad = abs(hi) * 0.1 or 1.0
        lo, hi = (lo - pad if lo - pad >= 0 or lo < 0 else 0.0), hi + pad
    raw = (hi - lo) / ticks
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw - 1e-12)
    return math.floor(lo / step + 1e-9) * step, math.ceil(hi / step - 1e-9) * step, step


def _clamp(v: float) -> float:
    return min(1.0, max(0.0, v))


def history_chart(rows: list[dict], *, unit: str | None, baseline: float | None, target: float | None,
                  span: tuple[datetime, datetime] | None, direction: str, fmt_time) -> Chart | None:
    """The value over computed_at with baseline/target lines and the expected-pace line; None below 2 values.

    One point per history row up to MAX_POINTS; a longer history is thinned to the last value of each of
    MAX_POINTS equal runs of rows (plus the first), so a 15-minute schedule does not bloat the page.
    """
    data = [(parse_iso(r["computed_at"]), float(r["value"]), r.get("status") or "") for r in rows
            if r.get("value") is not None and r.get("computed_at")]
    if len(data) < 2:
        return None
    chart = Chart(count=len(rows))
    if len(data) > MAX_POINTS:
        # the last value of each of MAX_POINTS equal runs of rows, and the very first value
        keep = sorted({0, *(int((b + 1) * len(data) / MAX_POINTS) - 1 for b in range(MAX_POINTS))})
        data = [data[i] for i in keep]
    times = [d[0].timestamp() for d in data]
    t0, t1 = min(times), max(times)
    by_index = t1 - t0 < 1.0  # recomputed within the same second: spread evenly

    def x_of(i: int, ts: float) -> float:
        frac = i / (len(data) - 1) if by_index else (ts - t0) / (t1 - t0)
        return chart.left + frac * (chart.right - chart.left)

    # the ideal line: baseline at the span's start rising to target at its end (increase/decrease KRs)
    pace_vals: list[float] = []
    if span and baseline is not None and target is not None and direction in ("increase", "decrease"):
        ends = (data[0][0], data[-1][0])
        pace_vals = [baseline + expected_fraction(span[0], span[1], t) * (target - baseline) for t in ends]

    values = [d[1] for d in data] + [v for v in (baseline, target) if v is not None] + pace_vals
    lo, hi, step = nice_range(min(values), max(values))

    def y_of(v: float) -> float:
        return chart.bottom - (v - lo) / (hi - lo) * (chart.bottom - chart.top)

    for i, (when, value, status) in enumerate(data):
        chart.points.append(Point(round(x_of(i, when.timestamp()), 1), round(y_of(value), 1),
                                  f"{fmt_time(when)}: {fmt_number(value, unit)}", status))
    chart.markers = chart.points if len(chart.points) <= MAX_MARKERS else chart.points[-1:]
    if baseline is not None:
        chart.hlines.append(HLine(round(y_of(baseline), 1), f"baseline {fmt_number(baseline, unit)}", "baseline"))
    if target is not None:
        chart.hlines.append(HLine(round(y_of(target), 1), f"target {fmt_number(target, unit)}", "target"))
    if pace_vals:
        chart.pace = (chart.left, round(y_of(pace_vals[0]), 1), chart.right, round(y_of(pace_vals[1]), 1))
    tick_unit = unit if unit in ("%", "percent") else None
    n = int(round((hi - lo) / step))
    for i in range(n + 1):
        v = lo + i * step
        chart.y_ticks.append((round(y_of(v), 1), fmt_number(round(v, 12) + 0.0, tick_unit)))
    first, last = data[0][0], data[-1][0]
    chart.x_ticks = [(chart.left, fmt_time(first), "start"), (chart.right, fmt_time(last), "end")]
    return chart
