"""Jira write-back: one okrsync comment kept in place, the okrsync.status issue property, a progress field."""

from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Any, Iterator
from urllib.parse import quote

from okrsync.config.settings import SourceCredentials
from okrsync.connectors.base import AuthError, ConnectorOptions, NotFoundError, SourceError, WriteResult
from okrsync.connectors.http import Forbidden, HTTPStatusError
from okrsync.connectors.paging import Fetched, OffsetPaginator, Request, paginate
from okrsync.domain.status import KRStatus
from okrsync.domain.text import PERCENT_UNITS, fmt_number, fmt_pct

from .client import JiraClient, jira_messages

PROPERTY = "okrsync.status"
# Jira Service Management: a comment added through the platform API is public, mailed to the customer, unless
# it carries this property (Atlassian: "Jira Service Management: add internal comments through the REST API").
INTERNAL = [{"key": "sd.public.comment", "value": {"internal": True}}]
COMMENT_PAGE = 5000
_FIELD_ID = re.compile(r"customfield_\d+")
_WIKI_SPECIAL = re.compile(r"([\\{}\[\]*_|!])")
_ICONS = {"achieved": "(/)", "on_track": "(/)", "at_risk": "(!)", "off_track": "(x)"}


def marker(kr_id: str) -> str:
    return f"okrsync:{kr_id}"


def has_marker(body: Any, kr_id: str) -> bool:
    """Our marker for this KR (not KR10's for KR1); tolerant of the backslashes a wiki round trip may add."""
    if not isinstance(body, str):
        return False
    return re.search(re.escape(marker(kr_id)) + r"(?![A-Za-z0-9_.-])", body.replace("\\", "")) is not None


def _esc(text: str) -> str:
    return _WIKI_SPECIAL.sub(r"\\\1", text)


def _esc_marker(kr_id: str) -> str:
    """The marker as wiki text: '_' and '-' escaped so a KR id never turns into italics or strike-through."""
    return re.sub(r"([_-])", r"\\\1", marker(kr_id))


def _value_target(status: KRStatus) -> str:
    """'0.58 / 0.9 %' was unreadable: the one formatter shows fractions as percentages (58.0% / 90.0%), with
    the digits the target needs; no value is said plainly."""
    unit = None if status.unit in PERCENT_UNITS else status.unit
    pct = "%" if status.unit in PERCENT_UNITS else None
    value = "no data yet" if status.value is None else fmt_number(status.value, pct, status.target)
    text = f"{value} / {fmt_number(status.target, pct)}" + (f" {unit}" if unit else "")
    if status.baseline is not None:
        text += f" (baseline {fmt_number(status.baseline, pct, status.target)})"
    return text


def progress_percent(status: KRStatus) -> float | None:
    return None if status.progress is None else round(status.progress * 100, 1)


def _pct(fraction: float | None) -> str:
    return fmt_pct(fraction, decimals=1, none="n/a")


def render_comment(status: KRStatus) -> str:
    """The comment body in Jira wiki markup (API v2); the last line carries the marker."""
    value = _esc(_value_target(status))
    lines = [
        f"*{_esc(status.kr_id)} — {_esc(status.title)}*",
        f"Objective: {_esc(status.objective_id)} — {_esc(status.objective_title)}",
        f"Status: {_ICONS.get(status.status, '(?)')} *{_esc(status.label)}*",
        f"Value / target: {value}",
        f"Progress: {_pct(status.progress)} (expected pace {_pct(status.expected)})",
        f"Items counted: {status.items}",
    ]
    if status.period:
        window = ""
        if status.window_start and status.window_end:
            window = f" (window {status.window_start[:10]} to {status.window_end[:10]})"
        lines.append(f"Period: {_esc(status.period)}{window}")
    if status.checkin:
        lines.append(f"Check-in: {_esc(status.checkin)}")
    if status.overridden:
        lines.append("_The value is a manual override; the computed value is kept in okrsync's history._")
    lines.append(f"{{color:#97a0af}}{_esc_marker(status.kr_id)} · kept up to date by okrsync; "
                 f"edits to this comment are overwritten{{color}}")
    return "\n".join(lines)


