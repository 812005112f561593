"""Freshness of `okrsync serve`: an item changes, its webhook arrives, how long until the KR and write-back move.

`python -m bench --only freshness` (or `python -m bench.freshness`): a live sandbox and `okrsync serve` in a
subprocess on 127.0.0.1. Each change files a Jira bug (KR3 counts bugs and writes back to a Jira comment and a
GitHub issue body) and sends its signed webhook; the clock stops when /api/status shows the new value and both
write-backs carry it. Also: the source requests one webhook-triggered sync makes (Jira, and GitHub `issues`).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e.serve_harness import Served, start_serve, stop_all, wait_for

TIMEOUT = 60.0  # seconds: a change not visible by then counts as missed


@dataclass
class Freshness:
    seconds: list[float] = field(default_factory=list)  # per change, until API + Jira + GitHub show it
    api_seconds: list[float] = field(default_factory=list)  # per change, until /api/status shows it
    requests: dict[str, list[int]] = field(default_factory=dict)  # source -> requests per webhook sync
    github_not_modified: list[int] = field(default_factory=list)  # of those, 304s (free in GitHub's rate limit)
    webhook_syncs: int = 0

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def worst(self) -> float:
        return max(self.seconds)

    def requests_per_sync(self, source: str) -> float:
        values = self.requests.get(source) or [0]
        return max(values)


def _requests(s: Served, source: str) -> float:
    return s.metrics().get(("okrsync_source_requests_total", (("source", source),)), 0.0)


def _quiet(s: Served) -> None:
    time.sleep(0.2)
    wait_for(s.idle, TIMEOUT)


def _landed(s: Served, value: float) -> bool:
    text = f"{value:.0f}"
    comments = [c["body"] for c in s.sandbox.world.jira_comments("OKR-1") if "okrsync:KR3" in c["body"]]
    body = s.sandbox.world.github_issue("acme/okrs", 1)["body"]
    return bool(comments) and f"Value / target: {text} /" in comments[-1] and "okrsync:KR3" in body and text in body


def run(changes: int = 20, scale: int = 1000) -> Freshness:
    out = Freshness()
    with tempfile.TemporaryDirectory(prefix="okrsync-bench-fresh-") as tmp:
        s = start_serve(Path(tmp), every="1h", scale=scale)
        try:
            syncs = s.syncs("webhook")
            for n in range(changes):
                _quiet(s)
                time.sleep(2.5)  # past the previous debounce window: each change is its own sync
                before, jira_requests = s.value("KR3"), _requests(s, "jira")
                started = time.monotonic()
                s.edits.new_jira_issue(summary=f"Freshness probe {n}")
                wait_for(lambda: s.value("KR3") == before + 1, TIMEOUT, every=0.05)
                out.api_seconds.append(time.monotonic() - started)
                wait_for(lambda: _landed(s, before + 1), TIMEOUT, every=0.05)
                out.seconds.append(time.monotonic() - started)
                _quiet(s)
                out.requests.setdefault("jira", []).append(int(_requests(s, "jira") - jira_requests))
            with s.sandbox.world.lock:
                open_issues = [f"acme/web#{i.number}" for i in s.sandbox.world.repos["acme/web"].items
                               if not i.is_pr and i.state == "open"][:3]
            for ref in open_issues:  # a GitHub `issues` event reads the issues stream only (one call per repo)
                time.sleep(2.5)
                _quiet(s)
                gh, done = _requests(s, "github"), s.syncs("webhook")
                s.sandbox.reset_log()
                s.edits.close_github_issue(ref)
                wait_for(lambda: s.syncs("webhook") > done, 15, every=0.05)
                _quiet(s)
                out.requests.setdefault("github", []).append(int(_requests(s, "github") - gh))
                out.github_not_modified.append(sum(1 for r in s.sandbox.requests("github") if r["status"] == 304))
            out.webhook_syncs = s.syncs("webhook") - syncs
        finally:
            stop_all(s)
    return out


def main() -> None:
    r = run()
    print(f"freshness over {len(r.seconds)} changes: median {r.median:.2f} s, worst {r.worst:.2f} s "
          f"(API alone: median {statistics.median(r.api_seconds):.2f} s); requests per webhook sync: "
          + ", ".join(f"{k} {max(v)}" for k, v in r.requests.items())
          + f" (GitHub: {min(r.github_not_modified or [0])} of them 304 Not Modified)")


if __name__ == "__main__":
    main()
