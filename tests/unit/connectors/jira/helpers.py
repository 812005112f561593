"""Shared helpers for the Jira connector tests: configs, options, real fixture loaders, responses stubs."""

from __future__ import annotations

import csv
import io
import json
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import responses
from pydantic import SecretStr

from okrsync.config.settings import SourceCredentials
from okrsync.config.sources import JiraSource
from okrsync.connectors.base import ConnectorOptions

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "jira"
CLOUD = "https://acme.atlassian.net"
DC = "https://jira.acme.test"
TOKEN = "tok-SECRET-123"

STORY_POINTS = "com.pyxis.greenhopper.jira:jsw-story-points"
SPRINT = "com.pyxis.greenhopper.jira:gh-sprint"
EPIC = "com.pyxis.greenhopper.jira:gh-epic-link"


def config(url: str = CLOUD, **kw: Any) -> JiraSource:
    kw.setdefault("projects", ["APP", "OPS"])
    return JiraSource(type="jira", url=url, **kw)


def cloud_config(**kw: Any) -> JiraSource:
    kw.setdefault("email", "bot@acme.io")
    return config(CLOUD, **kw)


def dc_config(**kw: Any) -> JiraSource:
    return config(DC, **kw)


def creds(token: str = TOKEN, email: str | None = None) -> SourceCredentials:
    return SourceCredentials(token=SecretStr(token), email=email)


class Sleeps(list):
    """An injected sleep: records the waits, never sleeps."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)

    def __bool__(self) -> bool:  # HttpClient does `sleep or time.sleep`: an empty list must not fall through
        return True


def options(**kw: Any) -> ConnectorOptions:
    kw.setdefault("sleep", Sleeps())
    return ConnectorOptions(**kw)


def _flat(body: dict[str, Any]) -> dict[str, str]:
    """A JSON search body as query-string values: lists comma-joined, numbers as text."""
    return {k: ",".join(map(str, v)) if isinstance(v, list) else str(v) for k, v in body.items()}


def query(call: Any) -> dict[str, str]:
    """The parameters of a recorded call, one value per key: its JSON body (a search POST), else its query."""
    if call.request.body:
        return _flat(json.loads(call.request.body))
    return {k: v[0] for k, v in parse_qs(urlsplit(call.request.url).query).items()}


def body(call: Any) -> Any:
    return json.loads(call.request.body)


def body_matcher(params: dict[str, str], strict_match: bool = False) -> Any:
    """responses matcher on a search POST's JSON body, compared like query_param_matcher (strict: same keys)."""
    def match(request: Any) -> tuple[bool, str]:
        got = _flat(json.loads(request.body or b"{}"))
        ok = all(got.get(k) == v for k, v in params.items()) and (not strict_match or set(got) == set(params))
        return ok, "" if ok else f"body {got} does not match {params}"
    return match


def path(call: Any) -> str:
    return urlsplit(call.request.url).path


def fields_json(*extra: dict[str, Any]) -> list[dict[str, Any]]:
    """A Cloud-like GET /rest/api/2/field: system fields plus the given custom ones."""
    base = [
        {"id": "summary", "name": "Summary", "custom": False, "schema": {"type": "string", "system": "summary"}},
        {"id": "status", "name": "Status", "custom": False, "schema": {"type": "status", "system": "status"}},
    ]
    return base + list(extra)


def custom(fid: str, name: str, custom_type: str, kind: str = "number") -> dict[str, Any]:
    return {"id": fid, "name": name, "custom": True, "schema": {"type": kind, "custom": custom_type}}


CLOUD_FIELDS = fields_json(
    custom("customfield_10016", "Story point estimate", STORY_POINTS),
    custom("customfield_10020", "Sprint", SPRINT, "array"),
    custom("customfield_10014", "Epic Link", EPIC, "any"),
    custom("customfield_10050", "Progress", "com.atlassian.jira.plugin.system.customfieldtypes:float"),
)


def stub_cloud(rsps: responses.RequestsMock, fields: list[dict] | None = None) -> None:
    rsps.get(f"{CLOUD}/rest/api/2/serverInfo", json={"deploymentType": "Cloud", "baseUrl": CLOUD})
    rsps.get(f"{CLOUD}/rest/api/2/field", json=CLOUD_FIELDS if fields is None else fields)


def issue(n: int, created: str = "2026-10-01T10:00:00.000+0200", *, category: str = "indeterminate",
          **fields: Any) -> dict[str, Any]:
    """A search-result issue as Jira returns it (only the fields okrsync asks for)."""
    f = {
        "summary": f"Issue {n}",
        "status": {"name": "In Progress", "statusCategory": {"key": category}},
        "issuetype": {"name": "Story"},
        "project": {"key": "APP"},
        "created": created,
        "updated": created,
        "resolutiondate": None,
        "labels": [],
        "components": [],
        "assignee": None,
    }
    f.update(fields)
    return {"id": str(10000 + n), "key": f"APP-{n}", "fields": f}


# -- real fixtures ---------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def devlake_issues() -> tuple[dict[str, Any], ...]:
    """The 33 Jira Cloud issues of DevLake's raw table (one issue JSON per row)."""
    csv.field_size_limit(1 << 30)
    with open(FIXTURES / "_raw_jira_api_issues.csv", newline="", encoding="utf-8") as fh:
        return tuple(json.loads(row["data"]) for row in csv.DictReader(fh))


def devlake_fields() -> list[dict[str, Any]]:
    """DevLake's DC /field rows (the file starts with a blank line before the header)."""
    text = (FIXTURES / "_raw_jira_api_issue_fields.csv").read_text(encoding="utf-8").lstrip("\n")
    return [json.loads(row["data"]) for row in csv.DictReader(io.StringIO(text))]


@lru_cache(maxsize=None)
def har_entries() -> tuple[tuple[str, str, int, Any], ...]:
    """(method, path, status, JSON body) of each entry of the Jira Server 8.20 HAR recording."""
    har = json.loads((FIXTURES / "stepsDataCenter.recording.har").read_text(encoding="utf-8"))
    out = []
    for e in har["log"]["entries"]:
        req, resp = e["request"], e["response"]
        out.append((req["method"], urlsplit(req["url"]).path, resp["status"], json.loads(resp["content"]["text"])))
    return tuple(out)


def har_body(method: str, path_: str, index: int = 0) -> Any:
    bodies = [b for m, p, _, b in har_entries() if m == method and p == path_]
    return bodies[index]
