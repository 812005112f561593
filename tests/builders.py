"""Test fixture builder: load records into a store without any connector or HTTP."""

from __future__ import annotations

import itertools
from datetime import datetime, timezone
from typing import Any, Iterable

from okrsync.domain.records import Deployment, Incident, Issue, Record, Sprint
from okrsync.engine.store import Store

_ids = itertools.count(1)


def t(text: str) -> datetime:
    """'2026-10-05 12:00' or '2026-10-05T12:00:00+02:00' -> aware UTC datetime."""
    value = datetime.fromisoformat(text.replace(" ", "T") if "T" not in text and " " in text else text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def _time(v: Any) -> datetime | None:
    return t(v) if isinstance(v, str) else v


def issue(key: str = None, *, source: str = "jira", id: str | None = None, created: str = "2026-10-01 00:00",
          status_category: str = "todo", resolved: str | None = None, labels: Iterable[str] = (),
          sprints: Iterable[Sprint] = (), **kw: Any) -> Issue:
    n = next(_ids)
    for k in ("updated", "merged_at"):
        if k in kw:
            kw[k] = _time(kw[k])
    return Issue(source=source, id=id or str(10000 + n), key=key or f"APP-{n}", title=kw.pop("title", f"issue {n}"),
                 status_category=status_category, created=t(created), resolved=_time(resolved),
                 labels=tuple(labels), sprints=tuple(sprints), **kw)


def pr(number: int, *, source: str = "github", repo: str = "acme/web", created: str = "2026-10-01 00:00",
       merged_at: str | None = None, closed: str | None = None, merge_sha: str | None = None, **kw: Any) -> Issue:
    merged = _time(merged_at)
    return Issue(source=source, id=kw.pop("id", f"{repo}#{number}"), key=f"{repo}#{number}", title=f"PR {number}",
                 status_category="done" if merged else ("todo" if closed else "in_progress"), created=t(created),
                 resolved=merged or _time(closed), project=repo, is_pull_request=True, merged_at=merged,
                 merge_sha=merge_sha, **kw)


def deployment(*, source: str = "github", id: str | None = None, environment: str = "production",
               status: str = "success", created: str = "2026-10-01 00:00", finished: str | None = None,
               repo: str = "acme/web", commits: Iterable[str] = (), **kw: Any) -> Deployment:
    n = next(_ids)
    fin = _time(finished) if finished else (t(created) if status != "in_progress" else None)
    return Deployment(source=source, id=id or str(n), environment=environment, status=status, created=t(created),
                      finished=fin, repo=repo, commits=tuple(commits), **kw)


def incident(*, source: str = "servicenow", id: str | None = None, opened: str = "2026-10-01 00:00",
             resolved: str | None = None, acknowledged: str | None = None, closed: str | None = None,
             status: str | None = None, priority: str | None = "3", **kw: Any) -> Incident:
    n = next(_ids)
    res = _time(resolved)
    return Incident(source=source, id=id or f"inc{n}", number=kw.pop("number", f"INC{n:07d}"),
                    title=kw.pop("title", f"incident {n}"), status=status or ("resolved" if res else "open"),
                    opened=t(opened), resolved=res, acknowledged=_time(acknowledged), closed=_time(closed),
                    priority=priority, **kw)


def load(store: Store, records: Iterable[Record], *, synced_at: str = "2026-11-15 00:00", stream: str = "items",
         run_id: int = 0) -> None:
    """Write records as one page per source and mark each source synced (cursor set)."""
    by_source: dict[str, list[Record]] = {}
    for r in records:
        by_source.setdefault(r.source, []).append(r)
    for source, recs in by_source.items():
        store.write_page(source, stream, recs, run_id=run_id,
                         state={"cursor": t(synced_at).strftime("%Y-%m-%dT%H:%M:%S.000Z"), "pending": None})


def mark_synced(store: Store, source: str, synced_at: str = "2026-11-15 00:00") -> None:
    store.save_state(source, "items", {"cursor": t(synced_at).strftime("%Y-%m-%dT%H:%M:%S.000Z"), "pending": None})
