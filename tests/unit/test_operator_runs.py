"""Runs end recorded: a stop ends a run at a page boundary or mid-wait (interrupted), dead runs become abandoned."""

import json
import os
import signal
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from okrsync.app import StopOnSignal
from okrsync.config.settings import Settings
from okrsync.config.workspace import load_workspace_text
from okrsync.connectors.base import Page
from okrsync.engine.lock import StoreLock
from okrsync.engine.pipeline import Interrupted, run_sync, stoppable_sleep
from okrsync.engine.scheduler import Every, Scheduler
from okrsync.engine.store import Store
from tests.builders import issue

WS = """\
period: 2026-Q4
sources:
  jira: {type: jira, url: https://jira.acme.example, email: bot@acme.example, projects: [APP]}
  github: {type: github, repos: [acme/web]}
objectives:
  - id: O1
    title: t
    key_results:
      - {id: KR1, title: epic, metric: done_ratio, select: {source: jira, parent: APP-100}, target: 1}
      - {id: KR3, title: deploys, metric: deployment_frequency, select: {source: github}, target: 3}
"""
NOW = datetime(2026, 11, 15, tzinfo=timezone.utc)


class Stream:
    """Pages of one issue each; `hook(i, options)` runs before page i is yielded."""

    def __init__(self, name, n, hook=None, options=None):
        self.name, self.default_from = name, "all"
        self.n, self.hook, self.options = n, hook, options

    def read(self, ctx):
        start = (ctx.checkpoint or {}).get("page", 0)
        for i in range(start, self.n):
            if self.hook:
                self.hook(i, self.options)
            yield Page(records=[issue(f"APP-{i}", id=str(i), parent="APP-100")], checkpoint={"page": i + 1})


class Connector:
    def __init__(self, name, streams):
        self.name, self._streams, self.requests_made = name, streams, 0

    def streams(self):
        return self._streams

    def finish(self):
        pass

    def close(self):
        pass


def factory(jira_hook=None, pages=5):
    def make(name, cfg, creds, options):
        if name == "jira":
            return Connector(name, [Stream("issues", pages, jira_hook, options)])
        return Connector(name, [Stream("deployments", 0)])
    return make


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("OKRSYNC_SOURCES__JIRA__TOKEN", "tok-jira-123")
    monkeypatch.setenv("OKRSYNC_SOURCES__GITHUB__TOKEN", "tok-gh-456")
    loaded = load_workspace_text(WS, str(tmp_path / "okrsync.yaml"))
    return loaded, Settings(), Store(tmp_path / "okrsync.db")


def test_a_stop_ends_the_run_at_the_next_page_interrupted_and_the_next_run_resumes(env):
    loaded, settings, store = env
    stop = threading.Event()

    def hook(i, _options):
        if i == 2:
            stop.set()  # as the signal handler does, while page 2 is being read

    s = run_sync(loaded, settings, store, connector_factory=factory(hook), now=lambda: NOW, stop=stop)
    assert s.interrupted and s.status == "interrupted" and s.exit_code == 130
    assert s.interrupted_sources == ["jira"] and s.errors == []
    assert s.computation is None and s.writeback.written == 0
    run = store.runs()[0]
    assert run["status"] == "interrupted" and run["finished"]
    assert json.loads(run["errors"]) == ["jira: interrupted; the pages read are saved and the next run resumes"]
    saved = store.db.execute("SELECT count(*) FROM issues").fetchone()[0]
    assert 1 <= saved <= 3
    assert store.get_state("jira", "issues")["pending"]["checkpoint"] == {"page": saved}
    assert store.db.execute("SELECT count(*) FROM kr_values").fetchone()[0] == 0
    s2 = run_sync(loaded, settings, store, connector_factory=factory(), now=lambda: NOW)
    assert s2.status == "ok"
    assert store.db.execute("SELECT count(*) FROM issues").fetchone()[0] == 5
    assert [r["status"] for r in store.runs()] == ["ok", "interrupted"]


