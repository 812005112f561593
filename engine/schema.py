"""Store schema: migrations, each run in a transaction, written in SQLite SQL (dialect.render for PostgreSQL).

Names users select on (project, type, environment, service, labels, ...) are COLLATE NOCASE so a
case-insensitive selector still uses its index. Labels, components and sprint membership live in side
tables so a selector on them is an index lookup, not a JSON scan of every row. The raw payloads (the
replayable raw layer, ~2 KB a record) live in <table>_raw keyed by the item's rowid, so the item rows the
metric queries read stay small.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable

STEPS: list[tuple[str, Callable[[Any], None]]] = []  # (name, step) in order
# where the applied steps are listed: SQLite keeps the table sqlite-utils' Migrations made in existing stores
APPLIED = {"sqlite": "_sqlite_migrations", "postgresql": "okrsync_migrations"}
_TABLE_EXISTS = {"sqlite": "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                 "postgresql": "SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() "
                               "AND table_name = ?"}


def step(fn: Callable[[Any], None]) -> Callable[[Any], None]:
    STEPS.append((fn.__name__, fn))
    return fn


def migrate(db: Any, dialect: str, write: Callable[[], Any]) -> list[str]:
    """Apply the steps not applied yet, each in a transaction taken by `write`; returns the applied steps this
    okrsync does not know (a newer okrsync wrote the store: nothing is applied then)."""
    table = APPLIED[dialect]

    def applied() -> set[str]:
        return {r[0] for r in db.execute(f"SELECT name FROM {table} WHERE migration_set = 'okrsync'")}

    def exclusive() -> None:  # SQLite's BEGIN IMMEDIATE already is; PostgreSQL: one migrating process a schema
        if dialect == "postgresql":
            db.execute("SELECT pg_advisory_xact_lock(hashtext(current_schema()))")

    if db.execute(_TABLE_EXISTS[dialect], [table]).fetchone() is None:  # (opening a store writes nothing)
        with write():
            exclusive()
            db.execute(f"CREATE TABLE IF NOT EXISTS {table} (id INTEGER PRIMARY KEY, migration_set TEXT, "
                       "name TEXT, applied_at TEXT)")
            db.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS idx_{table}_name ON {table} (migration_set, name)")
    known = [name for name, _ in STEPS]
    newer = sorted(applied() - set(known))
    for name, fn in STEPS if not newer and applied() != set(known) else ():
        with write():  # another process may be migrating: re-check under the lock
            exclusive()
            if name not in applied():
                fn(db)
                db.execute(f"INSERT INTO {table} (migration_set, name, applied_at) VALUES ('okrsync', ?, ?)",
                           [name, datetime.now(timezone.utc).isoformat()])
    return newer


_ITEM_COMMON = """
    source TEXT NOT NULL,
    id TEXT NOT NULL,
    stream TEXT,
    hash TEXT,
    deleted INTEGER NOT NULL DEFAULT 0,
    first_run INTEGER,
    last_run INTEGER,
"""

_TABLES = """
CREATE TABLE issues ({_ITEM_COMMON}
    key TEXT COLLATE NOCASE,
    title TEXT,
    type TEXT COLLATE NOCASE,
    status TEXT COLLATE NOCASE,
    status_category TEXT,
    created TEXT NOT NULL,
    updated TEXT,
    resolved TEXT,
    project TEXT COLLATE NOCASE,
    labels TEXT,
    components TEXT,
    parent TEXT COLLATE NOCASE,
    sprints TEXT,
    story_points REAL,
    assignee TEXT COLLATE NOCASE,
    url TEXT,
    is_pull_request INTEGER NOT NULL DEFAULT 0,
    merged_at TEXT,
    merge_sha TEXT,
    PRIMARY KEY (source, id)
);
CREATE TABLE deployments ({_ITEM_COMMON}
    environment TEXT COLLATE NOCASE,
    status TEXT,
    created TEXT NOT NULL,
    finished TEXT,
    sha TEXT,
    ref TEXT,
    url TEXT,
    repo TEXT COLLATE NOCASE,
    origin TEXT,
    updated TEXT,
    PRIMARY KEY (source, id)
);
CREATE TABLE incidents ({_ITEM_COMMON}
    number TEXT COLLATE NOCASE,
    title TEXT,
    status TEXT COLLATE NOCASE,
    opened TEXT NOT NULL,
    service TEXT COLLATE NOCASE,
    priority TEXT COLLATE NOCASE,
    severity TEXT COLLATE NOCASE,
    urgency TEXT COLLATE NOCASE,
    acknowledged TEXT,
    resolved TEXT,
    closed TEXT,
    updated TEXT,
    reassignment_count INTEGER,
    sla_breached INTEGER,
    assignment_group TEXT COLLATE NOCASE,
    url TEXT,
    PRIMARY KEY (source, id)
);
CREATE TABLE issues_raw (id INTEGER PRIMARY KEY, raw TEXT NOT NULL);
CREATE TABLE deployments_raw (id INTEGER PRIMARY KEY, raw TEXT NOT NULL);
CREATE TABLE incidents_raw (id INTEGER PRIMARY KEY, raw TEXT NOT NULL);
CREATE TABLE item_labels (source TEXT NOT NULL, item_id TEXT NOT NULL, label TEXT COLLATE NOCASE NOT NULL,
    PRIMARY KEY (source, item_id, label));
