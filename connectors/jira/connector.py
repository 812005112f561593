"""Jira connector: the incremental "issues" stream and the "jql_members" stream of JQL selectors."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any, Iterator, TypedDict

from okrsync.config.settings import SourceCredentials
from okrsync.connectors.base import (
    ClientConnector,
    ConnectorOptions,
    Membership,
    Page,
    QueryError,
    ReadContext,
    Skipped,
    SourceError,
)
from okrsync.domain.records import RecordError

from .bulk import read_issues
from .client import EPOCH, JiraClient, JqlRejected, StaleDiscovery, epoch_ms, strip_order_by
from .normalize import issue_key, normalize_issue

__all__ = ["EPOCH", "epoch_ms", "strip_order_by", "build_jql", "volatile", "build", "JiraConnector"]

_PLAIN_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_RESERVED = {"AND", "OR", "NOT", "IN", "IS", "WAS", "EMPTY", "NULL", "ORDER", "BY", "ASC", "DESC", "CHANGED"}
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_CALL = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*)\s*\(")
_NOT_FUNCTIONS = {"in", "and", "or", "not", "was", "is", "by", "on", "before", "after", "during", "from", "to",
                  "changed", "empty", "null"}
_RELATIVE_DATE = re.compile(r"(?<![\w.])[-+]?\d+\s*[wdhmy]\b", re.I)


def _project(key: str) -> str:
    if _PLAIN_KEY.fullmatch(key) and key.upper() not in _RESERVED:
        return key
    return '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def build_jql(projects: list[str], jql: str | None, since: datetime | None, created_from_ms: int | None) -> str:
    """project in (APP, OPS) [AND (<jql>)] [AND updated >= <ms>] [AND created >= <ms>] ORDER BY created ASC"""
    parts = []
    if projects:
        parts.append(f"project in ({', '.join(_project(p) for p in projects)})")
    extra = strip_order_by(jql)
    if extra:
        parts.append(f"({extra})")
    if since is not None:
        parts.append(f"updated >= {epoch_ms(since)}")
    if created_from_ms is not None:
        parts.append(f"created >= {created_from_ms}")
    return " AND ".join(parts) + " ORDER BY created ASC"


def volatile(jql: str) -> bool:
    """Does the JQL's result move with time alone (relative dates, functions such as now(), openSprints())?"""
    if _RELATIVE_DATE.search(jql):
        return True
    bare = _QUOTED.sub('""', jql)
    return any(m.group(1).lower() not in _NOT_FUNCTIONS for m in _CALL.finditer(bare))


class IssuesCheckpoint(TypedDict):
    """The issues stream's resume point: the creation time (epoch ms) of the last issue written."""

    created_ms: int


def _checkpoint_ms(checkpoint: dict[str, Any] | None) -> int | None:
    value = (checkpoint or {}).get("created_ms")
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


class IssueStream:
    name = "issues"
    default_from = "all"

    def __init__(self, connector: "JiraConnector"):
        self.conn = connector

    def read(self, ctx: ReadContext) -> Iterator[Page]:
        """Issues updated since ctx.since. The deployment type and field map discovered by a first (or --full)
        run are kept in the stream state, so an incremental run is only the search; they are discovered again
        when the settings change, when a remembered custom field is no longer returned, or when the saved
        deployment type is contradicted by the search endpoint."""
        client = self.conn.client
        saved = (ctx.state or {}).get("discovery")
        cached = not (ctx.first_run or ctx.full) and saved is not None and client.use_discovery(saved)
        try:
            yield from self._read(ctx, cached, saved)
        except StaleDiscovery:
            client.forget_discovery()
            yield from self._read(ctx, False, None)

    def _read(self, ctx: ReadContext, cached: bool, saved: Any) -> Iterator[Page]:
        conn, client = self.conn, self.conn.client
        conn.issues_changed = None
        resume = _checkpoint_ms(ctx.checkpoint)
        jql = build_jql(conn.config.projects, conn.config.jql, ctx.since, resume)
        fmap = client.field_map()
        fields = client.issue_fields()
        discovery = client.discovery()
        state = None if cached and discovery == saved else {"discovery": discovery}
        # A first, full or resumed read may have changed what selectors match without us seeing it here.
        changed = ctx.since is None or ctx.full or resume is not None
        checkpoint: IssuesCheckpoint | None = {"created_ms": resume} if resume is not None else None
        try:
            for issues in read_issues(client, jql, fields, page_size=conn.config.page_size):
                if not issues:
                    continue
                if cached and _fields_gone(issues, fmap) and not _recent(client.verified, ctx.run_started):
                    # absent from every issue: deleted, or only null (a search may leave nulls out). One GET
                    # /field tells; a site that leaves them out is checked at most once a day, never re-read.
                    if not client.fields_listed(fmap.ids()):
                        raise StaleDiscovery(f"{conn.name}: a remembered custom field is no longer returned")
                    client.verified = ctx.run_started.isoformat()
                    state = {"discovery": client.discovery()}
                cached = False  # checked once: the rest of the read trusts it
                changed = True
                records, skipped = [], []
                for raw in issues:
                    try:
                        records.append(normalize_issue(raw, source=conn.name, site=client.site, fields=fmap))
                    except RecordError as exc:
                        skipped.append(Skipped(issue_key(raw), str(exc)))
                if records:
                    checkpoint = {"created_ms": epoch_ms(records[-1].created)}
                yield Page(records=records, skipped=skipped, checkpoint=checkpoint, state=state)
                state = None
        except JqlRejected as exc:
            if exc.missing_projects:
                names = ", ".join(dict.fromkeys(exc.missing_projects))
                raise SourceError(f"{conn.name}: project {names} does not exist in Jira "
                                  f"(or the token cannot see it)") from None
            raise QueryError(f"{conn.name}: the issue query was rejected by Jira: {exc.detail} (JQL: {jql})") from None
        conn.issues_changed = changed  # (a read that found nothing saves no discovery: the next one discovers)


