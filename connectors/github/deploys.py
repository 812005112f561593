"""GitHub deployment streams: Deployments API (+ statuses), deploy workflow runs, and lead-time commits."""

from __future__ import annotations

import copy
import logging
from datetime import date, datetime, timedelta, timezone
from itertools import chain
from typing import TYPE_CHECKING, Any, Callable, Iterator
from urllib.parse import quote

from okrsync.connectors.base import Page, ReadContext, Skipped
from okrsync.connectors.paging import Ranges, Request, halve, in_parallel, numbered_after
from okrsync.domain.records import Deployment, RecordError, iso

from .client import PER_PAGE, ListPage, RepoError, RepoNotFound
from .graphql import GraphQLUnavailable, deployment_nodes, rest_deployment, rest_statuses
from .normalize import deployment_result, normalize_deployment, normalize_run, record_key
from .streams import RepoStream, parse_or_none

if TYPE_CHECKING:  # pragma: no cover
    from .connector import GitHubConnector

log = logging.getLogger("okrsync.github")

# A deployment or run still unfinished after this long is abandoned: we stop re-reading it.
PENDING_MAX_AGE = timedelta(days=7)
RUNS_CAP = 1000  # the API returns at most this many runs for a filtered query
DAY = timedelta(days=1)
# (deployment payload, its statuses or None: read them, ETag)
Work = tuple[dict[str, Any], "list[dict[str, Any]] | None", "str | None"]


def assign_commits(conn: "GitHubConnector", repo: str, successes: list[Deployment], last: dict[str, dict[str, Any]],
                   key: Callable[[Deployment], str]) -> None:
    """Deployment.commits = SHAs shipped that the previous successful deployment (same key) did not.

    Successes are taken in the order they finished: that is the order the environment changed. The first
    one known for a key ships (sha,). `last` ({key: {"sha", "finished"}}) is updated in place. The comparisons
    are known before any is asked for, so they are fetched `concurrency` at a time.
    """
    plan: list[tuple[Deployment, tuple[str, str] | None]] = []  # (deployment, (base, head) to compare or None)
    for rec in sorted(successes, key=lambda r: (r.finished, r.id)):
        if not rec.sha or rec.finished is None:
            continue
        k = key(rec)
        prev = last.get(k)
        prev_done = parse_or_none(prev.get("finished")) if prev else None
        if prev is None:
            rec.commits = (rec.sha,)
        elif prev_done is not None and prev_done > rec.finished:
            rec.commits = (rec.sha,)  # learnt late: its predecessor is unknown; keep the newer baseline
            continue
        elif prev.get("sha") == rec.sha:
            rec.commits = ()  # a redeploy ships nothing new
        else:
            plan.append((rec, (prev["sha"], rec.sha)))
        last[k] = {"sha": rec.sha, "finished": iso(rec.finished)}
    pairs = [pair for _, pair in plan if pair is not None]
    shipped = dict(zip(pairs, in_parallel(lambda pair: conn.compare(repo, *pair), pairs,
                                          conn.client.http.options.concurrency)))
    for rec, pair in plan:
        if pair is not None:
            rec.commits = tuple(shipped[pair])


