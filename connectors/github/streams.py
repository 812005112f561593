"""GitHub list streams over every configured repo: issues (since, ascending), pull requests and releases."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Callable, Generator, Iterator, Required, TypedDict

from okrsync.connectors.base import Page, ReadContext, Skipped
from okrsync.connectors.paging import Fetched, KeysetPaginator, Request, next_link, numbered
from okrsync.domain.records import RecordError, iso, parse_iso

from .client import PER_PAGE, RepoError, RepoNotFound, since_param
from .normalize import is_pull_request, normalize_issue, normalize_pull, normalize_release, record_key

if TYPE_CHECKING:  # pragma: no cover
    from .connector import GitHubConnector

# Re-read this much before a resume point: `since` is compared to the second and items share timestamps.
OVERLAP = timedelta(seconds=1)


def parse_or_none(text: Any) -> datetime | None:
    try:
        return parse_iso(text) if isinstance(text, str) else None
    except RecordError:
        return None


def convert(items: list[dict[str, Any]], fn: Callable[[dict[str, Any]], Any], repo: str,
            kind: str) -> tuple[list[Any], list[Skipped]]:
    """Normalize a page; an unparseable item becomes a Skipped and the page goes on."""
    records, skipped = [], []
    for item in items:
        try:
            rec = fn(item)
        except (RecordError, KeyError, TypeError, ValueError, AttributeError) as exc:
            skipped.append(Skipped(record_key(item, repo, kind), str(exc) or type(exc).__name__))
            continue
        if rec is not None:
            records.append(rec)
    return records, skipped


class RepoCheckpoint(TypedDict, total=False):
    """A per-repository stream's resume point: the unit (repository) read, and where in it.

    done: the unit was read whole (resume at the next); page + started: a numbered read in parallel, then a
    catch-up from `started`; next (+ catchup): the next page's URL of a newest-first read (down to `catchup`);
    since: the issues stream's updated_at reached (resume the unit from there)."""

    repo: Required[str]
    done: bool
    page: int
    started: str
    next: str
    catchup: str
    since: str

