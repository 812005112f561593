"""The sync engine with fake connectors: pages + cursor per transaction, resume, failures, deletes, skips."""

from datetime import datetime, timedelta, timezone

import pytest

from okrsync.config.settings import Settings
from okrsync.config.workspace import load_workspace_text
from okrsync.connectors.base import Membership, Page, Skipped, SourceError
from okrsync.engine.pipeline import run_sync
from okrsync.mappings.selectors import jql_key
from tests.builders import deployment, issue

WS = """\
period: 2026-Q4
sources:
  jira: {type: jira, url: https://acme.atlassian.net, projects: [APP]}
  github: {type: github, repos: [acme/web]}
objectives:
  - id: O1
    title: t
    key_results:
      - {id: KR1, title: epic, metric: done_ratio, select: {source: jira, parent: APP-100}, target: 1}
      - {id: KR2, title: jql, metric: count, select: {source: jira, jql: 'labels = x'}, target: 3}
      - {id: KR3, title: deploys, metric: deployment_frequency, select: {source: github}, target: 3}
"""


class FakeStream:
    def __init__(self, name, pages, default_from="all", fail_after=None, calls=None):
        self.name = name
        self.pages = pages
        self.default_from = default_from
        self.fail_after = fail_after
        self.calls = calls if calls is not None else []

    def read(self, ctx):
        self.calls.append(ctx)
        start = (ctx.checkpoint or {}).get("page", 0)
        for i, page in enumerate(self.pages[start:], start=start):
            if self.fail_after is not None and i >= self.fail_after:
                raise SourceError("jira: HTTP 503 from https://acme.atlassian.net/rest/api/3/search/jql, gave up after 6 attempts")
            page.checkpoint = {"page": i + 1}
            yield page


class FakeConnector:
    def __init__(self, name, streams):
        self.name = name
        self._streams = streams
        self.requests_made = 0

    def streams(self):
        self.requests_made += len(self._streams)
        return self._streams

    def finish(self):
        pass

    def close(self):
        pass


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("OKRSYNC_SOURCES__JIRA__TOKEN", "tok-jira-123")
    monkeypatch.setenv("OKRSYNC_SOURCES__GITHUB__TOKEN", "tok-gh-456")
    from okrsync.engine.store import Store

    loaded = load_workspace_text(WS, str(tmp_path / "okrsync.yaml"))
    return loaded, Settings(), Store(tmp_path / "okrsync.db")


def factory(streams_by_source):
    return lambda name, cfg, creds, opts: FakeConnector(name, streams_by_source[name]())


def jira_pages():
    return [Page(records=[issue("APP-1", id="1", parent="APP-100", status_category="done")]),
            Page(records=[issue("APP-2", id="2", parent="APP-100")],
                 memberships=[Membership(jql_key("jira", "labels = x"), "labels = x", {"2"})]),
            Page(records=[issue("APP-3", id="3", parent="APP-100")], skipped=[Skipped("APP-9", "bad date 'x'")])]


def test_first_run_then_incremental(env):
    loaded, settings, store = env
    calls = []
    now = datetime(2026, 11, 15, tzinfo=timezone.utc)
    streams = {"jira": lambda: [FakeStream("issues", jira_pages(), calls=calls)],
               "github": lambda: [FakeStream("deployments", [Page(records=[deployment(id="d1", created="2026-11-01")])],
                                             default_from="previous_period", calls=calls)]}
    s1 = run_sync(loaded, settings, store, connector_factory=factory(streams), now=lambda: now)
    assert s1.exit_code == 0, s1.errors
    assert s1.sources["jira"].summary()["fetched"] == 3
    assert s1.skipped == [{"source": "jira", "stream": "issues", "key": "APP-9", "reason": "bad date 'x'"}]
    # first run: 'all' history for issues, previous period start for deployments
    by_name = {c.since: c for c in calls}
    assert None in by_name
    assert datetime(2026, 7, 1, tzinfo=timezone.utc) in by_name
    assert store.get_state("jira", "issues") == {"cursor": "2026-11-15T00:00:00.000Z", "pending": None, "state": {}}
    comp = s1.computation
    assert comp.kr("KR1").value == pytest.approx(1 / 3)
    assert comp.kr("KR2").items == 1
    calls.clear()
    later = now + timedelta(hours=1)
    run_sync(loaded, settings, store, connector_factory=factory(streams), now=lambda: later)
    jira_call = [c for c in calls if c.since != datetime(2026, 7, 1, tzinfo=timezone.utc)][0]
    assert jira_call.since == now - timedelta(minutes=10)  # cursor - lookback
    assert not jira_call.first_run
    assert len(store.history("KR1")) == 2


