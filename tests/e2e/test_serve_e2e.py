"""`okrsync serve` over real localhost HTTP: signed webhooks move a KR and its write-back within seconds."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from okrsync.serve.signatures import sign

from .serve_harness import SECRETS, start_serve, stop_all, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300), pytest.mark.sqlite_only]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    s = start_serve(tmp_path_factory.mktemp("serve"), every="1h", slow_first_sync=2.0)
    yield s
    code = stop_all(s)
    assert code == 0, "".join(s.stderr)[-3000:]  # SIGTERM drains and exits 0


def settle(served, timeout: float = 20.0) -> None:
    """No webhook waiting and no sync running (a quiet moment between tests)."""
    time.sleep(served_debounce())
    wait_for(served.idle, timeout)


def served_debounce() -> float:
    return 2.5


def jira_comment(served, key: str = "OKR-1") -> str:
    comments = served.sandbox.world.jira_comments(key)
    return comments[-1]["body"] if comments else ""


def test_a_signed_webhook_moves_the_value_and_the_write_back(served):
    settle(served)
    before = served.value("KR3")
    webhook_syncs = served.syncs("webhook")
    started = time.monotonic()
    key = served.edits.new_jira_issue(summary="Checkout crashes on empty cart")
    assert served.sender.flush(10)
    assert served.sender.sent[-1].status == 202
    wait_for(lambda: served.value("KR3") == before + 1, 30)
    seconds = time.monotonic() - started
    assert seconds < 10, f"the KR moved after {seconds:.1f} s"
    new = f"{before + 1:.0f}"
    wait_for(lambda: f"Value / target: {new} /" in jira_comment(served), 10)  # Jira: the comment kept in place
    assert len([c for c in served.sandbox.world.jira_comments("OKR-1") if "okrsync:KR3" in c["body"]]) == 1
    assert served.sandbox.world.jira_property("OKR-1", "okrsync.status")  # and the issue property
    body = served.sandbox.world.github_issue("acme/okrs", 1)["body"]
    assert "okrsync:KR3" in body and new in body  # GitHub: the marked section of the issue body
    settle(served)
    assert served.syncs("webhook") == webhook_syncs + 1
    explain = served.get("/api/kr/KR3").json()
    assert explain["value"] == before + 1 and explain["metric"] == "count"
    assert any(i["label"] == key for i in explain["items_counted"]) or explain["items_total"] > 50
    assert served.get("/api/kr/NOPE").status_code == 404


def test_a_bad_or_missing_signature_is_401_and_syncs_nothing(served):
    settle(served)
    before, syncs = served.value("KR3"), served.syncs("webhook")
    key = served.edits.new_jira_issue(notify=False)  # a real change that only a sync would see
    marker = f"BODY-MARKER-{uuid.uuid4()}"
    body = json.dumps({"webhookEvent": "jira:issue_created", "issue": {"id": "1", "key": "APP-1"},
                       "note": marker}).encode()
    attempts = [
        {},  # unsigned
        sign("jira", "not-the-secret", body),
        sign("github", SECRETS["jira"], body),  # the right secret in another system's header
        {"X-Hub-Signature": "sha256=" + "0" * 64},
    ]
    for headers in attempts:
        r = served.post("/webhooks/jira", body, {"Content-Type": "application/json", **headers})
        assert r.status_code == 401, (headers, r.text)
    time.sleep(3.0)  # longer than the debounce window
    assert served.syncs("webhook") == syncs
    assert served.value("KR3") == before
    assert not any(marker in line for line in served.stderr)  # refused bodies are never logged
    assert any("webhook jira: refused" in line for line in served.stderr)
    m = served.metrics()
    assert m[("okrsync_webhooks_total", (("result", "unauthorized"), ("source", "jira")))] >= 4
    served.sender.jira(key, "jira:issue_created")  # the genuine webhook then syncs it
    wait_for(lambda: served.value("KR3") == before + 1, 30)


def test_a_replayed_delivery_syncs_once(served):
    settle(served)
    syncs = served.syncs("webhook")
    delivery = str(uuid.uuid4())
    body = json.dumps({"action": "edited", "issue": {"id": 1, "number": 1},
                       "repository": {"full_name": "acme/okrs"}}).encode()
    headers = {"Content-Type": "application/json", "X-GitHub-Event": "issues", "X-GitHub-Delivery": delivery,
               **sign("github", SECRETS["github"], body)}
    codes = [served.post("/webhooks/github", body, headers).status_code for _ in range(3)]
    assert codes == [202, 200, 200]
    settle(served)
    assert served.syncs("webhook") == syncs + 1
    time.sleep(3.0)
    assert served.syncs("webhook") == syncs + 1


def test_a_burst_of_50_events_makes_at_most_3_syncs(served):
    settle(served)
    before, syncs = served.value("KR3"), served.syncs("webhook")
    for n in range(50):
        served.edits.new_jira_issue(summary=f"Burst bug {n}")
    assert served.sender.flush(30)
    assert [s.status for s in served.sender.sent[-50:]] == [202] * 50
    wait_for(lambda: served.value("KR3") == before + 50, 30)
    settle(served)
    made = served.syncs("webhook") - syncs
    assert 1 <= made <= 3, made


def test_deletion_events_mark_the_item_deleted_at_once(served):
    settle(served)
    key = served.edits.new_jira_issue(summary="Filed by mistake")
    assert served.sender.flush(10)
    wait_for(lambda: any(i["label"] == key for i in served.get("/api/kr/KR3").json()["items_counted"]) or
             served.get("/api/kr/KR3").json()["items_total"] > 50, 30)
    settle(served)
    before = served.value("KR3")
    syncs = served.syncs("webhook")
    served.edits.delete_jira_issue(key)
    assert served.sender.flush(10)

    def deleted() -> bool:
        import sqlite3

        conn = sqlite3.connect(served.dir / "okrsync.db")
        try:
            return conn.execute("SELECT deleted FROM issues WHERE source = 'jira' AND key = ?", [key]).fetchone()[0]
        finally:
            conn.close()

    assert deleted() == 1  # marked when the webhook was accepted, before its debounced sync
    assert served.syncs("webhook") == syncs
    wait_for(lambda: served.value("KR3") == before - 1, 30)


def test_unknown_events_oversized_bodies_and_unknown_sources(served):
    ping = json.dumps({"zen": "Design for failure."}).encode()
    r = served.post("/webhooks/github", ping, {"X-GitHub-Event": "ping", "X-GitHub-Delivery": str(uuid.uuid4()),
                                               **sign("github", SECRETS["github"], ping)})
    assert r.status_code == 202 and r.json() == {"ignored": "ping"}
    comment = json.dumps({"webhookEvent": "comment_created"}).encode()
    assert served.post("/webhooks/jira", comment, sign("jira", SECRETS["jira"], comment)).status_code == 202
    big = b"{" + b" " * (1 << 20) + b"}"
    assert served.post("/webhooks/jira", big, sign("jira", SECRETS["jira"], big)).status_code == 413
    assert served.post("/webhooks/nosuch", ping, {}).status_code == 404
    pd = json.dumps({"event": {"id": str(uuid.uuid4()), "event_type": "incident.acknowledged"}}).encode()
    rotated = {"X-PagerDuty-Signature": "v1=" + "0" * 64 + "," + sign("pagerduty", SECRETS["pagerduty"], pd)[
        "X-PagerDuty-Signature"]}
    assert served.post("/webhooks/pagerduty", pd, rotated).status_code == 202
    sn = json.dumps({"table": "incident", "operation": "update", "sys_id": "x"}).encode()
    assert served.post("/webhooks/servicenow", sn, sign("servicenow", SECRETS["servicenow"], sn)).status_code == 202
    assert served.get("/webhooks/jira").status_code == 405


def test_health_status_and_metrics(served):
    health = served.get("/healthz")
    assert health.status_code == 200
    sources = health.json()["sources"]
    assert set(sources) == {"jira", "github", "servicenow", "pagerduty"}
    assert all(s["last_sync"] and s["error"] is None for s in sources.values())
    doc = served.get("/api/status").json()
    assert {"generated_at", "period", "objectives"} <= set(doc)
    m = served.metrics()  # prometheus_client's parser read the whole page
    assert all(name.startswith("okrsync_") for name, _ in m)
    for source in ("jira", "github", "servicenow", "pagerduty"):
        assert m[("okrsync_source_last_success_timestamp_seconds", (("source", source),))] > time.time() - 3600
        assert m[("okrsync_source_requests_total", (("source", source),))] > 0
        assert ("okrsync_source_rate_limit_wait_seconds_total", (("source", source),)) in m
        assert ("okrsync_source_errors_total", (("source", source),)) in m
    assert m[("okrsync_kr_value", (("kr", "KR3"), ("objective", "O1")))] == served.value("KR3")
    status = served.krs()["KR3"]["status"]
    assert m[("okrsync_kr_status", (("kr", "KR3"), ("objective", "O1"), ("status", status)))] == 1
    progress = served.krs()["KR3"]["progress"]  # None while a KR has no data (minutes into a period)
    assert (("okrsync_kr_progress", (("kr", "KR3"), ("objective", "O1"))) in m) is (progress is not None)
    assert m[("okrsync_up", ())] == 1


def test_a_lost_webhook_is_caught_by_the_next_poll(tmp_path):
    s = start_serve(tmp_path, every="4s")
    try:
        before = s.value("KR3")
        s.edits.new_jira_issue(notify=False)  # the webhook is lost
        wait_for(lambda: s.value("KR3") == before + 1, 30)
        assert s.syncs("poll") >= 1 and s.syncs("webhook") == 0
    finally:
        assert stop_all(s) == 0


def test_a_token_guards_the_dashboard_api_and_metrics(tmp_path):
    s = start_serve(tmp_path, extra_env={"OKRSYNC_SERVE_TOKEN": "serve-token-0b1c2d"})
    try:
        import requests

        for path in ("/", "/api/status", "/api/kr/KR3", "/metrics", "/api/events"):
            r = requests.get(s.url + path, timeout=10)
            assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer"), path
            bad = requests.get(s.url + path, headers={"Authorization": "Bearer nope"}, timeout=10)
            assert bad.status_code == 401, path
        assert s.get("/api/status").status_code == 200  # with the bearer token
        assert requests.get(s.url + "/healthz", timeout=10).json() == {"status": "ok"}  # probes need no token
        session = requests.Session()
        r = session.get(s.url + "/?token=serve-token-0b1c2d", timeout=10)  # a browser: the token becomes a cookie
        assert r.status_code == 200 and "okrsync-live" in r.text and "token=" not in r.url
        # webhooks need no token, only their signature
        body = json.dumps({"webhookEvent": "jira:issue_updated", "issue": {"id": "1"}}).encode()
        assert requests.post(s.url + "/webhooks/jira", data=body, headers=sign("jira", SECRETS["jira"], body),
                             timeout=10).status_code == 202
    finally:
        assert stop_all(s) == 0


def test_listening_beyond_loopback_needs_a_token(tmp_path):
    import subprocess
    import sys

    (tmp_path / "okrsync.yaml").write_text("period: 2026-Q4\nsources: {}\nobjectives: []\n")
    # 192.0.2.1 (TEST-NET-1) is on no interface: the refusal comes before any bind is tried
    r = subprocess.run([sys.executable, "-m", "okrsync", "serve", "--host", "192.0.2.1", "-w",
                        str(tmp_path / "okrsync.yaml")], capture_output=True, text=True, timeout=60,
                       env={"PATH": "/usr/bin:/bin", "OKRSYNC_SECRETS_DIR": str(tmp_path / "none")})
    assert r.returncode == 2 and "OKRSYNC_SERVE_TOKEN" in r.stderr, r.stderr


def test_sigterm_drains_the_sync_in_flight_and_exits_0(tmp_path):
    import sqlite3
    import threading

    import requests

    s = start_serve(tmp_path)
    events: list[bytes] = []

    def listen() -> None:  # a dashboard's live stream stays open until the server stops
        try:
            with requests.get(s.url + "/api/events", stream=True, timeout=30) as r:
                for chunk in r.iter_content(None):
                    events.append(chunk)
        except requests.RequestException:
            pass

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    try:
        wait_for(lambda: events, 10)
        s.sandbox.faults.slow(delay=1.5, system="jira")
        s.edits.new_jira_issue(summary="Arrives just before the shutdown")
        wait_for(lambda: not s.idle(), 20, every=0.05)  # the webhook's sync is running
        started = time.monotonic()
        assert s.stop() == 0
        assert time.monotonic() - started < 30
        listener.join(10)
        assert not listener.is_alive()
        conn = sqlite3.connect(tmp_path / "okrsync.db")
        last = conn.execute("SELECT status FROM runs ORDER BY id DESC LIMIT 1").fetchone()[0]
        conn.close()
        assert last == "ok"  # finished, not interrupted
    finally:
        assert stop_all(s) == 0


def test_okrsync_sandbox_webhooks_sends_signed_webhooks_on_each_change(served, tmp_path):
    import os
    import queue
    import subprocess
    import sys
    import threading

    import requests

    accepted = lambda: {dict(labels)["source"]: v for (name, labels), v in served.metrics().items()  # noqa: E731
                        if name == "okrsync_webhooks_total" and ("result", "accepted") in labels}
    before = accepted()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("OKRSYNC_")},
           **{f"OKRSYNC_SOURCES__{k.upper()}__WEBHOOK_SECRET": v for k, v in SECRETS.items()}}
    proc = subprocess.Popen([sys.executable, "-m", "okrsync", "sandbox", "--port", "0", "--scale", "50",
                             "--webhooks", served.url], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in iter(proc.stdout.readline, "")], daemon=True).start()
    try:
        jira = None
        deadline = time.monotonic() + 60
        while jira is None and time.monotonic() < deadline:
            line = lines.get(timeout=60)
            if line.strip().startswith("jira") and "http://127.0.0.1:" in line:
                jira = line.split()[-1]
        assert jira, "the sandbox printed no Jira URL"
        changed = requests.post(jira + "/_sandbox/advance", json={"seconds": 600}, timeout=30).json()
        assert changed["jira"]["created"] and changed["pagerduty"]
        wait_for(lambda: all(accepted().get(s, 0) > before.get(s, 0) for s in ("jira", "github", "pagerduty",
                                                                                 "servicenow")), 30)
    finally:
        proc.terminate()
        proc.wait(30)
