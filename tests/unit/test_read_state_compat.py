"""Read state saved by earlier versions (untyped dicts, the same JSON) loads and resumes with the typed engine."""

import json
from datetime import datetime, timedelta, timezone

from okrsync.engine.pipeline import run_sync
from tests.unit.test_sync_engine import FakeStream, env, factory, jira_pages  # noqa: F401  (env: a fixture)

# Exactly what the engine wrote before PendingRead/StreamState: a Jira read interrupted after its first page.
OLD_STATE = {
    "cursor": None,
    "pending": {"run_started": "2026-11-15T00:00:00.000Z", "run_id": 1, "full": False, "since": None,
                "checkpoint": {"page": 1}},
    "state": {"discovery": {"deployment": "cloud", "fields": {"story_points": "customfield_10016"}}},
}


def _raw_pending(store, source, stream):
    row = store.db.execute("SELECT pending FROM sync_state WHERE source = ? AND stream = ?",
                           [source, stream]).fetchone()
    return json.loads(row[0]) if row and row[0] else None


def test_an_old_pending_read_resumes(env):  # noqa: F811
    loaded, settings, store = env
    store.save_state("jira", "issues", OLD_STATE)
    assert store.get_state("jira", "issues") == OLD_STATE
    calls = []
    streams = {"jira": lambda: [FakeStream("issues", jira_pages(), calls=calls)],
               "github": lambda: [FakeStream("deployments", [])]}
    later = datetime(2026, 11, 15, 1, tzinfo=timezone.utc)
    s = run_sync(loaded, settings, store, connector_factory=factory(streams), now=lambda: later)
    assert s.exit_code == 0, s.errors
    ctx = calls[0]
    assert ctx.checkpoint == {"page": 1} and ctx.since is None and ctx.first_run
    assert ctx.state == OLD_STATE["state"]
    assert s.sources["jira"].summary()["fetched"] == 2  # the pages after the saved one
    # the cursor is the interrupted run's start; the connector state is kept
    assert store.get_state("jira", "issues") == {"cursor": "2026-11-15T00:00:00.000Z", "pending": None,
                                                 "state": OLD_STATE["state"]}


def test_the_pending_read_keeps_its_json_shape(env):  # noqa: F811
    loaded, settings, store = env
    now = datetime(2026, 11, 15, tzinfo=timezone.utc)
    streams = {"jira": lambda: [FakeStream("issues", jira_pages(), fail_after=1)],
               "github": lambda: [FakeStream("deployments", [])]}
    s = run_sync(loaded, settings, store, connector_factory=factory(streams), now=lambda: now)
    assert s.exit_code == 1
    pending = _raw_pending(store, "jira", "issues")
    assert set(pending) == {"run_started", "run_id", "full", "since", "checkpoint"}
    assert pending["run_started"] == "2026-11-15T00:00:00.000Z" and pending["full"] is False
    assert pending["since"] is None and pending["checkpoint"] == {"page": 1}
    assert isinstance(pending["run_id"], int)
    streams["jira"] = lambda: [FakeStream("issues", jira_pages())]
    s2 = run_sync(loaded, settings, store, connector_factory=factory(streams), now=lambda: now + timedelta(hours=1))
    assert s2.exit_code == 0
    assert store.get_state("jira", "issues")["cursor"] == "2026-11-15T00:00:00.000Z"


def test_a_retired_repo_check_row_does_not_hold_back_synced_at(env):  # noqa: F811
    _, _, store = env
    # GitHub's repo_check pseudo-stream (now GitHubConnector.finish()) left a row in stores written before
    store.save_state("github", "repo_check", {"cursor": "2026-10-01T00:00:00.000Z", "pending": None, "state": {}})
    store.save_state("github", "issues", {"cursor": "2026-11-15T00:00:00.000Z", "pending": None, "state": {}})
    assert store.source_synced_at() == {"github": "2026-11-15T00:00:00.000Z"}


def test_finish_runs_after_every_stream_and_can_fail_the_source(env):  # noqa: F811
    from okrsync.connectors.base import SourceError
    from tests.unit.test_sync_engine import FakeConnector

    loaded, settings, store = env
    order: list[str] = []

    class Finishing(FakeConnector):
        def finish(self):
            order.append("finish")
            if self.name == "github":
                raise SourceError("github: repository acme/nope not found (or the token cannot see it)")

    calls: list = []

    def make(name, cfg, creds, opts):
        return Finishing(name, [FakeStream("issues" if name == "jira" else "deployments", [], calls=calls)])

    s = run_sync(loaded, settings, store, connector_factory=make,
                 now=lambda: datetime(2026, 11, 15, tzinfo=timezone.utc))
    assert s.errors == ["github: repository acme/nope not found (or the token cannot see it)"]
    assert len(calls) == 2 and order == ["finish", "finish"]
    # the streams kept their cursors: the failure is the source's, after they were all read
    assert store.get_state("github", "deployments")["cursor"] == "2026-11-15T00:00:00.000Z"