def test_a_stop_interrupts_a_long_wait_at_once(env):
    loaded, settings, store = env
    stop = threading.Event()

    def hook(i, options):
        if i == 1:
            options.sleep(3600)  # a rate-limit wait inside the HTTP client

    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    s = run_sync(loaded, settings, store, connector_factory=factory(hook), now=lambda: NOW, stop=stop)
    assert time.monotonic() - started < 30  # not an hour
    assert s.status == "interrupted" and s.interrupted_sources == ["jira"]
    assert store.runs()[0]["status"] == "interrupted"


def test_stoppable_sleep_uses_the_injected_sleep_and_raises_once_stopped():
    stop, slept = threading.Event(), []
    sleep = stoppable_sleep(stop, slept.append)
    sleep(2.5)
    assert slept == [2.5]
    stop.set()
    with pytest.raises(Interrupted):
        sleep(1)
    assert slept == [2.5]
    with pytest.raises(Interrupted):
        stoppable_sleep(stop)(3600)


def test_runs_left_running_by_a_dead_process_are_marked_abandoned(env):
    loaded, settings, store = env
    dead = store.start_run("sync", NOW)
    s = run_sync(loaded, settings, store, connector_factory=factory(), now=lambda: NOW)
    rows = {r["id"]: r for r in store.runs()}
    assert rows[dead]["status"] == "abandoned" and rows[s.run_id]["status"] == "ok"
    assert f"pid {os.getpid()}" in json.loads(rows[dead]["errors"])[0]


def test_an_unexpected_failure_after_the_reads_still_ends_the_run(env, tmp_path):
    loaded, settings, store = env
    loaded = load_workspace_text(WS + "report: {path: report.html}\n", str(tmp_path / "okrsync.yaml"))

    def render(comp, store):
        raise RuntimeError("renderer bug")

    with pytest.raises(RuntimeError):
        run_sync(loaded, settings, store, connector_factory=factory(), now=lambda: NOW, render_html=render)
    run = store.runs()[0]
    assert run["status"] == "failed" and run["finished"]
    assert json.loads(run["errors"]) == ["RuntimeError: renderer bug"]


def test_an_output_that_fails_at_write_time_is_one_error_of_a_partial_run(env, tmp_path):
    loaded, settings, store = env
    loaded = load_workspace_text(WS + "report: {path: report.html, json: status.json}\n", str(tmp_path / "okrsync.yaml"))

    def render(comp, store):
        raise OSError(28, "No space left on device")

    s = run_sync(loaded, settings, store, connector_factory=factory(), now=lambda: NOW, render_html=render)
    assert s.outputs == [str(tmp_path / "status.json")]
    assert s.errors == [f"report.path: cannot write {tmp_path / 'report.html'}: No space left on device"]
    assert s.exit_code == 1 and store.runs()[0]["status"] == "partial"


def test_a_stop_while_waiting_for_the_lock_raises_interrupted_and_records_nothing(env):
    loaded, settings, store = env
    holder = StoreLock(store.path)
    holder.acquire(0)
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    try:
        with pytest.raises(Interrupted):
            run_sync(loaded, settings, store, connector_factory=factory(), wait=60, stop=stop)
    finally:
        holder.release()
    assert store.runs() == []


def test_the_scheduler_ends_when_the_shared_stop_is_set():
    stop = threading.Event()
    calls = []

    def one():
        calls.append(1)
        threading.Timer(0.05, stop.set).start()
        return 0

    sched = Scheduler(Every(timedelta(hours=1)), one, stop=stop)
    assert sched.loop() == 0 and calls == [1]


def test_stop_on_signal_turns_sigint_and_sigterm_into_an_event():
    before = signal.getsignal(signal.SIGINT)
    with StopOnSignal() as stopper:
        os.kill(os.getpid(), signal.SIGINT)
        assert stopper.event.wait(5)
        os.kill(os.getpid(), signal.SIGTERM)  # a second signal changes nothing
        time.sleep(0.05)
    assert stopper.exit_code == 130
    assert signal.getsignal(signal.SIGINT) is before
    with StopOnSignal() as stopper:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stopper.event.wait(5)
    assert stopper.exit_code == 143
