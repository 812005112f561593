"""The history a recompute appends: one row per KR with the items added and removed since its last value."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from okrsync.domain.records import iso

from .compute import COMPUTE_THREADS, Computation, KRResult
from .store import Store, item_set_digest


def history_rows(comp: Computation, store: Store,
                 run_id: int | None) -> tuple[list[dict[str, object]], dict[str, list[str]]]:
    """KR value rows for the history, with the items added/removed since each KR's previous value.

    The item ids are loaded only when the set's fingerprint differs from the previous value's."""
    rows: list[dict[str, object]] = []  # kr_values rows
    sets: dict[str, list[str]] = {}
    krs = comp.all_krs()
    previous = {k.kr.id: store.last_value(k.kr.id) for k in krs}
    def unchanged(k: KRResult) -> bool:
        prev = previous[k.kr.id]
        return prev is not None and prev["fingerprint"] == k.fingerprint and bool(prev["item_set"])

    stale = [k for k in krs if not unchanged(k)]
    if len(stale) > 1 and COMPUTE_THREADS > 1:  # load the changed item sets side by side (SQL without the GIL)
        with ThreadPoolExecutor(max_workers=min(COMPUTE_THREADS, len(stale))) as pool:
            list(pool.map(lambda k: k.item_ids, stale))
    for k in krs:
        prev = previous[k.kr.id]
        added: list[str]
        removed: list[str]
        if prev is not None and prev["fingerprint"] == k.fingerprint and prev["item_set"]:
            digest, added, removed = prev["item_set"], [], []
        else:
            ids = k.item_ids
            digest = item_set_digest(ids)
            sets[digest] = ids
            if prev is None:
                added, removed = ids, []
            elif prev["item_set"] == digest:
                added, removed = [], []
            else:
                old = set(store.item_set(prev["item_set"]))
                new = set(ids)
                added, removed = sorted(new - old), sorted(old - new)
        rows.append({
            "run_id": run_id, "kr_id": k.kr.id, "objective_id": k.objective_id, "computed_at": iso(comp.generated_at),
            "value": k.value, "computed_value": k.computed_value, "baseline": k.baseline, "target": k.target,
            "progress": k.progress, "score": k.score, "expected": k.expected, "status": k.status, "items": k.items,
            "fingerprint": k.fingerprint, "item_set": digest, "added": _capped(added), "removed": _capped(removed),
            "added_count": len(added), "removed_count": len(removed),
            "window_start": iso(k.window.start) if k.window else None,
            "window_end": iso(k.window.end) if k.window else None,
            "detail": _dumps(k.detail),
        })
    return rows, sets


def _capped(ids: list[str]) -> str:
    return json.dumps(ids[:500])


def _dumps(value: object) -> str:
    return json.dumps(value, sort_keys=True, default=str)
