"""Serve the sandbox in its own process for the benchmarks: prints one JSON line, runs until stdin closes.

`python -m bench.serve --scale N` -> {"urls": {...}, "jira_issues": n, "github_repos": {repo: items}, "now": iso}
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
    args = ap.parse_args()
    # live (`now` follows the wall clock); GitHub's hourly budget lifted: a run makes many full syncs in a row
    sb = Sandbox(seed=args.seed, scale=args.scale, github_rate_limit=10**9)
    sb.start()
    w = sb.world
    info = {
        "urls": sb.urls,
        "jira_issues": {p: sum(1 for i in w.jira if i.project == p) for p in ("APP", "OPS", "OKR")},
        "github_repos": {name: len(r.items) for name, r in w.repos.items()},
        "now": w.now.isoformat(),
    }
    print(json.dumps(info), flush=True)
    try:
        sys.stdin.read()  # the parent closes our stdin (or dies): stop
    finally:
        sb.stop()


if __name__ == "__main__":
    main()