class DeploymentsStream(RepoStream):
    """GET /repos/{o}/{r}/deployments (newest first, down to `since` by created_at) + statuses per deployment.

    Unit state: etag (list), final {id: created} (settled deployments still inside the window: not re-read),
    pending {id: {"deployment": payload, "etag": statuses ETag}} (re-read until settled), last {env: sha}.
    One page per repo, so records and this state are written in one transaction.
    """

    name = "deployments"
    default_from = "previous_period"

    def read_unit(self, unit: str, ctx: ReadContext, stream_state: dict[str, Any],
                  resume: dict[str, Any] | None) -> Iterator[Page]:
        repo = unit
        known = self.known(ctx, stream_state, unit)
        repo_state = copy.deepcopy(stream_state["repos"][unit]) if known else {}
        since = self.since_for(ctx, stream_state, unit)
        cutoff = ctx.run_started - PENDING_MAX_AGE
        pending: dict[str, dict[str, Any]] = {
            k: v for k, v in (repo_state.get("pending") or {}).items()
            if (t := parse_or_none((v.get("deployment") or {}).get("created_at"))) is None or t >= cutoff
        }
        final = {k: v for k, v in (repo_state.get("final") or {}).items()
                 if since is None or (t := parse_or_none(v)) is None or t >= since}
        last: dict[str, dict[str, Any]] = repo_state.get("last") or {}
        # a server without GraphQL is remembered (tried again on a full sync): the no-change sync stays one request
        rest = self.conn.graphql is False or (bool(repo_state.get("rest")) and not ctx.full)
        work = None if rest else self._graphql_work(repo, since, pending, final)
        first_etag = None
        if work is None:  # REST: the list (conditional), then one statuses call per deployment
            first_etag, work = self._rest_work(repo, since, pending, final, repo_state.get("etag") if known else None)
        records: list[Deployment] = []
        skipped: list[Skipped] = []
        successes: list[Deployment] = []
        for payload, statuses, etag in work:
            dep_id = str(payload.get("id"))
            if statuses is not None:
                got: ListPage | None = ListPage(Request(""), items=statuses)
            else:
                try:
                    got = self.client.list_all(f"repos/{repo}/deployments/{dep_id}/statuses",
                                               params={"per_page": PER_PAGE}, what=f"deployment {dep_id} of {repo}",
                                               etag=etag)
                except RepoNotFound:
                    pending.pop(dep_id, None)  # deleted since we saw it
                    continue
            if got is None:
                continue  # 304: its statuses did not change, still pending
            try:
                rec = normalize_deployment(payload, got.items, self.source, repo)
                _, _, settled = deployment_result(got.items)
            except (RecordError, KeyError, TypeError, ValueError) as exc:
                skipped.append(Skipped(record_key(payload, repo, "deployment"), str(exc) or type(exc).__name__))
                pending.pop(dep_id, None)
                continue
            records.append(rec)
            if settled:
                pending.pop(dep_id, None)
                final[dep_id] = payload.get("created_at")
                if rec.status == "success":
                    successes.append(rec)
            else:
                pending[dep_id] = {"deployment": payload, "etag": got.etag}
        assign_commits(self.conn, repo, successes, last, key=lambda r: r.environment)
        out = self.done(unit, stream_state, {"etag": first_etag, "pending": pending, "final": final, "last": last,
                                   **({"rest": True} if self.conn.graphql is False or rest else {})})
        out.records, out.skipped = records, skipped
        yield out

    def _graphql_work(self, repo: str, since: datetime | None, pending: dict[str, dict[str, Any]],
                      final: dict[str, Any]) -> list[Work] | None:
        """The deployments to (re)normalize, with their statuses, from GraphQL: the new ones down to `since` and the
        pending ones (read back to the oldest; one not seen there was deleted). None: no GraphQL here, use REST."""
        stop = since
        for entry in pending.values():
            t = parse_or_none((entry.get("deployment") or {}).get("created_at"))
            if stop is not None and t is not None:
                stop = min(stop, t)
        work: list[Work] = []
        seen: set[str] = set()
        try:
            for node in deployment_nodes(self.client, repo, stop):
                payload = rest_deployment(node, self.client.base_url, repo)
                dep_id = str(payload["id"])
                seen.add(dep_id)
                created = parse_or_none(payload.get("created_at"))
                old = since is not None and created is not None and created < since
                if dep_id in final or (old and dep_id not in pending):
                    continue
                work.append((payload, rest_statuses(node), (pending.get(dep_id) or {}).get("etag")))
        except GraphQLUnavailable as exc:
            log.info("%s; reading deployments through REST", exc)
            self.conn.graphql = False
            return None
        self.conn.graphql = True
        for dep_id in [k for k in pending if k not in seen]:
            pending.pop(dep_id)  # deleted since we saw it
        return work

    def _rest_work(self, repo: str, since: datetime | None, pending: dict[str, dict[str, Any]], final: dict[str, Any],
                   list_etag: str | None) -> tuple[str | None, list[Work]]:
        """(the list's ETag, the deployments to read statuses for): new ones newest first down to `since`,
        then the pending ones."""
        fresh: list[dict[str, Any]] = []
        first_etag, pages = None, 0
        for page in self.client.pages(f"repos/{repo}/deployments", what=f"repository {repo}",
                                      params={"per_page": PER_PAGE}, etag=list_etag):
            if page.not_modified:
                first_etag = list_etag
                break
            pages += 1
            if pages == 1:
                first_etag = page.etag
            crossed = False
            for item in page.items:
                created = parse_or_none(item.get("created_at"))
                if since is not None and created is not None and created < since:
                    crossed = True
                elif str(item.get("id")) not in final:
                    fresh.append(item)
            if crossed:
                break
        fresh_ids = {str(p.get("id")) for p in fresh}
        return first_etag, [(p, None, None) for p in fresh] + [
            (v["deployment"], None, v.get("etag")) for k, v in pending.items() if k not in fresh_ids]


