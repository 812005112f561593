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


class StoreRemoved(Exception):
    """The store file was deleted while a command was using it (exit 1); str() is the message."""

    def __init__(self, path: Path):
        super().__init__(f"the store {path} was removed during the run")


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, check_circular=False, default=str).encode

# Item columns after the bookkeeping ones (source, id, stream, raw, hash, deleted, first_run, last_run).
COLUMNS: dict[str, tuple[str, ...]] = {
    "issues": ("key", "title", "type", "status", "status_category", "created", "updated", "resolved", "project",
               "labels", "components", "parent", "sprints", "story_points", "assignee", "url", "is_pull_request",
               "merged_at", "merge_sha"),
    "deployments": ("environment", "status", "created", "finished", "sha", "ref", "url", "repo", "origin",
                    "updated"),
    "incidents": ("number", "title", "status", "opened", "service", "priority", "severity", "urgency",
                  "acknowledged", "resolved", "closed", "updated", "reassignment_count", "sla_breached",
                  "assignment_group", "url"),
}
_BOOK = ("source", "id", "stream", "hash", "deleted", "first_run", "last_run")


def _upsert_sql(table: str) -> str:
    cols = _BOOK + COLUMNS[table]
    keep = ("source", "id", "first_run")  # first_run is the run that first saw the item: never overwritten
    names = ", ".join(f'"{c}"' for c in cols)
    marks = ", ".join("?" for _ in cols)
    sets = ", ".join(f'"{c}" = excluded."{c}"' for c in cols if c not in keep)
    return f"INSERT INTO {table} ({names}) VALUES ({marks}) ON CONFLICT (source, id) DO UPDATE SET {sets}"


_UPSERT = {table: _upsert_sql(table) for table in COLUMNS}


def _sprint_dict(s) -> dict:
    return {"id": s.id, "name": s.name, "state": s.state, "start": iso(s.start), "end": iso(s.end),
            "completed": iso(s.completed)}


def _values(rec: Record, sprint_cache: dict | None = None) -> tuple[str, tuple]:
    """(table, the item columns of COLUMNS[table] in order)."""
    if isinstance(rec, Issue):
        if rec.sprints:
            parts = []
            for sp in rec.sprints:
                text = sprint_cache.get(sp) if sprint_cache is not None else None
                if text is None:
                    text = _encode(_sprint_dict(sp))
                    if sprint_cache is not None:
                        sprint_cache[sp] = text
                parts.append(text)
            sprints = "[" + ",".join(parts) + "]"
        else:
            sprints = "[]"
        return "issues", (
            rec.key, rec.title, rec.type, rec.status, rec.status_category, iso(rec.created), iso(rec.updated),
            iso(rec.resolved), rec.project, _encode(list(rec.labels)), _encode(list(rec.components)), rec.parent,
            sprints, None if rec.story_points is None else float(rec.story_points), rec.assignee, rec.url,
            int(bool(rec.is_pull_request)), iso(rec.merged_at), rec.merge_sha,
        )
    if isinstance(rec, Deployment):
        return "deployments", (
            rec.environment, rec.status, iso(rec.created), iso(rec.finished), rec.sha, rec.ref, rec.url, rec.repo,
            rec.origin, iso(rec.updated),
        )
    if isinstance(rec, Incident):
        return "incidents", (
            rec.number, rec.title, rec.status, iso(rec.opened), rec.service, rec.priority, rec.severity, rec.urgency,
            iso(rec.acknowledged), iso(rec.resolved), iso(rec.closed), iso(rec.updated), rec.reassignment_count,
            None if rec.sla_breached is None else int(rec.sla_breached), rec.assignment_group, rec.url,
        )
    raise TypeError(f"not a record: {type(rec).__name__}")


def _raw_text(raw: Any) -> str:
    """The raw payload as stored: the API's own JSON text when the connector kept it, else encoded."""
    text = getattr(raw, "json_text", None)
    return text if type(text) is str else _encode(raw)


def _row_hash(values: tuple, raw: str, extra: tuple = ()) -> str:
    """"<fingerprint>:<raw digest>". The fingerprint, of the normalized record (the item columns and a
    deployment's commits), decides new/changed/unchanged: a payload whose volatile nested fields moved (a PR's
    repository stars, pushed_at) is unchanged. The raw digest only says the stored payload needs refreshing."""
    fingerprint = hashlib.sha1(f"{values!r}{extra!r}".encode()).hexdigest()
    return f"{fingerprint}:{hashlib.sha1(raw.encode()).hexdigest()[:16]}"


