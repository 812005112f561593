"""The store's item writes: a page of records upserted with its checkpoint, side tables, raw payloads."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator, Mapping, TypeVar

import orjson

from okrsync.domain.records import Deployment, Incident, Issue, Record, Sprint, iso
from okrsync.mappings.selectors import ITEM_COLUMNS as COLUMNS

CHUNK = 500  # ids per IN (...): under SQLite's bound-parameter limit

T = TypeVar("T")


def chunked(ids: list[T], size: int = CHUNK) -> Iterator[tuple[list[T], str]]:
    """(chunk, "?,?,...") over ids: the one way to write `x IN (...)` over a long list."""
    for i in range(0, len(ids), size):
        chunk = ids[i:i + size]
        yield chunk, ",".join("?" for _ in chunk)


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, check_circular=False, default=str).encode

_BOOK = ("source", "id", "stream", "hash", "deleted", "first_run", "last_run")


def upsert_sql(table: str, cols: Iterable[str], keys: tuple[str, ...], keep: tuple[str, ...] = ()) -> str:
    """INSERT ... ON CONFLICT (keys) DO UPDATE: the other columns take the new values, except `keep`."""
    cols = tuple(cols)
    names = ", ".join(f'"{c}"' for c in cols)
    marks = ", ".join("?" for _ in cols)
    sets = ", ".join(f'"{c}" = excluded."{c}"' for c in cols if c not in keys + keep)
    return f"INSERT INTO {table} ({names}) VALUES ({marks}) ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sets}"


# first_run is the run that first saw the item: never overwritten
_UPSERT = {table: upsert_sql(table, _BOOK + cols, ("source", "id"), ("first_run",)) for table, cols in COLUMNS.items()}


def _sprint_dict(s: Sprint) -> dict[str, Any]:
    return {"id": s.id, "name": s.name, "state": s.state, "start": iso(s.start), "end": iso(s.end),
            "completed": iso(s.completed)}


def _values(rec: Record, sprint_cache: dict[Sprint, str] | None = None) -> tuple[str, tuple[Any, ...]]:
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
    if type(text) is str:
        return text
    try:
        return orjson.dumps(raw).decode()  # a payload a connector rebuilt (e.g. a pull request's stable fields)
    except TypeError:  # not JSON-native (a test's datetime, an int beyond 64 bits): the json module's way
        return _encode(raw)


def _row_hash(values: tuple[Any, ...], raw: str, extra: tuple[Any, ...] = ()) -> str:
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



class ItemWrites:
    """Store methods writing and reading items (mixed into Store: self.db, self.write(), self.dialect)."""

    db: Any
    dialect: str

    def write(self) -> Any:  # Store.write
        raise NotImplementedError

    def _save_state(self, source: str, stream: str, state: Mapping[str, Any]) -> None:  # Store._save_state
        raise NotImplementedError

    def write_page(
        self,
        source: str,
        stream: str,
        records: Iterable[Record],
        *,
        run_id: int,
        state: Mapping[str, Any] | None = None,
        memberships: Iterable[tuple[str, set[str] | None, set[str], str | None]] = (),
    ) -> PageCounts:
        """Upsert one page of records and save the stream's state, in one transaction.

        Rows are upserted by (source, id). An item whose row hash is unchanged only gets its run bookkeeping
        touched (no index or side-table rewrite); new and changed items are written whole."""
        # (table, source) -> id -> (record, values, raw, hash); the last copy of an id in a page wins
        prepared: dict[tuple[str, str], dict[str, tuple[Record, tuple[Any, ...], str, str]]] = {}
        sprint_cache: dict[Sprint, str] = {}
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
                full: list[tuple[Any, ...]] = []
                touch: list[tuple[str, int, str, str]] = []
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
                                "INSERT INTO deployment_commits (source, deployment_id, sha) VALUES (?, ?, ?) "
                                "ON CONFLICT DO NOTHING",
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
        for chunk, marks in chunked(replaced):
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
                upsert_sql("sprints", ("source", "id", "name", "state", "start", "end", "completed"), ("source", "id")),
                [(source, s.id, s.name, s.state, iso(s.start), iso(s.end), iso(s.completed))
                 for s in sprints.values()])

    def _write_raw(self, table: str, source: str, raws: dict[str, str]) -> None:
        """The raw payloads of the rows just written, in <table>_raw under each item's rowid."""
        conn = self.db.conn
        ids = list(raws)
        rows: list[tuple[int, str]] = []
        for chunk, marks in chunked(ids):
            rows += [(rowid, raws[iid]) for iid, rowid in conn.execute(
                f"SELECT id, rowid FROM {table} WHERE source = ? AND id IN ({marks})", [source, *chunk])]
        value = "CAST(? AS JSONB)" if self.dialect == "postgresql" else "?"  # raw payloads as JSONB there
        conn.executemany(f"INSERT INTO {table}_raw (id, raw) VALUES (?, {value}) "
                         "ON CONFLICT (id) DO UPDATE SET raw = excluded.raw", rows)

    def raw(self, table: str, source: str, item_id: str) -> Any:
        """An item's raw payload (parsed), or None."""
        row = self.db.conn.execute(
            f"SELECT r.raw FROM {table} t JOIN {table}_raw r ON r.id = t.rowid WHERE t.source = ? AND t.id = ?",
            [source, item_id]).fetchone()
        if not row:
            return None
        return json.loads(row[0]) if isinstance(row[0], str) else row[0]  # JSONB comes back parsed

    def _existing(self, table: str, source: str, ids: list[str]) -> dict[str, tuple[str, int, int]]:
        """id -> (hash, first_run, deleted) of the rows already stored."""
        out: dict[str, tuple[str, int, int]] = {}
        for chunk, marks in chunked(ids):
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
            for chunk, marks in chunked(ids):
                db.execute(f"DELETE FROM jql_members WHERE jql_key = ? AND source = ? AND item_id IN ({marks})",
                           [jql_key, source, *chunk])
        if members:
            db.conn.executemany("INSERT INTO jql_members (jql_key, source, item_id) VALUES (?, ?, ?) "
                                "ON CONFLICT DO NOTHING",
                                [(jql_key, source, m) for m in members])
        if checked is None and jql is not None:
            db.execute(upsert_sql("jql_queries", ("jql_key", "source", "jql", "evaluated_at", "run_id"), ("jql_key",)),
                       [jql_key, source, jql, iso(now_utc()), run_id])

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

