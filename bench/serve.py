"""Serve the sandbox in its own process for the benchmarks: prints one JSON line, runs until stdin closes.

`python -m bench.serve --scale N` -> {"urls": {...}, "jira_issues": n, "github_repos": {repo: items}, "github_prs",
"github_deploys", "now": iso}
Running it apart keeps the simulators' CPU off the measured process (two processes, like client and API).
"""

from __future__ import annotations

import argparse
import json
import sys

from okrsync.sandbox import Sandbox


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=int, required=True)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--deployments", type=int, default=None,
                    help="keep only the newest N deployments per repository (the scale sets issues, not deploys)")
    args = ap.parse_args()
    # live (`now` follows the wall clock); GitHub's hourly budget lifted: a run makes many full syncs in a row
    sb = Sandbox(seed=args.seed, scale=args.scale, github_rate_limit=10**9)
    w = sb.world
    if args.deployments is not None:
        for r in w.repos.values():
            r.deployments = sorted(r.deployments, key=lambda d: (d.created, d.id))[-args.deployments:]
    sb.start()
    info = {
        "urls": sb.urls,
        "jira_issues": {p: sum(1 for i in w.jira if i.project == p) for p in ("APP", "OPS", "OKR")},
        "github_repos": {name: len(r.items) for name, r in w.repos.items()},
        "github_prs": {name: sum(1 for i in r.items if i.is_pr) for name, r in w.repos.items()},
        # deployments a first sync reads: created since the previous period's start (the stream's default_from)
        "github_deploys": {name: sum(1 for d in r.deployments if d.created >= w.previous_quarter_ms)
                           for name, r in w.repos.items()},
        "now": w.now.isoformat(),
    }
    print(json.dumps(info), flush=True)
    try:
        sys.stdin.read()  # the parent closes our stdin (or dies): stop
    finally:
        sb.stop()


if __name__ == "__main__":
    main()
