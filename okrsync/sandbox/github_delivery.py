"""GitHub delivery endpoints: deployments and their statuses, releases, workflow runs, compare (linear history)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any, Callable

from .model import UTC, to_ms
from .server import BadRequest, Request, Response
from .world import DEPLOY_WORKFLOW, Repo


class GitHubDelivery:
    """Mixin for GitHubApp (uses its _repo, cached, paged and ok helpers)."""

    w: Any
    r: Any
    base_url: str

    # -- deployments, releases, workflow runs ------------------------------------------------------------
    def list_deployments(self, req: Request) -> Response:
        r = self._repo(req, "https://docs.github.com/rest/deployments/deployments#list-deployments")
        filters = {k: req.arg(k) for k in ("sha", "ref", "task", "environment") if req.arg(k)}

        def build() -> list:
            out = [d for d in r.deployments if all(
                {"sha": d.sha, "ref": d.ref, "task": "deploy", "environment": d.environment}[k] == v
                for k, v in filters.items())]
            out.sort(key=lambda d: (d.created, d.id), reverse=True)  # newest first
            return out

        items = self.cached(("deployments", r.name, tuple(sorted(filters.items()))), build)
        return self.paged(req, items, lambda d: self.r.deployment(r, d))

    def _deployment(self, req: Request) -> tuple[Repo, Any]:
        r = self._repo(req)
        did = int(req.params["id"]) if req.params["id"].isdigit() else -1
        d = next((x for x in r.deployments if x.id == did), None)
        if d is None:
            raise BadRequest("Not Found", 404,
                             docs="https://docs.github.com/rest/deployments/deployments#get-a-deployment")
        return r, d

    def get_deployment(self, req: Request) -> Response:
        r, d = self._deployment(req)
        return self.ok(self.r.deployment(r, d))

    def list_statuses(self, req: Request) -> Response:
        r, d = self._deployment(req)
        return self.paged(req, list(reversed(d.statuses)), lambda s: self.r.deployment_status(r, d, s))

    def list_releases(self, req: Request) -> Response:
        r = self._repo(req)
        # newest first by created_at (the commit's date): the order is not documented, so a client must not stop
        # at a cutoff on either date; "latest" is documented to sort by created_at
        items = sorted(r.releases, key=lambda rel: (self.r.release_created(r, rel), rel.id), reverse=True)
        return self.paged(req, items, lambda rel: self.r.release(r, rel))

    def list_workflows(self, req: Request) -> Response:
        r = self._repo(req)
        flows = [self.r.workflow(r)] if r.runs else []
        return self.ok({"total_count": len(flows), "workflows": flows})

    def _workflow_known(self, r: Repo, wf: str) -> None:
        if not r.runs or wf not in (DEPLOY_WORKFLOW[0], str(DEPLOY_WORKFLOW[1])):
            raise BadRequest("Not Found", 404, docs="https://docs.github.com/rest/actions/workflows#get-a-workflow")

    def get_workflow(self, req: Request) -> Response:
        r = self._repo(req)
        self._workflow_known(r, req.params["workflow"])
        return self.ok(self.r.workflow(r))

    def get_run(self, req: Request) -> Response:
        r = self._repo(req)
        run = next((x for x in r.runs if str(x.id) == req.params["id"]), None)
        if run is None:
            raise BadRequest("Not Found", 404)
        return self.ok(self.r.run(r, run))

    def latest_release(self, req: Request) -> Response:
        r = self._repo(req)
        if not r.releases:
            raise BadRequest("Not Found", 404)
        return self.ok(self.r.release(r, max(r.releases, key=lambda rel: (self.r.release_created(r, rel), rel.id))))

    def get_commit(self, req: Request) -> Response:
        r = self._repo(req)
        i = self._resolve(r, req.params["ref"])
        if i is None:
            raise BadRequest(f"No commit found for SHA: {req.params['ref']}", 422)
        with self.w.lock:
            return self.ok(self.r.commit(r, r.commits[i], r.commits[i - 1] if i else None))

    def list_runs(self, req: Request) -> Response:
        r = self._repo(req)
        wf = req.params.get("workflow")
        if wf is not None:
            self._workflow_known(r, wf)
        created = _created_filter(req.arg("created"))
        status = req.arg("status")
        branch, event = req.arg("branch"), req.arg("event")

        def build() -> list:
            out = [run for run in r.runs if created(run.created)
                   and (not status or status in (run.status, run.conclusion))
                   and (not branch or branch == "main") and (not event or event == run.event)]
            out.sort(key=lambda run: (run.created, run.id), reverse=True)
            return out

        items = self.cached(("runs", r.name, req.arg("created"), status, branch, event), build)
        total = len(items)
        if req.arg("created") or status or branch or event:
            items = items[:1000]  # GitHub returns at most 1,000 runs for a filtered query
        per_page = min(max(_int(req.arg("per_page"), 30), 1), 100)
        page = max(1, _int(req.arg("page"), 1))
        chunk = items[(page - 1) * per_page: page * per_page]
        resp = self.ok({"total_count": total, "workflow_runs": [self.r.run(r, run) for run in chunk]})
        listing = self.paged(req, items, lambda run: None)  # reuse the Link header only
        resp.headers += [h for h in listing.headers if h[0] == "Link"]
        return resp

    def compare(self, req: Request) -> Response:
        r = self._repo(req)
        base, sep, head = req.params["basehead"].partition("...")
        if not sep:
            raise BadRequest("Not Found", 404)
        bi, hi = self._resolve(r, base), self._resolve(r, head)
        if bi is None or hi is None:
            raise BadRequest(f"No commit found for SHA: {base if bi is None else head}", 404,
                             docs="https://docs.github.com/rest/commits/commits#compare-two-commits")
        ahead, behind = max(0, hi - bi), max(0, bi - hi)
        commits = r.commits[bi + 1: hi + 1] if ahead else []
        # https://docs.github.com/rest/commits/commits#compare-two-commits: "When calling this endpoint without
        # any paging parameter (per_page or page), the returned list is limited to 250 commits, and the last
        # commit in the list is the most recent of the entire comparison." With a paging parameter the pages
        # run from the earliest commit, per_page defaulting to 30 (max 100).
        paged = req.arg("per_page") is not None or req.arg("page") is not None
        if paged:
            per_page = min(max(_int(req.arg("per_page"), 30), 1), 100)
            page = max(1, _int(req.arg("page"), 1))
            start = (page - 1) * per_page
            chunk = commits[start: start + per_page]
        else:
            start = max(0, len(commits) - 250)
            chunk = commits[start:]
        first = start + bi + 1  # index in r.commits of chunk[0]
        url = f"{self.base_url}/repos/{r.name}"
        base_c = r.commits[min(bi, hi)]
        out = {"url": f"{url}/compare/{base}...{head}",
               "html_url": self.r.html(f"{r.name}/compare/{base}...{head}"),
               "permalink_url": self.r.html(f"{r.name}/compare/acme:{r.commits[bi].sha[:7]}..."
                                            f"acme:{r.commits[hi].sha[:7]}"),
               "diff_url": self.r.html(f"{r.name}/compare/{base}...{head}.diff"),
               "patch_url": self.r.html(f"{r.name}/compare/{base}...{head}.patch"),
               "base_commit": self.r.commit(r, r.commits[bi], r.commits[bi - 1] if bi else None),
               "merge_base_commit": self.r.commit(r, base_c, r.commits[min(bi, hi) - 1] if min(bi, hi) else None),
               "status": "identical" if bi == hi else "ahead" if hi > bi else "behind",
               "ahead_by": ahead, "behind_by": behind, "total_commits": ahead,
               "commits": [self.r.commit(r, c, r.commits[first + n - 1]) for n, c in enumerate(chunk)], "files": []}
        resp = self.ok(out)
        if paged:
            listing = self.paged(req, commits, lambda c: None, default=30, maximum=100)
            resp.headers += [h for h in listing.headers if h[0] == "Link"]
        return resp

    def _resolve(self, r: Repo, ref: str) -> int | None:
        if ref in ("main", "HEAD") or ref.endswith(":main"):
            return len(r.commits) - 1
        rel = next((x for x in r.releases if x.tag == ref), None)
        if rel is not None:
            ref = rel.sha
        if ref in r.commit_index:
            return r.commit_index[ref]
        if len(ref) >= 7 and re.fullmatch(r"[0-9a-f]+", ref):
            hits = [i for sha, i in r.commit_index.items() if sha.startswith(ref)]
            return hits[0] if len(hits) == 1 else None
        return None


def _created_filter(spec: str | None) -> Callable[[int], bool]:
    """GitHub search syntax on dates: >=2026-10-01, <2026-11-01, 2026-10-01..2026-10-31, or one day."""
    if not spec:
        return lambda t: True

    def day(s: str, end: bool = False) -> int:
        d = datetime.fromisoformat(s.replace("Z", "+00:00"))
        d = d if d.tzinfo else d.replace(tzinfo=UTC)
        return to_ms(d + timedelta(days=1)) if end and len(s) == 10 else to_ms(d)

    try:
        if ".." in spec:
            lo, hi = spec.split("..", 1)
            a = day(lo) if lo not in ("", "*") else None
            b = day(hi, end=True) if hi not in ("", "*") else None
            return lambda t: (a is None or t >= a) and (b is None or t < b)
        for op in (">=", "<=", ">", "<"):
            if spec.startswith(op):
                v = spec[len(op):]
                if op == ">=":
                    x = day(v)
                    return lambda t: t >= x
                if op == ">":
                    x = day(v, end=True)
                    return lambda t: t >= x
                if op == "<=":
                    x = day(v, end=True)
                    return lambda t: t < x
                x = day(v)
                return lambda t: t < x
        a, b = day(spec), day(spec, end=True)
        return lambda t: a <= t < b
    except ValueError:
        raise BadRequest("Validation Failed", 422, errors=[{"resource": "WorkflowRun", "field": "created",
                                                            "code": "invalid"}]) from None


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value not in (None, "") else default
    except ValueError:
        return default
