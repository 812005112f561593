"""Shared fixtures: a fresh store per test, workspace text helpers, no OKRSYNC_* leaking from the host."""

from __future__ import annotations

import os
import uuid

import pytest

from okrsync.config.workspace import load_workspace_text
from okrsync.engine.store import Store


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for key in list(os.environ):
        if key.startswith("OKRSYNC_"):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("OKRSYNC_SECRETS_DIR", "/nonexistent-okrsync-secrets")


# OKRSYNC_TEST_PG=postgresql://... (make test-pg): tests taking `store` run on PostgreSQL too, each in a fresh
# schema; without it they run on SQLite only, as always.
PG = os.environ.get("OKRSYNC_TEST_PG")


@pytest.fixture(params=["sqlite", "postgresql"] if PG else ["sqlite"])
def store(tmp_path, request):
    if request.param == "sqlite":
        s = Store(tmp_path / "okrsync.db")
    else:
        if request.node.get_closest_marker("sqlite_only"):
            pytest.skip("reads the SQLite file directly")
        s = Store(f"{PG}{'&' if '?' in PG else '?'}schema=u_{uuid.uuid4().hex[:12]}")
    yield s
    s.close()


@pytest.fixture
def workspace():
    def make(text: str, path: str = "okrsync.yaml"):
        return load_workspace_text(text, path).workspace

    return make
