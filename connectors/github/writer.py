"""GitHub issue write-back: one marked section of the issue body per KR, plus one `okr: <status>` label."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from okrsync.config.settings import SourceCredentials
from okrsync.connectors.base import ConnectorOptions, NotFoundError, SourceError, WriteResult
from okrsync.domain.status import KRStatus
from okrsync.domain.text import STATUS_LABELS, fmt_number, fmt_pct

from .client import GitHubClient
from .connector import make_client

LABEL_PREFIX = "okr: "
OUR_LABELS = {f"{LABEL_PREFIX}{v}" for v in STATUS_LABELS.values()}


def status_label(status: KRStatus) -> str:
    return f"{LABEL_PREFIX}{status.label}"


def markers(kr_id: str) -> tuple[str, str]:
    return f"<!-- okrsync:{kr_id} -->", f"<!-- /okrsync:{kr_id} -->"


def _value(status: KRStatus) -> str:
    """The value, as people read it: fractions as percentages, as many digits as the target needs."""
    return "no value" if status.value is None else fmt_number(status.value, status.unit, status.target)


def _pct(x: float | None) -> str:
    return fmt_pct(x, none="–")


def render_section(status: KRStatus) -> str:
    """The Markdown section for one KR. Only fields in the status fingerprint: an unchanged status renders
    the same text (computed_at and the window end are left out on purpose)."""
    start, end = markers(status.kr_id)
    figures = [f"target {fmt_number(status.target, status.unit)}"]
    if status.baseline is not None:  # no baseline is shown when none was given
        figures.insert(0, f"baseline {fmt_number(status.baseline, status.unit, status.target)}")
    lines = [
        start,
        f"### {status.kr_id}: {status.title}",
        "",
        f"- **Status:** {status.label}",
        f"- **Value:** {_value(status)} ({', '.join(figures)})",
        f"- **Progress:** {_pct(status.progress)} (expected pace {_pct(status.expected)})",
        f"- **Items counted:** {status.items}",
    ]
    if status.period:
        lines.append(f"- **Period:** {status.period}")
    if status.checkin:
        lines.append(f"- **Check-in:** {status.checkin}")
    if status.overridden:
        lines.append("- **Note:** the value is overridden in okrsync.yaml (the computed value is kept in history)")
    lines += ["", "<sub>Maintained by okrsync: edits inside this section are replaced on the next sync.</sub>", end]
    return "\n".join(lines)


def apply_section(body: str | None, kr_id: str, section: str) -> str:
    """The body with exactly one section for kr_id: the first one replaced in place, any duplicates and
    stray markers removed (a crash or a hand edit may leave them), or the section appended."""
    body = body or ""
    start, end = markers(kr_id)
    whole = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    stray = re.compile(re.escape(start) + "|" + re.escape(end))
    found = list(whole.finditer(body))
    if not found:
        rest = stray.sub("", body).rstrip()
        return f"{rest}\n\n{section}\n" if rest else f"{section}\n"
    out, pos = [], 0
    for i, m in enumerate(found):
        before = stray.sub("", body[pos:m.start()])
        if i > 0:
            before = before.rstrip("\r\n")  # the duplicate's line goes with it
        out.append(before)
        if i == 0:
            out.append(section)
        pos = m.end()
    out.append(stray.sub("", body[pos:]))
    return "".join(out)


def label_changes(current: list[str], desired: str) -> tuple[list[str], list[str]]:
    """(labels to add, labels to remove): only our own status labels are ever removed."""
    add = [] if desired in current else [desired]
    remove = [name for name in current if name != desired and name.lower() in OUR_LABELS]
    return add, remove


def parse_target(issue: str) -> tuple[str, int]:
    repo, _, number = issue.rpartition("#")
    return repo, int(number)


class GitHubWriter:
    """GET the issue, compute body and labels, send only what differs (PATCH body, POST/DELETE labels)."""

    def __init__(self, client: GitHubClient):
        self.client = client

    def plan(self, target: Any, status: KRStatus) -> list[str]:
        value = _value(status)
        return [
            f"{target.issue}: update the okrsync:{status.kr_id} section of the issue body "
            f"(status {status.label}, value {value}, progress {_pct(status.progress)})",
            f"{target.issue}: set label '{status_label(status)}' (replacing any other okrsync status label)",
        ]

    def write(self, target: Any, status: KRStatus, remote_ref: str | None) -> WriteResult:
        repo, number = parse_target(target.issue)
        path = f"repos/{repo}/issues/{number}"
        what = f"issue {target.issue}"
        issue = self.client.get(path, what=what)
        if not isinstance(issue, dict):
            raise SourceError(f"{self.client.source}: unexpected answer for {what}")
        body = issue.get("body") or ""
        new_body = apply_section(body, status.kr_id, render_section(status))
        current = [lb["name"] if isinstance(lb, dict) else str(lb) for lb in issue.get("labels") or []]
        desired = status_label(status)
        add, remove = label_changes(current, desired)
        actions: list[tuple[str, str]] = []
        if new_body != body:
            # setting the same body twice is harmless, so this PATCH may be retried
            self.client.call("PATCH", path, what=what, json={"body": new_body}, retry_unsafe=True)
            actions.append(("body_updated", target.issue))
        if add:
            # label first, then remove the old one: a crash in between leaves two labels, repaired next run
            self.client.call("POST", f"{path}/labels", what=what, json={"labels": add})
            actions.append(("label_set", desired))
        for name in remove:
            try:
                self.client.call("DELETE", f"{path}/labels/{quote(name, safe='')}", what=f"label {name!r} on {what}")
            except NotFoundError:
                pass  # already gone
            actions.append(("label_removed", name))
        return WriteResult(remote_ref=issue.get("html_url") or target.issue,
                           actions=actions or [("unchanged", target.issue)])

    def close(self) -> None:
        self.client.close()


def build_writer(name: str | None, config: Any, credentials: SourceCredentials | None,
                 options: ConnectorOptions) -> GitHubWriter:
    """Entry point used by okrsync.connectors.registry."""
    return GitHubWriter(make_client(name or "github", config, credentials, options))