def _fingerprint(digest: str) -> str:
    return digest.partition(":")[0]


def record_row(rec: Record) -> dict[str, Any]:
    """A record as a store row (without run bookkeeping)."""
    table, values = _values(rec)
    raw = _raw_text(rec.raw)
    row: dict[str, Any] = {"source": rec.source, "id": str(rec.id), "raw": raw}
    row.update(zip(COLUMNS[table], values))
    row["hash"] = _row_hash(values, raw, rec.commits if isinstance(rec, Deployment) else ())
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
        self._inode = os.stat(self.path).st_ino

    def removed(self) -> bool:
        """True when the store file was deleted (or replaced) while in use: a connection opened since then sees
        an empty database ("no such table")."""
        try:
            return os.stat(self.path).st_ino != self._inode
        except OSError:
            return True

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
                if db.table("meta").exists():
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
                    db.table("meta").upsert({"key": "app_version", "value": __version__}, pk="key")
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
        """Upsert one page of records and save the stream's state, in one transaction.

        Rows are upserted by (source, id). An item whose row hash is unchanged only gets its run bookkeeping
        touched (no index or side-table rewrite); new and changed items are written whole."""
        # (table, source) -> id -> (record, values, raw, hash); the last copy of an id in a page wins
        prepared: dict[tuple[str, str], dict[str, tuple]] = {}
        sprint_cache: dict = {}
        for rec in records:
            table, values = _values(rec, sprint_cache)
            raw = _raw_text(rec.raw)
            extra = rec.commits if isinstance(rec, Deployment) else ()
            prepared.setdefault((table, rec.source), {})[str(rec.id)] = (rec, values, raw,
                                                                       _row_hash(values, raw, extra))
        counts = PageCounts()
        conn = self.db.conn
        with self.write():
            for (table, src), items in prepared.items():
                known = self._existing(table, src, list(items))
                full: list[tuple] = []
                touch: list[tuple] = []
                written: list[Record] = []
                replaced: list[str] = []
                raws: dict[str, str] = {}
                for iid, (rec, values, raw, digest) in items.items():
                    old = known.get(iid)
                    if old is None:
                        counts.new += 1
                        first = run_id
                    elif _fingerprint(old[0]) == _fingerprint(digest):
                        counts.unchanged += 1
                        if old[0] == digest and not old[2]:  # not deleted: only the run bookkeeping moves
                            touch.append((stream, run_id, src, iid))
                            continue
                        first = old[1]  # deleted, or only the payload moved: rewritten, not "changed"
                        replaced.append(iid)
                    else:
                        counts.changed += 1
                        first = old[1]
                        replaced.append(iid)
                    full.append((src, iid, stream, digest, 0, first, run_id, *values))
                    written.append(rec)
                    raws[iid] = raw
                if full:
                    conn.executemany(_UPSERT[table], full)
                    self._write_raw(table, src, raws)
                if touch:
                    conn.executemany(f"UPDATE {table} SET stream = ?, last_run = ? WHERE source = ? AND id = ?",
                                     touch)
                if table == "issues" and written:
                    self._write_issue_links(src, written, replaced)  # type: ignore[arg-type]
                elif table == "deployments":
                    for rec in written:
                        if rec.commits:  # type: ignore[union-attr]
                            conn.execute("DELETE FROM deployment_commits WHERE source = ? AND deployment_id = ?",
                                         [src, str(rec.id)])
                            conn.executemany(
                                "INSERT OR REPLACE INTO deployment_commits (source, deployment_id, sha) "
                                "VALUES (?, ?, ?)",
                                [(src, str(rec.id), sha) for sha in dict.fromkeys(rec.commits)])  # type: ignore[union-attr]
            for jql_key, checked, members, jql in memberships:
                self._apply_members(source, jql_key, checked, members, jql, run_id)
            if state is not None:
                self._save_state(source, stream, state)
        return counts

    def _write_issue_links(self, source: str, items: list[Issue], replaced: list[str]) -> None:
        """Labels, components and sprint membership as indexed side tables (selectors use them), and the
        sprints themselves. Only items written whole come here; `replaced` had rows before (cleared first)."""
        conn = self.db.conn
        for i in range(0, len(replaced), 500):
            chunk = replaced[i:i + 500]
            marks = ",".join("?" for _ in chunk)
            for table in ("item_labels", "item_components", "item_sprints"):
                conn.execute(f"DELETE FROM {table} WHERE source = ? AND item_id IN ({marks})", [source, *chunk])
        labels = {(str(r.id), lab.lower()): lab for r in items for lab in r.labels}
        comps = {(str(r.id), c.lower()): c for r in items for c in r.components}
        links = {(str(r.id), s.id) for r in items for s in r.sprints}
        sprints = {s.id: s for r in items for s in r.sprints}
        if labels:
            conn.executemany("INSERT INTO item_labels (source, item_id, label) VALUES (?, ?, ?)",
                             [(source, i, lab) for (i, _), lab in labels.items()])
        if comps:
            conn.executemany("INSERT INTO item_components (source, item_id, component) VALUES (?, ?, ?)",
                             [(source, i, c) for (i, _), c in comps.items()])
        if links:
            conn.executemany("INSERT INTO item_sprints (source, item_id, sprint_id) VALUES (?, ?, ?)",
                             [(source, i, sid) for i, sid in links])
        if sprints:
            conn.executemany(
                'INSERT INTO sprints (source, id, name, state, start, "end", completed) VALUES (?, ?, ?, ?, ?, ?, ?) '
                'ON CONFLICT (source, id) DO UPDATE SET name = excluded.name, state = excluded.state, '
                'start = excluded.start, "end" = excluded."end", completed = excluded.completed',
                [(source, s.id, s.name, s.state, iso(s.start), iso(s.end), iso(s.completed))
                 for s in sprints.values()])

    def _write_raw(self, table: str, source: str, raws: dict[str, str]) -> None:
        """The raw payloads of the rows just written, in <table>_raw under each item's rowid."""
        conn = self.db.conn
        ids = list(raws)
        rows: list[tuple[int, str]] = []
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            marks = ",".join("?" for _ in chunk)
            rows += [(rowid, raws[iid]) for iid, rowid in conn.execute(
                f"SELECT id, rowid FROM {table} WHERE source = ? AND id IN ({marks})", [source, *chunk])]
        conn.executemany(f"INSERT OR REPLACE INTO {table}_raw (id, raw) VALUES (?, ?)", rows)

    def raw(self, table: str, source: str, item_id: str) -> Any:
        """An item's raw payload (parsed), or None."""
        row = self.db.conn.execute(
            f"SELECT r.raw FROM {table} t JOIN {table}_raw r ON r.id = t.rowid WHERE t.source = ? AND t.id = ?",
            [source, item_id]).fetchone()
        return json.loads(row[0]) if row else None

    def _existing(self, table: str, source: str, ids: list[str]) -> dict[str, tuple[str, int, int]]:
        """id -> (hash, first_run, deleted) of the rows already stored."""
        out: dict[str, tuple[str, int, int]] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            marks = ",".join("?" for _ in chunk)
            for row in self.db.conn.execute(
                f"SELECT id, hash, first_run, deleted FROM {table} WHERE source = ? AND id IN ({marks})",
                [source, *chunk],
            ):
                out[row[0]] = (row[1], row[2], row[3])
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
            db.conn.executemany("INSERT OR REPLACE INTO jql_members (jql_key, source, item_id) VALUES (?, ?, ?)",
                                [(jql_key, source, m) for m in members])
        if checked is None and jql is not None:
            db.table("jql_queries").upsert(
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

    def refresh_stats(self, growth: float = 0.5, minimum: int = 1000) -> list[str]:
        """Planner statistics (ANALYZE) for the item tables when there are none yet or an item table grew or
        shrank by more than `growth` since. Without them SQLite takes `source = ?` (a handful of values) for a
        selective index and picks plans that scan a whole source; with them each metric query finds its rows.
        Returns the tables analyzed (none for small stores: every plan is cheap there)."""
        conn = self.db.conn
        sizes = {t: conn.execute(f"SELECT coalesce(max(rowid), 0) FROM {t}").fetchone()[0]
                 for t in ("issues", "deployments", "incidents")}
        known: dict[str, int] = {}
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").fetchone():
            for tbl, stat in conn.execute("SELECT tbl, stat FROM sqlite_stat1 WHERE tbl IN "
                                          "('issues', 'deployments', 'incidents')"):
                known[tbl] = max(known.get(tbl, 0), int(str(stat).split()[0]))
        stale = [t for t, n in sizes.items() if n >= minimum and (t not in known or
                                                                  abs(n - known[t]) > growth * max(known[t], 1))]
        if stale:
            with self.write():
                conn.execute("ANALYZE")  # every table: the side tables grow with the items
        return stale

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
        """Set the given keys (cursor, pending, state) of a stream's row; the others keep their values."""
        cols: dict[str, Any] = {}
        if "cursor" in state:
            cols["cursor"] = state["cursor"]
        if "pending" in state:
            cols["pending"] = _json(state["pending"]) if state["pending"] else None
        if "state" in state:
            cols["state"] = _json(state["state"] or {})
        cols["updated_at"] = iso(now_utc())
        names = ", ".join(cols)
        marks = ", ".join("?" for _ in cols)
        sets = ", ".join(f"{c} = excluded.{c}" for c in cols)
        self.db.conn.execute(
            f"INSERT INTO sync_state (source, stream, {names}) VALUES (?, ?, {marks}) "
            f"ON CONFLICT (source, stream) DO UPDATE SET {sets}", [source, stream, *cols.values()])

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
            table = self.db.table("runs")
            table.insert({"command": command, "started": iso(started), "status": "running", "pid": os.getpid(),
                          "requests": 0, "sources": "{}", "errors": "[]", "skipped": "[]"})
            return int(table.last_pk)  # type: ignore[arg-type]

    def finish_run(self, run_id: int, *, status: str, sources: dict, errors: list[str], skipped: list[dict],
                   requests: int) -> None:
        with self.write():
            self.db.table("runs").update(run_id, {
                "finished": iso(now_utc()), "status": status, "sources": _json(sources),
                "errors": _json(errors), "skipped": _json(skipped), "requests": requests,
            })

    def abandon_runs(self) -> list[int]:
        """Runs still marked running by a process that ended without finishing them (call under the store lock,
        so none of them can be alive): marked abandoned. Returns their ids."""
        with self.write():
            rows = self.db.execute("SELECT id, pid FROM runs WHERE status = 'running'").fetchall()
            for run_id, pid in rows:
                why = f"abandoned: the process (pid {pid}) ended without finishing the run"
                self.db.execute("UPDATE runs SET status = 'abandoned', errors = ? WHERE id = ?", [_json([why]), run_id])
        return [r[0] for r in rows]

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
                    self.db.table("kr_item_sets").insert(
                        {"hash": digest, "count": len(ids), "ids": zlib.compress(_json(ids).encode())}, pk="hash"
                    )
                self.db.table("kr_values").insert(kr_row)

    # -- write-back ----------------------------------------------------------------------------
    def writeback_state(self, kr_id: str, target: str) -> dict | None:
        rows = list(self.db.query("SELECT * FROM writeback_state WHERE kr_id = ? AND target = ?", [kr_id, target]))
        return rows[0] if rows else None

    def save_writeback(self, kr_id: str, target: str, *, rendered_hash: str | None, remote_ref: str | None,
                       run_id: int | None, actions: list[tuple[str, str, str]]) -> None:
        with self.write():
            if rendered_hash is not None:
                self.db.table("writeback_state").upsert(
                    {"kr_id": kr_id, "target": target, "rendered_hash": rendered_hash, "remote_ref": remote_ref,
                     "updated_at": iso(now_utc())}, pk=("kr_id", "target"))
            for action, status, detail in actions:
                self.db.table("writeback_log").insert({"run_id": run_id, "kr_id": kr_id, "target": target,
                                                 "action": action, "status": status, "detail": detail,
                                                 "at": iso(now_utc())})

    def writeback_log(self, kr_id: str | None = None) -> list[dict]:
        if kr_id:
            return list(self.db.query("SELECT * FROM writeback_log WHERE kr_id = ? ORDER BY id", [kr_id]))
        return list(self.db.query("SELECT * FROM writeback_log ORDER BY id"))


def item_set_digest(ids: list[str]) -> str:
    return hashlib.sha1("\n".join(ids).encode()).hexdigest()
