"""Write-back dispatch: only on change, dry-run plans, failures isolated, audit log, no secret in target ids."""

from datetime import datetime, timezone

import pytest

from okrsync.config.keyresults import WebhookTarget
from okrsync.config.settings import Settings
from okrsync.config.workspace import load_workspace_text
from okrsync.connectors.base import SourceError, WriteResult
from okrsync.engine.compute import compute
from okrsync.engine.writeback import WritebackDispatcher, target_id
from tests.builders import issue, load

WS = """\
period: 2026-Q4
sources:
  jira: {type: jira, url: https://acme.atlassian.net, projects: [APP]}
  github: {type: github, repos: [acme/web]}
objectives:
  - id: O1
    title: t
    key_results:
      - id: KR1
        title: epic
        metric: done_ratio
        select: {source: jira, parent: APP-100}
        target: 1
        writeback: [{to: jira, issue: OKR-1}, {to: github, issue: acme/okrs#3}]
"""
NOW = datetime(2026, 11, 15, tzinfo=timezone.utc)


class FakeWriter:
    def __init__(self, fail=False):
        self.writes = []
        self.fail = fail

    def plan(self, target, status):
        return [f"would write {status.status} {status.value}"]

    def write(self, target, status, remote_ref):
        if self.fail:
            raise SourceError("github: HTTP 502 from https://api.github.com/repos/acme/okrs/issues/3")
        self.writes.append((target.to, status.value, remote_ref))
        return WriteResult(remote_ref=f"ref-{len(self.writes)}", actions=[("comment_created", "x")])


@pytest.fixture
def setup(store):
    ws = load_workspace_text(WS).workspace
    load(store, [issue(parent="APP-100", status_category="done"), issue(parent="APP-100")])
    writers = {"jira": FakeWriter(), "github": FakeWriter()}
    factory = lambda kind, name, cfg, creds, opts: writers[kind]  # noqa: E731
    return ws, writers, factory


def dispatch(ws, store, factory, comp, **kw):
    return WritebackDispatcher(ws, store, Settings(), run_id=1, writer_factory=factory, **kw).run(comp, kw.pop("failed", None))


def test_writes_once_then_nothing_while_unchanged(setup, store):
    ws, writers, factory = setup
    comp = compute(ws, store, NOW)
    s = WritebackDispatcher(ws, store, Settings(), run_id=1, writer_factory=factory).run(comp)
    assert (s.written, s.unchanged) == (2, 0)
    assert writers["jira"].writes == [("jira", 0.5, None)]
    s = WritebackDispatcher(ws, store, Settings(), run_id=2, writer_factory=factory).run(compute(ws, store, NOW))
    assert (s.written, s.unchanged) == (0, 2)
    load(store, [issue(parent="APP-100", status_category="done")])  # the value changes
    s = WritebackDispatcher(ws, store, Settings(), run_id=3, writer_factory=factory).run(compute(ws, store, NOW))
    assert s.written == 2
    assert writers["jira"].writes[-1] == ("jira", pytest.approx(2 / 3), "ref-1")  # the remote ref is passed back
    log = store.writeback_log("KR1")
    assert [(r["target"], r["action"], r["status"]) for r in log][:2] == [
        ("jira:OKR-1", "comment_created", "ok"), ("github:acme/okrs#3", "comment_created", "ok")]


def test_dry_run_plans_and_sends_nothing(setup, store):
    ws, writers, factory = setup
    s = WritebackDispatcher(ws, store, Settings(), run_id=1, dry_run=True, writer_factory=factory).run(
        compute(ws, store, NOW))
    assert s.planned == ["KR1 -> jira:OKR-1: would write on_track 0.5", "KR1 -> github:acme/okrs#3: would write on_track 0.5"]
    assert writers["jira"].writes == []
    assert store.writeback_state("KR1", "jira:OKR-1") is None


def test_failing_target_is_isolated(setup, store):
    ws, writers, factory = setup
    writers["github"].fail = True
    s = WritebackDispatcher(ws, store, Settings(), run_id=1, writer_factory=factory).run(compute(ws, store, NOW))
    assert s.written == 1
    assert s.errors == ["write-back KR1 -> github:acme/okrs#3: github: HTTP 502 from "
                        "https://api.github.com/repos/acme/okrs/issues/3"]
    assert store.writeback_state("KR1", "github:acme/okrs#3") is None  # retried next run


def test_skipped_when_the_source_failed(setup, store):
    ws, writers, factory = setup
    s = WritebackDispatcher(ws, store, Settings(), run_id=1, writer_factory=factory).run(
        compute(ws, store, NOW), {"jira"})
    assert (s.written, s.skipped) == (0, 2)


def test_webhook_target_ids_never_hold_the_url_secret():
    slack = WebhookTarget(to="webhook", url="https://hooks.slack.com/services/T1/B2/s3cr3tT0ken", format="slack")
    tid = target_id(slack)
    assert "s3cr3tT0ken" not in tid
    assert tid.startswith("webhook:https://hooks.slack.com/services/T1/B2/***#")
    assert target_id(WebhookTarget(to="webhook", url_env="OKR_HOOK")) == "webhook:$OKR_HOOK"
    with pytest.raises(ValueError):
        WebhookTarget(to="webhook")
