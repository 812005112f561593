"""What a write-back target receives for one key result, and its fingerprint."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .text import STATUS_LABELS


def _significant(value: float | None, digits: int) -> float | None:
    if value is None or value == 0:
        return value
    return float(f"{value:.{digits}g}")


@dataclass(frozen=True)
class KRStatus:
    """What write-back targets receive for one key result."""

    kr_id: str
    title: str
    objective_id: str
    objective_title: str
    metric: str
    status: str
    value: float | None
    baseline: float | None
    target: float | None
    progress: float | None
    score: float | None
    expected: float
    items: int
    unit: str | None = None
    period: str | None = None
    window_start: str | None = None
    window_end: str | None = None
    overridden: bool = False
    computed_at: str | None = None  # not part of the fingerprint: it changes every run
    checkin: str | None = None  # the latest check-in as people read it ("2026-11-14 by ana: confidence 60% — …")

    def machine(self) -> dict[str, Any]:
        """The machine-readable status (issue property, webhook body)."""
        return {
            "kr": self.kr_id, "title": self.title, "objective": self.objective_id, "metric": self.metric,
            "status": self.status, "value": self.value, "baseline": self.baseline, "target": self.target,
            "progress": self.progress, "score": self.score, "expected": self.expected, "items": self.items,
            "unit": self.unit, "period": self.period, "overridden": self.overridden, "computed_at": self.computed_at,
            **({"checkin": self.checkin} if self.checkin else {}),
        }

    def fingerprint(self) -> str:
        """Stable hash of what a target shows; unchanged fingerprint = nothing to send."""
        import hashlib
        import json

        body = self.machine()
        body.pop("computed_at")
        # values over a growing window (per week, uptime) and the expected pace move a little every run:
        # compare at the precision people read, so a target is not rewritten for nothing
        for key in ("value", "baseline", "target"):
            body[key] = _significant(body[key], 4)
        for key in ("progress", "score"):
            body[key] = None if body[key] is None else round(body[key], 3)
        body["expected"] = round(self.expected, 2)
        return hashlib.sha1(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()

    @property
    def label(self) -> str:
        return STATUS_LABELS.get(self.status, self.status)
