"""Progress, score and status rules (DESIGN §5): pure functions."""

from __future__ import annotations

from dataclasses import dataclass

from okrsync.config.keyresults import TRAITS

STATUS_ORDER = ("off_track", "at_risk", "on_track", "achieved")  # weakest first
# Boundaries are inclusive; floating-point noise ((5.8 - 5) / 2 = 0.3999…) must not flip a status.
EPS = 1e-9
NO_SCORE = ("no_data", "not_started")


@dataclass(frozen=True)
class Evaluation:
    progress: float | None
    score: float | None
    status: str


def infer_direction(baseline: float | None, target: float | None, explicit: str | None,
                    metric: str | None = None, baseline_given: bool = True) -> str:
    """A level metric without a baseline holds a line (above when higher is better, below when lower is);
    otherwise the target's side of the baseline decides."""
    if explicit:
        return explicit
    traits = TRAITS.get(metric or "")
    if not baseline_given and traits is not None and traits.family == "level":
        return "maintain_below" if traits.better == "lower" else "maintain_above"
    if baseline is None or target is None:
        return "increase"
    return "decrease" if target < baseline else "increase"


def projected_value(value: float | None, length_s: float, elapsed_s: float) -> float | None:
    """A cumulative metric's value at the period end at its pace so far: value x length / elapsed."""
    if value is None or elapsed_s <= 0:
        return None
    if elapsed_s >= length_s:
        return value
    return value * length_s / elapsed_s


def resolve_target(kind: str, amount: float, baseline: float | None) -> float | None:
    """'-20%' -> baseline x 0.8; '+40%' -> baseline x 1.4; absolute stays."""
    if kind == "absolute":
        return amount
    if baseline is None:
        return None
    return baseline * (1.0 + amount)


def progress_of(value: float | None, baseline: float, target: float | None) -> float | None:
    if value is None or target is None or target == baseline:
        return None
    return (value - baseline) / (target - baseline) + 0.0  # no -0.0


def evaluate(
    value: float | None,
    baseline: float | None,
    target: float | None,
    *,
    direction: str,
    expected: float,
    started: bool,
    ended: bool,
    on_track_margin: float = 0.10,
    at_risk_margin: float = 0.25,
    projected: float | None = None,
) -> Evaluation:
    """progress = (value - baseline) / (target - baseline), uncapped; score = clamp(progress, 0, 1).

    `projected` (cumulative metrics while the period runs) judges a decrease: progress is computed from the
    projection against expected = 1, and it is never achieved before the period ends (a count can still rise)."""
    if not started:
        return Evaluation(None, None, "not_started")
    if value is None or target is None:
        return Evaluation(None, None, "no_data")
    if projected is not None and direction == "decrease" and not ended:
        return _judge(progress_of(projected, 0.0 if baseline is None else baseline, target), projected, target,
                      direction, 1.0, on_track_margin, at_risk_margin, can_achieve=False)
    base = 0.0 if baseline is None else baseline
    progress = progress_of(value, base, target)
    if direction in ("maintain_above", "maintain_below"):
        # holding the line is all-or-nothing: progress is the score (the formula means nothing here)
        holds = value >= target - EPS if direction == "maintain_above" else value <= target + EPS
        score = 1.0 if holds else 0.0
        if not holds:
            return Evaluation(score, score, "off_track")
        return Evaluation(score, score, "achieved" if ended else "on_track")
    return _judge(progress, value, target, direction, expected, on_track_margin, at_risk_margin)


def _judge(progress: float | None, value: float, target: float, direction: str, expected: float,
           on_track_margin: float, at_risk_margin: float, can_achieve: bool = True) -> Evaluation:
    if progress is None:
        # target == baseline: met or not
        met = value >= target - EPS if direction == "increase" else value <= target + EPS
        progress = 1.0 if met else 0.0
    score = 1.0 if progress >= 1.0 - EPS else min(1.0, max(0.0, progress))
    if progress >= 1.0 - EPS and can_achieve:
        status = "achieved"
    elif progress >= expected - on_track_margin - EPS:
        status = "on_track"
    elif progress >= expected - at_risk_margin - EPS:
        status = "at_risk"
    else:
        status = "off_track"
    return Evaluation(progress, score, status)


def weakest(statuses: list[str]) -> str:
    scored = [s for s in statuses if s not in NO_SCORE]
    if not scored:
        return "no_data"
    return min(scored, key=STATUS_ORDER.index)


def roll_up(children: list[tuple[float, float | None, str]]) -> tuple[float | None, str]:
    """(weight, score, status) of KRs / child objectives -> (weighted mean score, weakest status)."""
    counted = [(w, s) for w, s, st in children if st not in NO_SCORE and s is not None]
    total_w = sum(w for w, _ in counted)
    status = weakest([st for _, _, st in children])
    if not counted:
        return None, "no_data"
    if total_w == 0:
        return sum(s for _, s in counted) / len(counted), status
    return sum(w * s for w, s in counted) / total_w, status
