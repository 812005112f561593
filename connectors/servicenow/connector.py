"""ServiceNow Table API incidents: keyset paging by (sys_updated_on, sys_id) without ^NQ, basic or bearer auth."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import chain
from typing import Any, Generator, Iterator, NotRequired, TypedDict

from okrsync.config.settings import SourceCredentials, env_name
from okrsync.connectors.auth import attach, credentials_problem, servicenow_mint, servicenow_oauth
from okrsync.connectors.base import (
    AuthError,
    ClientConnector,
    ConnectorOptions,
    Page,
    QueryError,
    ReadContext,
    Skipped,
    SourceError,
)
from okrsync.connectors.http import HttpClient, HTTPStatusError
from okrsync.connectors.paging import Fetched, Paginator, Request, fetch, in_parallel, paginate
from okrsync.domain.records import Record, RecordError, iso, parse_iso

from .normalize import format_time, normalize_incident, parse_time, value

RANGES_PER_WORKER = 2  # a parallel read's sys_updated_on ranges per request allowed in flight
PAGE_SIZE = 1000  # rows per page: larger pages risk the instance's transaction quota
ORDER = "ORDERBYsys_updated_on^ORDERBYsys_id"
BASE_FIELDS = (
    "sys_id", "number", "short_description", "state", "priority", "severity", "urgency", "impact",
    "opened_at", "resolved_at", "closed_at", "sys_created_on", "sys_updated_on", "reassignment_count",
    "reopen_count", "made_sla", "assignment_group.name", "business_service.name", "cmdb_ci.name",
)


def fields_param(extra: list[str] | tuple[str, ...] = ()) -> str:
    """sysparm_fields: what the normalizer reads plus the source's extra fields (kept in raw)."""
    return ",".join(dict.fromkeys([*BASE_FIELDS, *(f.strip() for f in extra if f.strip())]))


def check_user_query(query: str | None) -> str | None:
    """The source's query: ANDed into every page's query, so it may not hold ^NQ or ORDERBY itself."""
    if query is None or not query.strip():
        return None
    q = query.strip()
    q = (q[:-3] if q.endswith("^EQ") else q).strip("^")  # the list view's "Copy query" may end with ^EQ
    upper = q.upper()
    if "^NQ" in upper or upper.startswith("NQ") or "ORDERBY" in upper:
        raise QueryError("query: must be a plain encoded query (conditions joined by ^ and ^OR); "
                         "^NQ and ORDERBY are added by okrsync")
    return q


# How a page's query bounds (sys_updated_on, sys_id). One ^NQ-free query each: ServiceNow documents neither
# conditions nor ORDERBY across ^NQ groups (KB0564887 shows a condition applying to the first group only).
FROM = "from"    # sys_updated_on>=L, ordered by (sys_updated_on, sys_id); rows up to the position are skipped
SAME = "same"    # sys_updated_on=L^sys_id>ID, ordered by sys_id: the rest of one timestamp
AFTER = "after"  # sys_updated_on>L, ordered by (sys_updated_on, sys_id)


def page_query(mode: str, lower: str | None, pos: tuple[str, str] | None, user_query: str | None = None,
               upper: str | None = None) -> str:
    """The encoded query of one page.

    FROM:  sys_updated_on>=L[^Q]^ORDERBYsys_updated_on^ORDERBYsys_id   (L: the position's time, else `lower`)
    SAME:  sys_updated_on=L^sys_id>ID[^Q]^ORDERBYsys_id
    AFTER: sys_updated_on>L[^Q]^ORDERBYsys_updated_on^ORDERBYsys_id
    """
    extra = [user_query] if user_query else []
    if upper is not None and not (mode == SAME and pos is not None):  # a range of a parallel read: below upper
        extra = [f"sys_updated_on<{upper}", *extra]
    if mode == SAME and pos is not None:
        return "^".join([f"sys_updated_on={pos[0]}", f"sys_id>{pos[1]}", *extra, "ORDERBYsys_id"])
    at = pos[0] if pos is not None else lower
    cond = [] if at is None else [f"sys_updated_on{'>' if mode == AFTER else '>='}{at}"]
    return "^".join([*cond, *extra, ORDER])