def test_failing_source_keeps_cursor_and_others_complete(env):
    loaded, settings, store = env
    now = datetime(2026, 11, 15, tzinfo=timezone.utc)
    streams = {"jira": lambda: [FakeStream("issues", jira_pages(), fail_after=1)],
               "github": lambda: [FakeStream("deployments", [Page(records=[deployment(id="d1", created="2026-11-01")])])]}
    s = run_sync(loaded, settings, store, connector_factory=factory(streams), now=lambda: now)
    assert s.exit_code == 1
    assert s.status == "partial"
    assert s.errors == ["jira: HTTP 503 from https://acme.atlassian.net/rest/api/3/search/jql, gave up after 6 attempts"]
    st = store.get_state("jira", "issues")
    assert st["cursor"] is None  # not advanced
    assert st["pending"]["checkpoint"] == {"page": 1}  # the saved page resumes next time
    assert store.get_state("github", "deployments")["cursor"] == "2026-11-15T00:00:00.000Z"
    run = store.runs()[0]
    assert run["status"] == "partial"
    # resume: the next run continues after the saved page, and the cursor is the first run's start
    calls = []
    streams["jira"] = lambda: [FakeStream("issues", jira_pages(), calls=calls)]
    s2 = run_sync(loaded, settings, store, connector_factory=factory(streams), now=lambda: now + timedelta(hours=1))
    assert s2.exit_code == 0
    assert calls[0].checkpoint == {"page": 1}
    assert store.get_state("jira", "issues")["cursor"] == "2026-11-15T00:00:00.000Z"
    assert store.db.execute("SELECT count(*) FROM issues").fetchone()[0] == 3


def test_full_sync_marks_vanished_records_deleted(env):
    loaded, settings, store = env
    now = datetime(2026, 11, 15, tzinfo=timezone.utc)
    streams = {"jira": lambda: [FakeStream("issues", jira_pages())], "github": lambda: []}
    run_sync(loaded, settings, store, connector_factory=factory(streams), now=lambda: now)
    streams["jira"] = lambda: [FakeStream("issues", jira_pages()[:2])]
    s = run_sync(loaded, settings, store, full=True, connector_factory=factory(streams), now=lambda: now)
    assert s.sources["jira"].deleted == 1
    assert s.computation.kr("KR1").items == 2


def test_missing_token_is_configuration_but_others_sync(env, monkeypatch):
    loaded, settings, store = env
    monkeypatch.delenv("OKRSYNC_SOURCES__JIRA__TOKEN")
    from okrsync.config.settings import Settings as S

    streams = {"jira": lambda: [], "github": lambda: [FakeStream("deployments", [Page(records=[deployment(id="d1")])])]}
    s = run_sync(loaded, S(), store, connector_factory=factory(streams))
    assert s.exit_code == 2
    assert s.errors == ["jira: no token: set OKRSYNC_SOURCES__JIRA__TOKEN"]
    assert store.get_state("github", "deployments")["cursor"] is not None


def test_unexpected_exception_in_a_connector_is_one_line(env):
    loaded, settings, store = env

    class Boom:
        name, default_from = "issues", "all"

        def read(self, ctx):
            raise KeyError("fields")
            yield  # pragma: no cover

    streams = {"jira": lambda: [Boom()], "github": lambda: []}
    s = run_sync(loaded, settings, store, connector_factory=factory(streams))
    assert s.errors == ["jira: unexpected error: KeyError: 'fields'"]
    assert s.exit_code == 1


def test_tokens_never_reach_the_store_or_summary(env):
    loaded, settings, store = env

    class Leaky:
        name, default_from = "issues", "all"

        def read(self, ctx):
            raise SourceError("jira: bad request with token tok-jira-123")
            yield  # pragma: no cover

    streams = {"jira": lambda: [Leaky()], "github": lambda: []}
    s = run_sync(loaded, settings, store, connector_factory=factory(streams))
    assert "tok-jira-123" not in " ".join(s.errors)
    dump = "\n".join(store.db.conn.iterdump())
    assert "tok-jira-123" not in dump and "tok-gh-456" not in dump
