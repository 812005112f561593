"""The store's two SQL engines: which one a store URL names, and PostgreSQL speaking the store's SQLite SQL."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

SQLITE, POSTGRESQL = "sqlite", "postgresql"
DEFAULT_SCHEMA = "okrsync"


class StoreURLError(ValueError):
    """A store URL okrsync cannot use (exit 2); str() is one line without the password."""


@dataclass(frozen=True)
class StoreURL:
    """Where the store is. PostgreSQL: `conninfo` has no password (`password` is kept apart, never shown)."""

    dialect: str
    path: Path | None = None
    conninfo: str = ""
    password: str | None = None
    schema: str = DEFAULT_SCHEMA

    def __str__(self) -> str:  # what messages name: the path, or the URL without its password
        return str(self.path) if self.path is not None else f"{self.conninfo} (schema {self.schema})"


def _schema_name(text: str) -> str:
    name = re.sub(r"[^a-z0-9_]+", "_", text.strip().lower()).strip("_")[:63]
    if not name or name[0].isdigit():
        name = f"ws_{name}"[:63]
    return name


def redact_url(text: str) -> str:
    """Every `scheme://user:password@` and `password=` in text with the password replaced by ***."""
    text = re.sub(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*):[^@\s]*@", r"\1:***@", text)
    return re.sub(r"([?&]password=)[^&\s]*", r"\1***", text)


def parse_store_url(text: str, base: Path, *, password: str | None = None, name: str | None = None) -> StoreURL:
    """A path (relative to `base`), `sqlite:///path` or `postgresql://user[:password]@host[:port]/db[?schema=S]`.

    The schema keeps a workspace's rows apart from other workspaces' in one database: `?schema=` in the URL,
    else the workspace's `name:`, else "okrsync". `password` (OKRSYNC_DB_PASSWORD or the secrets directory)
    is used when the URL carries none."""
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if not scheme:
        return StoreURL(SQLITE, path=(base / text).resolve() if not Path(text).is_absolute() else Path(text))
    if scheme == "sqlite":
        rest = text.split("://", 1)[1]
        if not rest.startswith("/") or rest == "/":
            raise StoreURLError(f"store URL {redact_url(text)}: expected sqlite:///path/to/okrsync.db")
        rest = rest[1:]
        return StoreURL(SQLITE, path=Path(rest) if Path(rest).is_absolute() else (base / rest).resolve())
    if scheme not in ("postgresql", "postgres"):
        raise StoreURLError(f"store URL {redact_url(text)}: expected a path, sqlite:///path or "
                            f"postgresql://user@host/database")
    parts = urlsplit(text)
    try:
        port = parts.port
    except ValueError:
        raise StoreURLError(f"store URL {redact_url(text)}: the port is not a number") from None
    if not parts.hostname or not parts.path.strip("/"):
        raise StoreURLError(f"store URL {redact_url(text)}: expected postgresql://user@host/database")
    query = dict(parse_qsl(parts.query))
    schema = _schema_name(query.pop("schema", "") or name or DEFAULT_SCHEMA)
    in_query = query.pop("password", None)  # libpq takes ?password= too: kept apart like the URL's own
    user = quote(unquote(parts.username)) + "@" if parts.username else ""
    netloc = f"{user}{parts.hostname}" + (f":{port}" if port else "")
    conninfo = urlunsplit(("postgresql", netloc, parts.path, urlencode(query), ""))
    url_password = unquote(parts.password) if parts.password is not None else in_query
    return StoreURL(POSTGRESQL, conninfo=conninfo, password=url_password or password, schema=schema)


# -- PostgreSQL -----------------------------------------------------------------------------------

# What the store's SQL needs of SQLite, made in each workspace's schema (no extension, no superuser):
# NOCASE names compare and group case-insensitively (an ICU collation), julianday() and round(x, n) on
# floats, total() (a sum that is 0.0 over no rows), json_extract() into the JSONB raw payloads (strings as
# text, numbers without trailing zeros, booleans as 1/0, as SQLite answers). The functions are plain SQL
# expressions the planner inlines; a constant JSON path is parsed once per query (json_path is immutable).
PRELUDE = r"""
CREATE COLLATION IF NOT EXISTS nocase (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
CREATE OR REPLACE FUNCTION julianday(text) RETURNS double precision LANGUAGE sql STABLE STRICT PARALLEL SAFE
    AS $$ SELECT extract(epoch FROM $1::timestamptz)::double precision / 86400.0 + 2440587.5 $$;
CREATE OR REPLACE FUNCTION round(double precision, integer) RETURNS double precision LANGUAGE sql IMMUTABLE
    STRICT PARALLEL SAFE AS $$ SELECT round($1::numeric, $2)::double precision $$;
CREATE OR REPLACE AGGREGATE total(double precision) (sfunc = float8pl, stype = float8, initcond = '0');
CREATE OR REPLACE FUNCTION total_add(double precision, boolean) RETURNS double precision LANGUAGE sql IMMUTABLE
    STRICT PARALLEL SAFE AS $$ SELECT $1 + CASE WHEN $2 THEN 1.0 ELSE 0.0 END $$;
CREATE OR REPLACE AGGREGATE total(boolean) (sfunc = total_add, stype = float8, initcond = '0');
CREATE OR REPLACE FUNCTION json_path(path text) RETURNS text[] LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT array(SELECT coalesce(replace(m[1], '""', '"'), m[2])
        FROM regexp_matches(path, '"((?:[^"]|"")*)"|\[(\d+)\]', 'g') AS m) $$;
CREATE OR REPLACE FUNCTION json_text(v jsonb) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE jsonb_typeof(v) WHEN 'string' THEN v #>> '{}' WHEN 'null' THEN NULL
        WHEN 'boolean' THEN CASE WHEN v = 'true' THEN '1' ELSE '0' END
        WHEN 'number' THEN trim_scale((v #>> '{}')::numeric)::text ELSE v::text END $$;
CREATE OR REPLACE FUNCTION json_extract(j jsonb, path text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT json_text(j #> json_path(path)) $$
"""

_DDL_TYPES = [  # SQLite column types -> PostgreSQL (CREATE TABLE only), in this order
    (re.compile(r"\bINTEGER PRIMARY KEY\b"), "BIGSERIAL PRIMARY KEY"),
    (re.compile(r"\braw TEXT NOT NULL\b"), "raw JSONB NOT NULL"),
    (re.compile(r"\bINTEGER\b"), "BIGINT"),
    (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
    (re.compile(r"\bBLOB\b"), "BYTEA"),
]
_ITEM_TABLE = re.compile(r"^(\s*CREATE TABLE (?:issues|deployments|incidents) \()")
_MARKS = re.compile(r"'(?:[^']|'')*'|\?|%")
_IS = re.compile(r"\bIS (NOT )?(?!NOT\b|NULL\b|DISTINCT\b|TRUE\b|FALSE\b)")  # SQLite's null-safe a IS b


@functools.lru_cache(maxsize=4096)
def render(sql: str) -> str:
    """The store's SQLite SQL for PostgreSQL: ? placeholders, CROSS JOIN ... ON (SQLite's join-order hint) as
    JOIN, `a IS b` as IS NOT DISTINCT FROM, and in CREATE TABLE the column types and an item table's rowid
    (SQLite's is implicit)."""
    if sql.lstrip().upper().startswith("CREATE TABLE"):
        for pattern, replacement in _DDL_TYPES:
            sql = pattern.sub(replacement, sql)
        sql = _ITEM_TABLE.sub(r"\1rowid BIGSERIAL UNIQUE, ", sql)
    sql = sql.replace(" CROSS JOIN ", " JOIN ")
    sql = _IS.sub(lambda m: "IS DISTINCT FROM " if m.group(1) else "IS NOT DISTINCT FROM ", sql)

    def mark(m: re.Match[str]) -> str:
        text = m.group(0)
        return "%s" if text == "?" else text.replace("%", "%%")

    return _MARKS.sub(mark, sql)


def advisory_key(schema: str, name: str) -> tuple[int, int]:
    """pg_advisory_lock's two int4 keys for a lock named `name` in a workspace's schema."""

    def signed(text: str) -> int:
        n = zlib.crc32(text.encode())
        return n - (1 << 32) if n >= 1 << 31 else n

    return signed(schema), signed(name)


class PgDatabase:
    """A psycopg connection behind the subset of sqlite-utils' Database the store and its readers use:
    execute() -> a cursor, query() -> dict rows, conn.execute/executemany, atomic transactions."""

    dialect = POSTGRESQL

    def __init__(self, conn: Any):
        self.pg = conn
        self.conn = self  # sqlite-utils code says db.conn.execute(...)

    def execute(self, sql: str, params: Any = None) -> Any:
        return self.pg.execute(render(sql), params if params is not None else ())

    def executemany(self, sql: str, rows: Any) -> Any:
        cur = self.pg.cursor()
        cur.executemany(render(sql), list(rows))
        return cur

    def query(self, sql: str, params: Any = None) -> Iterator[dict[str, Any]]:
        from psycopg.rows import dict_row

        with self.pg.cursor(row_factory=dict_row) as cur:
            yield from cur.execute(render(sql), params if params is not None else ())

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        status: TransactionStatus = self.pg.info.transaction_status
        return status != TransactionStatus.IDLE

    @contextlib.contextmanager
    def atomic(self) -> Iterator["PgDatabase"]:
        with self.pg.transaction():
            yield self

    def close(self) -> None:
        self.pg.close()


def pg_connect(url: StoreURL, *, application: str = "okrsync") -> Any:
    """A psycopg connection (autocommit: transactions are explicit) with the workspace's schema first on the
    search path. Raises psycopg.Error; the caller words it without the password."""
    import psycopg

    return psycopg.connect(url.conninfo, password=url.password, autocommit=True, connect_timeout=10,
                           application_name=application, options=f"-c search_path={url.schema},public")


def pg_prepare(db: PgDatabase, schema: str) -> None:
    """The workspace's schema and the SQLite functions the store's SQL uses: made once (one process at a time),
    remade when this okrsync's PRELUDE differs from the one the schema has (its digest is json_extract's comment)."""
    digest = hashlib.sha1(PRELUDE.encode()).hexdigest()[:16]
    made = ("SELECT obj_description(p.oid, 'pg_proc') FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = %s AND p.proname = 'json_extract'")
    row = db.pg.execute(made, (schema,)).fetchone()
    if row and row[0] == digest:
        return
    with db.atomic():
        db.pg.execute("SELECT pg_advisory_xact_lock(%s, %s)", advisory_key(schema, "prepare"))
        db.pg.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        for statement in PRELUDE.split(";\n"):
            if statement.strip():
                db.pg.execute(statement)
        db.pg.execute(f"COMMENT ON FUNCTION json_extract(jsonb, text) IS '{digest}'")