class ParallelMark(TypedDict):
    """Marks the checkpoints of a read in parallel ranges: resumed as one, caught up from `started` after."""

    parallel: bool
    started: str  # ISO time the ranged read began


class RowsCheckpoint(TypedDict):
    """The incidents stream's resume point: the (sys_updated_on, sys_id) keyset position read up to."""

    updated: str
    sys_id: str
    parallel: NotRequired[bool]
    started: NotRequired[str]


def _checkpoint(pos: tuple[str, str], mark: ParallelMark | None) -> RowsCheckpoint:
    checkpoint: RowsCheckpoint = {"updated": pos[0], "sys_id": pos[1]}
    if mark:
        checkpoint["parallel"] = mark["parallel"]
        checkpoint["started"] = mark["started"]
    return checkpoint

class IncidentStream:
    """Keyset paging by (sys_updated_on, sys_id) without ^NQ.

    A FROM page re-reads the rows of its lower second and skips those up to the position (de-duplicated at the
    boundary). A page ending inside the second it started in (a bulk update sharing one sys_updated_on) is
    followed by SAME pages for the rest of that second, then AFTER. ACLs filter rows after the query ran, so a
    page may be short, or hold no new row, before the end (KB3047115): the read ends on an empty page, or on a
    page holding its query's whole result (as many rows as X-Total-Count), never on a short page.
    """

    name = "incidents"
    default_from = "previous_period"

    def __init__(self, source: str, config: Any, client: HttpClient):
        self.source = source
        self.config = config
        self.client = client
        self.table = config.table
        self.page_size = config.page_size or PAGE_SIZE
        try:
            self.user_query = check_user_query(config.query)
        except QueryError as exc:
            raise QueryError(f"{source}: {exc}") from None
        self.fields = fields_param(config.fields)
        self.base_url = config.url

    def params(self, query: str) -> dict[str, str]:
        return {
            "sysparm_query": query,
            "sysparm_fields": self.fields,
            "sysparm_display_value": "false",
            "sysparm_exclude_reference_link": "true",
            "sysparm_limit": str(self.page_size),
        }

    def fetch(self, request: Request) -> Fetched:
        """A page of rows; its response carries X-Total-Count."""
        try:
            page = fetch(self.client, request, items="result")
        except HTTPStatusError as exc:
            if exc.status == 400:
                raise QueryError(f"{exc} (sysparm_query {(request.params or {}).get('sysparm_query')!r})") from None
            raise
        if not isinstance(page.body, dict) or not isinstance(page.body.get("result"), list):
            raise SourceError(f"{self.source}: unexpected response from api/now/table/{self.table} (no result list)")
        return page

    def read(self, ctx: ReadContext) -> Iterator[Page]:
        lower = format_time(ctx.since) if ctx.since is not None else None
        pos: tuple[str, str] | None = None
        resume_from = ctx.checkpoint or {}
        if resume_from.get("updated") and resume_from.get("sys_id"):
            pos = (str(resume_from["updated"]), str(resume_from["sys_id"]))
        workers = self.client.options.concurrency
        if workers > 1 and (ctx.first_run or ctx.full or resume_from.get("parallel")) and ctx.since is not None:
            yield from self.read_ranges(ctx, pos, workers)
            return
        yield from self.pages_of(KeysetPages(self, lower, pos))

    def read_ranges(self, ctx: ReadContext, pos: tuple[str, str] | None, workers: int) -> Iterator[Page]:
        """A large read as disjoint sys_updated_on ranges, `concurrency` at a time, written in order (so the
        (sys_updated_on, sys_id) checkpoint only passes rows written); the last range has no upper bound; then one
        catch-up from the read's start less the look-back for rows updated while it ran. The first page is read
        as usual: a read that fits in it stays one request."""
        assert ctx.since is not None
        started = parse_iso(str((ctx.checkpoint or {}).get("started") or iso(ctx.run_started)))
        mark: ParallelMark = {"parallel": True, "started": iso(started)}
        head = KeysetPages(self, format_time(ctx.since), pos)
        pages = self.pages_of(head, mark)
        first = next(pages, None)
        pages.close()
        if first is not None:
            yield first
        if first is None or head.finished:
            return
        pos = head.pos
        at = parse_time(pos[0], "sys_updated_on") if pos is not None else None
        lo = max(ctx.since, at) if at is not None else ctx.since
        cuts = _cuts(lo, ctx.run_started, RANGES_PER_WORKER * workers)
        bounds = [(format_time(a), format_time(b) if n < len(cuts) - 2 else None)
                  for n, (a, b) in enumerate(zip(cuts, cuts[1:]))]

        def read_range(n: int) -> list[Page]:
            a, b = bounds[n]
            return list(self.pages_of(KeysetPages(self, a, pos if n == 0 else None, upper=b), mark=mark))

        catch_up = self.pages_of(KeysetPages(self, format_time(started - self.config.lookback_delta), None))
        last = first.checkpoint  # a range (or the catch-up) with no row yet keeps the position written before it
        for page in chain((p for pages in in_parallel(read_range, range(len(bounds)), workers, ahead=workers)
                           for p in pages), catch_up):
            page.checkpoint = last = page.checkpoint or last
            yield page

    def pages_of(self, pager: "KeysetPages", mark: ParallelMark | None = None) -> Generator[Page, None, None]:
        """The pages of one keyset read, normalized; checkpoint: the position read up to (plus `mark`)."""
        for page in paginate(self.client, pager, fetcher=self.fetch):
            fresh = pager.take(page)
            if fresh is None:
                continue  # an ACL hid every row of this page
            records: list[Record] = []
            skipped: list[Skipped] = []
            for row, _ in fresh:
                try:
                    records.append(normalize_incident(row, source=self.source, base_url=self.base_url,
                                                      table=self.table))
                except RecordError as exc:
                    skipped.append(Skipped(value(row.get("number")) or value(row.get("sys_id")) or "?", str(exc)))
            pos = pager.pos
            yield Page(records=records, skipped=skipped, checkpoint=_checkpoint(pos, mark) if pos else None)

    def _key(self, row: Any) -> tuple[str, str]:
        if not isinstance(row, dict):
            raise SourceError(f"{self.source}: a row of a page is not an object; cannot page on")
        return value(row.get("sys_updated_on")).strip(), value(row.get("sys_id")).strip()

    def _check(self, mode: str, query: str, keys: list[tuple[str, str]], pos: tuple[str, str] | None) -> None:
        """Refuse to page on (and loop, or skip rows) when the instance did not honour the query's order/bounds."""
        if any(not t or not i for t, i in keys):
            raise SourceError(f"{self.source}: rows carry no sys_updated_on/sys_id; cannot page on")
        ordered = all(a < b for a, b in zip(keys, keys[1:]))
        if mode == SAME and pos is not None:
            ordered = ordered and all(t == pos[0] and i > pos[1] for t, i in keys)
        elif mode == AFTER and pos is not None:
            ordered = ordered and keys[0][0] > pos[0]
        if not ordered:
            raise SourceError(f"{self.source}: the instance did not honour the keyset query {query!r} (rows not "
                              f"ordered by sys_updated_on, sys_id after {pos}); stopping to avoid a loop")