class JiraWriter:
    def __init__(self, name: str, client: JiraClient):
        self.name = name
        self.client = client
        self._field_ids: dict[str, str] = {}
        self._desks: dict[str, bool] = {}  # project key -> is a service-desk project

    # -- dry run -------------------------------------------------------------------------------
    def plan(self, target: Any, status: KRStatus) -> list[str]:
        key = target.issue
        lines = [
            f"{key}: edit the okrsync comment ({marker(status.kr_id)}) in place, or post it if there is none: "
            f"{status.label}, value {_value_target(status)}, progress {_pct(status.progress)}",
            f"{key}: set issue property {PROPERTY} = {{status: {status.status}, value: {fmt_number(status.value)}, "
            f"progress: {status.progress}}}",
        ]
        if target.field:
            pct = progress_percent(status)
            lines.append(f"{key}: set field {target.field} = {pct}" if pct is not None
                         else f"{key}: leave field {target.field} unchanged (no progress yet)")
        return lines

    # -- write ---------------------------------------------------------------------------------
    def write(self, target: Any, status: KRStatus, remote_ref: str | None) -> WriteResult:
        key = target.issue
        body = render_comment(status)
        actions: list[tuple[str, str]] = []
        comment_id = remote_ref if remote_ref and self._edit(key, remote_ref, body) else None
        if comment_id is None:
            found = self._find_ours(key, status.kr_id)
            if found is not None and self._edit(key, found, body):
                comment_id = found
        if comment_id is not None:
            actions.append(("comment_edited", f"{key} comment {comment_id}"))
        else:
            comment_id = self._post(key, body)
            actions.append(("comment_created", f"{key} comment {comment_id}"))
        with self._permission(f"set the {PROPERTY} property of {key}"):
            self.client.json("PUT", f"{self._issue(key)}/properties/{PROPERTY}", json=status.machine(),
                             expect=(200, 201, 204))
        actions.append(("property_set", f"{key} {PROPERTY} = {status.status}"))
        pct = progress_percent(status)
        if target.field and pct is not None:
            fid = self._field_id(target.field)
            # notifyUsers=false is left out: Jira refuses it (403) unless the bot is a (project) admin.
            with self._permission(f"edit {key}"):
                self.client.json("PUT", self._issue(key), json={"fields": {fid: pct}}, expect=(204, 200))
            actions.append(("field_set", f"{key} {target.field} = {pct}"))
        return WriteResult(remote_ref=str(comment_id), actions=actions)

    def _issue(self, key: str) -> str:
        return f"rest/api/2/issue/{quote(key, safe='')}"

    @contextmanager
    def _permission(self, what: str) -> Iterator[None]:
        """A permission error in one line, at once: a 403 (never retried: Jira Data Center's retry-after: 0 on
        every response makes no 403 a rate limit), or the 400 Jira answers a comment it may not add."""
        try:
            yield
        except Forbidden as exc:
            raise SourceError(f"{self.name}: no permission to {what} (HTTP 403: {exc.detail or 'Forbidden'})") from None
        except HTTPStatusError as exc:
            detail = jira_messages(exc.body)
            if exc.status == 400 and "permission" in detail.lower():
                raise SourceError(f"{self.name}: no permission to {what} (HTTP 400: {detail})") from None
            raise

    def _service_desk(self, key: str) -> bool:
        """Is the issue's project a Jira Service Management one (projectTypeKey "service_desk")? Asked once per
        project; a project we cannot read is taken as one (an internal comment is harmless elsewhere)."""
        project = key.rsplit("-", 1)[0].upper()
        if project not in self._desks:
            try:
                body = self.client.json("GET", f"rest/api/2/project/{quote(project, safe='')}")
                self._desks[project] = not isinstance(body, dict) or body.get("projectTypeKey") == "service_desk"
            except (NotFoundError, AuthError):
                self._desks[project] = True
        return self._desks[project]

    def _payload(self, key: str, body: str) -> dict[str, Any]:
        return {"body": body, "properties": INTERNAL} if self._service_desk(key) else {"body": body}

    def _edit(self, key: str, comment_id: str, body: str) -> bool:
        """PUT the comment (idempotent, retried); False when it is gone."""
        payload = self._payload(key, body)
        try:
            with self._permission(f"comment on {key}"):
                self.client.json("PUT", f"{self._issue(key)}/comment/{quote(str(comment_id), safe='')}",
                                 json=payload, expect=(200, 204))
        except NotFoundError:
            return False
        return True

    def _post(self, key: str, body: str) -> str:
        # POST is not retried on 5xx/timeouts (HttpClient): a lost answer is found by its marker next time.
        payload = self._payload(key, body)
        with self._permission(f"comment on {key}"):
            created = self.client.json("POST", f"{self._issue(key)}/comment", json=payload, expect=(201, 200))
        if not isinstance(created, dict) or not created.get("id"):
            raise SourceError(f"{self.name}: Jira did not return the id of the comment posted on {key}")
        return str(created["id"])

    def _comments(self, key: str) -> list[dict[str, Any]]:
        path = f"{self._issue(key)}/comment"
        pager = OffsetPaginator(lambda start, size: Request(path, {"startAt": start, "maxResults": size,
                                                                   "orderBy": "created"}),
                                COMMENT_PAGE, by_items=True, total="total", need_total=True)
        out: list[dict[str, Any]] = []
        try:
            for page in paginate(self.client.http, pager, fetcher=self._comment_page):
                out += page.items
        except NotFoundError:
            raise NotFoundError(f"{self.name}: issue {key} not found (or not visible to the token)") from None
        return out

    def _comment_page(self, request: Request) -> Fetched:
        body = self.client.json("GET", request.path, params=request.params)
        comments = [c for c in (body or {}).get("comments") or [] if isinstance(c, dict)]
        return Fetched(request, body, None, comments)

    def _find_ours(self, key: str, kr_id: str) -> str | None:
        """The oldest comment carrying this KR's marker, preferring ones we wrote (others' we cannot edit)."""
        marked = [c for c in self._comments(key) if has_marker(c.get("body"), kr_id) and c.get("id")]
        if not marked:
            return None
        me = self.client.myself()
        mine = {str(me[k]) for k in ("accountId", "key", "name") if me.get(k)}
        for c in marked:
            author: dict[str, Any] = (c.get("author")  # type: ignore[assignment]  # isinstance checked another get()
                                      if isinstance(c.get("author"), dict) else {})
            theirs = {str(author[k]) for k in ("accountId", "key", "name") if author.get(k)}
            if not theirs or not mine or theirs & mine:
                return str(c["id"])
        return None

    def _field_id(self, field: str) -> str:
        if _FIELD_ID.fullmatch(field):
            return field
        if field not in self._field_ids:
            fields = self.client.fields()
            if any(f.get("id") == field for f in fields):
                self._field_ids[field] = field
            else:
                named = [f for f in fields if str(f.get("name", "")).lower() == field.lower() and f.get("id")]
                numeric = [f for f in named if (f.get("schema") or {}).get("type") == "number"]
                pick = numeric or named
                if not pick:
                    raise SourceError(f"{self.name}: no Jira field named {field!r} "
                                      f"(set field: to a field id such as customfield_10050)")
                if len(pick) > 1:
                    ids = ", ".join(str(f["id"]) for f in pick)
                    raise SourceError(f"{self.name}: several Jira fields are named {field!r} ({ids}); "
                                      f"set field: to one of these ids")
                self._field_ids[field] = str(pick[0]["id"])
        return self._field_ids[field]

    @property
    def requests_made(self) -> int:
        return self.client.requests_made

    def close(self) -> None:
        self.client.close()


def build_writer(name: str | None, config: Any, credentials: SourceCredentials | None,
                 options: ConnectorOptions) -> JiraWriter:
    if config is None or name is None:
        raise SourceError("jira write-back needs a jira source in sources:")
    client = JiraClient(name, config, credentials or SourceCredentials(), options)
    return JiraWriter(name, client)