class WorkflowRunsStream(RepoStream):
    """GET /repos/{o}/{r}/actions/workflows/{file}/runs?created=>=DAY for each deploy workflow.

    Unit = "owner/repo:workflow". The `created` day also covers the oldest run still in progress, so one
    list re-reads it. Unit state: etag, pending {id: created}, shipped {id: created}, last {"sha", "finished"}.
    """

    name = "workflow_runs"
    default_from = "previous_period"

    def units(self) -> list[str]:
        return [f"{r}:{w}" for r in self.conn.config.repos for w in self.conn.config.deploy_workflows]

    def repo_of(self, unit: str) -> str:
        return unit.split(":", 1)[0]

    def repo_wide(self, exc: RepoError) -> bool:
        return False  # a missing workflow file is not a missing repository

    def read(self, ctx: ReadContext) -> Iterator[Page]:
        self._absent: dict[str, list[str]] = {}
        yield from super().read(ctx)
        repos = [r for r in self.conn.config.repos if not self.conn.skipped(r)]
        for workflow, where in self._absent.items():
            if repos and sorted(where) == sorted(repos):
                self.conn.fail(repos[0], f"{self.source}: workflow {workflow} not found in any repository "
                                         f"({', '.join(repos)})", repo_wide=False)

    def tolerate(self, unit: str, exc: RepoError) -> bool:
        """Not every repository deploys with every workflow: a missing one fails only when none has it."""
        if not isinstance(exc, RepoNotFound):
            return False
        repo, workflow = unit.split(":", 1)
        self._absent.setdefault(workflow, []).append(repo)
        log.info("%s: %s has no workflow %s", self.source, repo, workflow)
        return True

    def read_unit(self, unit: str, ctx: ReadContext, stream_state: dict[str, Any],
                  resume: dict[str, Any] | None) -> Iterator[Page]:
        repo, workflow = unit.split(":", 1)
        env = self.conn.config.deploy_environment
        known = self.known(ctx, stream_state, unit)
        repo_state = copy.deepcopy(stream_state["repos"][unit]) if known else {}
        since = self.since_for(ctx, stream_state, unit)
        cutoff = ctx.run_started - PENDING_MAX_AGE
        pending = {k: v for k, v in (repo_state.get("pending") or {}).items()
                   if (t := parse_or_none(v)) is None or t >= cutoff}
        start = since.astimezone(timezone.utc).date() if since is not None else None
        for created in pending.values():
            t = parse_or_none(created)
            if start is not None and t is not None:
                start = min(start, t.date())
        end = ctx.run_started.astimezone(timezone.utc).date()
        runs, etag = self._list_runs(repo, workflow, start, end, repo_state.get("etag") if known else None)
        if runs is None:  # 304: nothing changed
            yield self.done(unit, stream_state, {**repo_state, "pending": pending})
            return
        shipped = {k: v for k, v in (repo_state.get("shipped") or {}).items()
                   if start is None or (t := parse_or_none(v)) is None or t.date() >= start}
        records: list[Deployment] = []
        skipped: list[Skipped] = []
        successes: list[Deployment] = []
        seen: set[str] = set()
        for item in runs:
            run_id = str(item.get("id"))
            if run_id in seen:
                continue
            seen.add(run_id)
            try:
                rec = normalize_run(item, self.source, repo, env)
            except (RecordError, KeyError, TypeError, ValueError) as exc:
                skipped.append(Skipped(record_key(item, repo, "workflow run"), str(exc) or type(exc).__name__))
                continue
            if rec is None:
                pending.pop(run_id, None)
            elif rec.status == "in_progress":
                records.append(rec)
                pending[run_id] = item.get("created_at")
            else:
                records.append(rec)
                pending.pop(run_id, None)
                if rec.status == "success" and run_id not in shipped:
                    shipped[run_id] = item.get("created_at")
                    successes.append(rec)
        last = {"_": repo_state["last"]} if repo_state.get("last") else {}
        assign_commits(self.conn, repo, successes, last, key=lambda r: "_")
        out = self.done(unit, stream_state,
                        {"etag": etag, "pending": pending, "shipped": shipped, "last": last.get("_")})
        out.records, out.skipped = records, skipped
        yield out

    def _list_runs(self, repo: str, workflow: str, start: date | None, end: date,
                   etag: str | None) -> tuple[list[dict[str, Any]] | None, str | None]:
        """All runs created on/after `start` (sliced by dates past the 1,000-run cap); None on 304."""
        path = f"repos/{repo}/actions/workflows/{quote(workflow, safe='')}/runs"
        what = f"workflow {workflow} in {repo}"
        params: dict[str, Any] = {"per_page": PER_PAGE}
        if start is not None:
            params["created"] = f">={start.isoformat()}"
        pages = self.client.pages(path, what=what, params=params, etag=etag, key="workflow_runs")
        first = next(pages)
        if first.not_modified:
            return None, etag
        total = int((first.body or {}).get("total_count") or 0)
        if start is not None and total > RUNS_CAP and start < end:
            return self._sliced(path, what, Ranges(halve(start, end, DAY) or (), step=DAY)), None
        runs = [run for page in chain([first], self._rest_of(path, what, params, first, pages)) for run in page.items]
        # a 304 on the first page proves nothing about later pages: keep the ETag of one-page answers only
        return runs, first.etag if not first.next_url else None

    def _rest_of(self, path: str, what: str, params: dict[str, Any], first: ListPage,
                 following: Iterator[ListPage]) -> Iterator[ListPage]:
        """The pages after `first`: by number, `concurrency` at a time (paging.numbered_after); one request at a
        time, by rel="next". Runs are listed newest first, so a run created meanwhile shifts the rest by one: a run
        may be read twice (kept once, by id), none is skipped; the new run itself is the next sync's (its `created`
        day is re-read)."""
        workers = self.client.http.options.concurrency
        if workers <= 1:
            yield from following
            return
        for _, page in numbered_after(first, 1, lambda n: self.client.list_page(
                path, what=what, params={**params, "page": n}, key="workflow_runs"), workers):
            yield page

    def _sliced(self, path: str, what: str, ranges: Ranges) -> list[dict[str, Any]]:
        """The runs of each range of days (`created=START..END`), a range over the cap read as its halves."""
        out: list[dict[str, Any]] = []
        for start, end in ranges:
            params = {"per_page": PER_PAGE, "created": f"{start.isoformat()}..{end.isoformat()}"}
            pages = self.client.pages(path, what=what, params=params, key="workflow_runs")
            first = next(pages)
            total = int((first.body or {}).get("total_count") or 0)
            if total > RUNS_CAP and ranges.split(start, end):
                continue
            if total > RUNS_CAP:
                log.warning("%s: %s has %d runs on %s; the API lists only %d", self.source, what, total, start,
                            RUNS_CAP)
            out += [run for page in chain([first], self._rest_of(path, what, params, first, pages))
                    for run in page.items]
        return out
