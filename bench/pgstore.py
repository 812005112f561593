"""The store on PostgreSQL beside SQLite: the N-item x 200-KR recompute, and sync with a worker per source.

    python -m bench.pgstore --pg postgresql://user:pw@host/db [--items 1000000] [--scale 300]
    make bench-pg                        # the same against a throwaway cluster (tools/pgcluster.sh)
The recompute runs on the cached SQLite bench store (bench/results, built like `make bench`) and on a copy of
it in PostgreSQL; the sync starts one `okrsync sync --source S` process per source of the sandbox at once into
one PostgreSQL database, beside one `okrsync sync` (its sources in threads) into SQLite.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from okrsync.engine.store import Store

from .procs import ROOT, SandboxProcess, child, measure
from .recompute import RESULTS, store_for, workspace
from .storefill import NOW

SOURCES = ("jira", "github", "servicenow", "pagerduty")
ENV = {"OKRSYNC_SOURCES__JIRA__TOKEN": "bench", "OKRSYNC_SOURCES__GITHUB__TOKEN": "bench",
       "OKRSYNC_SOURCES__SERVICENOW__USER": "bench", "OKRSYNC_SOURCES__SERVICENOW__PASSWORD": "bench",
       "OKRSYNC_SOURCES__PAGERDUTY__TOKEN": "bench", "OKRSYNC_SECRETS_DIR": "/nonexistent-okrsync-bench"}


def with_schema(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}schema={schema}"


def copy_store(db: Path, url: str) -> None:
    """The SQLite store's rows into a fresh PostgreSQL store (COPY; item tables keep their rowids)."""
    pg = Store(url)
    src = sqlite3.connect(db)
    try:
        conn = pg.db.pg
        tables = [t for (t,) in src.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE "
                                            "'sqlite_%' AND name NOT IN ('_sqlite_migrations', 'meta')")]
        with conn.transaction():
            for table in tables:
                cols = [r[1] for r in src.execute(f"PRAGMA table_info({table})")]
                if table in ("issues", "deployments", "incidents"):
                    cols = ["rowid", *cols]
                names = ", ".join(f'"{c}"' for c in cols)
                conn.execute(f"TRUNCATE {table}")
                with conn.cursor().copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                    for row in src.execute(f"SELECT {', '.join(cols)} FROM {table}"):
                        copy.write_row(row)
        for table in tables:  # this schema's tables only (the database may hold other workspaces)
            conn.execute(f"ANALYZE {table}")
    finally:
        src.close()
        pg.close()


def recompute(n: int, url: str, n_krs: int = 200) -> dict[str, Any]:
    """`okrsync status`'s full recompute (cold, then warm) on SQLite and on PostgreSQL, the same items."""
    db = store_for(n)
    work = RESULTS / f"recompute-{n}"
    work.mkdir(parents=True, exist_ok=True)
    ws = work / "okrsync.yaml"
    ws.write_text(workspace(db, n_krs), encoding="utf-8")
    target = with_schema(url, f"bench_{n}")
    started = time.perf_counter()
    copy_store(db, target)
    out: dict[str, Any] = {"n": n, "krs": n_krs, "copy_seconds": time.perf_counter() - started}
    for name, where in (("sqlite", str(db)), ("postgresql", target)):
        m = measure(child("recompute", "--workspace", str(ws), "--db", where, "--now", NOW.isoformat()))
        out[name] = {"cold": m.result["status_seconds"], "warm": m.result["status_again_seconds"],
                     "peak_rss_mb": m.peak_rss_mb}
    return out


def sync_workers(scale: int, url: str) -> dict[str, Any]:
    """Items per second: a worker process per source at once into PostgreSQL; one sync into SQLite."""
    out: dict[str, Any] = {"scale": scale}
    with SandboxProcess(scale) as sb, tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "okrsync.yaml"
        now = sb.info["now"]
        period = f"{now[:4]}-Q{(int(now[5:7]) - 1) // 3 + 1}"
        ws.write_text(
            f"period: {period}\nsources:\n"
            f"  jira: {{type: jira, url: '{sb.urls['jira']}', email: b@acme.example, projects: [APP, OPS, OKR]}}\n"
            f"  github: {{type: github, url: '{sb.urls['github']}', repos: [acme/web, acme/api]}}\n"
            f"  servicenow: {{type: servicenow, url: '{sb.urls['servicenow']}'}}\n"
            f"  pagerduty: {{type: pagerduty, url: '{sb.urls['pagerduty']}'}}\n"
            "objectives:\n  - id: O1\n    title: bench\n    key_results:\n"
            "      - {id: KR1, title: items, metric: count, select: {source: jira}, target: 5}\n", encoding="utf-8")
        env = {**ENV}
        base = [sys.executable, "-m", "okrsync", "-w", str(ws)]
        started = time.perf_counter()
        done = subprocess.run([*base, "--db", str(Path(tmp) / "okrsync.db"), "sync"], env={**_env(), **env},
                              cwd=ROOT, capture_output=True, text=True)
        lite_wall = time.perf_counter() - started
        if done.returncode:
            raise RuntimeError(done.stderr[-1500:])
        target = with_schema(url, f"bench_sync_{int(time.time())}")
        Store(target).close()  # the schema made once, not by four workers racing to it
        started = time.perf_counter()
        procs = [subprocess.Popen([*base, "--db", target, "sync", "--source", s], env={**_env(), **env}, cwd=ROOT,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for s in SOURCES]
        errors = [p.communicate()[1] for p in procs]
        pg_wall = time.perf_counter() - started
        if any(p.returncode for p in procs):
            raise RuntimeError("; ".join(e[-500:] for e in errors))
        store = Store(target, create=False)
        items = sum(store.db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                    for t in ("issues", "deployments", "incidents"))
        store.close()
        out.update(items=items, sqlite_one_process={"wall": lite_wall, "items_per_s": items / lite_wall},
                   postgresql_4_workers={"wall": pg_wall, "items_per_s": items / pg_wall})
    return out


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("OKRSYNC_")}


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.pgstore", description=__doc__.splitlines()[0])
    ap.add_argument("--pg", required=True, help="postgresql:// URL of an empty database okrsync may own")
    ap.add_argument("--items", type=int, default=1_000_000, help="store size for the recompute")
    ap.add_argument("--scale", type=int, default=300, help="sandbox scale for the sync")
    ap.add_argument("--only", default="recompute,sync")
    args = ap.parse_args()
    result: dict[str, Any] = {}
    if "recompute" in args.only:
        result["recompute"] = r = recompute(args.items, args.pg)
        print(f"recompute {r['n']:,} items x {r['krs']} KRs: SQLite cold {r['sqlite']['cold']:.2f} s, warm "
              f"{r['sqlite']['warm']:.2f} s; PostgreSQL cold {r['postgresql']['cold']:.2f} s, warm "
              f"{r['postgresql']['warm']:.2f} s (target < 5 s warm; copy into PostgreSQL {r['copy_seconds']:.0f} s)")
    if "sync" in args.only:
        result["sync"] = s = sync_workers(args.scale, args.pg)
        print(f"sync {s['items']:,} items (scale {s['scale']}): SQLite, one process "
              f"{s['sqlite_one_process']['items_per_s']:,.0f}/s ({s['sqlite_one_process']['wall']:.1f} s); "
              f"PostgreSQL, 4 workers at once {s['postgresql_4_workers']['items_per_s']:,.0f}/s "
              f"({s['postgresql_4_workers']['wall']:.1f} s)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "pgstore.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