class RepoStream:
    """One stream read repo by repo (a 'unit' is a repo, or repo:workflow for workflow runs).

    State: {"first_since": iso|None, "repos": {unit: {...}}}. A unit absent from "repos" has never been read
    completely (a repo added to the workspace later, or one that failed): it is read like a first run.
    Checkpoint: {"repo": unit, "done": true} after a unit, or a unit-specific resume point inside it.
    """

    name = ""
    default_from = "all"

    def __init__(self, conn: "GitHubConnector"):
        self.conn = conn
        self.client = conn.client
        self.source = conn.name

    def units(self) -> list[str]:
        return list(self.conn.config.repos)

    def repo_of(self, unit: str) -> str:
        return unit

    def read(self, ctx: ReadContext) -> Iterator[Page]:
        stream_state = copy.deepcopy(ctx.state) if ctx.state else {}
        stream_state.setdefault("repos", {})
        if ctx.first_run or ctx.full:
            stream_state["first_since"] = iso(ctx.since)
        units = self.units()
        start, resume = 0, None
        resume_from = ctx.checkpoint or {}
        if resume_from.get("repo") in units:
            i = units.index(resume_from["repo"])
            start, resume = (i + 1, None) if resume_from.get("done") else (i, resume_from)
        for i in range(start, len(units)):
            unit = units[i]
            if self.conn.skipped(self.repo_of(unit)):
                continue
            try:
                yield from self.read_unit(unit, ctx, stream_state, resume if i == start else None)
            except RepoError as exc:
                if not self.tolerate(unit, exc):
                    self.conn.fail(self.repo_of(unit), str(exc), repo_wide=self.repo_wide(exc))
                yield Page(checkpoint=RepoCheckpoint(repo=unit, done=True))

    def tolerate(self, unit: str, exc: RepoError) -> bool:
        """A failure that is normal for this unit (logged, not failing the source)."""
        return False

    def repo_wide(self, exc: RepoError) -> bool:
        """A 404 on a repository list means the repository is missing: later streams skip it."""
        return isinstance(exc, RepoNotFound)

    def read_unit(self, unit: str, ctx: ReadContext, stream_state: dict[str, Any],
                  resume: dict[str, Any] | None) -> Iterator[Page]:
        raise NotImplementedError

    # -- helpers ------------------------------------------------------------------------------
    def known(self, ctx: ReadContext, stream_state: dict[str, Any], unit: str) -> bool:
        """The unit was read completely before (so its ETag and cached state may be used)."""
        return not ctx.full and unit in stream_state["repos"]

    def since_for(self, ctx: ReadContext, stream_state: dict[str, Any], unit: str) -> datetime | None:
        if ctx.full or ctx.first_run or unit in stream_state["repos"]:
            return ctx.since
        if "first_since" in stream_state:
            return parse_or_none(stream_state["first_since"])
        return None if self.default_from == "all" else ctx.since

    def done(self, unit: str, stream_state: dict[str, Any], unit_state: dict[str, Any]) -> Page:
        stream_state["repos"][unit] = unit_state
        return Page(checkpoint=RepoCheckpoint(repo=unit, done=True), state=copy.deepcopy(stream_state))

    def parallel(self, since: datetime | None, resume: dict[str, Any] | None) -> bool:
        """Read everything by numbered pages in parallel: a read of the whole list (a first or full run) with more
        than one request allowed in flight, not resuming another kind of read."""
        return (since is None and self.client.http.options.concurrency > 1
                and (not resume or "page" in resume))

    def read_numbered(self, unit: str, ctx: ReadContext, resume: dict[str, Any] | None, *, path: str,
                      params: dict[str, Any], fn: Callable[[dict[str, Any]], Any],
                      kind: str) -> Generator[Page, None, int]:
        """Every page by number, sorted by creation (ascending: an update moves nothing), `concurrency` pages in
        flight, yielded in order; checkpoint {"repo", "page", "started"}. The caller then reads what changed since
        `started` (less the look-back): items updated or created during this read. Returns the pages read (one,
        from the start: the read was one request, nothing to catch up with)."""
        repo = self.repo_of(unit)
        started = (resume or {}).get("started") or iso(ctx.run_started)
        first = int((resume or {}).get("page") or 0) + 1

        def fetch_page(n: int) -> Any:
            return self.client.list_page(path, what=f"repository {repo}", params={**params, "page": n})

        read = 0
        for n, page in numbered(fetch_page, first, self.client.http.options.concurrency):
            records, skipped = convert(page.items, fn, repo, kind)
            read += 1
            yield Page(records, skipped, checkpoint=RepoCheckpoint(repo=unit, page=n, started=started))
        return read if first == 1 else 2

    def catch_up_since(self, resume: dict[str, Any] | None, ctx: ReadContext) -> datetime:
        started = parse_or_none((resume or {}).get("started")) or ctx.run_started
        lookback: timedelta = self.conn.config.lookback_delta
        return started - lookback

    def read_newest_first(self, unit: str, ctx: ReadContext, stream_state: dict[str, Any],
                          resume: dict[str, Any] | None, *, path: str, params: dict[str, Any],
                          time_key: str | None, fn: Callable[[dict[str, Any]], Any], kind: str,
                          etag_any_page: bool, since: datetime | None = None) -> Iterator[Page]:
        """Newest-first paging that stops after the page crossing `since` (by time_key), never at a stored record;
        time_key None reads every page.

        etag_any_page: a 304 on the first page proves nothing changed even when more pages were read
        (true when any change moves an item to the first page, as with pulls sorted by updated).
        """
        repo = self.repo_of(unit)
        catchup = since or parse_or_none((resume or {}).get("catchup"))  # after a parallel read: down to there
        since = catchup or self.since_for(ctx, stream_state, unit)
        known = self.known(ctx, stream_state, unit) and catchup is None
        etag = stream_state["repos"][unit].get("etag") if known else None
        mark = iso(catchup) if catchup is not None else None
        url: str = path
        query: dict[str, Any] | None = params
        if resume and resume.get("next"):
            url, query, etag = resume["next"], None, None
        first_etag, pages = None, 0
        for page in self.client.pages(url, what=f"repository {repo}", params=query, etag=etag):
            if page.not_modified:
                return  # nothing changed since the last complete read
            pages += 1
            if pages == 1:
                first_etag = page.etag
            records, skipped = convert(page.items, fn, repo, kind)
            crossed = since is not None and time_key is not None and any(
                (t := parse_or_none(item.get(time_key))) is not None and t < since for item in page.items
            )
            nxt = None if crossed else page.next_url
            yield Page(records, skipped, checkpoint=_next_checkpoint(unit, nxt, mark) if nxt else
                       RepoCheckpoint(repo=unit, done=True))
            if not nxt:
                break
        # a catch-up's first page is the list the next run asks for (its ETag is of the content): kept too, so an
        # unchanged repository costs one 304 right after a parallel first read
        keep = first_etag if (etag_any_page or pages == 1) and not resume else None
        yield self.done(unit, stream_state, {"etag": keep})


