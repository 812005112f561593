"""Fixtures for the sandbox tests: a shared read-only sandbox, fresh ones for writes, and real-payload loaders."""

from __future__ import annotations

import ast
import csv
import io
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests

from okrsync.sandbox import Sandbox

NOW = datetime(2026, 11, 15, 12, 0, tzinfo=timezone.utc)
# real payloads live once, in tests/fixtures/<system>/ (each folder's README gives the provenance)
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
SN_AUTH = ("okrsync", "pw")
PD_HEADERS = {"Authorization": "Token token=pd-token", "Accept": "application/vnd.pagerduty+json;version=2"}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    """One running sandbox per test module; tests using it must not write or advance."""
    sb = Sandbox(seed=7, scale=400, now=NOW)
    sb.start()
    yield sb
    sb.stop()


@pytest.fixture
def fresh() -> Iterator[Sandbox]:
    """A sandbox of its own, for tests that write, advance or inject faults."""
    sb = Sandbox(seed=11, scale=300, now=NOW)
    sb.start()
    yield sb
    sb.stop()


@pytest.fixture
def http() -> Iterator[requests.Session]:
    s = requests.Session()
    yield s
    s.close()


# -- real payloads ---------------------------------------------------------------------------------------------
def devlake_rows(path: str) -> list[dict[str, Any]]:
    csv.field_size_limit(10**9)
    text = (FIXTURES / path).read_text(encoding="utf-8").lstrip("\r\n")  # some dumps start with a blank line
    return [json.loads(row["data"]) for row in csv.DictReader(io.StringIO(text, newline=""))]


def pygithub(name: str) -> list[dict[str, Any]]:
    """PyGithub replay records: 10 lines per exchange, then a blank line."""
    lines = (FIXTURES / "github" / "pygithub" / name).read_text(encoding="utf-8").split("\n")
    out, i = [], 0
    while i + 9 < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        rec = lines[i:i + 10]
        out.append({"method": rec[1], "path": rec[4], "status": int(rec[7]),
                    "headers": dict(ast.literal_eval(rec[8])),
                    "body": json.loads(rec[9]) if rec[9].strip() else None})
        i += 11
    return out


def har_entries(path: str) -> list[dict[str, Any]]:
    return json.loads((FIXTURES / path).read_text(encoding="utf-8"))["log"]["entries"]


def har_header(entry: dict[str, Any], name: str) -> str | None:
    return next((h["value"] for h in entry["response"]["headers"] if h["name"].lower() == name.lower()), None)


# -- shape comparison ------------------------------------------------------------------------------------------
_MISSING = object()


def at(obj: Any, path: str) -> Any:
    """Follow a dotted path; `[]` steps into the first element of a list."""
    for part in path.split("."):
        if part.endswith("[]"):
            obj = obj.get(part[:-2], _MISSING) if isinstance(obj, dict) else _MISSING
            if obj is _MISSING or not isinstance(obj, list) or not obj:
                return _MISSING
            obj = obj[0]
        else:
            obj = obj.get(part, _MISSING) if isinstance(obj, dict) else _MISSING
        if obj is _MISSING:
            return _MISSING
    return obj


def json_type(v: Any) -> str:
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object", type(None): "null"}[type(v)]


def assert_same_shape(real: Any, ours: Any, paths: list[str]) -> None:
    """Every path exists in both payloads with the same JSON type (null in either one is not compared)."""
    problems = []
    for p in paths:
        a, b = at(real, p), at(ours, p)
        if a is _MISSING:
            problems.append(f"{p}: not in the real payload (fix the test's path list)")
        elif b is _MISSING:
            problems.append(f"{p}: missing from the simulator's payload")
        elif a is not None and b is not None and json_type(a) != json_type(b):
            problems.append(f"{p}: real {json_type(a)} vs simulator {json_type(b)}")
    assert not problems, "\n".join(problems)
