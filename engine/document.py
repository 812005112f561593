"""The stable status document (status --json) and its CSV form."""

from __future__ import annotations

import csv
import io
from typing import Any

from okrsync.domain.records import iso

from .compute import Computation, KRResult

KR_KEYS = ("id", "title", "metric", "value", "baseline", "target", "progress", "score", "expected", "status",
           "items", "synced_at")


def kr_document(k: KRResult) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": k.kr.id,
        "title": k.kr.title,
        "metric": k.kr.metric,
        "value": k.value,
        "baseline": k.baseline,
        "target": k.target,
        "progress": k.progress,
        "score": k.score,
        "expected": k.expected,
        "status": k.status,
        "items": k.items,
        "synced_at": k.synced_at,
        # additions beyond the fixed keys above
        "unit": k.kr.unit,
        "direction": k.direction,
        "weight": k.kr.weight,
        "window": {"start": iso(k.window.start), "end": iso(k.window.end)} if k.window else None,
    }
    if k.kr.owner is not None:
        doc["owner"] = k.kr.owner
    if k.team is not None:
        doc["team"] = k.team
    if k.projected is not None:
        doc["projected"] = k.projected
    if k.checkin is not None:
        doc["checkin"] = k.checkin.document()
    if k.stale:
        doc["stale"] = True
    if k.warnings:
        doc["warnings"] = list(k.warnings)
    if k.overridden and k.kr.override is not None:
        doc["override"] = {"value": k.value, "computed_value": k.computed_value, "reason": k.kr.override.reason}
    return doc


def status_document(comp: Computation) -> dict[str, Any]:
    ws = comp.workspace
    lo, hi = ws.period.bounds(ws.timezone)
    return {
        "generated_at": iso(comp.generated_at),
        "period": ws.period.label,
        "period_start": iso(lo),
        "period_end": iso(hi),
        "timezone": ws.timezone,
        "objectives": [
            {
                "id": o.objective.id,
                "title": o.objective.title,
                "score": o.score,
                "status": o.status,
                "parent": o.objective.parent,
                "owner": o.objective.owner,
                "team": o.objective.team,
                "key_results": [kr_document(k) for k in o.key_results],
            }
            for o in comp.objectives
        ],
    }


def status_csv(comp: Computation) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["objective_id", "objective_title", "objective_score", "objective_status", *KR_KEYS, "unit",
                     "team", "owner"])
    for o in comp.objectives:
        for k in o.key_results:
            d = kr_document(k)
            writer.writerow([o.objective.id, o.objective.title, _num(o.score), o.status,
                             *[_num(d[key]) if key in ("value", "baseline", "target", "progress", "score", "expected")
                               else ("" if d[key] is None else d[key]) for key in KR_KEYS], d["unit"] or "",
                             k.team or "", k.kr.owner or o.objective.owner or ""])
    return out.getvalue()


def _num(v: float | None) -> str:
    return "" if v is None else repr(float(v))
