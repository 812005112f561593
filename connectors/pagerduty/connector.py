"""PagerDuty REST v2 incidents: creation-time windows under the 10000 offset cap, re-read of open incidents,
first acknowledgements from the account-wide log entries."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Callable, Iterator, TypedDict

from okrsync.config.settings import SourceCredentials, env_name
from okrsync.connectors.auth import credentials_problem
from okrsync.connectors.base import (
    AuthError,
    ClientConnector,
    ConnectorOptions,
    NotFoundError,
    Page,
    QueryError,
    ReadContext,
    Skipped,
    SourceError,
)
from okrsync.connectors.http import HttpClient, HTTPStatusError
from okrsync.connectors.paging import Fetched, OffsetPaginator, Ranges, Request, in_parallel, paginate
from okrsync.domain.records import Incident, RecordError, iso, parse_iso

from .normalize import first_acknowledgement, normalize_incident, windows, zulu

LIMIT = 100  # the API's maximum page size
MAX_OFFSET = 10000  # offset + limit above this answers 400
DEFAULT_HISTORY = timedelta(days=365)  # a read with no start at all (since=None)
ACK_MEMORY = timedelta(days=190)  # how long a fetched first-ack is remembered (else re-fetched)
LOG_WINDOW_DAYS = 180  # account-wide log entries: ranges of at most ~6 months, halved past the offset cap
# The API reference does not say whether since/until are inclusive: each slice after the first starts one
# second (the API's resolution) before the previous one ended, and incidents are de-duplicated by id, so an
# incident created on a boundary is read once whichever way the API goes.
BOUNDARY_OVERLAP = timedelta(seconds=1)
ACCEPT = "application/vnd.pagerduty+json;version=2"


# The incidents stream's resume point: the start (ISO) of the first creation window not yet written whole, or
# the read's start once the windows are done and the open incidents are re-read ("from" is a keyword).
IncidentsCheckpoint = TypedDict("IncidentsCheckpoint", {"from": str})

class IncidentStream:
    name = "incidents"
    default_from = "previous_period"

    def __init__(self, source: str, config: Any, client: HttpClient):
        self.source = source
        self.config = config
        self.client = client
        self.limit = min(LIMIT, config.page_size or LIMIT)

    # -- requests ----------------------------------------------------------------------------
    def filters(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, values in (("service_ids[]", self.config.service_ids), ("team_ids[]", self.config.team_ids),
                            ("urgencies[]", self.config.urgencies)):
            if values:
                out[key] = list(values)
        return out

    def get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        try:
            body = self.client.get(path, params=params)
        except HTTPStatusError as exc:
            if exc.status == 400:
                raise QueryError(str(exc)) from None
            raise
        if not isinstance(body, dict):
            raise SourceError(f"{self.source}: unexpected response from {path}")
        return body

    def fetch(self, request: Request, key: str) -> Fetched:
        """One page of a list: `key` names the list in the body."""
        body = self.get(request.path, dict(request.params or {}))
        items = body.get(key)
        if not isinstance(items, list):
            raise SourceError(f"{self.source}: unexpected response from {request.path} (no {key} list)")
        return Fetched(request, body, None, items)

    def pages(self, build: Callable[[int, int], Request], key: str) -> tuple[OffsetPaginator, Iterator[Fetched]]:
        """offset/limit pages until `more` is false, an empty page or the offset cap (.capped then set)."""
        pager = OffsetPaginator(build, self.limit, more="more", cap=MAX_OFFSET)
        return pager, paginate(self.client, pager, fetcher=lambda request: self.fetch(request, key))

    def first_ack(self, incident_id: str) -> datetime | None:
        path = f"incidents/{incident_id}/log_entries"
        _, pages = self.pages(lambda offset, limit: Request(path, {
            "is_overview": "true", "time_zone": "UTC", "limit": limit, "offset": offset}), "log_entries")
        return first_acknowledgement([e for page in pages for e in page.items])

    def account_acks(self, lo: datetime, hi: datetime) -> dict[str, datetime]:
        """First acknowledgement per incident id from the account-wide log (GET /log_entries, overview entries
        created in [lo, hi)): one request per 100 entries instead of one per incident. A window holding more
        than the offset cap is halved first (its `total` is asked on the first page)."""
        acks: dict[str, datetime] = {}
        ranges = Ranges(windows(lo, hi, LOG_WINDOW_DAYS))
        for w_lo, w_hi in ranges:
            def build(offset: int, limit: int, w_lo: datetime = w_lo, w_hi: datetime = w_hi) -> Request:
                params: dict[str, Any] = {"since": zulu(w_lo), "until": zulu(w_hi), "is_overview": "true",
                                          "time_zone": "UTC", "limit": limit, "offset": offset}
                if offset == 0:
                    params["total"] = "true"
                return Request("log_entries", params)

            for page in self.pages(build, "log_entries")[1]:
                total = page.body.get("total")
                if (page.request.params or {}).get("offset") == 0 and isinstance(total, int) and total > MAX_OFFSET \
                        and ranges.split(w_lo, w_hi):
                    break
                for e in page.items:
                    incident = e.get("incident") if isinstance(e, dict) else None
                    iid = str(incident.get("id") or "") if isinstance(incident, dict) else ""
                    at = first_acknowledgement([e])
                    if iid and at is not None and (iid not in acks or at < acks[iid]):
                        acks[iid] = at
        return acks

    # -- reading -----------------------------------------------------------------------------
    def read(self, ctx: ReadContext) -> Iterator[Page]:
        since = ctx.since or (ctx.run_started - DEFAULT_HISTORY)
        run = _Run(self, ctx, since)
        start = since
        resume = (ctx.checkpoint or {}).get("from")
        if resume and parse_iso(resume) > since:
            start = parse_iso(resume)
        listed: set[str] = set()  # ids read by this read's slices (a boundary incident may be in two)
        slices = windows(start, ctx.run_started, self.config.window_days)
        # the since/until windows are read `concurrency` at a time and written in order: a window's checkpoint
        # ("from" its start) is saved only once every window before it is
        workers = self.client.options.concurrency
        for lo, incidents in (part for parts in in_parallel(lambda w: self.window(*w, start), slices, workers)
                              for part in parts):
            for n in range(0, max(len(incidents), 1), self.limit):
                chunk = incidents[n:n + self.limit]
                ids = [str(p.get("id")) if isinstance(p, dict) else None for p in chunk]
                fresh = [p for p, i in zip(chunk, ids) if i is None or i not in listed]
                listed.update(i for i in ids if i is not None)
                yield run.page(fresh, checkpoint={"from": iso(lo)})
        yield from run.refresh(checkpoint={"from": iso(ctx.run_started)})

    def window(self, lo: datetime, hi: datetime, start: datetime) -> list[tuple[datetime, list[Any]]]:
        """The incidents created in [lo, hi) (from one second before lo, past the read's start), page after page;
        a window over the offset cap is read as its halves instead: [(part start, incidents), ...]."""
        out: list[tuple[datetime, list[Any]]] = []
        ranges = Ranges([(lo, hi)])
        for a, b in ranges:
            since_at = a - BOUNDARY_OVERLAP if a > start else a

            def build(offset: int, limit: int, since_at: datetime = since_at, b: datetime = b) -> Request:
                return Request("incidents", {"since": zulu(since_at), "until": zulu(b), "time_zone": "UTC",
                                             "limit": limit, "offset": offset, "sort_by": "created_at:asc",
                                             **self.filters()})

            pager, pages = self.pages(build, "incidents")
            incidents = [p for page in pages for p in page.items]
            if pager.capped:
                if not ranges.split(a, b):
                    raise SourceError(f"{self.source}: more than {MAX_OFFSET} incidents created at "
                                      f"{zulu(a)}; cannot page past the API's offset cap")
                continue  # read again as two halves
            out.append((a, incidents))
        return out


class _Run:
    """One read: normalizes pages, fetches first acks once, tracks open incidents in the stream state."""

    def __init__(self, stream: IncidentStream, ctx: ReadContext, since: datetime):
        self.stream = stream
        self.source = stream.source
        # Acknowledgements this read can need happened at or after `since`: the incidents it lists were
        # opened since then, and one re-read because it was open last time was acknowledged after that run.
        self.ack_from = since
        self.ack_index: dict[str, datetime] | None = None
        self.stream_started = ctx.run_started
        state = ctx.state or {}
        self.prev_open: list[str] = [str(i) for i in state.get("open") or []]
        self.acks: dict[str, list[str | None]] = dict(state.get("acks") or {})  # id: [opened, first ack] (ISO)
        self.seen: dict[str, str] = {}  # id -> status seen in this run
        self.gone: set[str] = set()
        cutoff = min(ctx.since or ctx.run_started, ctx.run_started - ACK_MEMORY)
        self.cutoff = iso(cutoff)

    def page(self, incidents: list[Any], checkpoint: IncidentsCheckpoint) -> Page:
        records: list[Incident] = []
        skipped: list[Skipped] = []
        for p in incidents:
            if not isinstance(p, dict):
                skipped.append(Skipped("?", "incident is not an object"))
                continue
            try:
                rec = normalize_incident(p, source=self.source)
            except RecordError as exc:
                key = f"#{p['incident_number']}" if p.get("incident_number") is not None else str(p.get("id") or "?")
                skipped.append(Skipped(key, str(exc)))
                continue
            rec.acknowledged = self._ack(rec)
            self.seen[rec.id] = rec.status
            records.append(rec)
        return Page(records=records, skipped=skipped, checkpoint=checkpoint, state=self.state())

    def _ack(self, rec: Incident) -> datetime | None:
        known = self.acks.get(rec.id)
        if known is not None:
            return parse_iso(known[1]) if known[1] else None
        if rec.status not in ("acknowledged", "resolved"):
            return None  # nothing to look for yet
        if self.ack_index is None:
            # up to a day past the run's start: an incident read a little after it may have been acked since
            self.ack_index = self.stream.account_acks(self.ack_from, self.stream_started + timedelta(days=1))
        ack = self.ack_index.get(rec.id)
        if ack is None and rec.status == "acknowledged":
            ack = self.stream.first_ack(rec.id)  # not in the account log yet (it lags): ask the incident
        if ack is not None or rec.status == "resolved":
            # an acknowledged incident whose log has no ack entry yet is asked again next time
            self.acks[rec.id] = [iso(rec.opened), iso(ack) if ack else None]
        return ack

    def refresh(self, checkpoint: IncidentsCheckpoint) -> Iterator[Page]:
        """Re-read the incidents left open by the previous run that this run has not seen yet."""
        pending = [i for i in self.prev_open if i not in self.seen]
        if not pending:
            return
        wanted = set(pending)
        _, pages = self.stream.pages(lambda offset, limit: Request("incidents", {
            "statuses[]": ["triggered", "acknowledged"], "date_range": "all", "time_zone": "UTC", "limit": limit,
            "offset": offset, **self.stream.filters()}), "incidents")
        for page in pages:
            mine = [p for p in page.items if isinstance(p, dict) and str(p.get("id")) in wanted]
            if mine:
                yield self.page(mine, checkpoint)
            if wanted.issubset(self.seen):
                break
        for iid in pending:
            if iid in self.seen:
                continue
            try:
                body = self.stream.get(f"incidents/{iid}", {"time_zone": "UTC"})
            except NotFoundError:
                self.gone.add(iid)  # deleted (or no longer visible): stop asking
                continue
            p = body.get("incident")
            yield self.page([p] if p is not None else [], checkpoint)
        yield Page(checkpoint=checkpoint, state=self.state())

    def state(self) -> dict[str, Any]:
        open_now = [i for i in self.prev_open if i not in self.seen and i not in self.gone]
        open_now += [i for i, s in self.seen.items() if s != "resolved"]
        acks = {i: v for i, v in self.acks.items() if (v[0] or "") >= self.cutoff or i in self.seen}
        return {"open": sorted(set(open_now)), "acks": acks}


class PagerDutyConnector(ClientConnector):
    def __init__(self, name: str, config: Any, client: HttpClient):
        super().__init__(name, config, client, [IncidentStream(name, config, client)])


def build(name: str, config: Any, credentials: SourceCredentials, options: ConnectorOptions) -> PagerDutyConnector:
    problem = credentials_problem(name, config, credentials)
    if problem:
        raise AuthError(problem)
    token = credentials.token.get_secret_value() if credentials.token else ""
    client = HttpClient.for_source(
        name, config.api_url(), config, options,
        # an API key is `Token token=<key>`; an OAuth access token is `Bearer <token>` (PagerDuty developer docs:
        # "Authentication" and "OAuth Functionality"); the other scheme is refused with a 401
        headers={"Authorization": f"Bearer {token}" if getattr(config, "auth", "api_key") == "oauth"
                 else f"Token token={token}", "Accept": ACCEPT},
        auth_hint=env_name(name, "token"), secrets=[token],
    )
    return PagerDutyConnector(name, config, client)
