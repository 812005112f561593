"""The store: items, sync state, runs, KR history, write-back log, in SQLite (sqlite-utils) or PostgreSQL."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import threading
import zlib
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

from sqlite_utils import Database

from okrsync.domain import VERSION as __version__
from okrsync.domain.records import iso
from okrsync.mappings.selectors import RAW_INDEX_PREFIX, RawIndex

from .dialect import POSTGRESQL, SQLITE, PgDatabase, StoreURL, parse_store_url, pg_connect, pg_prepare, redact_url
from .items import ItemWrites, PageCounts, _json, chunked, now_utc, record_row, upsert_sql
from .readstate import RETIRED_STREAMS, StreamState
from .schema import migrate

__all__ = ["PageCounts", "Store", "StoreError", "StoreRemoved", "StoreUnreachable", "item_set_digest", "record_row"]


class StoreError(Exception):
    """The store cannot be used (newer schema, unreadable file, bad URL); str() is the message."""


class StoreUnreachable(StoreError):
    """The PostgreSQL server cannot be reached or refuses the login (exit 1); str() has no password."""


class StoreRemoved(Exception):
    """The store file was deleted while a command was using it (exit 1); str() is the message."""

    def __init__(self, path: Path):
        super().__init__(f"the store {path} was removed during the run")


class Store(ItemWrites):
    """One store: a SQLite file (WAL mode, writers wait on a busy timeout) or one workspace's schema in a
    PostgreSQL database; a connection per thread."""

    def __init__(self, target: str | Path | StoreURL, *, create: bool = True):
        self.url = target if isinstance(target, StoreURL) else parse_store_url(str(target), Path.cwd())
        self.dialect = self.url.dialect
        self._local = threading.local()
        self._all: list[Any] = []
        self._guard = threading.Lock()
        # SQLite: this process's writers take turns here. Waiting on SQLite's own lock instead means its busy
        # handler, which sleeps in steps of up to 100 ms and is not woken when the lock frees (sources syncing
        # side by side lost seconds to it); other processes still queue on the busy timeout.
        self._writer = threading.Lock()
        if not create and not self._exists():
            raise StoreError(f"{self.url}: no store yet (run 'okrsync sync' first)")
        self._open_and_migrate()
        self._inode = os.stat(self.path).st_ino if self.dialect == SQLITE else 0

    def _exists(self) -> bool:
        if self.dialect == SQLITE:
            return self.path.exists()
        row = self.db.execute("SELECT 1 FROM information_schema.tables WHERE table_schema = ? AND table_name = 'runs'",
                              [self.url.schema]).fetchone()
        return row is not None

    @property
    def path(self) -> Path:
        """The SQLite file (for PostgreSQL: the URL without its password, for messages)."""
        return self.url.path if self.url.path is not None else Path(str(self.url))

    def removed(self) -> bool:
        """True when the store file was deleted (or replaced) while in use: a connection opened since then sees
        an empty database ("no such table"). A PostgreSQL store is never removed under a run."""
        if self.dialect == POSTGRESQL:
            return False
        try:
            return os.stat(self.path).st_ino != self._inode
        except OSError:
            return True

    # -- connections -------------------------------------------------------------------------
    @property
    def db(self) -> Any:
        """This thread's connection: a sqlite-utils Database, or a PgDatabase speaking the same subset."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._connect()
            self._local.db = db
        return db

    def _connect(self) -> Any:
        if self.dialect == POSTGRESQL:
            db: Any = PgDatabase(self.pg_connection())
        else:
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

    def pg_connection(self, application: str = "okrsync") -> Any:
        """A new psycopg connection to this store's schema; a refused login or a server that cannot be reached
        is StoreUnreachable, worded without the password."""
        import psycopg

        try:
            return pg_connect(self.url, application=f"{application} pid {os.getpid()}")
        except psycopg.Error as exc:
            why = redact_url(" ".join(str(exc).split()))
            if self.url.password:
                why = why.replace(self.url.password, "***")
            raise StoreUnreachable(f"cannot connect to the store {self.url}: {why}") from None

    @contextlib.contextmanager
    def write(self) -> Iterator[Any]:
        """A write transaction. SQLite: BEGIN IMMEDIATE, so concurrent writers queue on the busy timeout instead
        of failing when a read lock cannot be upgraded. Nested use joins the outer transaction."""
        db = self.db
        if self.dialect == POSTGRESQL or db.conn.in_transaction:
            with db.atomic():
                yield db
            return
        with self._writer:
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
                except Exception:
                    pass
            self._all.clear()
        self._local = threading.local()

    def _open_and_migrate(self) -> None:
        db = self.db
        try:
            if self.dialect == POSTGRESQL:
                pg_prepare(db, self.url.schema)
            elif db.conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                with db.ensure_autocommit_on():
                    db.execute("PRAGMA journal_mode=wal")
            newer = migrate(db, self.dialect, self.write)
            if newer:
                row = db.execute("SELECT value FROM meta WHERE key = 'app_version'").fetchone()
                writer = f" (okrsync {row[0]})" if row else ""
                raise StoreError(
                    f"{self.path}: this store was written by a newer okrsync{writer}: schema step "
                    f"{newer[-1]!r} is unknown to okrsync {__version__}; upgrade okrsync or use another --db"
                )
            if db.execute("SELECT 1 FROM meta WHERE key = 'app_version' AND value = ?", [__version__]).fetchone() \
                    is None:
                with self.write():
                    db.execute(upsert_sql("meta", ("key", "value"), ("key",)), ["app_version", __version__])
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: not an okrsync store ({exc})") from None

    def _insert(self, table: str, row: dict[str, Any]) -> int:
        """INSERT a row; its new id."""
        names = ", ".join(f'"{c}"' for c in row)
        marks = ", ".join("?" for _ in row)
        return int(self.db.execute(f"INSERT INTO {table} ({names}) VALUES ({marks}) RETURNING id",
                                   list(row.values())).fetchone()[0])

    # -- reads for the report and the console ------------------------------------------------
    def items(self, table: str, source: str, ids: list[str]) -> list[dict[str, Any]]:
        """Rows of an item table by (source, id), each with `_t` (the table)."""
        out: list[dict[str, Any]] = []
        for chunk, marks in chunked(ids):
            out += self.db.query(f"SELECT *, '{table}' AS _t FROM {table} WHERE source = ? AND id IN ({marks})",
                                 [source, *chunk])
        return out

    def item_refs(self, table: str, rowids: list[int]) -> list[str]:
        """"source:id" of an item table's rows by their row ids (the ids a metric counted)."""
        out: list[str] = []
        for chunk, marks in chunked(rowids):
            out += [r[0] for r in self.db.execute(f"SELECT source || ':' || id FROM {table} WHERE rowid IN ({marks})",
                                                  chunk)]
        return out

    def refresh_stats(self, growth: float = 0.5, minimum: int = 1000) -> list[str]:
        """Planner statistics (ANALYZE) for the item tables when there are none yet or an item table grew or
        shrank by more than `growth` since. Without them SQLite takes `source = ?` (a handful of values) for a
        selective index and picks plans that scan a whole source; with them each metric query finds its rows.
        Returns the tables analyzed (none for small stores: every plan is cheap there)."""
        conn = self.db.conn
        sizes = {t: conn.execute(f"SELECT coalesce(max(rowid), 0) FROM {t}").fetchone()[0]
                 for t in ("issues", "deployments", "incidents")}
        known: dict[str, int] = {}
        if self.dialect == POSTGRESQL:  # reltuples: -1 before the first ANALYZE
            known = {t: int(n) for t, n in conn.execute(
                "SELECT relname, reltuples FROM pg_class WHERE relnamespace = current_schema()::regnamespace "
                "AND relname IN ('issues', 'deployments', 'incidents') AND reltuples >= 0")}
        elif conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").fetchone():
            for tbl, stat in conn.execute("SELECT tbl, stat FROM sqlite_stat1 WHERE tbl IN "
                                          "('issues', 'deployments', 'incidents')"):
                known[tbl] = max(known.get(tbl, 0), int(str(stat).split()[0]))
        stale = [t for t, n in sizes.items() if n >= minimum and (t not in known or
                                                                  abs(n - known[t]) > growth * max(known[t], 1))]
        if stale:
            with self.write():
                conn.execute("ANALYZE" if self.dialect == SQLITE else  # every table: the side tables grow too
                             "ANALYZE " + ", ".join(("issues", "deployments", "incidents", "item_labels",
                                                     "item_components", "item_sprints", "jql_members")))
        return stale

    def raw_indexes(self) -> frozenset[RawIndex]:
        """The raw-path indexes this store has (none on PostgreSQL)."""
        if self.dialect != SQLITE:
            return frozenset()
        rows = self.db.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE ?",
                               [RAW_INDEX_PREFIX + "%"]).fetchall()
        return frozenset(i for i in (RawIndex.from_name(r[0]) for r in rows) if i is not None)

    def prepare_raw_indexes(self, wanted: Iterable[RawIndex]) -> tuple[list[str], list[str]]:
        """Create the raw-path indexes the workspace's selectors can use and drop those it no longer names
        (SQLite; each index costs every write of its table a JSON read). Returns (created, dropped) names."""
        if self.dialect != SQLITE:
            return [], []
        want, have = set(wanted), self.raw_indexes()
        created, dropped = [], []
        for index in sorted(have - want, key=lambda i: i.name):
            with self.write() as db:
                db.conn.execute(f"DROP INDEX IF EXISTS {_quoted(index.name)}")
            dropped.append(index.name)
        for index in sorted(want - have, key=lambda i: i.name):
            with self.write() as db:  # one pass over the table (seconds at a million items), then kept by SQLite
                db.conn.execute(f"CREATE INDEX IF NOT EXISTS {_quoted(index.name)} ON {index.table}_raw "
                                f"({index.expr()})")
                db.conn.execute(f"ANALYZE {_quoted(index.name)}")
            created.append(index.name)
        return created, dropped

    # -- sync state ----------------------------------------------------------------------------
    def get_state(self, source: str, stream: str) -> StreamState:
        row = self.db.execute(
            "SELECT cursor, pending, state FROM sync_state WHERE source = ? AND stream = ?", [source, stream]
        ).fetchone()
        if row is None:
            return {"cursor": None, "pending": None, "state": {}}
        return {"cursor": row[0], "pending": json.loads(row[1]) if row[1] else None,
                "state": json.loads(row[2]) if row[2] else {}}

    def _save_state(self, source: str, stream: str, state: Mapping[str, Any]) -> None:
        """Set the given keys (cursor, pending, state) of a stream's row; the others keep their values."""
        cols: dict[str, Any] = {}
        if "cursor" in state:
            cols["cursor"] = state["cursor"]
        if "pending" in state:
            cols["pending"] = _json(state["pending"]) if state["pending"] else None
        if "state" in state:
            cols["state"] = _json(state["state"] or {})
        cols["updated_at"] = iso(now_utc())
        self.db.conn.execute(upsert_sql("sync_state", ("source", "stream", *cols), ("source", "stream")),
                             [source, stream, *cols.values()])

    def save_state(self, source: str, stream: str, state: Mapping[str, Any]) -> None:
        with self.write():
            self._save_state(source, stream, state)

    def source_synced_at(self) -> dict[str, str]:
        """Per source: the oldest complete cursor of its streams (when it was last fully synced)."""
        out: dict[str, str] = {}
        for source, cursor in self.db.execute(
            "SELECT source, min(cursor) FROM sync_state WHERE cursor IS NOT NULL AND stream NOT IN "
            f"({', '.join('?' for _ in RETIRED_STREAMS)}) GROUP BY source", list(RETIRED_STREAMS)
        ):
            out[source] = cursor
        return out

    # -- runs ----------------------------------------------------------------------------------
    def start_run(self, command: str, started: datetime) -> int:
        with self.write():
            return self._insert("runs", {"command": command, "started": iso(started), "status": "running",
                                         "pid": os.getpid(), "requests": 0, "sources": "{}", "errors": "[]",
                                         "skipped": "[]"})

    def finish_run(self, run_id: int, *, status: str, sources: dict[str, Any], errors: list[str],
                   skipped: list[dict[str, Any]], requests: int) -> None:
        with self.write():
            self.db.execute("UPDATE runs SET finished = ?, status = ?, sources = ?, errors = ?, skipped = ?, "
                            "requests = ? WHERE id = ?", [iso(now_utc()), status, _json(sources), _json(errors),
                                                          _json(skipped), requests, run_id])

    def abandon_runs(self, alive: Callable[[int], bool] | None = None) -> list[int]:
        """Runs still marked running by a process that ended without finishing them: marked abandoned. Under
        SQLite's one store lock none can be alive; with per-source locks `alive(run_id)` tells."""
        with self.write():
            rows = [(i, pid) for i, pid in self.db.execute("SELECT id, pid FROM runs WHERE status = 'running'")
                    if alive is None or not alive(i)]
            for run_id, pid in rows:
                why = f"abandoned: the process (pid {pid}) ended without finishing the run"
                self.db.execute("UPDATE runs SET status = 'abandoned', errors = ? WHERE id = ?", [_json([why]), run_id])
        return [r[0] for r in rows]

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        return list(self.db.query("SELECT * FROM runs ORDER BY id DESC LIMIT ?", [limit]))

    # -- KR history ----------------------------------------------------------------------------
    def last_value(self, kr_id: str) -> dict[str, Any] | None:
        rows = list(self.db.query("SELECT * FROM kr_values WHERE kr_id = ? ORDER BY id DESC LIMIT 1", [kr_id]))
        return rows[0] if rows else None

    def history(self, kr_id: str, limit: int | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM kr_values WHERE kr_id = ? ORDER BY id"
        rows = list(self.db.query(sql, [kr_id]))
        return rows[-limit:] if limit else rows

    def item_set(self, digest: str | None) -> list[str]:
        if not digest:
            return []
        row = self.db.execute("SELECT ids FROM kr_item_sets WHERE hash = ?", [digest]).fetchone()
        return json.loads(zlib.decompress(row[0])) if row else []

    def record_values(self, rows: list[dict[str, Any]], item_sets: dict[str, list[str]]) -> None:
        """Append computed KR values (one transaction for the whole recompute)."""
        with self.write():
            for kr_row in rows:
                digest = kr_row["item_set"]
                if digest in item_sets and self.db.execute(
                        "SELECT 1 FROM kr_item_sets WHERE hash = ?", [digest]).fetchone() is None:
                    ids = item_sets[digest]
                    self.db.execute("INSERT INTO kr_item_sets (hash, count, ids) VALUES (?, ?, ?)",
                                    [digest, len(ids), zlib.compress(_json(ids).encode())])
                self._insert("kr_values", kr_row)

    # -- write-back ----------------------------------------------------------------------------
    def writeback_state(self, kr_id: str, target: str) -> dict[str, Any] | None:
        rows = list(self.db.query("SELECT * FROM writeback_state WHERE kr_id = ? AND target = ?", [kr_id, target]))
        return rows[0] if rows else None

    def save_writeback(self, kr_id: str, target: str, *, rendered_hash: str | None, remote_ref: str | None,
                       run_id: int | None, actions: list[tuple[str, str, str]]) -> None:
        with self.write():
            if rendered_hash is not None:
                self.db.execute(upsert_sql("writeback_state", ("kr_id", "target", "rendered_hash", "remote_ref",
                                                               "updated_at"), ("kr_id", "target")),
                                [kr_id, target, rendered_hash, remote_ref, iso(now_utc())])
            for action, status, detail in actions:
                self._insert("writeback_log", {"run_id": run_id, "kr_id": kr_id, "target": target, "action": action,
                                               "status": status, "detail": detail, "at": iso(now_utc())})

    def writeback_log(self, kr_id: str | None = None) -> list[dict[str, Any]]:
        if kr_id:
            return list(self.db.query("SELECT * FROM writeback_log WHERE kr_id = ? ORDER BY id", [kr_id]))
        return list(self.db.query("SELECT * FROM writeback_log ORDER BY id"))


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def item_set_digest(ids: list[str]) -> str:
    return hashlib.sha1("\n".join(ids).encode()).hexdigest()
