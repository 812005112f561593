"""Periods, windows and durations."""

from datetime import date, datetime, timedelta, timezone

import pytest

from okrsync.config.periods import expected_fraction, parse_duration, parse_period, planned_fraction

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


@pytest.mark.parametrize("period,prev_label,lo,hi", [
    # the previous calendar period of the same kind, with its own length (DESIGN §5)
    ("2027-Q1", "2026-Q4", date(2026, 10, 1), date(2027, 1, 1)),   # 92 days before a 90-day quarter
    ("2026-Q4", "2026-Q3", date(2026, 7, 1), date(2026, 10, 1)),
    ("2028-Q2", "2028-Q1", date(2028, 1, 1), date(2028, 4, 1)),    # leap year: 91 days
    ("2026-H1", "2025-H2", date(2025, 7, 1), date(2026, 1, 1)),
    ("2026-H2", "2026-H1", date(2026, 1, 1), date(2026, 7, 1)),
    ("2027", "2026", date(2026, 1, 1), date(2027, 1, 1)),
    ("2026-03", "2026-02", date(2026, 2, 1), date(2026, 3, 1)),    # 28 days before 31
    ("2028-03", "2028-02", date(2028, 2, 1), date(2028, 3, 1)),    # 29 days
    ("2027-01", "2026-12", date(2026, 12, 1), date(2027, 1, 1)),
])
def test_previous_bounds_of_a_calendar_period_is_the_previous_calendar_period(period, prev_label, lo, hi):
    p = parse_period(period)
    assert p.previous() is not None and p.previous().label == prev_label
    assert p.previous_bounds() == (datetime(lo.year, lo.month, lo.day, tzinfo=UTC),
                                   datetime(hi.year, hi.month, hi.day, tzinfo=UTC))


def test_previous_bounds_of_an_explicit_range_is_start_minus_full_length():
    p = parse_period({"start": "2026-01-01", "end": "2026-03-31"})  # 90 days
    assert p.previous() is None
    lo, hi = p.previous_bounds()
    assert hi == datetime(2026, 1, 1, tzinfo=UTC)
    assert lo == datetime(2026, 1, 1, tzinfo=UTC) - timedelta(days=90)


def test_previous_bounds_in_a_time_zone():
    lo, hi = parse_period("2027-Q1").previous_bounds("Europe/Berlin")
    assert lo == datetime(2026, 9, 30, 22, tzinfo=UTC)
    assert hi == datetime(2026, 12, 31, 23, tzinfo=UTC)


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


_S = datetime(2026, 10, 1, tzinfo=UTC)
_PLAN = [(datetime(2026, 11, 1, tzinfo=UTC), 0.2), (datetime(2026, 12, 1, tzinfo=UTC), 0.6),
         (datetime(2027, 1, 1, tzinfo=UTC), 1.0)]


@pytest.mark.parametrize("now,expected", [
    (datetime(2026, 9, 30, tzinfo=UTC), 0.0),
    (_S, 0.0),
    (datetime(2026, 10, 16, 12, tzinfo=UTC), 0.1),          # halfway to the first milestone
    (datetime(2026, 11, 1, tzinfo=UTC), 0.2),
    (datetime(2026, 11, 16, tzinfo=UTC), 0.4),              # halfway between 20% and 60%
    (datetime(2026, 12, 16, 12, tzinfo=UTC), 0.8),
    (datetime(2027, 2, 1, tzinfo=UTC), 1.0),
])
def test_planned_fraction(now, expected):
    assert planned_fraction(_S, _PLAN, now) == pytest.approx(expected)


def test_planned_fraction_holds_the_last_milestone():
    assert planned_fraction(_S, [(datetime(2026, 11, 1, tzinfo=UTC), 0.5)], datetime(2026, 12, 1, tzinfo=UTC)) == 0.5