VERIFY_EVERY = timedelta(hours=24)


def _recent(verified: str | None, now: datetime) -> bool:
    try:
        return verified is not None and now - datetime.fromisoformat(verified) < VERIFY_EVERY
    except (TypeError, ValueError):
        return False


def _fields_gone(issues: list[Any], fmap: Any) -> bool:
    """A remembered custom field id that none of the page's issues carries: Jira leaves out unknown fields, and
    may leave out null ones (undocumented for /search/jql), so the caller checks GET /field before discovering."""
    wanted = set(fmap.ids())
    for raw in issues:
        f = raw.get("fields") if isinstance(raw, dict) else None
        if isinstance(f, dict):
            wanted -= f.keys()
            if not wanted:
                return False
    return bool(wanted)


class MembershipStream:
    """Each JQL selector's complete member set (id-only searches), skipped when nothing can have changed."""

    name = "jql_members"
    default_from = "all"

    def __init__(self, connector: "JiraConnector", selectors: dict[str, tuple[str, list[str]]]):
        self.conn = connector
        self.selectors = selectors

    def read(self, ctx: ReadContext) -> Iterator[Page]:
        conn = self.conn
        before = dict((ctx.state or {}).get("evaluated") or {})
        evaluated = {k: v for k, v in before.items() if k in self.selectors}
        quiet = conn.issues_changed is False and not ctx.full
        errors: list[str] = []
        emitted = False
        for key, (jql, kr_ids) in sorted(self.selectors.items()):
            known = evaluated.get(key)
            if quiet and known and known.get("jql") == jql and not volatile(jql):
                continue
            try:
                members = conn.client.search_ids(jql)
            except JqlRejected as exc:
                errors.append(f"JQL of {', '.join(kr_ids)} rejected by Jira: {exc.detail}")
                evaluated.pop(key, None)
                continue
            evaluated[key] = {"jql": jql}
            emitted = True
            yield Page(memberships=[Membership(key, jql, members)], state={"evaluated": dict(evaluated)})
        if not emitted and evaluated != before:
            yield Page(state={"evaluated": dict(evaluated)})
        if errors:
            raise QueryError(f"{conn.name}: " + "; ".join(errors))


class JiraConnector(ClientConnector):
    def __init__(self, name: str, config: Any, client: JiraClient, selectors: dict[str, tuple[str, list[str]]]):
        super().__init__(name, config, client, [IssueStream(self)])
        # Set by the issues stream when its read completes: did it see any issue (or could it have missed one)?
        self.issues_changed: bool | None = None
        if selectors:
            self._streams.append(MembershipStream(self, selectors))


def build(name: str, config: Any, credentials: SourceCredentials, options: ConnectorOptions) -> JiraConnector:
    if not config.projects and not strip_order_by(config.jql):
        raise SourceError(f"{name}: set projects: (e.g. [APP, OPS]) or jql: for this Jira source; "
                          f"Jira Cloud rejects a search without a restriction")
    client = JiraClient(name, config, credentials, options)
    return JiraConnector(name, config, client, dict(options.jql_selectors))