class KeysetPages(Paginator):
    """The pages of IncidentStream.read: FROM, SAME and AFTER queries by the position read up to, and offset pages
    of one query while ACLs hide every row of its results."""

    what = "by (sys_updated_on, sys_id)"

    def __init__(self, stream: IncidentStream, lower: str | None, pos: tuple[str, str] | None,
                 upper: str | None = None):
        super().__init__()
        self.stream, self.lower, self.pos, self.upper = stream, lower, pos, upper
        self.mode, self.offset = FROM, 0
        self._taken: Fetched | None = None
        self._hidden = self._complete = self._inside = False

    def start(self) -> Request:
        return self.request()

    @property
    def finished(self) -> bool:
        """The page taken last ends the read (the next one would be asked for nothing)."""
        return self._complete and self.mode != SAME

    def request(self) -> Request:
        query = page_query(self.mode, self.lower, self.pos, self.stream.user_query, self.upper)
        params = self.stream.params(query)
        if self.offset:
            params["sysparm_offset"] = str(self.offset)
        return Request(f"api/now/table/{self.stream.table}", params)

    def take(self, page: Fetched) -> list[tuple[dict[str, Any], tuple[str, str]]] | None:
        """The rows of a page past the position, which moves to the last of them (None: ACLs hid every row)."""
        self._taken = page
        rows, total = page.items, _total(page)
        size = self.stream.page_size
        self._hidden = not rows and total is not None and self.offset + size < total
        if self._hidden:
            return None
        # the end: an empty page, or the query's whole result in hand (whether or not the count includes
        # the rows ACLs hide, a page holding as many rows as it counts holds them all)
        self._complete = not rows or (self.offset == 0 and total is not None and len(rows) >= total)
        self.offset = 0
        keys = [self.stream._key(row) for row in rows]
        if not self._complete:
            self.stream._check(self.mode, str((page.request.params or {}).get("sysparm_query")), keys, self.pos)
        fresh = [(row, k) for row, k in zip(rows, keys) if self.pos is None or k > self.pos]
        if fresh:
            self.pos = fresh[-1][1]
        # no new row (a page of rows read already, the others hidden), or a page inside one second
        self._inside = not fresh or (self.pos is not None and keys[0][0] == self.pos[0])
        return fresh

    def next(self, page: Fetched) -> Request | None:
        if self._taken is not page:
            self.take(page)
        if self._hidden:
            # the same query's next results (offset paging until a row shows; the keyset takes over from it)
            self.offset += self.stream.page_size
        elif self._complete:
            if self.mode != SAME:
                return None
            self.mode = AFTER  # that second is done
        elif self.mode != SAME:
            # the next FROM page would start where this one did: the rest of that second first
            self.mode = SAME if self._inside else FROM
        return self.request()


