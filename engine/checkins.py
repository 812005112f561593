"""Check-ins (a person's dated confidence and note on a KR) and objective scores over time."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from okrsync.domain.records import iso, parse_iso

from .store import Store


@dataclass(frozen=True)
class Checkin:
    kr_id: str
    at: str  # UTC ISO-8601, the store's format
    by: str | None
    confidence: float | None  # 0..1
    note: str | None

    def line(self) -> str:
        """As people read it: '2026-11-14 by ana: confidence 60% — "vendor fix slips to January"'."""
        parts = [f"confidence {round(self.confidence * 100)}%" if self.confidence is not None else "",
                 f'"{self.note}"' if self.note else ""]
        return self.at[:10] + (f" by {self.by}" if self.by else "") + ": " + " — ".join(p for p in parts if p)

    def document(self) -> dict[str, Any]:
        """The `checkin` of a KR in the status document."""
        return {k: v for k, v in asdict(self).items() if k != "kr_id"}


def add_checkin(store: Store, kr_id: str, at: datetime, *, by: str | None, confidence: float | None,
                note: str | None) -> Checkin:
    if confidence is not None and not 0.0 <= confidence <= 1.0:
        raise ValueError(f"confidence {confidence}: expected a number between 0 and 1")
    c = Checkin(kr_id, iso(at), by, confidence, note)
    with store.write() as db:
        db.execute("INSERT INTO checkins (kr_id, at, by, confidence, note) VALUES (?, ?, ?, ?, ?)",
                   [c.kr_id, c.at, c.by, c.confidence, c.note])
    return c


def checkins(store: Store, kr_id: str | None = None, limit: int | None = None) -> list[Checkin]:
    """Newest first."""
    sql = "SELECT kr_id, at, by, confidence, note FROM checkins"
    params: list[Any] = []
    if kr_id is not None:
        sql += " WHERE kr_id = ?"
        params.append(kr_id)
    sql += " ORDER BY at DESC, id DESC" + (f" LIMIT {int(limit)}" if limit else "")
    return [Checkin(*row) for row in store.db.execute(sql, params).fetchall()]


def latest_checkins(store: Store) -> dict[str, Checkin]:
    rows = store.db.execute(
        "SELECT kr_id, at, by, confidence, note FROM checkins c WHERE id = "
        "(SELECT id FROM checkins d WHERE d.kr_id = c.kr_id ORDER BY at DESC, id DESC LIMIT 1)").fetchall()
    return {r[0]: Checkin(*r) for r in rows}


def value_unchanged_since(store: Store, kr_id: str, value: float | None) -> datetime | None:
    """When the KR's recorded value last became what it is now (None: never recorded or it just changed)."""
    rows = store.db.execute("SELECT computed_at, value FROM kr_values WHERE kr_id = ? ORDER BY id DESC",
                            [kr_id]).fetchall()
    since = None
    for at, recorded in rows:
        if recorded != value:
            break
        since = parse_iso(at)
    return since


def is_stale(store: Store, kr_id: str, value: float | None, now: datetime, after: timedelta,
             latest: Checkin | None) -> bool:
    """Stale: the automatic value has not changed for `after` and nobody checked in during that time."""
    since = value_unchanged_since(store, kr_id, value)
    if since is None or now - since < after:
        return False
    return latest is None or now - parse_iso(latest.at) >= after


def record_objective_scores(store: Store, run_id: int | None, computed_at: datetime,
                            scores: list[tuple[str, float | None, str]]) -> None:
    with store.write() as db:
        for objective_id, score, status in scores:
            db.execute("INSERT INTO objective_values (run_id, objective_id, computed_at, score, status) "
                       "VALUES (?, ?, ?, ?, ?)", [run_id, objective_id, iso(computed_at), score, status])


def objective_history(store: Store, objective_id: str, limit: int | None = None) -> list[dict[str, Any]]:
    sql = ("SELECT run_id, computed_at, score, status FROM objective_values WHERE objective_id = ? "
           "ORDER BY id DESC" + (f" LIMIT {int(limit)}" if limit else ""))
    rows = store.db.execute(sql, [objective_id]).fetchall()
    return [{"run_id": r[0], "computed_at": r[1], "score": r[2], "status": r[3]} for r in reversed(rows)]
