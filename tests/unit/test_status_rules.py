"""Progress, score and status rules (DESIGN §5), every boundary."""

import pytest

from okrsync.engine.status import evaluate, infer_direction, resolve_target, roll_up, weakest


@pytest.mark.parametrize("kind,amount,baseline,expected", [
    ("absolute", 7.0, 5.0, 7.0),
    ("relative", -0.20, 10.0, 8.0),
    ("relative", 0.40, 5.0, 7.0),
    ("relative", -0.20, None, None),
])
def test_resolve_target(kind, amount, baseline, expected):
    got = resolve_target(kind, amount, baseline)
    assert got == (pytest.approx(expected) if expected is not None else None)


@pytest.mark.parametrize("baseline,target,explicit,expected", [
    (5, 7, None, "increase"), (10, 8, None, "decrease"), (0, 1, None, "increase"),
    (0.999, 0.9999, "maintain_above", "maintain_above"),
])
def test_infer_direction(baseline, target, explicit, expected):
    assert infer_direction(baseline, target, explicit) == expected


@pytest.mark.parametrize("metric,baseline_given,expected", [
    ("mtta", False, "maintain_below"), ("change_failure_rate", False, "maintain_below"),
    ("mtta", True, "decrease"), ("done_ratio", False, "increase"), ("count", False, "increase"),
])
def test_lower_is_better_without_baseline_is_a_ceiling(metric, baseline_given, expected):
    assert infer_direction(10 if baseline_given else 0, 5, None, metric, baseline_given) == expected


def ev(value, baseline, target, expected=0.5, direction=None, started=True, ended=False):
    direction = direction or infer_direction(baseline, target, None)
    return evaluate(value, baseline, target, direction=direction, expected=expected, started=started, ended=ended)


@pytest.mark.parametrize("value,baseline,target,expected,progress,score,status", [
    # increase KR, expected 50%: on_track >= 40%, at_risk >= 25%
    (7, 5, 7, 0.5, 1.0, 1.0, "achieved"),
    (7.5, 5, 7, 0.5, 1.25, 1.0, "achieved"),  # progress not capped
    (5.8, 5, 7, 0.5, 0.4, 0.4, "on_track"),  # exactly expected - 0.10
    (5.79, 5, 7, 0.5, 0.395, 0.395, "at_risk"),
    (5.5, 5, 7, 0.5, 0.25, 0.25, "at_risk"),  # exactly expected - 0.25
    (5.49, 5, 7, 0.5, 0.245, 0.245, "off_track"),
    (4, 5, 7, 0.5, -0.5, 0.0, "off_track"),
    # decrease KR: same formula
    (9, 10, 8, 0.5, 0.5, 0.5, "on_track"),
    (8, 10, 8, 0.9, 1.0, 1.0, "achieved"),
    (11, 10, 8, 0.1, -0.5, 0.0, "off_track"),
    # omitted baseline = 0
    (0.45, 0, 0.9, 0.5, 0.5, 0.5, "on_track"),
    # early in the period, nothing done yet is on track
    (5, 5, 7, 0.05, 0.0, 0.0, "on_track"),
])
def test_evaluate_boundaries(value, baseline, target, expected, progress, score, status):
    r = ev(value, baseline, target, expected)
    assert r.progress == pytest.approx(progress)
    assert r.score == pytest.approx(score)
    assert r.status == status


def test_no_data_and_not_started():
    assert ev(None, 5, 7).status == "no_data"
    assert ev(None, 5, 7).progress is None
    assert ev(5, 5, None).status == "no_data"
    assert ev(6, 5, 7, started=False).status == "not_started"


@pytest.mark.parametrize("direction,value,target,ended,score,status", [
    ("maintain_above", 0.9999, 0.9999, False, 1.0, "on_track"),
    ("maintain_above", 0.99991, 0.9999, True, 1.0, "achieved"),
    ("maintain_above", 0.9998, 0.9999, False, 0.0, "off_track"),
    ("maintain_below", 2.0, 4.0, False, 1.0, "on_track"),
    ("maintain_below", 4.5, 4.0, False, 0.0, "off_track"),
])
def test_maintain(direction, value, target, ended, score, status):
    r = ev(value, 0.0, target, direction=direction, ended=ended)
    assert (r.score, r.status) == (score, status)


def test_target_equal_baseline_is_met_or_not():
    assert ev(5, 5, 5).status == "achieved"
    assert ev(4, 5, 5, direction="increase").score == 0.0


def test_weakest_and_roll_up():
    assert weakest(["achieved", "at_risk", "on_track"]) == "at_risk"
    assert weakest(["no_data", "not_started"]) == "no_data"
    assert weakest(["achieved", "no_data"]) == "achieved"
    score, status = roll_up([(1, 1.0, "achieved"), (3, 0.2, "off_track"), (1, None, "no_data")])
    assert score == pytest.approx((1 * 1.0 + 3 * 0.2) / 4)
    assert status == "off_track"
    assert roll_up([(1, None, "no_data")]) == (None, "no_data")
