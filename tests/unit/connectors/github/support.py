"""Test support for the GitHub connector: real-fixture loaders, payload builders, a fake GitHub, a mini engine."""

from __future__ import annotations

import ast
import csv
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import responses

from okrsync.config.settings import SourceCredentials
from okrsync.config.sources import GitHubSource
from okrsync.connectors.base import ConnectorOptions, ReadContext, SourceError
from okrsync.connectors.github.connector import build
from okrsync.domain.records import iso, parse_iso

API = "https://api.github.com"
TOKEN = "ghp_secret_token_123"
FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "github"


# -- real fixtures -------------------------------------------------------------------------------
def replay(name: str) -> list[dict[str, Any]]:
    """A PyGithub ReplayData file: 10 lines per exchange, then a blank line."""
    lines = (FIXTURES / "pygithub" / name).read_text(encoding="utf-8").split("\n")
    out, i = [], 0
    while i + 9 < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        rec = lines[i:i + 10]
        out.append({"verb": rec[1], "path": rec[4], "status": int(rec[7]),
                    "headers": dict(ast.literal_eval(rec[8])), "body": json.loads(rec[9]) if rec[9] else None})
        i += 10
    return out


def devlake_pulls() -> list[dict[str, Any]]:
    csv.field_size_limit(10 ** 8)
    with open(FIXTURES / "devlake" / "_raw_github_api_pull_requests.csv", encoding="utf-8", newline="") as fh:
        return [json.loads(row["data"]) for row in csv.DictReader(fh)]


# -- configuration -------------------------------------------------------------------------------
def config(**kw: Any) -> GitHubSource:
    kw.setdefault("repos", ["acme/web"])
    kw.setdefault("releases", False)
    return GitHubSource(type="github", **kw)


class FakeClock:
    def __init__(self, start: float = 1_800_000_000.0):
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def connector(cfg: GitHubSource | None = None, *, token: str | None = TOKEN, clock: FakeClock | None = None,
              waits: list | None = None):
    clock = clock or FakeClock()
    opts = ConnectorOptions(sleep=clock.sleep, secrets=[TOKEN],
                            on_wait=(lambda m, s: waits.append((m, s))) if waits is not None else None)
    creds = SourceCredentials(token=token) if token else SourceCredentials()
    return build("github", cfg or config(), creds, opts, clock=clock)