def _cuts(lo: datetime, hi: datetime, n: int) -> list[datetime]:
    """n + 1 instants from lo to hi in equal steps, whole seconds (ServiceNow's resolution), without repeats."""
    step = max((hi - lo) / max(n, 1), timedelta(seconds=1))
    out = [lo]
    while out[-1] + step < hi:
        out.append((out[-1] + step).replace(microsecond=0))
    return out + [hi]


def _total(page: Fetched) -> int | None:
    total = page.response.headers.get("X-Total-Count") if page.response is not None else None
    return int(total) if total and total.strip().isdigit() else None


class ServiceNowConnector(ClientConnector):
    def __init__(self, name: str, config: Any, client: HttpClient):
        super().__init__(name, config, client, [IncidentStream(name, config, client)])


def build(name: str, config: Any, credentials: SourceCredentials, options: ConnectorOptions) -> ServiceNowConnector:
    token = credentials.token.get_secret_value() if credentials.token else ""
    user = credentials.user or config.user
    password = credentials.password.get_secret_value() if credentials.password else ""
    headers = {"Accept": "application/json"}
    auth = None
    form: dict[str, str] = {}
    problem = credentials_problem(name, config, credentials)
    if problem:
        raise AuthError(problem)
    mode = getattr(config, "auth", None) or ("token" if token else "basic")
    if mode == "oauth":
        form, hint = servicenow_oauth(name, config, credentials)
    elif mode == "token":
        headers["Authorization"] = f"Bearer {token}"
        hint = env_name(name, "token")
    else:
        auth = (user, password)
        hint = f"{env_name(name, 'user')} and {env_name(name, 'password')}"
    if not config.url:
        raise SourceError(f"{name}: a servicenow source needs url: https://<instance>.service-now.com")
    client = HttpClient.for_source(name, config.url, config, options, headers=headers, auth=auth, auth_hint=hint,
                                   secrets=[token, password, form.get("client_secret", "")])
    if mode == "oauth":
        attach(client, servicenow_mint(client, form, hint))
    try:
        return ServiceNowConnector(name, config, client)
    except QueryError:
        client.close()
        raise
