"""The SQLite store (sqlite-utils): items, sync state, runs, KR history, write-back log."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import threading
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

from sqlite_utils import Database

from okrsync import __version__

from .records import Deployment, Incident, Issue, Record, iso
from .schema import MIGRATIONS

TABLE_OF = {Issue: "issues", Deployment: "deployments", Incident: "incidents"}
CAP_CHANGES = 500  # item ids kept per value row for added/removed


class StoreError(Exception):
    """The store cannot be used (newer schema, unreadable file); str() is the message."""


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def _sprint_dict(s) -> dict:
    return {"id": s.id, "name": s.name, "state": s.state, "start": iso(s.start), "end": iso(s.end),
            "completed": iso(s.completed)}


def record_row(rec: Record) -> dict[str, Any]:
    """A record as a store row (without run bookkeeping)."""
    raw = _json(rec.raw)
    row: dict[str, Any] = {"source": rec.source, "id": str(rec.id), "raw": raw}
    if isinstance(rec, Issue):
        row.update(
            key=rec.key, title=rec.title, type=rec.type, status=rec.status, status_category=rec.status_category,
            created=iso(rec.created), updated=iso(rec.updated), resolved=iso(rec.resolved), project=rec.project,
            labels=_json(list(rec.labels)), components=_json(list(rec.components)), parent=rec.parent,
            sprints=_json([_sprint_dict(s) for s in rec.sprints]),
            story_points=None if rec.story_points is None else float(rec.story_points),
            assignee=rec.assignee, url=rec.url, is_pull_request=int(bool(rec.is_pull_request)),
            merged_at=iso(rec.merged_at), merge_sha=rec.merge_sha,
        )
    elif isinstance(rec, Deployment):
        row.update(
            environment=rec.environment, status=rec.status, created=iso(rec.created), finished=iso(rec.finished),
            sha=rec.sha, ref=rec.ref, url=rec.url, repo=rec.repo, origin=rec.origin, updated=iso(rec.updated),
        )
    elif isinstance(rec, Incident):
        row.update(
            number=rec.number, title=rec.title, status=rec.status, opened=iso(rec.opened), service=rec.service,
            priority=rec.priority, severity=rec.severity, urgency=rec.urgency,
            acknowledged=iso(rec.acknowledged), resolved=iso(rec.resolved), closed=iso(rec.closed),
            updated=iso(rec.updated), reassignment_count=rec.reassignment_count,
            sla_breached=None if rec.sla_breached is None else int(rec.sla_breached),
            assignment_group=rec.assignment_group, url=rec.url,
        )
    else:  # pragma: no cover
        raise TypeError(f"not a record: {type(rec).__name__}")
    row["hash"] = hashlib.sha1(_json({k: v for k, v in row.items() if k != "raw"}).encode() + raw.encode()).hexdigest()
    return row


@dataclass
class PageCounts:
    new: int = 0
    changed: int = 0
    unchanged: int = 0


class Store:
    """One store file; a connection per thread (WAL mode, writers wait on a busy timeout)."""

    def __init__(self, path: str | Path, *, create: bool = True):
        self.path = Path(path)
        self._local = threading.local()
        self._all: list[Database] = []
        self._guard = threading.Lock()
        if not create and not self.path.exists():
            raise StoreError(f"{self.path}: no store yet (run 'okrsync sync' first)")
        self._open_and_migrate()

    # -- connections -------------------------------------------------------------------------
    @property
    def db(self) -> Database:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._connect()
            self._local.db = db
        return db

    def _connect(self) -> Database:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(self.path), timeout=60.0, check_same_thread=False)
            db = Database(conn)
            db.execute("PRAGMA busy_timeout = 60000")
            db.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: not an okrsync store ({exc})") from None
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot open the store: {exc}") from None
        with self._guard:
            self._all.append(db)
        return db

    @contextlib.contextmanager
    def write(self) -> Iterator[Database]:
        """A write transaction taken with BEGIN IMMEDIATE: concurrent writers queue on the busy timeout
        instead of failing when a read lock cannot be upgraded. Nested use joins the outer transaction."""
        db = self.db
        if db.conn.in_transaction:
            with db.atomic():
                yield db
            return
        db.conn.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.rollback()
            raise
        else:
            db.conn.execute("COMMIT")

    def close(self) -> None:
        with self._guard:
            for db in self._all:
                try:
                    db.close()
                except sqlite3.Error:
                    pass
            self._all.clear()
        self._local = threading.local()

    def _open_and_migrate(self) -> None:
        db = self.db
        try:
            if db.conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                with db.ensure_autocommit_on():
                    db.execute("PRAGMA journal_mode=wal")
            known = {m.name for m in MIGRATIONS._migrations}
            applied = {m.name for m in MIGRATIONS.applied(db)}
            newer = sorted(applied - known)
            if newer:
                writer = ""
                if db["meta"].exists():
                    row = db.execute("SELECT value FROM meta WHERE key = 'app_version'").fetchone()
                    writer = f" (okrsync {row[0]})" if row else ""
                raise StoreError(
                    f"{self.path}: this store was written by a newer okrsync{writer}: schema step "
                    f"{newer[-1]!r} is unknown to okrsync {__version__}; upgrade okrsync or use another --db"
                )
            if applied != known:
                with self.write():  # another process may be migrating: re-check under the write lock
                    if {m.name for m in MIGRATIONS.applied(db)} != known:
                        MIGRATIONS.apply(db)
                    db["meta"].upsert({"key": "app_version", "value": __version__}, pk="key")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: not an okrsync store ({exc})") from None

    # -- items ---------------------------------------------------------------------------------
    def write_page(
        self,
        source: str,
        stream: str,
        records: Iterable[Record],
        *,
        run_id: int,
        state: dict[str, Any] | None = None,
        memberships: Iterable[tuple[str, set[str] | None, set[str], str | None]] = (),
    ) -> PageCounts:
        """Upsert one page of records and save the stream's state, in one transaction."""
        by_table: dict[str, list[dict]] = {}
        commits: list[tuple[str, str, tuple[str, ...]]] = []
        sprints: dict[tuple[str, str], dict] = {}
        issue_recs: list[Issue] = []
        for rec in records:
            row = record_row(rec)
            row["stream"] = stream
            row["last_run"] = run_id
            row["deleted"] = 0
            by_table.setdefault(TABLE_OF[type(rec)], []).append(row)
            if isinstance(rec, Deployment) and rec.commits:
                commits.append((rec.source, str(rec.id), rec.commits))
            if isinstance(rec, Issue):
                issue_recs.append(rec)
                for s in rec.sprints:
                    sprints[(rec.source, s.id)] = {"source": rec.source, **_sprint_dict(s)}
        counts = PageCounts()
        db = self.db
        with self.write():
            for table, rows in by_table.items():
                known = self._existing_hashes(table, source, [r["id"] for r in rows])
                fresh = []
                for row in rows:
                    old = known.get(row["id"])
                    if old is None:
                        counts.new += 1
                        row["first_run"] = run_id
                        fresh.append(row)
                    else:
                        counts.changed += old[0] != row["hash"]
                        counts.unchanged += old[0] == row["hash"]
                        row["first_run"] = old[1]
                        fresh.append(row)
                db[table].upsert_all(fresh, pk=("source", "id"))
            for src, dep_id, shas in commits:
                db.execute("DELETE FROM deployment_commits WHERE source = ? AND deployment_id = ?", [src, dep_id])
                db["deployment_commits"].insert_all(
                    [{"source": src, "deployment_id": dep_id, "sha": s} for s in dict.fromkeys(shas)],
                    pk=("source", "deployment_id", "sha"), replace=True,
                )
            if sprints:
                db["sprints"].upsert_all(list(sprints.values()), pk=("source", "id"))
            if issue_recs:
                self._write_issue_links(issue_recs)
            for jql_key, checked, members, jql in memberships:
                self._apply_members(source, jql_key, checked, members, jql, run_id)
            if state is not None:
                self._save_state(source, stream, state)
        return counts

    def _write_issue_links(self, recs: list[Issue]) -> None:
        """Labels, components and sprint membership as indexed side tables (selectors use them)."""
        db = self.db
        by_source: dict[str, list[Issue]] = {}
        for r in recs:
            by_source.setdefault(r.source, []).append(r)
        for source, items in by_source.items():
            ids = [str(r.id) for r in items]
            for i in range(0, len(ids), 500):
                chunk = ids[i:i + 500]
                marks = ",".join("?" for _ in chunk)
                for table in ("item_labels", "item_components", "item_sprints"):
                    db.execute(f"DELETE FROM {table} WHERE source = ? AND item_id IN ({marks})", [source, *chunk])
            labels = {(source, str(r.id), lab.lower()): lab for r in items for lab in r.labels}
            comps = {(source, str(r.id), c.lower()): c for r in items for c in r.components}
            links = {(source, str(r.id), s.id) for r in items for s in r.sprints}
            db.conn.executemany("INSERT INTO item_labels (source, item_id, label) VALUES (?, ?, ?)",
                                [(s, i, lab) for (s, i, _), lab in labels.items()])
            db.conn.executemany("INSERT INTO item_components (source, item_id, component) VALUES (?, ?, ?)",
                                [(s, i, c) for (s, i, _), c in comps.items()])
            db.conn.executemany("INSERT INTO item_sprints (source, item_id, sprint_id) VALUES (?, ?, ?)", list(links))

    def _existing_hashes(self, table: str, source: str, ids: list[str]) -> dict[str, tuple[str, int]]:
        out: dict[str, tuple[str, int]] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            marks = ",".join("?" for _ in chunk)
            for row in self.db.execute(
                f"SELECT id, hash, first_run FROM {table} WHERE source = ? AND id IN ({marks})", [source, *chunk]
            ):
                out[row[0]] = (row[1], row[2])
        return out

    def _apply_members(self, source: str, jql_key: str, checked: set[str] | None, members: set[str],
                       jql: str | None, run_id: int) -> None:
        """checked=None replaces the whole set; else items in checked are re-decided by members."""
        db = self.db
        if checked is None:
            db.execute("DELETE FROM jql_members WHERE jql_key = ? AND source = ?", [jql_key, source])
        else:
            ids = list(checked)
            for i in range(0, len(ids), 500):
                chunk = ids[i:i + 500]
                marks = ",".join("?" for _ in chunk)
                db.execute(f"DELETE FROM jql_members WHERE jql_key = ? AND source = ? AND item_id IN ({marks})",
                           [jql_key, source, *chunk])
        if members:
            db["jql_members"].insert_all(
                [{"jql_key": jql_key, "source": source, "item_id": m} for m in members],
                pk=("jql_key", "source", "item_id"), replace=True,
            )
        if checked is None and jql is not None:
            db["jql_queries"].upsert(
                {"jql_key": jql_key, "source": source, "jql": jql, "evaluated_at": iso(now_utc()), "run_id": run_id},
                pk="jql_key",
            )

    def jql_evaluated(self, jql_key: str) -> bool:
        return self.db.execute("SELECT 1 FROM jql_queries WHERE jql_key = ?", [jql_key]).fetchone() is not None

    def mark_deleted(self, source: str, stream: str, run_id: int, since: datetime | None = None) -> int:
        """After a complete full read: items of this stream not seen in the run are deleted.

        A read that started at `since` (streams that keep only recent history) vouches only for items
        created from then on; older items are left alone."""
        total = 0
        with self.write():
            for table, created in (("issues", "created"), ("deployments", "created"), ("incidents", "opened")):
                sql = f"UPDATE {table} SET deleted = 1 WHERE source = ? AND stream = ? AND last_run < ? AND deleted = 0"
                params: list[Any] = [source, stream, run_id]
                if since is not None:
                    sql += f" AND {created} >= ?"
                    params.append(iso(since))
                total += self.db.execute(sql, params).rowcount
        return total

    # -- sync state ----------------------------------------------------------------------------
    def get_state(self, source: str, stream: str) -> dict[str, Any]:
        row = self.db.execute(
            "SELECT cursor, pending, state FROM sync_state WHERE source = ? AND stream = ?", [source, stream]
        ).fetchone()
        if row is None:
            return {"cursor": None, "pending": None, "state": {}}
        return {"cursor": row[0], "pending": json.loads(row[1]) if row[1] else None,
                "state": json.loads(row[2]) if row[2] else {}}

    def _save_state(self, source: str, stream: str, state: dict[str, Any]) -> None:
        current = self.get_state(source, stream)
        merged = {**current, **state}
        self.db["sync_state"].upsert(
            {
                "source": source,
                "stream": stream,
                "cursor": merged.get("cursor"),
                "pending": _json(merged["pending"]) if merged.get("pending") else None,
                "state": _json(merged.get("state") or {}),
                "updated_at": iso(now_utc()),
            },
            pk=("source", "stream"),
        )

    def save_state(self, source: str, stream: str, state: dict[str, Any]) -> None:
        with self.write():
            self._save_state(source, stream, state)

    def source_synced_at(self) -> dict[str, str]:
        """Per source: the oldest complete cursor of its streams (when it was last fully synced)."""
        out: dict[str, str] = {}
        for source, cursor in self.db.execute(
            "SELECT source, min(cursor) FROM sync_state WHERE cursor IS NOT NULL GROUP BY source"
        ):
            out[source] = cursor
        return out

    # -- runs ----------------------------------------------------------------------------------
    def start_run(self, command: str, started: datetime) -> int:
        with self.write():
            table = self.db["runs"]
            table.insert({"command": command, "started": iso(started), "status": "running", "pid": os.getpid(),
                          "requests": 0, "sources": "{}", "errors": "[]", "skipped": "[]"})
            return int(table.last_pk)

    def finish_run(self, run_id: int, *, status: str, sources: dict, errors: list[str], skipped: list[dict],
                   requests: int) -> None:
        with self.write():
            self.db["runs"].update(run_id, {
                "finished": iso(now_utc()), "status": status, "sources": _json(sources),
                "errors": _json(errors), "skipped": _json(skipped), "requests": requests,
            })

    def runs(self, limit: int = 20) -> list[dict]:
        return list(self.db.query("SELECT * FROM runs ORDER BY id DESC LIMIT ?", [limit]))

    # -- KR history ----------------------------------------------------------------------------
    def last_value(self, kr_id: str) -> dict | None:
        rows = list(self.db.query("SELECT * FROM kr_values WHERE kr_id = ? ORDER BY id DESC LIMIT 1", [kr_id]))
        return rows[0] if rows else None

    def history(self, kr_id: str, limit: int | None = None) -> list[dict]:
        sql = "SELECT * FROM kr_values WHERE kr_id = ? ORDER BY id"
        rows = list(self.db.query(sql, [kr_id]))
        return rows[-limit:] if limit else rows

    def item_set(self, digest: str | None) -> list[str]:
        if not digest:
            return []
        row = self.db.execute("SELECT ids FROM kr_item_sets WHERE hash = ?", [digest]).fetchone()
        return json.loads(zlib.decompress(row[0])) if row else []

    def record_values(self, rows: list[dict], item_sets: dict[str, list[str]]) -> None:
        """Append computed KR values (one transaction for the whole recompute)."""
        with self.write():
            for kr_row in rows:
                digest = kr_row["item_set"]
                if digest in item_sets and self.db.execute(
                        "SELECT 1 FROM kr_item_sets WHERE hash = ?", [digest]).fetchone() is None:
                    ids = item_sets[digest]
                    self.db["kr_item_sets"].insert(
                        {"hash": digest, "count": len(ids), "ids": zlib.compress(_json(ids).encode())}, pk="hash"
                    )
                self.db["kr_values"].insert(kr_row)

    # -- write-back ----------------------------------------------------------------------------
    def writeback_state(self, kr_id: str, target: str) -> dict | None:
        rows = list(self.db.query("SELECT * FROM writeback_state WHERE kr_id = ? AND target = ?", [kr_id, target]))
        return rows[0] if rows else None

    def save_writeback(self, kr_id: str, target: str, *, rendered_hash: str | None, remote_ref: str | None,
                       run_id: int | None, actions: list[tuple[str, str, str]]) -> None:
        with self.write():
            if rendered_hash is not None:
                self.db["writeback_state"].upsert(
                    {"kr_id": kr_id, "target": target, "rendered_hash": rendered_hash, "remote_ref": remote_ref,
                     "updated_at": iso(now_utc())}, pk=("kr_id", "target"))
            for action, status, detail in actions:
                self.db["writeback_log"].insert({"run_id": run_id, "kr_id": kr_id, "target": target,
                                                 "action": action, "status": status, "detail": detail,
                                                 "at": iso(now_utc())})

    def writeback_log(self, kr_id: str | None = None) -> list[dict]:
        if kr_id:
            return list(self.db.query("SELECT * FROM writeback_log WHERE kr_id = ? ORDER BY id", [kr_id]))
        return list(self.db.query("SELECT * FROM writeback_log ORDER BY id"))


def item_set_digest(ids: list[str]) -> str:
    return hashlib.sha1("\n".join(ids).encode()).hexdigest()