# -- payload builders ----------------------------------------------------------------------------
def z(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


T0 = datetime(2026, 10, 1, tzinfo=timezone.utc)


def issue(n: int, updated: datetime, *, repo: str = "acme/web", state: str = "open", pr: bool = False,
          labels: tuple[str, ...] = (), **kw: Any) -> dict[str, Any]:
    out = {"id": 1000 + n, "number": n, "title": f"issue {n}", "state": state, "created_at": z(T0),
           "updated_at": z(updated), "closed_at": z(updated) if state == "closed" else None,
           "labels": [{"name": lb} for lb in labels], "assignee": None, "assignees": [],
           "html_url": f"https://github.com/{repo}/issues/{n}"}
    if pr:
        out["pull_request"] = {"url": f"{API}/repos/{repo}/pulls/{n}", "html_url": f"https://github.com/{repo}/pull/{n}"}
    out.update(kw)
    return out


def pull(n: int, updated: datetime, *, repo: str = "acme/web", state: str = "open",
         merged: datetime | None = None, sha: str | None = None, **kw: Any) -> dict[str, Any]:
    out = {"id": 5000 + n, "number": n, "title": f"PR {n}", "state": state, "draft": False, "created_at": z(T0),
           "updated_at": z(updated), "closed_at": z(merged or updated) if state == "closed" else None,
           "merged_at": z(merged) if merged else None, "merge_commit_sha": sha or f"{n:040x}", "labels": [],
           "assignee": None, "assignees": [], "html_url": f"https://github.com/{repo}/pull/{n}"}
    out.update(kw)
    return out


def deployment(i: int, created: datetime, *, sha: str, env: str = "production", repo: str = "acme/web") -> dict:
    return {"id": i, "sha": sha, "ref": "main", "task": "deploy", "environment": env, "created_at": z(created),
            "updated_at": z(created), "url": f"{API}/repos/{repo}/deployments/{i}"}


def status(i: int, state: str, at: datetime) -> dict:
    return {"id": i, "state": state, "created_at": z(at), "log_url": f"https://ci.example/{i}"}


def run(i: int, created: datetime, *, sha: str, status: str = "completed", conclusion: str | None = "success",
        updated: datetime | None = None, started: datetime | None = None) -> dict:
    return {"id": i, "name": "deploy", "head_sha": sha, "head_branch": "main", "status": status,
            "conclusion": conclusion if status == "completed" else None, "created_at": z(created),
            "run_started_at": z(started or created), "updated_at": z(updated or created + timedelta(minutes=5)),
            "html_url": f"https://github.com/acme/web/actions/runs/{i}"}


def sha(n: int) -> str:
    return f"{n:040x}"


# -- a fake GitHub (the endpoints and parameters the connector uses) -----------------------------
@dataclass
class Repo:
    issues: list[dict] = field(default_factory=list)
    pulls: list[dict] = field(default_factory=list)
    deployments: list[dict] = field(default_factory=list)
    statuses: dict[int, list[dict]] = field(default_factory=dict)
    releases: list[dict] = field(default_factory=list)
    runs: dict[str, list[dict]] = field(default_factory=dict)
    commits: list[str] = field(default_factory=list)  # linear history, oldest first


class FakeGitHub:
    """Serves list endpoints with Link paging, ETag/304, since/created filters and compare."""

    def __init__(self, rsps: responses.RequestsMock, base: str = API):
        self.base = base
        self.repos: dict[str, Repo] = {}
        self.calls: list[tuple[str, dict[str, str], dict[str, str]]] = []  # (path, query, headers)
        self.not_modified: list[str] = []  # the paths answered 304 since the last reset
        rsps.add_callback(responses.GET, re.compile(re.escape(base) + r"/.*"), callback=self.handle)
        # no GraphQL endpoint here: deployments are read through REST (the fallback); the GraphQL path is tested
        # against the sandbox's documented-shape endpoint
        rsps.add(responses.POST, f"{base}/graphql", json={"message": "Not Found"}, status=404)

    def repo(self, name: str = "acme/web") -> Repo:
        return self.repos.setdefault(name, Repo())

    def paths(self) -> list[str]:
        return [p for p, _, _ in self.calls]

    def reset(self) -> None:
        self.calls.clear()
        self.not_modified = []

    def handle(self, request):
        url = urlsplit(request.url)
        path = url.path[len(urlsplit(self.base).path):]
        q = {k: v[-1] for k, v in parse_qs(url.query).items()}
        self.calls.append((path, q, dict(request.headers)))
        m = re.fullmatch(r"/repos/([^/]+/[^/]+)/(.*)", path)
        if not m or m.group(1) not in self.repos:
            return 404, {}, json.dumps({"message": "Not Found"})
        repo, rest = self.repos[m.group(1)], m.group(2)
        wrap = None
        order = "created_at" if q.get("sort") == "created" else "updated_at"
        if rest == "issues":
            since = parse_iso(q["since"]) if "since" in q else None
            items = sorted((i for i in repo.issues if since is None or parse_iso(i["updated_at"]) >= since),
                           key=lambda i: (i[order], i["id"]), reverse=q.get("direction") == "desc")
        elif rest == "pulls":
            items = sorted(repo.pulls, key=lambda i: (i[order], i["id"]), reverse=q.get("direction") != "asc")
        elif rest == "deployments":
            items = sorted(repo.deployments, key=lambda i: i["id"], reverse=True)
        elif (sm := re.fullmatch(r"deployments/(\d+)/statuses", rest)):
            if int(sm.group(1)) not in repo.statuses:
                return 404, {}, json.dumps({"message": "Not Found"})
            items = sorted(repo.statuses[int(sm.group(1))], key=lambda s: s["id"], reverse=True)
        elif rest == "releases":
            items = sorted(repo.releases, key=lambda r: r["created_at"], reverse=True)
        elif (wm := re.fullmatch(r"actions/workflows/([^/]+)/runs", rest)):
            if wm.group(1) not in repo.runs:
                return 404, {}, json.dumps({"message": "Not Found"})
            items = sorted((r for r in repo.runs[wm.group(1)] if _created_ok(r, q.get("created"))),
                           key=lambda r: r["id"], reverse=True)
            wrap = "workflow_runs"
        elif (cm := re.fullmatch(r"compare/([0-9a-f]+)\.\.\.([0-9a-f]+)", rest)):
            return self._compare(repo, cm.group(1), cm.group(2), q)
        else:
            return 404, {}, json.dumps({"message": "Not Found"})
        return self._page(request.url, items, q, wrap, request.headers.get("If-None-Match"))

    def _page(self, url: str, items: list, q: dict, wrap: str | None, inm: str | None):
        per_page, page = int(q.get("per_page", 30)), int(q.get("page", 1))
        chunk = items[(page - 1) * per_page: page * per_page]
        body = json.dumps({"total_count": len(items), wrap: chunk} if wrap else chunk, sort_keys=True)
        etag = 'W/"%s"' % hashlib.sha1(body.encode()).hexdigest()
        headers = {"ETag": etag, "X-RateLimit-Remaining": "4999", "X-RateLimit-Reset": "1900000000"}
        if page * per_page < len(items):
            parts = urlsplit(url)
            nq = {**q, "page": str(page + 1)}
            last = {**q, "page": str(-(-len(items) // per_page))}
            headers["Link"] = (f'<{parts.scheme}://{parts.netloc}{parts.path}?{urlencode(nq)}>; rel="next", '
                               f'<{parts.scheme}://{parts.netloc}{parts.path}?{urlencode(last)}>; rel="last"')
        if inm and inm == etag:
            self.not_modified.append(urlsplit(url).path[len(urlsplit(self.base).path):])
            return 304, {"ETag": etag}, ""
        return 200, headers, body

    def _compare(self, repo: Repo, base: str, head: str, q: dict):
        if base not in repo.commits or head not in repo.commits:
            return 404, {}, json.dumps({"message": "Not Found"})
        a, b = repo.commits.index(base), repo.commits.index(head)
        shas = repo.commits[a + 1:b + 1]
        if "page" in q or "per_page" in q:  # paged: from the earliest commit, at most 100 a page
            per, page = min(int(q.get("per_page", 30)), 100), int(q.get("page", 1))
            chunk = shas[(page - 1) * per: page * per]
        else:  # unpaged: the LAST 250 commits (GitHub's compare documentation)
            chunk = shas[-250:]
        body = {"status": "ahead" if shas else "identical", "total_commits": len(shas),
                "commits": [{"sha": s} for s in chunk]}
        return 200, {}, json.dumps(body)


def _created_ok(run: dict, created: str | None) -> bool:
    if not created:
        return True
    day = run["created_at"][:10]
    if created.startswith(">="):
        return day >= created[2:]
    lo, hi = created.split("..")
    return lo <= day <= hi


# -- a mini engine with the semantics of engine/sync.py ---------------------------------------------
class MiniEngine:
    """Cursor, pending checkpoint and private state per stream, as SyncRunner keeps them (JSON round-trip)."""

    def __init__(self, period_start: datetime = datetime(2026, 7, 1, tzinfo=timezone.utc)):
        self.period_start = period_start
        self.streams: dict[str, dict[str, Any]] = {}
        self.records: dict[tuple[str, str], Any] = {}
        self.skipped: list = []

    def run(self, conn, now: datetime, *, full: bool = False, stop_after_pages: int | None = None) -> list[str]:
        errors, pages = [], 0
        for stream in conn.streams():
            st = self.streams.setdefault(stream.name, {"cursor": None, "pending": None, "state": {}})
            pending = st["pending"]
            if pending and bool(pending.get("full")) == full:
                since = parse_iso(pending["since"]) if pending.get("since") else None
                chain = {k: pending[k] for k in ("run_started", "full", "since")}
                ctx = ReadContext(since=since, run_started=now, full=full, first_run=st["cursor"] is None,
                                  checkpoint=pending.get("checkpoint"), state=st["state"])
            elif full or st["cursor"] is None:
                since = self.period_start if stream.default_from == "previous_period" else None
                ctx = ReadContext(since=since, run_started=now, full=full, first_run=st["cursor"] is None,
                                  state=st["state"])
                chain = {"run_started": iso(now), "full": full, "since": iso(since)}
            else:
                since = parse_iso(st["cursor"]) - timedelta(minutes=10)
                ctx = ReadContext(since=since, run_started=now, state=st["state"])
                chain = {"run_started": iso(now), "full": full, "since": iso(since)}
            try:
                for page in stream.read(ctx):
                    for rec in page.records:
                        self.records[(type(rec).__name__, rec.id)] = rec
                    self.skipped += page.skipped
                    if page.state is not None:
                        st["state"] = json.loads(json.dumps(page.state))
                    st["pending"] = {**chain, "checkpoint": json.loads(json.dumps(page.checkpoint))}
                    pages += 1
                    if stop_after_pages is not None and pages >= stop_after_pages:
                        raise SourceError("github: interrupted (test)")
            except SourceError as exc:
                errors.append(str(exc))
                break
            st.update(cursor=chain["run_started"], pending=None)
        else:
            try:
                conn.finish()  # every stream read: the checks that span them, as SyncRunner does
            except SourceError as exc:
                errors.append(str(exc))
        return errors

    def of(self, kind: str) -> dict[str, Any]:
        return {k[1]: v for k, v in self.records.items() if k[0] == kind}
