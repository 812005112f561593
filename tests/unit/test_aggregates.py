"""Aggregates and the interval union (pure)."""

from datetime import datetime, timedelta, timezone

import pytest

from okrsync.mappings.aggregates import aggregate, median_low, percentile, ratio, union_seconds

T0 = datetime(2026, 10, 1, tzinfo=timezone.utc)


def h(n: float) -> datetime:
    return T0 + timedelta(hours=n)


@pytest.mark.parametrize("values,how,expected", [
    ([], "median", None),
    ([], "mean", None),
    ([5], "median", 5.0),
    ([1, 2, 3, 4], "median", 2.5),
    ([4, 1, 3], "median", 3.0),
    ([1, 2, 3, 4], "median_low", 2.0),
    ([1, 1, 1, 5], "median_low", 1.0),
    ([1, 2, 2, 2, 9], "median_low", 2.0),
    ([1, 2, 3, 4], "mean", 2.5),
    ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], "p90", 9.1),
    ([10, 20], "p50", 15.0),
    ([1, 2, 3, 4], "min", 1.0),
    ([1, 2, 3, 4], "max", 4.0),
    ([1, 2, 3, 4], "sum", 10.0),
    ([7], "p90", 7.0),
])
def test_aggregate(values, how, expected):
    got = aggregate(values, how)
    assert got == (pytest.approx(expected) if expected is not None else None)


def test_unknown_aggregate():
    with pytest.raises(ValueError):
        aggregate([1], "mode")


def test_percentile_interpolates_like_numpy_linear():
    assert percentile([15, 20, 35, 40, 50], 0.4) == pytest.approx(29.0)


def test_median_low_matches_percent_rank_definition():
    # DevLake: the largest value with percent_rank() <= 0.5
    values = [3, 9, 1, 7, 5, 11]
    n = len(values)
    xs = sorted(values)
    ranks = [xs.index(v) / (n - 1) for v in xs]
    expected = max(v for v, r in zip(xs, ranks) if r <= 0.5)
    assert median_low(values) == expected == 5


@pytest.mark.parametrize("num,den,expected", [(1, 2, 0.5), (0, 5, 0.0), (3, 0, None), (None, 2, None), (2, None, None)])
def test_ratio(num, den, expected):
    assert ratio(num, den) == expected


@pytest.mark.parametrize("intervals,lo,hi,seconds", [
    ([], 0, 10, 0),
    ([(1, 2)], 0, 10, 3600),
    ([(1, 3), (2, 4)], 0, 10, 3 * 3600),  # overlap counted once
    ([(1, 3), (3, 4)], 0, 10, 3 * 3600),  # touching
    ([(1, 5), (2, 3)], 0, 10, 4 * 3600),  # nested
    ([(-5, 2)], 0, 10, 2 * 3600),  # started before the window
    ([(8, 20)], 0, 10, 2 * 3600),  # ends after the window
    ([(-5, -1), (11, 12)], 0, 10, 0),  # outside
    ([(5, 6), (1, 2), (1.5, 5.5)], 0, 10, 5 * 3600),  # unsorted chain
])
def test_union_seconds(intervals, lo, hi, seconds):
    got = union_seconds([(h(a), h(b)) for a, b in intervals], h(lo), h(hi))
    assert got == pytest.approx(seconds)
