"""Shared fixtures: a fresh store per test, workspace text helpers, no OKRSYNC_* leaking from the host."""

from __future__ import annotations

import os

import pytest

from okrsync.config.workspace import load_workspace_text
from okrsync.engine.store import Store


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for key in list(os.environ):
        if key.startswith("OKRSYNC_"):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("OKRSYNC_SECRETS_DIR", "/nonexistent-okrsync-secrets")


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "okrsync.db")
    yield s
    s.close()


@pytest.fixture
def workspace():
    def make(text: str, path: str = "okrsync.yaml"):
        return load_workspace_text(text, path).workspace

    return make