class IssuesStream(RepoStream):
    """GET /repos/{o}/{r}/issues?state=all&sort=updated&direction=asc&since=...; PRs are skipped here.

    Pages advance by `since` = last item's updated_at - 1 s (keyset) rather than page=N: with page numbers an
    issue updated during the read moves to the end and shifts an unread one onto a page already read.
    When the keyset cannot advance (a page of items sharing one second) the Link rel="next" is followed.
    """

    name = "issues"
    default_from = "all"

    def read_unit(self, unit: str, ctx: ReadContext, stream_state: dict[str, Any],
                  resume: dict[str, Any] | None) -> Iterator[Page]:
        repo = unit
        since = self.since_for(ctx, stream_state, unit)
        etag = stream_state["repos"][unit].get("etag") if self.known(ctx, stream_state, unit) else None
        path = f"repos/{repo}/issues"
        first_etag, pages, last_seen = None, 0, None
        parallel = self.parallel(since, resume)
        if parallel:  # every page by number in parallel, then what moved during that read (by `since`, below)
            read = yield from self.read_numbered(
                unit, ctx, resume, path=path, params={"state": "all", "sort": "created", "direction": "asc",
                                                      "per_page": PER_PAGE},
                fn=lambda p: None if is_pull_request(p) else normalize_issue(p, self.source, repo), kind="issue")
            if read == 1:
                yield self.done(unit, stream_state, {"etag": None})
                return
            since, etag, resume = self.catch_up_since(resume, ctx), None, None
            last_seen = iso(since + OVERLAP)  # a resume point from the start of the catch-up
        if resume and resume.get("since"):
            since, etag = parse_iso(resume["since"]) - OVERLAP, None

        def build(since: datetime | None) -> Request:
            params: dict[str, Any] = {"state": "all", "sort": "updated", "direction": "asc", "per_page": PER_PAGE}
            if since is not None:
                params["since"] = since_param(since)
            return Request(path, params)

        def resume_at(page: Fetched) -> datetime | None:
            t = parse_or_none(last_seen)
            return t - OVERLAP if t else None

        # by `since` while it moves forward, else the Link rel="next"; a page without a next link is the last
        pager = KeysetPaginator(build, resume_at, since, more=lambda page: next_link(page) is not None,
                                fallback=lambda page: Request(next_link(page) or ""))
        for page in self.client.pages_of(pager, what=f"repository {repo}", etag=etag):
            if page.not_modified:
                return
            pages += 1
            if pages == 1:
                first_etag = page.etag
            items = [i for i in page.items if not is_pull_request(i)]
            records, skipped = convert(items, lambda p: normalize_issue(p, self.source, repo), repo, "issue")
            if page.items:
                last_seen = page.items[-1].get("updated_at") or last_seen
            # resume point: the unit again from the last updated_at seen
            checkpoint: RepoCheckpoint = {"repo": unit, "since": last_seen} if last_seen else {"repo": unit}
            yield Page(records, skipped, checkpoint=checkpoint)
        one_page = pages == 1 and not resume  # after a parallel read: the catch-up (resume is None by then)
        yield self.done(unit, stream_state, {"etag": first_etag if one_page else None})


class PullsStream(RepoStream):
    """GET /repos/{o}/{r}/pulls?state=all&sort=updated&direction=desc (no `since`): stop at the cursor."""

    name = "pull_requests"
    default_from = "all"

    def read_unit(self, unit: str, ctx: ReadContext, stream_state: dict[str, Any],
                  resume: dict[str, Any] | None) -> Iterator[Page]:
        path, since = f"repos/{unit}/pulls", None
        fn = lambda p: normalize_pull(p, self.source, unit)  # noqa: E731
        # every page in parallel, then what moved since
        if self.parallel(self.since_for(ctx, stream_state, unit), resume):
            read = yield from self.read_numbered(unit, ctx, resume, path=path, fn=fn, kind="pull request", params={
                "state": "all", "sort": "created", "direction": "asc", "per_page": PER_PAGE})
            if read == 1:
                yield self.done(unit, stream_state, {"etag": None})
                return
            since, resume = self.catch_up_since(resume, ctx), None
        params = {"state": "all", "sort": "updated", "direction": "desc", "per_page": PER_PAGE}
        yield from self.read_newest_first(
            unit, ctx, stream_state, resume, path=path, params=params, time_key="updated_at", fn=fn,
            kind="pull request",
            etag_any_page=True, since=since)


class ReleasesStream(RepoStream):
    """GET /repos/{o}/{r}/releases, every page each run; releases published since the cursor are kept.

    A release happens when it is published: `published_at`. Its `created_at` is the date of its commit
    ("The created_at attribute is the date of the commit used for the release, and not the date when the release
    was drafted or published": https://docs.github.com/rest/releases/releases#get-the-latest-release), and the
    list's order is not documented (it follows created_at), so no position in it bounds the publication dates
    still to come: a release of an old commit published today may sit on the last page. Release lists are short;
    a one-page list is read conditionally (ETag), so an unchanged repository costs one free 304.
    """

    name = "releases"
    default_from = "previous_period"

    def read_unit(self, unit: str, ctx: ReadContext, stream_state: dict[str, Any],
                  resume: dict[str, Any] | None) -> Iterator[Page]:
        env = self.conn.config.release_environment
        since = self.since_for(ctx, stream_state, unit)

        def published_since(p: dict[str, Any]) -> Any:
            published = parse_or_none(p.get("published_at"))
            if since is not None and published is not None and published < since:
                return None  # published before the window: read by an earlier run
            return normalize_release(p, self.source, unit, env)

        yield from self.read_newest_first(
            unit, ctx, stream_state, resume, path=f"repos/{unit}/releases", params={"per_page": PER_PAGE},
            time_key=None, fn=published_since, kind="release", etag_any_page=False)


def _next_checkpoint(unit: str, nxt: str, catchup: str | None) -> RepoCheckpoint:
    checkpoint: RepoCheckpoint = {"repo": unit, "next": nxt}
    if catchup is not None:
        checkpoint["catchup"] = catchup
    return checkpoint