CREATE TABLE item_components (source TEXT NOT NULL, item_id TEXT NOT NULL, component TEXT COLLATE NOCASE NOT NULL,
    PRIMARY KEY (source, item_id, component));
CREATE TABLE item_sprints (source TEXT NOT NULL, item_id TEXT NOT NULL, sprint_id TEXT NOT NULL,
    PRIMARY KEY (source, item_id, sprint_id));
CREATE TABLE sprints (source TEXT NOT NULL, id TEXT NOT NULL, name TEXT, state TEXT, start TEXT, "end" TEXT,
    completed TEXT, PRIMARY KEY (source, id));
CREATE TABLE deployment_commits (source TEXT NOT NULL, deployment_id TEXT NOT NULL, sha TEXT NOT NULL,
    PRIMARY KEY (source, deployment_id, sha));
CREATE TABLE jql_members (jql_key TEXT NOT NULL, source TEXT NOT NULL, item_id TEXT NOT NULL,
    PRIMARY KEY (jql_key, source, item_id));
CREATE TABLE jql_queries (jql_key TEXT PRIMARY KEY, source TEXT, jql TEXT, evaluated_at TEXT, run_id INTEGER);
CREATE TABLE sync_state (
    source TEXT NOT NULL,
    stream TEXT NOT NULL,
    cursor TEXT,      -- run start time of the last complete read (UTC ISO)
    pending TEXT,     -- JSON: an interrupted read {since, run_started, run_id, full, checkpoint}
    state TEXT,       -- JSON: connector-private state
    updated_at TEXT,
    PRIMARY KEY (source, stream)
);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    command TEXT,
    started TEXT,
    finished TEXT,
    status TEXT,      -- running | ok | partial | failed | interrupted | abandoned (left running by a dead process)
    pid INTEGER,
    requests INTEGER,
    sources TEXT,     -- JSON per source: counts, requests, error
    errors TEXT,      -- JSON list of one-line messages
    skipped TEXT      -- JSON list of {source, stream, key, reason}
);
CREATE TABLE kr_values (
    id INTEGER PRIMARY KEY,
    run_id INTEGER,
    kr_id TEXT,
    objective_id TEXT,
    computed_at TEXT,
    value REAL,
    computed_value REAL,
    baseline REAL,
    target REAL,
    progress REAL,
    score REAL,
    expected REAL,
    status TEXT,
    items INTEGER,
    fingerprint TEXT, -- cheap set checksum: unchanged means the item set is unchanged
    item_set TEXT,    -- sha1 of the sorted item ids, key into kr_item_sets
    added TEXT,       -- JSON: item ids added since the previous value (capped)
    removed TEXT,
    added_count INTEGER,
    removed_count INTEGER,
    window_start TEXT,
    window_end TEXT,
    detail TEXT
);
CREATE TABLE kr_item_sets (hash TEXT PRIMARY KEY, count INTEGER, ids BLOB);
CREATE TABLE writeback_state (kr_id TEXT NOT NULL, target TEXT NOT NULL, rendered_hash TEXT, remote_ref TEXT,
    updated_at TEXT, PRIMARY KEY (kr_id, target));
