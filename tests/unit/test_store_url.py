"""Store URLs (paths, sqlite:///, postgresql://), their redaction, and the SQL PostgreSQL is given."""

from __future__ import annotations

from pathlib import Path

import pytest

from okrsync.config.keyresults import Selector
from okrsync.config.settings import Settings
from okrsync.engine.dialect import StoreURL, StoreURLError, advisory_key, parse_store_url, redact_url, render
from okrsync.engine.pipeline import store_url_for
from okrsync.engine.store import StoreError
from okrsync.mappings.selectors import compile_selector

BASE = Path("/srv/okr")


def test_paths_and_sqlite_urls_are_files():
    assert parse_store_url("okrsync.db", BASE) == StoreURL("sqlite", path=Path("/srv/okr/okrsync.db"))
    assert parse_store_url("/data/x.db", BASE).path == Path("/data/x.db")
    assert parse_store_url("sqlite:////data/x.db", BASE).path == Path("/data/x.db")
    assert parse_store_url("sqlite:///x.db", BASE).path == Path("/srv/okr/x.db")


def test_postgresql_url_keeps_the_password_apart():
    url = parse_store_url("postgresql://okr:s3cret-pw@db.example:5433/okrs?sslmode=require&schema=Team-Web", BASE)
    assert url.dialect == "postgresql"
    assert url.conninfo == "postgresql://okr@db.example:5433/okrs?sslmode=require"
    assert url.password == "s3cret-pw"
    assert url.schema == "team_web"
    assert str(url) == "postgresql://okr@db.example:5433/okrs?sslmode=require (schema team_web)"
    assert "s3cret" not in str(url) and "s3cret" not in repr(url.conninfo)


def test_schema_from_the_workspace_name_else_okrsync_and_password_from_settings():
    assert parse_store_url("postgresql://okr@db/okrs", BASE, name="Payments EU").schema == "payments_eu"
    assert parse_store_url("postgres://okr@db/okrs", BASE).schema == "okrsync"
    assert parse_store_url("postgresql://okr@db/okrs", BASE, password="from-env").password == "from-env"
    assert parse_store_url("postgresql://okr:in-url@db/okrs", BASE, password="from-env").password == "in-url"
    assert parse_store_url("postgresql://okr@db/okrs?schema=2026", BASE).schema == "ws_2026"


@pytest.mark.parametrize("text", ["mysql://u:pw-123@h/db", "postgresql://u:pw-123@/db", "postgresql://u:pw-123@h",
                                  "postgresql://u:pw-123@h:port/db", "sqlite://relative.db"])
def test_unusable_urls_are_one_line_without_the_password(text):
    with pytest.raises(StoreURLError) as exc:
        parse_store_url(text, BASE)
    assert "pw-123" not in str(exc.value) and "\n" not in str(exc.value)


def test_a_password_in_the_query_is_kept_apart_too():
    url = parse_store_url("postgresql://okr@db/okrs?password=q-secret-77&sslmode=require", BASE)
    assert url.password == "q-secret-77" and "q-secret" not in url.conninfo
    assert redact_url("bad postgresql://okr@db/x?password=q-secret-77&a=b") == "bad postgresql://okr@db/x?password=***&a=b"


def test_redact_url():
    assert redact_url("cannot reach postgresql://okr:hunter22@db/x now") == "cannot reach postgresql://okr:***@db/x now"
    assert redact_url("postgresql://okr@db/x") == "postgresql://okr@db/x"


def test_precedence_flag_env_workspace_default(tmp_path, monkeypatch):
    ws_file = tmp_path / "okrsync.yaml"

    class Ws:
        store = "postgresql://ws@db/okrs"
        name = "web"

    monkeypatch.delenv("OKRSYNC_DB", raising=False)
    assert store_url_for(ws_file, None, Settings(), None).path == tmp_path / "okrsync.db"
    assert store_url_for(ws_file, None, Settings(), Ws()).conninfo == "postgresql://ws@db/okrs"
    assert store_url_for(ws_file, None, Settings(), Ws()).schema == "web"
    assert store_url_for(ws_file, None, Settings(db="/env.db"), Ws()).path == Path("/env.db")
    assert store_url_for(ws_file, "/flag.db", Settings(db="/env.db"), Ws()).path == Path("/flag.db")
    monkeypatch.setenv("OKRSYNC_DB_PASSWORD", "pw-from-env")
    assert store_url_for(ws_file, None, Settings(), Ws()).password == "pw-from-env"
    with pytest.raises(StoreError):
        store_url_for(ws_file, "mysql://x@y/z", Settings(), None)


def test_render_for_postgresql():
    assert render("SELECT a FROM t WHERE a = ? AND b IS c AND d IS NOT e AND f IS NULL AND x = '?%' AND n % 3 = ?") == (
        "SELECT a FROM t WHERE a = %s AND b IS NOT DISTINCT FROM c AND d IS DISTINCT FROM e AND f IS NULL "
        "AND x = '?%%' AND n %% 3 = %s")
    assert render("SELECT 1 FROM sprints p CROSS JOIN item_sprints s ON s.id = p.id") == (
        "SELECT 1 FROM sprints p JOIN item_sprints s ON s.id = p.id")
    assert render("CREATE TABLE incidents (id TEXT, n INTEGER, x REAL, b BLOB)") == (
        "CREATE TABLE incidents (rowid BIGSERIAL UNIQUE, id TEXT, n BIGINT, x DOUBLE PRECISION, b BYTEA)")
    assert render("CREATE TABLE runs (id INTEGER PRIMARY KEY, at TEXT)") == (
        "CREATE TABLE runs (id BIGSERIAL PRIMARY KEY, at TEXT)")
    assert render("CREATE TABLE issues_raw (id INTEGER PRIMARY KEY, raw TEXT NOT NULL)") == (
        "CREATE TABLE issues_raw (id BIGSERIAL PRIMARY KEY, raw JSONB NOT NULL)")


def test_a_raw_path_selector_per_dialect():
    sel = Selector(source="sn", where={"u_flag": True, "u_level": 2})
    lite = compile_selector(sel, "incident")
    pg = compile_selector(sel, "incident", dialect="postgresql")
    expr = "json_extract((SELECT r.raw FROM incidents_raw r WHERE r.id = t.rowid), '$.\"u_flag\"')"
    assert f"({expr} IN (?) OR CAST({expr} AS TEXT) IN (?))" in lite.clause()
    assert lite.params[-4:] == [1, "1", 2, "2"]
    assert f"{expr} IN (?)" in pg.clause() and "OR CAST" not in pg.clause()
    assert pg.params[-2:] == ["1", "2"]


def test_advisory_keys_are_stable_int4_pairs():
    assert advisory_key("okrsync", "source:jira") == advisory_key("okrsync", "source:jira")
    assert advisory_key("okrsync", "source:jira") != advisory_key("team_web", "source:jira")
    assert all(-(1 << 31) <= k < 1 << 31 for k in advisory_key("x", "recompute"))


def test_password_from_the_secrets_directory_and_redacted_from_then_on(tmp_path, monkeypatch):
    from okrsync.connectors.base import redact

    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "OKRSYNC_DB_PASSWORD").write_text("pw-from-file-1234\n")
    monkeypatch.setenv("OKRSYNC_SECRETS_DIR", str(secrets))
    settings = Settings()
    url = store_url_for(tmp_path / "okrsync.yaml", "postgresql://okr@db/okrs", settings, None)
    assert url.password == "pw-from-file-1234"
    assert "pw-from-file-1234" in settings.secret_values()
    assert redact("login pw-from-file-1234 refused", []) == "login *** refused"
