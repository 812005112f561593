"""Periods, windows and durations."""

from datetime import date, datetime, timedelta, timezone

import pytest

from okrsync.config.periods import expected_fraction, parse_duration, parse_period

UTC = timezone.utc


@pytest.mark.parametrize("text,start,end", [
    ("2026-Q1", date(2026, 1, 1), date(2026, 3, 31)),
    ("2026-Q4", date(2026, 10, 1), date(2026, 12, 31)),
    ("2026-H1", date(2026, 1, 1), date(2026, 6, 30)),
    ("2026-H2", date(2026, 7, 1), date(2026, 12, 31)),
    ("2026", date(2026, 1, 1), date(2026, 12, 31)),
    ("2028-02", date(2028, 2, 1), date(2028, 2, 29)),
    ({"start": "2026-10-06", "end": "2026-10-19"}, date(2026, 10, 6), date(2026, 10, 19)),
])
def test_parse_period(text, start, end):
    p = parse_period(text)
    assert (p.start, p.end) == (start, end)


@pytest.mark.parametrize("bad", ["2026-Q5", "Q4", "2026-13", {"start": "2026-10-01"},
                                 {"start": "2026-10-02", "end": "2026-10-01"}])
def test_parse_period_rejects(bad):
    with pytest.raises(ValueError):
        parse_period(bad)


def test_bounds_end_inclusive_and_time_zone():
    p = parse_period("2026-Q4")
    assert p.bounds() == (datetime(2026, 10, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    lo, hi = p.bounds("Europe/Berlin")  # CEST on Oct 1, CET on Jan 1
    assert lo == datetime(2026, 9, 30, 22, tzinfo=UTC)
    assert hi == datetime(2026, 12, 31, 23, tzinfo=UTC)


def test_previous_bounds_is_start_minus_full_length():
    p = parse_period("2026-Q1")  # 90 days
    lo, hi = p.previous_bounds()
    assert hi == datetime(2026, 1, 1, tzinfo=UTC)
    assert lo == datetime(2026, 1, 1, tzinfo=UTC) - timedelta(days=90)


@pytest.mark.parametrize("text,seconds", [("15m", 900), ("1h30m", 5400), ("30d", 2592000), ("2w", 1209600),
                                          ("10s", 10), ("1.5h", 5400)])
def test_parse_duration(text, seconds):
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("bad", ["", "15", "m", "15x", "1h-2m"])
def test_parse_duration_rejects(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


@pytest.mark.parametrize("now,expected", [
    (datetime(2026, 9, 1, tzinfo=UTC), 0.0),
    (datetime(2026, 10, 1, tzinfo=UTC), 0.0),
    (datetime(2026, 11, 16, tzinfo=UTC), 46 / 92),
    (datetime(2027, 1, 1, tzinfo=UTC), 1.0),
    (datetime(2027, 3, 1, tzinfo=UTC), 1.0),
])
def test_expected_fraction(now, expected):
    lo, hi = parse_period("2026-Q4").bounds()
    assert expected_fraction(lo, hi, now) == pytest.approx(expected, abs=1e-12)