CREATE TABLE writeback_log (id INTEGER PRIMARY KEY, run_id INTEGER, kr_id TEXT, target TEXT, action TEXT,
    status TEXT, detail TEXT, at TEXT);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
""".replace("{_ITEM_COMMON}", _ITEM_COMMON)

_INDEXES = """
-- covering: counts in a window, done ratios and points of a project, durations of a project or type
CREATE INDEX idx_issues_project_created ON issues (source, is_pull_request, deleted, project, created, type,
    status_category, story_points);
CREATE INDEX idx_issues_project_resolved ON issues (source, is_pull_request, deleted, project, resolved, created, type);
CREATE INDEX idx_issues_type_created ON issues (source, is_pull_request, deleted, type, created);
CREATE INDEX idx_issues_type_resolved ON issues (source, is_pull_request, deleted, type, resolved, created);
CREATE INDEX idx_issues_parent ON issues (source, is_pull_request, deleted, parent, status_category, story_points)
    WHERE parent IS NOT NULL;
CREATE INDEX idx_issues_created ON issues (source, is_pull_request, deleted, created);
CREATE INDEX idx_issues_resolved ON issues (source, is_pull_request, deleted, resolved);
CREATE INDEX idx_issues_merge_sha ON issues (source, merge_sha) WHERE merge_sha IS NOT NULL;
CREATE INDEX idx_deployments_env_finished ON deployments (source, deleted, environment, finished, status);
CREATE INDEX idx_deployments_env_created ON deployments (source, deleted, environment, created);
CREATE INDEX idx_deployments_finished ON deployments (source, deleted, finished, status);
CREATE INDEX idx_deployments_created ON deployments (source, deleted, created);
CREATE INDEX idx_deployments_stream ON deployments (source, stream, last_run);
CREATE INDEX idx_incidents_service_opened ON incidents (source, deleted, service, opened);
CREATE INDEX idx_incidents_service_resolved ON incidents (source, deleted, service, resolved);
CREATE INDEX idx_incidents_priority_resolved ON incidents (source, deleted, priority, resolved);
CREATE INDEX idx_incidents_opened ON incidents (source, deleted, opened);
CREATE INDEX idx_incidents_resolved ON incidents (source, deleted, resolved);
CREATE INDEX idx_incidents_stream ON incidents (source, stream, last_run);
CREATE INDEX idx_item_labels_label ON item_labels (source, label);
CREATE INDEX idx_item_components ON item_components (source, component);
CREATE INDEX idx_item_sprints_sprint ON item_sprints (source, sprint_id);
CREATE INDEX idx_sprints_name ON sprints (source, name);
CREATE INDEX idx_deployment_commits_sha ON deployment_commits (source, sha);
CREATE INDEX idx_jql_members_item ON jql_members (source, item_id);
CREATE INDEX idx_kr_values_kr ON kr_values (kr_id, id);
CREATE INDEX idx_kr_values_run ON kr_values (run_id);
CREATE INDEX idx_writeback_log_kr ON writeback_log (kr_id, target, id);
"""


def _script(db: Any, sql: str) -> None:
    # one statement at a time: executescript() would COMMIT the migration's transaction
    for statement in sql.split(";"):
        if statement.strip():
            db.execute(statement)


@step
def m001_initial(db: Any) -> None:
    _script(db, _TABLES)
    _script(db, _INDEXES)


@step
def m002_deployment_twins(db: Any) -> None:
    # a workflow run finds the deployment record of the same commit (deploys recorded twice count once)
    db.execute("CREATE INDEX idx_deployments_sha ON deployments (source, sha) WHERE origin = 'deployment'")


@step
def m003_checkins_and_objective_values(db: Any) -> None:
    _script(db, """
CREATE TABLE checkins (id INTEGER PRIMARY KEY, kr_id TEXT NOT NULL, at TEXT NOT NULL, by TEXT,
    confidence REAL, note TEXT);
CREATE INDEX idx_checkins_kr ON checkins (kr_id, at);
CREATE TABLE objective_values (id INTEGER PRIMARY KEY, run_id INTEGER, objective_id TEXT NOT NULL,
    computed_at TEXT NOT NULL, score REAL, status TEXT);
CREATE INDEX idx_objective_values_objective ON objective_values (objective_id, id)
""")
