"""okrsync's side of a measurement, run in its own process (so its peak RSS is its own): one JSON line out.

    python -m bench.child sync --workspace W --db D
    python -m bench.child bare --system jira|github --url U [--jql Q --fields F] [--repos a/b,c/d]
    python -m bench.child recompute --workspace W --db D [--change 0.01]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from datetime import datetime, timezone
from typing import Any

import requests


def sync(args: argparse.Namespace) -> dict[str, Any]:
    from okrsync.config.settings import Settings
    from okrsync.config.workspace import load_workspace
    from okrsync.engine.pipeline import run_sync
    from okrsync.engine.store import Store

    loaded = load_workspace(args.workspace)
    store = Store(args.db)
    started = time.perf_counter()
    summary = run_sync(loaded, Settings(), store)
    wall = time.perf_counter() - started
    return {"wall": wall, "errors": summary.errors, "requests": summary.requests,
            "fetched": {n: o.fetched for n, o in summary.sources.items()},
            "new": {n: o.new for n, o in summary.sources.items()}}


def bare(args: argparse.Namespace) -> dict[str, Any]:
    """The practical ceiling: the same pages with plain requests + JSON parsing, nothing else."""
    s = requests.Session()
    items = pages = 0
    started = time.perf_counter()
    if args.system == "jira":
        params = {"jql": args.jql, "maxResults": 100, "fields": args.fields}
        while True:
            body = s.get(f"{args.url}/rest/api/3/search/jql", params=params, auth=("bench", "bench"),
                         timeout=(10, 30)).json()
            pages += 1
            items += len(body["issues"])
            if not body.get("nextPageToken"):
                break
            params["nextPageToken"] = body["nextPageToken"]
    else:
        for repo in args.repos.split(","):
            url: str | None = f"{args.url}/repos/{repo}/issues"
            query: dict | None = {"state": "all", "sort": "updated", "direction": "asc", "per_page": 100}
            while url:
                r = s.get(url, params=query, timeout=(10, 30))
                items += len(r.json())
                pages += 1
                url, query = r.links.get("next", {}).get("url"), None
    return {"wall": time.perf_counter() - started, "items": items, "requests": pages}


def recompute(args: argparse.Namespace) -> dict[str, Any]:
    """`okrsync status` (full recompute, per-KR timings); with --change, a sync's recompute + history after
    that fraction of the items changed."""
    from okrsync.config.settings import Settings
    from okrsync.config.workspace import load_workspace
    from okrsync.engine.compute import Computation, Computer, compute
    from okrsync.engine.history import history_rows
    from okrsync.engine.pipeline import thresholds_for
    from okrsync.engine.store import Store

    loaded = load_workspace(args.workspace)
    ws = loaded.workspace
    store = Store(args.db, create=False)
    now = datetime.fromisoformat(args.now) if args.now else datetime.now(timezone.utc)
    thresholds = thresholds_for(loaded, Settings())
    out: dict[str, Any] = {}
    if not args.change:
        # what `okrsync status` does: compute() (its KRs in threads), first in a fresh process (cold: SQLite's
        # cache empty, the OS's as the store build left it), then again (warm)
        started = time.perf_counter()
        compute(ws, store, now, thresholds)
        out["status_seconds"] = time.perf_counter() - started
        started = time.perf_counter()
        compute(ws, store, now, thresholds)
        out["status_again_seconds"] = time.perf_counter() - started
        comp = Computer(ws, store, now, thresholds)  # then one KR at a time, to show where the time goes
        per_kr = []
        for obj in ws.objectives:
            for kr in obj.key_results:
                t = time.perf_counter()
                res = comp.key_result(obj, kr)
                per_kr.append({"kr": kr.id, "metric": kr.metric, "seconds": time.perf_counter() - t,
                               "items": res.items, "status": res.status})
        out["per_kr"] = per_kr
        return out
    # a sync's tail: history exists, then a fraction of the items changes, then recompute + record history
    first = compute(ws, store, now, thresholds)
    rows, sets = history_rows(first, store, 1)
    store.record_values(rows, sets)
    started = time.perf_counter()
    changed = _change_items(store, args.change)
    out["write_change_seconds"] = time.perf_counter() - started
    out["changed_items"] = changed
    started = time.perf_counter()
    comp: Computation = compute(ws, store, now, thresholds)
    out["recompute_seconds"] = time.perf_counter() - started
    started = time.perf_counter()
    rows, sets = history_rows(comp, store, 2)
    store.record_values(rows, sets)
    out["history_seconds"] = time.perf_counter() - started
    out["total_seconds"] = out["recompute_seconds"] + out["history_seconds"]
    return out


def prepare(args: argparse.Namespace) -> dict[str, Any]:
    """What a sync does for the store after its reads: the raw-path indexes the workspace's where: entries can
    use (built once, then kept by SQLite), and planner statistics."""
    from okrsync.config.workspace import load_workspace
    from okrsync.engine.store import Store
    from okrsync.engine.sync import raw_indexes_wanted

    ws = load_workspace(args.workspace).workspace
    store = Store(args.db, create=False)
    started = time.perf_counter()
    created, dropped = store.prepare_raw_indexes(raw_indexes_wanted(ws))
    store.refresh_stats()
    return {"seconds": time.perf_counter() - started, "created": created, "dropped": dropped,
            "indexes": sorted(i.name for i in store.raw_indexes())}


def _change_items(store: Any, fraction: float) -> int:
    """Move a random `fraction` of the issues and incidents forward (status, resolution) like a sync would."""
    db = store.db.conn
    rng = random.Random(7)
    total = 0
    with store.write():
        for table, sets in (("issues", "status_category = 'done', resolved = coalesce(resolved, updated), "
                                       "status = 'Done'"),
                            ("incidents", "status = 'resolved', resolved = coalesce(resolved, opened)")):
            (n,) = db.execute(f"SELECT max(rowid) FROM {table}").fetchone()
            if not n:
                continue
            picks = rng.sample(range(1, n + 1), max(1, int(n * fraction)))
            for i in range(0, len(picks), 900):
                chunk = picks[i:i + 900]
                marks = ",".join("?" for _ in chunk)
                total += db.execute(f"UPDATE {table} SET {sets}, last_run = 2, hash = 'changed' "
                                    f"WHERE rowid IN ({marks})", chunk).rowcount
    return total


def main() -> None:
    from okrsync.app import tune_collector

    tune_collector()  # as the okrsync command's process
    ap = argparse.ArgumentParser(prog="bench.child")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("sync")
    p.add_argument("--workspace", required=True)
    p.add_argument("--db", required=True)
    p = sub.add_parser("bare")
    p.add_argument("--system", choices=("jira", "github"), required=True)
    p.add_argument("--url", required=True)
    p.add_argument("--jql", default="")
    p.add_argument("--fields", default="")
    p.add_argument("--repos", default="acme/web,acme/api")
    p = sub.add_parser("prepare")
    p.add_argument("--workspace", required=True)
    p.add_argument("--db", required=True)
    p = sub.add_parser("recompute")
    p.add_argument("--workspace", required=True)
    p.add_argument("--db", required=True)
    p.add_argument("--now", default=None)
    p.add_argument("--change", type=float, default=0.0)
    args = ap.parse_args()
    result = {"sync": sync, "bare": bare, "prepare": prepare, "recompute": recompute}[args.cmd](args)
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
