"""End-to-end harness: the sandbox simulators on localhost and the real `okrsync` CLI in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pytest

from okrsync.engine.store import Store, StoreError
from okrsync.sandbox import Sandbox

pytestmark = pytest.mark.e2e

# OKRSYNC_TEST_PG=postgresql://user:password@host:port/db (make test-pg sets it): the tests taking `env` run on
# both stores, each PostgreSQL case in a schema of its own; without it the PostgreSQL cases skip.
PG = os.environ.get("OKRSYNC_TEST_PG")
STORES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(not PG, reason="OKRSYNC_TEST_PG not set"))]


def store_url(kind: str, tmp: Path) -> str:
    """A fresh store of that kind: a file in tmp, or a new schema in the test database."""
    if kind == "sqlite":
        return str(tmp / "okrsync.db")
    return f"{PG}{'&' if '?' in (PG or '') else '?'}schema=t_{uuid.uuid4().hex[:12]}"

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
    store: str = field(default="sqlite")  # sqlite | postgresql
    url: str = ""  # the PostgreSQL store's URL (OKRSYNC_DB of every command)

    def __post_init__(self):
        if self.store != "sqlite" and not self.url:
            self.url = store_url(self.store, self.dir)

    @property
    def workspace(self) -> Path:
        return self.dir / "okrsync.yaml"

    @property
    def db(self) -> Path:
        return self.dir / "okrsync.db"

    @property
    def target(self) -> str:
        """The store as --db would name it: the file, or the PostgreSQL URL with its schema."""
        return self.url or str(self.db)

    def open_store(self) -> Store:
        """The store as the CLI opens it for this workspace (for PostgreSQL the workspace's name: may pick the
        schema)."""
        from okrsync.config.settings import Settings
        from okrsync.config.workspace import load_workspace
        from okrsync.engine.pipeline import store_url_for

        ws = load_workspace(self.workspace).workspace if self.workspace.exists() else None
        return Store(store_url_for(self.workspace, self.target, Settings(), ws),
                     create=False)

    def connect(self):
        """A DB-API-like connection to the store: sqlite3's for the file, the store's own for PostgreSQL (SQLite
        SQL, `?` placeholders, execute().fetchone()/fetchall(), close())."""
        if not self.url:
            import sqlite3

            return sqlite3.connect(self.db)
        return self.open_store().db

    def exists(self) -> bool:
        """Whether a store has been made (the file, or the workspace's tables in PostgreSQL)."""
        if not self.url:
            return self.db.exists()
        try:
            self.open_store().close()
        except StoreError:
            return False
        return True

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        """Rows of a query on the store (SQLite SQL; PostgreSQL gets it through the store's dialect layer)."""
        store = self.open_store()
        try:
            return [tuple(r) for r in store.db.execute(sql, params or [])]
        finally:
            store.close()

    def write_workspace(self, text: str | None = None, **extra: str) -> Path:
        opts = "".join(f", {k}: {v}" for k, v in extra.items())
        body = text or WORKSPACE
        self.workspace.write_text(body.format(period=quarter(NOW), extra=opts, **self.sandbox.urls))
        return self.workspace

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 120,
            background: bool = False, debug: bool = False):
        full_env = {**{k: v for k, v in os.environ.items() if not k.startswith("OKRSYNC_")}, **TOKENS,
                    "OKRSYNC_SECRETS_DIR": str(self.dir / "no-secrets"),
                    **({"OKRSYNC_DB": self.url} if self.url else {}), **(env or {})}
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


@pytest.fixture(params=STORES)
def store_kind(request) -> str:
    if request.param != "sqlite" and request.node.get_closest_marker("sqlite_only"):
        pytest.skip("reads the SQLite file directly")
    return request.param


@pytest.fixture
def env(tmp_path, store_kind) -> Env:
    sb = Sandbox(seed=42, scale=300, now=NOW)
    sb.start()
    e = Env(sb, tmp_path, store_kind)
    e.write_workspace()
    yield e
    sb.stop()


def snapshot(db: Path | str, urls: dict[str, str] | None = None) -> dict[str, list[tuple]]:
    """The items a store (a file or a PostgreSQL URL) holds, without run bookkeeping (first_run/last_run, the
    row ids) - for convergence checks, and to compare the two stores.

    Sandbox URLs (their ports differ between two sandboxes) are replaced by the system's name."""
    import re

    ports = re.compile(r"http://127\.0\.0\.1:\d+")

    def norm(v):
        return ports.sub("http://sandbox", v) if isinstance(v, str) else v

    store = Store(str(db), create=False)
    out = {}
    try:
        for table in ("issues", "deployments", "incidents", "deployment_commits", "item_labels", "item_sprints",
                      "jql_members"):
            rows = []
            for r in store.db.query(f"SELECT * FROM {table}"):
                # the row hash covers the raw payload (with the URLs): compare the rest instead
                rows.append(tuple(norm(r[k]) for k in sorted(r) if k not in ("first_run", "last_run", "rowid",
                                                                               "hash")))
            out[table] = sorted(rows, key=lambda r: tuple("" if v is None else str(v) for v in r))
        for table in ("issues", "deployments", "incidents"):  # the raw payloads (as JSON values), by item
            out[f"{table}_raw"] = sorted(
                (s, i, norm(json.dumps(json.loads(raw) if isinstance(raw, str) else raw, sort_keys=True)))
                for s, i, raw in store.db.execute(
                    f"SELECT t.source, t.id, r.raw FROM {table} t JOIN {table}_raw r ON r.id = t.rowid"))
    finally:
        store.close()
    return out
