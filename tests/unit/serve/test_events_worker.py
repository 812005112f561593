"""Webhook classification, the debounce/poll worker, and where the webhook secret and serve token come from."""

from __future__ import annotations

import json
import threading
import time

import pytest
from requests.structures import CaseInsensitiveDict

from okrsync.config.settings import Settings
from okrsync.serve.events import BadPayload, Deletion, parse_event
from okrsync.serve.worker import Pending, SyncJob, SyncWorker


def body(doc) -> bytes:
    return json.dumps(doc).encode()


EVENT_CASES = [
    ("jira", {}, {"webhookEvent": "jira:issue_updated", "issue": {"id": "10001", "key": "APP-1"}},
     ("jira:issue_updated", True, None, [])),
    ("jira", {}, {"webhookEvent": "jira:issue_deleted", "issue": {"id": "10001", "key": "APP-1"}},
     ("jira:issue_deleted", True, None, [Deletion("issues", "10001"), Deletion("issues", "APP-1")])),
    ("jira", {}, {"webhookEvent": "comment_created"}, ("comment_created", False, None, [])),
    ("jira", {}, {"webhookEvent": "sprint_started"}, ("sprint_started", False, None, [])),
    ("github", {"X-GitHub-Event": "issues"}, {"action": "closed", "issue": {"id": 5}},
     ("issues.closed", True, frozenset({"issues", "repo_check"}), [])),
    ("github", {"X-GitHub-Event": "issues"}, {"action": "deleted", "issue": {"id": 5}},
     ("issues.deleted", True, frozenset({"issues", "repo_check"}), [Deletion("issues", "5")])),
    ("github", {"X-GitHub-Event": "deployment_status"}, {"action": "created"},
     ("deployment_status.created", True, frozenset({"deployments", "repo_check"}), [])),
    ("github", {"X-GitHub-Event": "workflow_run"}, {"action": "completed"},
     ("workflow_run.completed", True, frozenset({"workflow_runs", "repo_check"}), [])),
    ("github", {"X-GitHub-Event": "ping"}, {"zen": "Keep it logically awesome."}, ("ping", False, None, [])),
    ("github", {"X-GitHub-Event": "star"}, {"action": "created"}, ("star.created", False, None, [])),
    ("pagerduty", {}, {"event": {"id": "E1", "event_type": "incident.resolved"}},
     ("incident.resolved", True, None, [])),
    ("pagerduty", {}, {"event": {"id": "E2", "event_type": "pagey.ping"}}, ("pagey.ping", False, None, [])),
    ("servicenow", {}, {"table": "incident", "operation": "update", "sys_id": "abc"},
     ("incident.update", True, None, [])),
    ("servicenow", {}, {"table": "incident", "operation": "delete", "sys_id": "abc", "number": "INC1"},
     ("incident.delete", True, None, [Deletion("incidents", "abc"), Deletion("incidents", "INC1")])),
    ("servicenow", {}, {"table": "problem", "operation": "update"}, ("problem.update", False, None, [])),
]


@pytest.mark.parametrize("kind, headers, doc, expected", EVENT_CASES)
def test_parse_event(kind, headers, doc, expected):
    e = parse_event("src", kind, CaseInsensitiveDict(headers), body(doc))
    assert (e.name, e.relevant, e.streams, e.deletions) == expected
    assert e.source == "src"


def test_delivery_ids():
    gh = parse_event("g", "github", CaseInsensitiveDict({"X-GitHub-Event": "issues", "X-GitHub-Delivery": "d-1"}),
                     body({"action": "opened"}))
    pd = parse_event("p", "pagerduty", CaseInsensitiveDict(),
                     body({"event": {"id": "E9", "event_type": "incident.triggered"}}))
    assert (gh.delivery, pd.delivery) == ("d-1", "E9")


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b"\xff\xfe", b'"text"'])
def test_bad_payloads(raw):
    with pytest.raises(BadPayload):
        parse_event("j", "jira", CaseInsensitiveDict(), raw)


def test_pending_merges_streams_and_keeps_the_first_deadline():
    p = Pending()
    p.add("github", frozenset({"issues"}), due=10.0)
    p.add("github", frozenset({"deployments"}), due=11.0)
    p.add("jira", None, due=12.0)
    p.add("jira", frozenset({"issues"}), due=13.0)
    assert p.due == 10.0 and p.events == 4
    job = p.take()
    assert job.sources == ["github", "jira"]
    assert job.streams == {"github": frozenset({"issues", "deployments"}), "jira": None}
    assert not p and p.due is None


def test_worker_debounces_a_burst_into_one_sync_and_polls():
    jobs: list[SyncJob] = []
    ran = threading.Event()

    def run(job: SyncJob) -> bool:
        jobs.append(job)
        ran.set()
        return True

    w = SyncWorker(run, every=3600.0, debounce=0.3)
    w.start()
    try:
        assert w.first_done.wait(5)
        assert [j.trigger for j in jobs] == ["startup"]
        for _ in range(50):
            w.trigger("jira")
        deadline = time.monotonic() + 5
        while len(jobs) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        assert [j.trigger for j in jobs] == ["startup", "webhook"]
        assert jobs[1].events == 50 and jobs[1].sources == ["jira"]
        w.poll_now()
        deadline = time.monotonic() + 5
        while len(jobs) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert jobs[2].trigger == "poll" and jobs[2].sources is None
    finally:
        assert w.drain(5)


def test_a_busy_lock_puts_the_webhook_job_back():
    calls: list[SyncJob] = []

    def run(job: SyncJob) -> bool:
        calls.append(job)
        return job.trigger != "webhook"  # the lock is busy for webhook runs

    w = SyncWorker(run, every=3600.0, debounce=0.05)
    w.start()
    try:
        assert w.first_done.wait(5)
        w.trigger("github", frozenset({"issues"}))
        deadline = time.monotonic() + 5
        while len(calls) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)
        assert len(calls) == 2  # not retried at once: after RETRY_AFTER_FAILURE
        assert w._pending.streams == {"github": frozenset({"issues"})}
    finally:
        assert w.drain(5)


def test_drain_lets_the_sync_in_flight_finish():
    started, release, finished = threading.Event(), threading.Event(), threading.Event()

    def run(job: SyncJob) -> bool:
        started.set()
        release.wait(5)
        finished.set()
        return True

    w = SyncWorker(run, every=3600.0)
    w.start()
    assert started.wait(5)
    threading.Timer(0.3, release.set).start()
    assert w.drain(5)
    assert finished.is_set() and not w.abort.is_set()


def test_webhook_secret_and_serve_token_from_env_and_secrets_dir(monkeypatch, tmp_path):
    for k in list(__import__("os").environ):
        if k.startswith("OKRSYNC_"):
            monkeypatch.delenv(k)
    (tmp_path / "OKRSYNC_SOURCES__GITHUB__WEBHOOK_SECRET").write_text("from-a-file\n")
    (tmp_path / "OKRSYNC_SERVE_TOKEN").write_text("token-from-a-file")
    monkeypatch.setenv("OKRSYNC_SECRETS_DIR", str(tmp_path))
    monkeypatch.setenv("OKRSYNC_SOURCES__JIRA_PROD__WEBHOOK_SECRET", "from-env")
    s = Settings()
    assert s.credentials("jira-prod").webhook_secret.get_secret_value() == "from-env"
    assert s.credentials("github").webhook_secret.get_secret_value() == "from-a-file"
    assert s.serve_token.get_secret_value() == "token-from-a-file"
    assert {"from-env", "from-a-file", "token-from-a-file"} <= set(s.secret_values())  # redacted in logs
