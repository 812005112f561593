"""End-to-end harness: the sandbox simulators on localhost and the real `okrsync` CLI in a subprocess."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest

from okrsync.sandbox import Sandbox

pytestmark = pytest.mark.e2e

TOKENS = {
    "OKRSYNC_SOURCES__JIRA__TOKEN": "e2e-jira-token-7f3a",
    "OKRSYNC_SOURCES__GITHUB__TOKEN": "e2e-github-token-9c1b",
    "OKRSYNC_SOURCES__SERVICENOW__USER": "okrsync",
    "OKRSYNC_SOURCES__SERVICENOW__PASSWORD": "e2e-sn-password-44d2",
    "OKRSYNC_SOURCES__PAGERDUTY__TOKEN": "e2e-pd-token-0e8f",
}
# A fixed "now" makes two sandboxes with one seed serve identical data (fault vs clean comparisons).
NOW = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)

WORKSPACE = """\
period: {period}
sources:
  jira: {{type: jira, url: "{jira}", email: bot@acme.example, projects: [APP, OPS, OKR], retry_backoff: 0.01{extra}}}
  github: {{type: github, url: "{github}", repos: [acme/web, acme/api, acme/okrs], retry_backoff: 0.01{extra}}}
  servicenow: {{type: servicenow, url: "{servicenow}", retry_backoff: 0.01{extra}}}
  pagerduty: {{type: pagerduty, url: "{pagerduty}", retry_backoff: 0.01{extra}}}
objectives:
  - id: O1
    title: Delivery
    key_results:
      - {{id: KR1, title: Release frequency, metric: deployment_frequency, select: {{source: github, environment: production}},
          baseline: auto, target: +40%, writeback: [{{to: jira, issue: OKR-1}}, {{to: github, issue: "acme/okrs#1"}}]}}
      - {{id: KR2, title: Checkout v2 points, metric: points_done_ratio, select: {{source: jira, parent: APP-100}}, target: 1}}
      - {{id: KR3, title: Bugs this quarter, metric: count, select: {{source: jira, type: Bug}}, baseline: 200, target: 100}}
      - {{id: KR4, title: Payment bugs done (JQL), metric: done_ratio,
          select: {{source: jira, jql: 'project = APP AND issuetype = Bug AND component = payments'}}, target: 1}}
      - {{id: KR5, title: Change failure rate, metric: change_failure_rate, select: {{source: github, environment: production}},
          target: 15%}}
  - id: O2
    title: Service
    key_results:
      - {{id: KR6, title: First-call resolution, metric: first_contact_resolution, select: {{source: servicenow}},
          target: 90%}}
      - {{id: KR7, title: MTTA, metric: mtta, select: {{source: pagerduty}}, target: 5}}
      - {{id: KR8, title: Mean P2/P3 resolution, metric: resolution_time, aggregate: mean,
          select: {{source: servicenow, priority: [2, 3]}}, baseline: auto, target: -20%}}
"""


def quarter(now: datetime) -> str:
    return f"{now.year}-Q{(now.month - 1) // 3 + 1}"


@dataclass
class Computed:
    krs: dict[str, dict]
    lo: datetime  # the period start
    hi: datetime  # the window end: now, or the period end once it is past
    end: datetime  # the period end (exclusive)
    now: datetime  # generated_at


@dataclass
class Env:
    sandbox: Sandbox
    dir: Path

    @property
    def workspace(self) -> Path:
        return self.dir / "okrsync.yaml"

    @property
    def db(self) -> Path:
        return self.dir / "okrsync.db"

    def write_workspace(self, text: str | None = None, **extra: str) -> Path:
        opts = "".join(f", {k}: {v}" for k, v in extra.items())
        body = text or WORKSPACE
        self.workspace.write_text(body.format(period=quarter(NOW), extra=opts, **self.sandbox.urls))
        return self.workspace

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 120,
            background: bool = False, debug: bool = False):
        full_env = {**{k: v for k, v in os.environ.items() if not k.startswith("OKRSYNC_")}, **TOKENS,
                    "OKRSYNC_SECRETS_DIR": str(self.dir / "no-secrets"), **(env or {})}
        cmd = [sys.executable, "-m", "okrsync", *(["--log-level", "debug"] if debug else []), *args,
               "-w", str(self.workspace)]
        if background:
            return subprocess.Popen(cmd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    cwd=self.dir)
        return subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=timeout, cwd=self.dir)

    def status(self, **kw) -> dict:
        r = self.run("status", "--json", **kw)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    def computed(self) -> Computed:
        """One status document: its KRs by id and the window it measured (period start up to its now)."""
        doc = self.status()
        bounds = self.sandbox.world.period_bounds()
        now = datetime.fromisoformat(doc["generated_at"].replace("Z", "+00:00"))
        lo = bounds["current_start"]
        return Computed({k["id"]: k for o in doc["objectives"] for k in o["key_results"]}, lo,
                        min(now, bounds["current_end"]), bounds["current_end"], now)

    def krs(self, **kw) -> dict[str, dict]:
        return {k["id"]: k for o in self.status(**kw)["objectives"] for k in o["key_results"]}


@pytest.fixture
def env(tmp_path) -> Env:
    sb = Sandbox(seed=42, scale=300, now=NOW)
    sb.start()
    e = Env(sb, tmp_path)
    e.write_workspace()
    yield e
    sb.stop()


def snapshot(db: Path, urls: dict[str, str] | None = None) -> dict[str, list[tuple]]:
    """The items a store holds, without run bookkeeping (first_run/last_run) - for convergence checks.

    Sandbox URLs (their ports differ between two sandboxes) are replaced by the system's name."""
    import re

    ports = re.compile(r"http://127\.0\.0\.1:\d+")

    def norm(v):
        return ports.sub("http://sandbox", v) if isinstance(v, str) else v

    conn = sqlite3.connect(db)
    out = {}
    try:
        for table in ("issues", "deployments", "incidents", "deployment_commits", "item_labels", "item_sprints",
                      "jql_members"):
            cols = [r[1] for r in conn.execute(f"PRAGMA table_info({table})") if r[1] not in ("first_run", "last_run")]
            rows = [tuple(norm(v) for v in r) for r in conn.execute(f"SELECT {', '.join(cols)} FROM {table}")]
            if "hash" in cols:  # the row hash covers the raw payload (with the URLs): compare the rest instead
                rows = [r[:cols.index("hash")] + r[cols.index("hash") + 1:] for r in rows]
            out[table] = sorted(rows, key=lambda r: tuple("" if v is None else str(v) for v in r))
        for table in ("issues", "deployments", "incidents"):  # the raw payloads, by item
            out[f"{table}_raw"] = sorted(
                (s, i, norm(raw)) for s, i, raw in conn.execute(
                    f"SELECT t.source, t.id, r.raw FROM {table} t JOIN {table}_raw r ON r.id = t.rowid"))
    finally:
        conn.close()
    return out
