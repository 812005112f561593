"""ServiceNow Table API incidents: keyset paging by (sys_updated_on, sys_id), basic or bearer auth."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterator

from okrsync.config.settings import SourceCredentials, env_name
from okrsync.connectors.base import (
    ClientConnector,
    AuthError, ConnectorOptions, Page, QueryError, ReadContext, Skipped, SourceError,
)
from okrsync.connectors.http import HttpClient, HTTPStatusError, http_options
from okrsync.engine.records import RecordError

from .normalize import format_time, normalize_incident, value

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
    """The source's query: is ANDed into every ^NQ group, so it may not hold ^NQ or ORDERBY itself."""
    if query is None or not query.strip():
        return None
    q = query.strip()
    q = (q[:-3] if q.endswith("^EQ") else q).strip("^")  # the list view's "Copy query" may end with ^EQ
    upper = q.upper()
    if "^NQ" in upper or upper.startswith("NQ") or "ORDERBY" in upper:
        raise QueryError("query: must be a plain encoded query (conditions joined by ^ and ^OR); "
                         "^NQ and ORDERBY are added by okrsync")
    return q


def keyset_query(since: datetime | None, after: tuple[str, str] | None, user_query: str | None = None) -> str:
    """The encoded query of one page.

    First page:  sys_updated_on>=SINCE[^Q]^ORDERBYsys_updated_on^ORDERBYsys_id
    Next pages:  sys_updated_on>L[^Q]^NQsys_updated_on=L^sys_id>ID[^Q]^ORDERBY...
    (^NQ ORs whole groups, so the user's query Q is repeated in each group.)
    """
    extra = [user_query] if user_query else []
    if after is None:
        lower = [f"sys_updated_on>={format_time(since)}"] if since is not None else []
        groups = ["^".join(lower + extra)]
    else:
        last, sys_id = after
        groups = ["^".join([f"sys_updated_on>{last}", *extra]),
                  "^".join([f"sys_updated_on={last}", f"sys_id>{sys_id}", *extra])]
    cond = "^NQ".join(g for g in groups if g)
    return f"{cond}^{ORDER}" if cond else ORDER


class IncidentStream:
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
            "sysparm_no_count": "true",
        }

    def fetch(self, query: str) -> list[dict[str, Any]]:
        try:
            body = self.client.get(f"api/now/table/{self.table}", params=self.params(query))
        except HTTPStatusError as exc:
            if exc.status == 400:
                raise QueryError(f"{exc} (sysparm_query {query!r})") from None
            raise
        rows = body.get("result") if isinstance(body, dict) else None
        if not isinstance(rows, list):
            raise SourceError(f"{self.source}: unexpected response from api/now/table/{self.table} (no result list)")
        return rows

    def read(self, ctx: ReadContext) -> Iterator[Page]:
        after: tuple[str, str] | None = None
        cp = ctx.checkpoint or {}
        if cp.get("updated") and cp.get("sys_id"):
            after = (str(cp["updated"]), str(cp["sys_id"]))
        while True:
            rows = self.fetch(keyset_query(ctx.since, after, self.user_query))
            records, skipped = [], []
            for row in rows:
                if not isinstance(row, dict):
                    skipped.append(Skipped("?", "row is not an object"))
                    continue
                try:
                    records.append(normalize_incident(row, source=self.source, base_url=self.base_url,
                                                      table=self.table))
                except RecordError as exc:
                    skipped.append(Skipped(value(row.get("number")) or value(row.get("sys_id")) or "?", str(exc)))
            if rows:
                after = self._advance(after, rows[-1])
            yield Page(records=records, skipped=skipped,
                       checkpoint={"updated": after[0], "sys_id": after[1]} if after else None)
            if len(rows) < self.page_size:
                return

    def _advance(self, after: tuple[str, str] | None, last: Any) -> tuple[str, str]:
        """The keyset position after a page; refuse to loop when the server did not honour the order."""
        if not isinstance(last, dict):
            raise SourceError(f"{self.source}: the last row of a page is not an object; cannot page on")
        pos = (value(last.get("sys_updated_on")).strip(), value(last.get("sys_id")).strip())
        if not pos[0] or not pos[1]:
            raise SourceError(f"{self.source}: rows carry no sys_updated_on/sys_id; cannot page on")
        if after is not None and pos <= after:
            raise SourceError(f"{self.source}: the instance did not honour the keyset query "
                              f"(page ended at {pos}, not after {after}); stopping to avoid a loop")
        return pos


class ServiceNowConnector(ClientConnector):
    def __init__(self, name: str, config: Any, client: HttpClient):
        super().__init__(name, config, client, [IncidentStream(name, config, client)])


def build(name: str, config: Any, credentials: SourceCredentials, options: ConnectorOptions) -> ServiceNowConnector:
    token = credentials.token.get_secret_value() if credentials.token else ""
    user = credentials.user or config.user
    password = credentials.password.get_secret_value() if credentials.password else ""
    headers = {"Accept": "application/json"}
    auth = None
    if token:
        headers["Authorization"] = f"Bearer {token}"
        hint = env_name(name, "token")
    elif user and password:
        auth = (user, password)
        hint = f"{env_name(name, 'user')} and {env_name(name, 'password')}"
    else:
        raise AuthError(f"{name}: no credentials: set {env_name(name, 'token')}, or {env_name(name, 'user')} "
                        f"and {env_name(name, 'password')}")
    if not config.url:
        raise SourceError(f"{name}: a servicenow source needs url: https://<instance>.service-now.com")
    http = http_options(config, options)
    client = HttpClient(
        name, config.url, options=http, headers=headers, auth=auth, auth_hint=hint,
        secrets=[*options.secrets, token, password], sleep=options.sleep, clock=options.clock, on_wait=options.on_wait,
    )
    try:
        return ServiceNowConnector(name, config, client)
    except QueryError:
        client.close()
        raise
